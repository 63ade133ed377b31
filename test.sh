#!/usr/bin/env bash
# The whole test suite: installs what the tests need when it is missing, then checks
# formatting, runs clippy with warnings as errors, and runs every test.
set -euo pipefail
cd "$(dirname "$0")"

need=()
{ command -v qemu-img && command -v qemu-io; } >/dev/null 2>&1 || need+=(qemu-utils)
command -v vhdiinfo >/dev/null 2>&1 || need+=(libvhdi-utils)
/usr/bin/python3 -c 'import pyvhdi' >/dev/null 2>&1 || need+=(python3-libvhdi)
# The MS-FSRVP comparison (tests/samba_fsrvp.rs) runs its own smbd with Samba's FSRVP
# server and the shell_snap VFS module, and drives it with rpcclient and smbclient.
{ command -v smbd && [ -x /usr/libexec/samba/rpcd_fsrvp ]; } >/dev/null 2>&1 || need+=(samba)
command -v smbpasswd >/dev/null 2>&1 || need+=(samba-common-bin)
ls /usr/lib/*/samba/vfs/shell_snap.so >/dev/null 2>&1 || need+=(samba-vfs-modules)
{ command -v rpcclient && command -v smbclient; } >/dev/null 2>&1 || need+=(smbclient)
# The picture of a run (tests/html_report.rs) is checked in a real headless browser.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The Windows hvsim.exe is linked with mingw-w64 and run under Wine
# (tests/windows_binary.rs); without their recommends (fonts, sound, graphics).
lean=()
command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || lean+=(gcc-mingw-w64-x86-64)
command -v wine >/dev/null 2>&1 || lean+=(wine wine64)
if [ $((${#need[@]} + ${#lean[@]})) -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "test.sh: installing ${need[*]} ${lean[*]}"
  # Installing samba must not start the machine's own smbd/nmbd: while installing, a
  # policy-rc.d (unless one exists) refuses every service start.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    own_policy=1
  fi
  $sudo apt-get update -qq
  apt_status=0
  [ ${#need[@]} = 0 ] ||
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
    apt_status=$?
  [ ${#lean[@]} = 0 ] || [ "$apt_status" != 0 ] ||
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${lean[@]}" >/dev/null || apt_status=$?
  [ -z "$own_policy" ] || $sudo rm -f "$policy"
  [ "$apt_status" = 0 ] || exit "$apt_status"
fi

# Property tests draw their cases from a fixed seed, so a run is repeatable and a red
# result is the change's fault; set PROPTEST_RNG_SEED (and PROPTEST_CASES) to explore.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261123}"

# The engine and the CLI build for Windows (issue 12 §1).
windows=x86_64-pc-windows-gnu
rustup target list --installed | grep -qx "$windows" || rustup target add "$windows" >/dev/null

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --all-targets --target "$windows" -- -D warnings
# Built before the tests: tests/windows_binary.rs runs it under Wine.
cargo build --release --target "$windows" -p hvsim
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Among them the coverage guard (tests/coverage_cli.rs): it fails naming any item of
# scenarios/coverage.baseline that no passing scenario covers any more.
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
