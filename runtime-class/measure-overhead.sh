#!/bin/bash
# Measures what an idle rvisor sandbox costs the node, for the RuntimeClass's overhead.podFixed:
# starts `rvisor do sleep` (host / as rootfs, read-only), waits for it to settle, then sums
# over every host process of the sandbox (the rvisor CLI that waits for it, the sentry,
# the gofer and the systrap/ptrace stubs): RSS and PSS from /proc/PID/smaps_rollup, and the
# CPU time they use over an idle window (utime+stime from /proc/PID/stat), and the
# kernel's page tables for them (VmPTE), which the pod's memory cgroup is charged too.
# Usage: runtime-class/measure-overhead.sh [RVISOR_BIN] [WINDOW_SECONDS]   (as root)
set -euo pipefail
bin=${1:-target/release/rvisor}
window=${2:-20}
hz=$(getconf CLK_TCK)

"$bin" ${PLATFORM:+--platform=$PLATFORM} do sleep $((window + 30)) &
top=$!
trap 'kill "$top" 2>/dev/null || true; wait "$top" 2>/dev/null || true' EXIT
sleep 3

# Every process below $top (and $top itself).
tree() {
    local todo=("$top") out=()
    while [ ${#todo[@]} -gt 0 ]; do
        local p=${todo[0]}; todo=("${todo[@]:1}")
        out+=("$p")
        for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do todo+=("$c"); done
    done
    echo "${out[@]}"
}
cpu_ticks() { # utime+stime of the given pids (fields 14, 15 after the comm)
    local t=0
    for p in "$@"; do
        local s; s=$(sed 's/.*) //' /proc/"$p"/stat 2>/dev/null) || continue
        set -- $s; t=$((t + ${12} + ${13}))
    done
    echo "$t"
}
pids=$(tree)
c0=$(cpu_ticks $pids)
sleep "$window"
pids=$(tree)
c1=$(cpu_ticks $pids)

rss=0; pss=0; pte=0
printf '%-8s %-10s %10s %10s  %s\n' PID ROLE RSS_KiB PSS_KiB CMD
for p in $pids; do
    r=$(awk '/^Rss:/ {print $2}' /proc/"$p"/smaps_rollup 2>/dev/null || echo 0)
    s=$(awk '/^Pss:/ {print $2}' /proc/"$p"/smaps_rollup 2>/dev/null || echo 0)
    cmd=$(tr '\0' ' ' < /proc/"$p"/cmdline 2>/dev/null)
    role=stub
    for w in $cmd; do
        case $w in do|boot|gofer|supervise|run) role=$w; break ;; esac
    done
    printf '%-8s %-10s %10s %10s  %s\n' "$p" "$role" "$r" "$s" "${cmd:0:50}"
    t=$(awk '/^VmPTE:/ {print $2}' /proc/"$p"/status 2>/dev/null || echo 0)
    rss=$((rss + ${r:-0})); pss=$((pss + ${s:-0})); pte=$((pte + ${t:-0}))
done
echo "processes: $(wc -w <<<"$pids")"
echo "total RSS: $((rss / 1024)) MiB ($rss KiB)"
echo "total PSS: $((pss / 1024)) MiB ($pss KiB)"
echo "page tables (VmPTE): $pte KiB"
echo "start-up CPU (live processes, up to the idle window): $(awk -v t="$c0" -v hz="$hz" 'BEGIN { printf "%.0f ms", t * 1000 / hz }')"
echo "idle CPU: $(awk -v t=$((c1 - c0)) -v hz="$hz" -v w="$window" 'BEGIN { printf "%.2f millicores", t * 1000 / hz / w }') over ${window}s ($((c1 - c0)) ticks of 1/$hz s)"
