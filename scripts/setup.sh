#!/bin/sh
# Set up binfmtctl from this checkout on Debian/Ubuntu: the system packages it and its tests
# use (QEMU's static emulators, util-linux, systemd-binfmt, python3-venv), then .venv with
# binfmtctl and everything the README's test command needs.
#
# Works as written both as root without sudo (build containers, CI images) and as a user
# with sudo: sudo is used only when not root, and apt only when something is missing.
set -eu
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

need_apt=0
for cmd in unshare nsenter setpriv qemu-aarch64-static systemd-analyze; do
    command -v "$cmd" >/dev/null 2>&1 || need_apt=1
done
[ -x /lib/systemd/systemd-binfmt ] || [ -x /usr/lib/systemd/systemd-binfmt ] || need_apt=1
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt=1
if [ "$need_apt" = 1 ]; then
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y \
        python3-venv qemu-user-static util-linux systemd
fi

python3 -m venv .venv
.venv/bin/python -m pip install -e '.[test]'
