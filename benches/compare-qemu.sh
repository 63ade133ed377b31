#!/usr/bin/env bash
# Times `hvsim vhdx import/export` against `qemu-img convert` on the same data, in one run.
#
# Usage: benches/compare-qemu.sh            (from anywhere; needs cargo and qemu-img)
# Environment: SIZE_MIB (default 1024), BLOCK_MIB (32), REPS (5), SEED (1); HVSIM_BIN
# times that hvsim binary instead of this tree's release build (e.g. a patched one).
#
# The data is SIZE_MIB MiB cut into BLOCK_MIB pieces, a quarter of them zeros and the
# rest random bytes, generated deterministically from SEED. Both tools make dynamic VHDX
# images with the same block size. Each repetition runs every command once, alternating
# which tool goes first; medians over the repetitions are reported with the ratio
# hvsim/qemu (below 1 means hvsim is faster).
#
# Caches: nothing is dropped. The source files are read once before timing, so every
# command reads them from a warm page cache. Before each timed command, `sync` settles the
# writeback of earlier commands (outside the timing), so no command pays for another's
# dirty pages. Durability: by default neither tool flushes (qemu-img convert writes with
# cache=unsafe; hvsim leaves write-back to the OS like cp). The rows "hvsim --sync" and
# "qemu-img -t writeback" make each tool flush its output before it exits (qemu-img's
# flush at close, hvsim's fsync of the file and its folder); compare those with each
# other. A pair is one repetition's two runs, next to each other in time: on a shared,
# noisy machine their ratio says more than the medians.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
BLOCK_MIB=${BLOCK_MIB:-32}
REPS=${REPS:-5}
SEED=${SEED:-1}

die() {
  echo "compare-qemu: $*" >&2
  exit 1
}

command -v qemu-img >/dev/null 2>&1 ||
  die "qemu-img not found; install it first (Debian/Ubuntu: apt-get install qemu-utils)"
command -v cargo >/dev/null 2>&1 || die "cargo not found; a Rust toolchain is needed"
[ "$REPS" -ge 1 ] 2>/dev/null || die "REPS must be a positive number"

cd "$(dirname "$0")/.."
echo "== building the release binaries"
cargo build --release --quiet --bin hvsim --example bench_data
target_dir=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || target_dir=target
hvsim=${HVSIM_BIN:-"$target_dir/release/hvsim"}
[ -x "$hvsim" ] || die "$hvsim is not an executable"
gen="$target_dir/release/examples/bench_data"

work=$(mktemp -d "${TMPDIR:-/tmp}/hvsim-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT

size=$((SIZE_MIB * 1024 * 1024))
block=$((BLOCK_MIB * 1024 * 1024))
data="$work/data.raw"
echo "== generating $SIZE_MIB MiB of test data (${BLOCK_MIB} MiB pieces, 25% zero, seed $SEED)"
"$gen" "$data" "$size" "$block" "$SEED"

# Reference images, one per tool, as sources for the exports.
qemu_opts="subformat=dynamic,block_size=${BLOCK_MIB}M"
"$hvsim" vhdx import "$data" "$work/src-hvsim.vhdx" --block-size "${BLOCK_MIB}M"
qemu-img convert -f raw -O vhdx -o "$qemu_opts" "$data" "$work/src-qemu.vhdx"

# The timed commands: exec_cmd INDEX OUT runs command INDEX writing OUT.
names=(
  "import hvsim"
  "import qemu-img"
  "import hvsim --sync"
  "import qemu-img -t writeback"
  "export hvsim(hvsim image)"
  "export qemu-img(qemu image)"
  "export hvsim --sync(hvsim image)"
  "export qemu-img -t writeback(qemu image)"
  "export hvsim(qemu image)"
  "export qemu-img(hvsim image)"
)
exec_cmd() {
  local out=$2
  case $1 in
  0) "$hvsim" vhdx import "$data" "$out" --block-size "${BLOCK_MIB}M" ;;
  1) qemu-img convert -f raw -O vhdx -o "$qemu_opts" "$data" "$out" ;;
  2) "$hvsim" vhdx import --sync "$data" "$out" --block-size "${BLOCK_MIB}M" ;;
  3) qemu-img convert -t writeback -f raw -O vhdx -o "$qemu_opts" "$data" "$out" ;;
  4) "$hvsim" vhdx export "$work/src-hvsim.vhdx" "$out" ;;
  5) qemu-img convert -f vhdx -O raw "$work/src-qemu.vhdx" "$out" ;;
  6) "$hvsim" vhdx export --sync "$work/src-hvsim.vhdx" "$out" ;;
  7) qemu-img convert -t writeback -f vhdx -O raw "$work/src-qemu.vhdx" "$out" ;;
  8) "$hvsim" vhdx export "$work/src-qemu.vhdx" "$out" ;;
  9) qemu-img convert -f vhdx -O raw "$work/src-hvsim.vhdx" "$out" ;;
  esac
}

# Warm the page cache with every source.
cat "$data" "$work/src-hvsim.vhdx" "$work/src-qemu.vhdx" >/dev/null

