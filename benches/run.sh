#!/bin/bash
# Runs the microbenchmarks: native vs `rvisor --platform=P do` (P from --platforms or
# $RVISOR_PLATFORMS, default ptrace) vs `runsc --platform=ptrace do`. Prints a table of medians
# with ratios to native and writes benches/out/results.json. Arguments go to rvisor-bench
# (--runs N, --only getpid,..., --target-ms MS, --no-runsc, --no-rvisor, --out FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
cargo build --release -q -p rvisor -p rvisor-bench
exec "${CARGO_TARGET_DIR:-target}/release/rvisor-bench" "$@"
