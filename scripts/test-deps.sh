#!/usr/bin/env bash
# Installs the system packages the test suite drives for real: OpenSSH's sshd (the
# remote backend's test hosts) and GNU Parallel (its second transport).
# Idempotent and fast when everything is present; non-interactive; needs root
# (or sudo) only when something is missing.
set -euo pipefail

missing=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v parallel >/dev/null 2>&1 || missing+=(parallel)
# GNU Parallel moves --basefile/--transferfile/--return files with rsync.
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
# The test hosts' user runs tea with the system Python of the virtualenv's version.
py=$(python3 -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')
[ -x "/usr/bin/$py" ] || missing+=("$py")

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo -n)
else
    echo "test-deps: need root to install: ${missing[*]}" >&2
    exit 1
fi

echo "test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists may be absent on a fresh machine; update once before installing.
"${sudo[@]}" apt-get update -qq >/dev/null
"${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null
# Debian's postinst may start a system sshd on port 22; the tests start their own.
# Leave it alone: its presence does not affect the fixtures (they use free ports).