# run INDEX REP: times command INDEX once; checks its output against the data on REP 1.
run() {
  local i=$1 rep=$2 out="$work/out" t
  rm -f "$out"
  sync
  # bash's time keyword: wall, user and system seconds of the command.
  if ! t=$( (
    TIMEFORMAT='%3R %3U %3S'
    time exec_cmd "$i" "$out" >"$work/log" 2>&1
  ) 2>&1); then
    cat "$work/log" >&2
    if [[ ${names[$i]} == *"hvsim(qemu image)"* || ${names[$i]} == *"qemu-img(hvsim image)"* ]]; then
      echo "  (${names[$i]} failed; the cross-tool export is left out)" >&2
      echo "fail" >>"$work/times.$i"
      return 0
    fi
    die "${names[$i]} failed"
  fi
  read -r wall user sys <<<"$t"
  echo "$wall" >>"$work/times.$i"
  awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }' >>"$work/cpu.$i"
  if [ "$rep" = 1 ]; then
    case ${names[$i]} in
    import*)
      # The image must read back as the data.
      local back="$work/back.raw"
      rm -f "$back"
      qemu-img convert -f vhdx -O raw "$out" "$back"
      cmp -s "$data" "$back" || die "${names[$i]}: the image does not read back as the data"
      rm -f "$back"
      ;;
    export*)
      cmp -s "$data" "$out" || die "${names[$i]}: the exported file differs from the data"
      ;;
    esac
  fi
  rm -f "$out"
}

n=${#names[@]}
echo "== $REPS repetitions of ${n} commands (interleaved; the order alternates each repetition)"
for rep in $(seq 1 "$REPS"); do
  if [ $((rep % 2)) = 1 ]; then order=$(seq 0 $((n - 1))); else order=$(seq $((n - 1)) -1 0); fi
  for i in $order; do
    run "$i" "$rep"
  done
  echo "  repetition $rep of $REPS done"
done

# median FILE: median of the times (seconds) in FILE (empty when any run failed).
median() {
  grep -q fail "$1" && return 0
  sort -n "$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A med cpu
echo
echo "wall: elapsed seconds; cpu: user + system seconds (both medians)"
printf '%-42s %9s %9s %8s   %s\n' "command" "wall (s)" "cpu (s)" "MiB/s" "all runs, wall (s)"
for i in $(seq 0 $((n - 1))); do
  m=$(median "$work/times.$i")
  med[${names[$i]}]=$m
  all=$(tr '\n' ' ' <"$work/times.$i")
  if [ -n "$m" ]; then
    c=$(median "$work/cpu.$i")
    cpu[${names[$i]}]=$c
    printf '%-42s %9.3f %9.3f %8.0f   %s\n' "${names[$i]}" "$m" "$c" \
      "$(awk -v m="$m" -v s="$SIZE_MIB" 'BEGIN { print s / m }')" "$all"
  else
    printf '%-42s %9s %9s %8s   %s\n' "${names[$i]}" "failed" "-" "-" "$all"
  fi
done

# index NAME: the command number of NAME.
index() {
  local i
  for i in "${!names[@]}"; do [ "${names[$i]}" = "$1" ] && echo "$i"; done
}

# ratio LABEL A B: medians' ratio (wall, cpu), then wall A/B of each repetition's pair.
ratio() {
  local a=${med[$2]} b=${med[$3]} ca=${cpu[$2]:-} cb=${cpu[$3]:-} pairs
  if [ -n "$a" ] && [ -n "$b" ]; then
    pairs=$(paste "$work/times.$(index "$2")" "$work/times.$(index "$3")" |
      awk '{ printf " %.2f", $1 / $2 }')
    printf '%-60s %6.2f %6.2f  %s\n' "$1" "$(awk -v a="$a" -v b="$b" 'BEGIN { print a / b }')" \
      "$(awk -v a="$ca" -v b="$cb" 'BEGIN { print (b > 0 ? a / b : 0) }')" "$pairs"
  else
    printf '%-60s %6s %6s\n' "$1" "n/a" "n/a"
  fi
}
echo
echo "ratios hvsim/qemu-img (below 1: hvsim faster): of the medians, and wall of each pair"
printf '%-60s %6s %6s  %s\n' "" "wall" "cpu" "pairs (wall)"
ratio "import, defaults (neither flushes)" "import hvsim" "import qemu-img"
ratio "import, both flush (hvsim --sync, qemu-img -t writeback)" "import hvsim --sync" \
  "import qemu-img -t writeback"
ratio "export, each tool on its own image, defaults" "export hvsim(hvsim image)" \
  "export qemu-img(qemu image)"
ratio "export, each tool on its own image, both flush" "export hvsim --sync(hvsim image)" \
  "export qemu-img -t writeback(qemu image)"
ratio "export of the qemu-made image" "export hvsim(qemu image)" "export qemu-img(qemu image)"
ratio "export of the hvsim-made image" "export hvsim(hvsim image)" "export qemu-img(hvsim image)"
