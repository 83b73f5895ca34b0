#!/usr/bin/env bash
# Compares `burst submit --local --workers 2` with GNU parallel -j2 and
# xargs -P2 running the same Python script over the same 200 pickles (a
# ~50 ms CPU-bound job each), in one run, alternating the tools, and prints
# the median wall-clock times and their ratios.
#
#   bench/local.sh [ROUNDS]   (default 5; needs GNU parallel: apt-get install parallel)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${1:-5}"
tasks="${BENCH_TASKS:-200}"
py="${BENCH_PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
. "$root/bench/lib.sh"
need_parallel
go build -o "$root/bin/burst" "$root/cmd/burst"
burst="$root/bin/burst"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/job.py" <<'PY'
import pickle, sys, time
p = pickle.load(sys.stdin.buffer)
t = time.perf_counter()
x = 0
while time.perf_counter() - t < 0.05:  # ~50 ms of CPU
    x += 1
pickle.dump({"i": p["i"], "spins": x}, sys.stdout.buffer)
PY
"$py" - "$work/inputs" "$tasks" <<'PY'
import os, pickle, sys
os.makedirs(sys.argv[1])
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], "%04d.pkl" % i), "wb") as f:
        pickle.dump({"i": i}, f)
PY

run_burst() {
  rm -rf "$work/store" "$work/out-burst"
  "$burst" submit "$work/job.py" --local --inputs "$work/inputs" --workers 2 --python "$py" \
    --store "$work/store" --out "$work/out-burst" >/dev/null
}
run_parallel() {
  rm -rf "$work/out-par"; mkdir "$work/out-par"
  parallel -j2 "$py $work/job.py < {} > $work/out-par/{/.}.pkl" ::: "$work"/inputs/*.pkl
}
run_xargs() {
  rm -rf "$work/out-xargs"; mkdir "$work/out-xargs"
  ls "$work"/inputs/*.pkl | xargs -P2 -I{} sh -c "$py $work/job.py < {} > $work/out-xargs/\$(basename {})"
}
declare -A times
for tool in burst parallel xargs; do times[$tool]=""; done
run_parallel  # warm the page cache and Python's imports
for r in $(seq "$rounds"); do
  for tool in burst parallel xargs; do
    t0=$(now); "run_$tool"; t1=$(now)
    times[$tool]+="$(echo "$t1 - $t0" | bc) "
  done
done
[ "$(ls "$work/out-burst/outputs" | wc -l)" = "$tasks" ] || { echo "bench: burst did not produce $tasks outputs" >&2; exit 1; }
[ "$(ls "$work/out-par" | wc -l)" = "$tasks" ] || { echo "bench: parallel did not produce $tasks outputs" >&2; exit 1; }

mb=$(echo "${times[burst]}" | median)
mp=$(echo "${times[parallel]}" | median)
mx=$(echo "${times[xargs]}" | median)
echo "$tasks tasks of ~50 ms, 2 at a time, $rounds rounds (median wall clock):"
printf "  burst submit --local --workers 2  %6.2f s   (runs: %s)\n" "$mb" "${times[burst]}"
printf "  GNU parallel -j2                  %6.2f s   (runs: %s)\n" "$mp" "${times[parallel]}"
printf "  xargs -P2                         %6.2f s   (runs: %s)\n" "$mx" "${times[xargs]}"
printf "ratio burst/parallel: %.3f\n" "$(echo "$mb / $mp" | bc -l)"
printf "ratio burst/xargs:    %.3f\n" "$(echo "$mb / $mx" | bc -l)"
