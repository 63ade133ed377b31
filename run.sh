#!/usr/bin/env bash
# Sets up and runs the main job: builds hvsim, then runs the bundled scenario library
# (every flow F1–F5 and rule R1–R5, R7, R8 with its failure variants) on real VHDX
# images, checking the invariants I1–I6 after every run. Exit 0 only when all pass.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --quiet
hvsim=target/release/hvsim
$hvsim run scenarios/
echo
echo "== one run told step by step (F3 production checkpoint, on-host):"
$hvsim run scenarios/f3-production-checkpoint-onhost.toml | grep -v "guest write step" | tail -40
