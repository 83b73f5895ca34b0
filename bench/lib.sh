# Shared by the benchmark scripts: source it after setting root.

# need_parallel installs GNU parallel when it is missing and we are root.
need_parallel() {
  command -v parallel >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -qq parallel >/dev/null 2>&1) || (apt-get update -qq && apt-get install -y -qq parallel >/dev/null)
  else
    echo "bench: GNU parallel is needed: apt-get install parallel" >&2; exit 2
  fi
}

now() { date +%s.%N; }

# median of the numbers on stdin, separated by spaces.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
