#!/usr/bin/env bash
# The whole test suite: installs what the tests need when it is missing, then checks
# formatting, runs clippy with warnings as errors, and runs every test.
set -euo pipefail
cd "$(dirname "$0")"

need=()
{ command -v qemu-img && command -v qemu-io; } >/dev/null 2>&1 || need+=(qemu-utils)
command -v vhdiinfo >/dev/null 2>&1 || need+=(libvhdi-utils)
/usr/bin/python3 -c 'import pyvhdi' >/dev/null 2>&1 || need+=(python3-libvhdi)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "test.sh: installing ${need[*]}"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Property tests draw their cases from a fixed seed, so a run is repeatable and a red
# result is the change's fault; set PROPTEST_RNG_SEED (and PROPTEST_CASES) to explore.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261123}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
