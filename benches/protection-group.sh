#!/usr/bin/env bash
# The cost curve of SPEC R15's protection group (issue 11): generates a group of N VMs
# (hvsim gen protection-group) for each size, runs its full backup job with every
# invariant checked, and prints per size the wall time (median of 3 where a run is
# short enough), the peak memory (maximum resident set size) and the run's steps; then
# the exponents of wall time and memory in N, fitted by least squares on log-log.
#
#   benches/protection-group.sh [SIZE...]        (default: 10 100 400 800 1600)
#
# Environment: HOSTS (8), DISK ("100 GiB"), RATE (40 transactions/s), GUEST (windows),
# PER_JOB (1: host backups in flight at once; the virtual time column shows the effect),
# LIMIT (120: seconds one run may take; it is killed after that and larger sizes are
# skipped), REPEAT_UNDER (20: seconds under which a size is run 3 times), HVSIM (the
# binary; by default a release build of this tree). A size whose memory, extrapolated
# linearly from the last one, would pass 3/4 of the memory available is skipped too.
# Not run by test.sh: it is a benchmark, its figures depend on the machine.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 100 400 800 1600)
hosts=${HOSTS:-8}
disk=${DISK:-100 GiB}
rate=${RATE:-40}
guest=${GUEST:-windows}
per_job=${PER_JOB:-1}
limit=${LIMIT:-120}
repeat_under=${REPEAT_UNDER:-20}

if [ -z "${HVSIM:-}" ]; then
    (cd "$root" && cargo build --release -q --bin hvsim)
    HVSIM=$root/target/release/hvsim
fi
[ -x /usr/bin/time ] || { echo "protection-group.sh: needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/hvsim-group.XXXXXX")
trap 'rm -rf "$work"' EXIT

mem_available_kib() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }

# One run of FILE: prints "wall_s peak_kib steps virtual_s verdict".
run_once() {
    local file=$1 out=$work/out.txt fig=$work/time.txt rc=0
    # time outside timeout, which kills the run only (not itself, --foreground) and
    # reaps it: a run killed at the limit still has its figures.
    /usr/bin/time -o "$fig" -f '%e %M' timeout --foreground --signal=KILL "$limit" \
        "$HVSIM" run -q "$file" --timeout "${limit}s" >"$out" 2>&1 || rc=$?
    local verdict=PASS
    if [ $rc -eq 137 ] || [ $rc -eq 124 ] || grep -q 'TIMEOUT\|time limit reached' "$out"; then
        verdict="KILLED(>${limit}s)"
    elif [ $rc -ne 0 ]; then
        verdict="FAIL(exit $rc)"
    fi
    local steps virt
    steps=$(awk '/ steps, .* s virtual$/ { print $1 }' "$out")
    virt=$(awk '/ steps, .* s virtual$/ { print $3 }' "$out")
    # GNU time writes "Command exited with non-zero status N" first when the run fails.
    local wall=$limit peak=0
    read -r wall peak < <(tail -n 1 "$fig" 2>/dev/null) || true
    if [ "$verdict" != PASS ]; then
        grep -m 3 -E 'error|FAIL|NOT MET|STEP CAP|TIMEOUT' "$out" >&2 || true
    fi
    echo "${wall:-$limit} ${peak:-0} ${steps:--} ${virt:--} $verdict"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '%6s %6s %10s %12s %10s %10s  %s\n' VMs hosts "wall s" "peak MiB" steps "virtual s" verdict
fits=$work/fits.txt
: >"$fits"
prev_n=0 prev_peak=0
for n in "${sizes[@]}"; do
    h=$(( hosts < n ? hosts : n ))
    if [ $prev_n -gt 0 ]; then
        want=$(( prev_peak * n / prev_n ))
        # Three quarters of what is available: the machine is shared.
        if [ "$want" -gt $(( $(mem_available_kib) / 4 * 3 )) ]; then
            printf '%6s %6s %10s %12s %10s %10s  %s\n' "$n" "$h" - "~$((want / 1024))" - - "SKIPPED (memory)"
            continue
        fi
    fi
    file=$work/group-$n.toml
    "$HVSIM" gen protection-group --vms "$n" --hosts "$h" --disk "$disk" --rate "$rate" \
        --guest "$guest" --per-job "$per_job" -o "$file" >/dev/null
    read -r wall peak steps virt verdict < <(run_once "$file")
    walls=("$wall") peaks=("$peak")
    if [ "$verdict" = PASS ] && awk -v w="$wall" -v u="$repeat_under" 'BEGIN { exit !(w < u) }'; then
        for _ in 2 3; do
            read -r w p _ _ v < <(run_once "$file")
            [ "$v" = PASS ] || { verdict=$v; break; }
            walls+=("$w") peaks+=("$p")
        done
    fi
    wall=$(printf '%s\n' "${walls[@]}" | median)
    peak=$(printf '%s\n' "${peaks[@]}" | median)
    runs=${#walls[@]}
    printf '%6s %6s %10s %12s %10s %10s  %s\n' "$n" "$h" "$wall" "$((peak / 1024))" "$steps" "$virt" "$verdict (median of $runs)"
    if [ "$verdict" != PASS ]; then
        echo "larger sizes skipped: $n VMs did not finish within ${limit}s"
        break
    fi
    echo "$n $wall $peak" >>"$fits"
    prev_n=$n prev_peak=$peak
done

# Least squares of log(y) on log(N): the slope is the exponent (1: linear, 2: quadratic).
awk '
    function fit(col, what,   i, sx, sy, sxx, sxy, k, x, y) {
        for (i = 1; i <= m; i++) {
            x = log(n[i]); y = log(v[col, i]);
            sx += x; sy += y; sxx += x * x; sxy += x * y; k++
        }
        printf "fitted exponent of %s in VMs: %.2f (log-log least squares over %d sizes)\n",
            what, (k * sxy - sx * sy) / (k * sxx - sx * sx), k
    }
    { m++; n[m] = $1; v[2, m] = ($2 > 0 ? $2 : 0.001); v[3, m] = $3 }
    END {
        if (m < 2) { print "fewer than two sizes finished: no exponent fitted"; exit }
        fit(2, "wall time"); fit(3, "peak memory")
    }' "$fits"
