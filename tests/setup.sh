#!/bin/bash
# Installs (as root, Debian packages only) what the tests and benchmarks need. Idempotent:
# does nothing when everything is present; runs `apt-get update` only if something is missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# The real-programs table (tests/tests/real_programs.rs) needs the rest. The largest:
# openjdk-17-jdk-headless (~115 MB of .debs), golang-go (~80 MB with its sources; 12 s
# to download and install on the dev machine), postgresql (~20 MB).
required=(gcc libc6-dev busybox-static runsc containerd containernetworking-plugins protobuf-compiler inotify-tools curl iproute2 python3 iputils-ping libpython3.11-testsuite libaio1
          make git perl nodejs golang-go openjdk-17-jdk-headless postgresql sqlite3 redis-server redis-tools util-linux
          strace gdb bubblewrap acl net-tools)
optional=(musl-tools)

missing() {
    local p out=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out+=("$p")
    done
    echo "${out[@]}"
}

need=$(missing "${required[@]}")
want=$(missing "${optional[@]}")
if [ -z "$need" ] && [ -z "$want" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: missing packages ($need $want) and not root: install them first" >&2
    exit 1
fi
echo "setup.sh: installing: $need $want" >&2
if ! apt-get update -qq >/dev/null; then
    echo "setup.sh: apt-get update failed" >&2
    exit 1
fi
# Packages with services (postgresql, redis-server) must not start them on the host:
# the tests run their own instances inside the sandbox and natively, on sockets in
# their own directories. A policy-rc.d of ours refuses every start while we install.
policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && ours=1
    trap '[ -n "$ours" ] && rm -f "$policy"' EXIT
fi
if [ -n "$need" ]; then
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    if ! apt-get install -y -qq --no-install-recommends $need >/dev/null; then
        echo "setup.sh: FAILED to install required packages: $need" >&2
        exit 1
    fi
fi
if [ -n "$want" ]; then
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $want >/dev/null ||
        echo "setup.sh: optional packages not installed: $want" >&2
fi
still=$(missing "${required[@]}")
if [ -n "$still" ]; then
    echo "setup.sh: still missing after install: $still" >&2
    exit 1
fi
for b in gcc /bin/busybox runsc; do
    command -v "$b" >/dev/null || { echo "setup.sh: $b not found after install" >&2; exit 1; }
done
