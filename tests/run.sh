#!/bin/bash
# THE test command of the project: installs test dependencies, builds the workspace in release
# mode, then runs every crate's unit tests and the end-to-end harness (tests/tests/e2e.rs).
# Environment: RVISOR_PLATFORMS (default "ptrace,systrap"), RVISOR_BIN, RVISOR_E2E_TIMEOUT (seconds),
# CARGO_TARGET_DIR. Extra arguments go to the test binaries (e.g. `tests/run.sh c/hello`).
set -uo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s ====\n' "$*"; }
start=$SECONDS

step "setup (tests/setup.sh)"
bash tests/setup.sh || { echo "run.sh: setup failed"; exit 1; }

step "cargo build --release --workspace"
cargo build --release --workspace || { echo "run.sh: build FAILED"; exit 1; }

step "cargo test --release --workspace"
log=$(mktemp)
# A hung test must not eat CI's whole budget: the run is cut off (and reported) after
# RVISOR_TEST_BUDGET seconds, default 40 minutes; the suite takes about 5.
timeout -k 30 "${RVISOR_TEST_BUDGET:-2400}" \
    cargo test --release --workspace --no-fail-fast -- "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "run.sh: the test run passed its budget of ${RVISOR_TEST_BUDGET:-2400}s; tests still running:"
    grep 'has been running for over' "$log" || true
fi

step "summary"
# One line per test binary: "test result: ok. N passed; M failed; ..."
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' "$log" > "$log.sum"
sed -n 's/^test  *\(.*[^ ]\)  *\.\.\. FAILED$/FAILED: \1/p' "$log" || true
sum=$(cat "$log.sum")
# CI shows only the end of the output: repeat each failure's message here without the
# diffs' unchanged context lines (at most 12 lines each, 60 in all), so the reason is
# visible, not just the name.
if [ "$rc" -ne 0 ]; then
    awk '
        /^---- .* ----$/ { if (shown < 60) { print; n = 12; shown++ } else n = 0; next }
        /^failures:$/ || /^stack backtrace:$/ { n = 0 }
        n > 0 && shown < 60 && !/^ / && !/^$/ { print "    " $0; n--; shown++ }
    ' "$log" || true
fi
rm -f "$log" "$log.sum"
echo "platforms: ${RVISOR_PLATFORMS:-ptrace,systrap}; took $((SECONDS - start))s"
if [ "$rc" -ne 0 ]; then
    echo "run.sh: cargo test exited $rc"
fi
echo "$sum"
exit "$rc"
