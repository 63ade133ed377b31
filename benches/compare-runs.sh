#!/usr/bin/env bash
# Full simulated runs per second of each flow's bench scenario, for two hvsim binaries
# side by side in one run (an older build against this one), through `hvsim explore`.
#
# Usage: benches/compare-runs.sh OLD_HVSIM [NEW_HVSIM]
#        (NEW_HVSIM defaults to this tree's release build, built first)
# Environment: RUNS (runs per measurement, default 2000), JOBS (1), REPS (3), SEED (1).
#
# Each repetition runs every flow once with each binary, alternating which goes first;
# the medians over the repetitions are printed with the ratio new/old (above 1 means
# the new binary is faster). On a noisy machine the ratio says more than the figures.
set -euo pipefail

RUNS=${RUNS:-2000}
JOBS=${JOBS:-1}
REPS=${REPS:-3}
SEED=${SEED:-1}

die() {
  echo "compare-runs: $*" >&2
  exit 1
}

[ $# -ge 1 ] || die "usage: benches/compare-runs.sh OLD_HVSIM [NEW_HVSIM]"
old=$1
[ -x "$old" ] || die "$old is not an executable"
cd "$(dirname "$0")/.."
if [ $# -ge 2 ]; then
  new=$2
else
  cargo build --release -q -p hvsim
  new=target/release/hvsim
fi
[ -x "$new" ] || die "$new is not an executable"

# runs/s of one exploration (the summary line's figure).
rate() {
  "$1" explore "$2" --runs "$RUNS" --jobs "$JOBS" --seed "$SEED" 2>/dev/null |
    sed -n 's/.*: \([0-9.]*\) runs\/s.*/\1/p' | tail -1
}

median() {
  tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}

printf '%-18s %12s %12s %8s   (runs/s, median of %s, %s runs, --jobs %s)\n' \
  flow old new new/old "$REPS" "$RUNS" "$JOBS"
for f in sim/benches/scenarios/*.toml; do
  name=$(basename "$f" .toml)
  o="" n=""
  for r in $(seq "$REPS"); do
    if [ $((r % 2)) = 1 ]; then
      o="$o $(rate "$old" "$f")"
      n="$n $(rate "$new" "$f")"
    else
      n="$n $(rate "$new" "$f")"
      o="$o $(rate "$old" "$f")"
    fi
  done
  mo=$(echo "$o" | median)
  mn=$(echo "$n" | median)
  printf '%-18s %12.1f %12.1f %8.2f\n' "$name" "$mo" "$mn" "$(echo "$mn $mo" | awk '{print $1/$2}')"
done
