#!/bin/bash
# Runs the benchmarks: each row natively, under `rvisor --platform=P do` for P in
# ptrace,systrap (--platforms), and under `runsc --platform=ptrace --network=none do` (the
# TCP rows over a veth: in a network namespace the runner makes, with --network=sandbox, against
# a native peer in another; needs root and iproute2); prints
# medians with ratios to native, speedups over runsc, the PASS/MISS targets, and writes
# benches/out/results.json. A runtime or row that fails shows `fail [n]` with the reason in
# footnote n. Arguments go to rvisor-bench: --runs N (max runs per cell, default 5),
# --platforms LIST, --only ID,... (getpid, stat, python3, ...), --target-ms MS (loop length per
# run, default 400), --cell-budget-ms MS (default 2500), --no-runsc, --no-rvisor, --out FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh
cargo build --release -q -p rvisor -p rvisor-bench
exec "${CARGO_TARGET_DIR:-target}/release/rvisor-bench" "$@"
