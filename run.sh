#!/usr/bin/env bash
# Sets up and runs the main job: builds hvsim, then shows the VHDX engine at work on a
# fresh image (create, write, read back, inspect, check with qemu-img when present).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --quiet
hvsim=target/release/hvsim
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== create a 1 GiB dynamic image"
$hvsim vhdx create "$work/disk.vhdx" --size 1G
echo "== write 8 MiB of data at 100 MiB + 123 bytes"
head -c 8M /dev/urandom > "$work/data.bin"
$hvsim vhdx write "$work/disk.vhdx" --offset 104857723 -i "$work/data.bin"
echo "== read it back"
$hvsim vhdx read "$work/disk.vhdx" --offset 104857723 --length 8M -o "$work/back.bin"
cmp "$work/data.bin" "$work/back.bin" && echo "read back: identical"
echo "== differencing child, one write, flattened export"
$hvsim vhdx create "$work/child.avhdx" --parent "$work/disk.vhdx"
printf 'hello from the child' | $hvsim vhdx write "$work/child.avhdx" --offset 104857723
$hvsim vhdx export "$work/child.avhdx" "$work/flat.raw"
$hvsim vhdx info "$work/child.avhdx"
echo "== check"
$hvsim vhdx check "$work/disk.vhdx"
$hvsim vhdx check "$work/child.avhdx"
if command -v qemu-img >/dev/null; then qemu-img check "$work/disk.vhdx"; fi
