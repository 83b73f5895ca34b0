#!/usr/bin/env bash
# Warm workers against fresh interpreters: the mesh-offsets example (50 vtk
# tasks of a few ms each, behind ~2 s of imports) with 2 workers, run by
# `burst submit` warm (the default), by `burst submit --warm=false`, and by
# GNU parallel -j2 starting the same script once per task; in one run,
# alternating the three, and prints the median wall-clock times and their
# ratios.
#
#   bench/warm.sh [ROUNDS]   (default 3; needs GNU parallel: apt-get install parallel)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rounds="${1:-3}"
py="${BENCH_PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || { echo "bench: no $py: run make python (numpy and vtk are needed)" >&2; exit 2; }
. "$root/bench/lib.sh"
need_parallel
go build -o "$root/bin/burst" "$root/cmd/burst"
burst="$root/bin/burst"
example="$root/examples/mesh-offsets"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The sweep's 50 inputs, as pickles for parallel.
"$py" - "$work/inputs" <<'PY'
import os, pickle, sys
os.makedirs(sys.argv[1])
for seed in range(50):
    with open(os.path.join(sys.argv[1], "%04d.pkl" % seed), "wb") as f:
        pickle.dump({"radius": 10.0, "resolution": 24, "scale": 0.5, "seed": seed}, f)
PY

run_burst() { # warm|cold
  rm -rf "$work/store" "$work/out-$1"
  "$burst" submit "$example/offset.py" --sweep "$example/sweep.yaml" --workers 2 --python "$py" \
    --warm="$([ "$1" = warm ] && echo true || echo false)" \
    --store "$work/store" --out "$work/out-$1" >/dev/null 2>&1
}
run_warm() { run_burst warm; }
run_cold() { run_burst cold; }
run_parallel() {
  rm -rf "$work/out-par"; mkdir "$work/out-par"
  parallel -j2 "$py $example/offset.py < {} > $work/out-par/{/.}.pkl 2>/dev/null" ::: "$work"/inputs/*.pkl
}

declare -A times
tools="warm cold parallel"
for tool in $tools; do times[$tool]=""; done
run_warm  # warm the page cache and the imports' files
for r in $(seq "$rounds"); do
  for tool in $tools; do
    t0=$(now); "run_$tool"; t1=$(now)
    times[$tool]+="$(echo "$t1 - $t0" | bc) "
  done
done
for d in out-warm/outputs out-cold/outputs out-par; do
  [ "$(ls "$work/$d" | wc -l)" = 50 ] || { echo "bench: $d does not hold 50 outputs" >&2; exit 1; }
done
# Warm and cold give the same bytes.
for f in "$work"/out-cold/outputs/*.pkl; do
  cmp -s "$f" "$work/out-warm/outputs/$(basename "$f")" || { echo "bench: warm and cold outputs differ: $(basename "$f")" >&2; exit 1; }
done

mw=$(echo "${times[warm]}" | median)
mc=$(echo "${times[cold]}" | median)
mp=$(echo "${times[parallel]}" | median)
echo "mesh-offsets, 50 tasks, 2 at a time, $rounds rounds (median wall clock):"
printf "  burst submit (warm)          %6.2f s   (runs: %s)\n" "$mw" "${times[warm]}"
printf "  burst submit --warm=false    %6.2f s   (runs: %s)\n" "$mc" "${times[cold]}"
printf "  GNU parallel -j2             %6.2f s   (runs: %s)\n" "$mp" "${times[parallel]}"
printf "speed-up cold/warm:     %.1fx\n" "$(echo "$mc / $mw" | bc -l)"
printf "speed-up parallel/warm: %.1fx\n" "$(echo "$mp / $mw" | bc -l)"
