#!/bin/sh
# install-tools.sh: installs what tests/tests/v9fs.rs runs on the host,
# QEMU (qemu-system-x86) and a static busybox for the guest, with apt, as
# root, never removing a package to do it. ./test.sh calls it.
#
# One wrinkle: a qemu-utils from bookworm-backports Breaks the qemu-system
# of bookworm itself (qemu-system-common << 1:8.0), so plain `apt-get
# install qemu-system-x86` would remove it. When such a qemu-utils is
# installed, the same version of qemu-system-x86 is taken from backports
# (through a temporary sources list; /etc/apt is not changed).
set -eu

static_busybox() {
    dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q ' installed'
}
if command -v qemu-system-x86_64 >/dev/null 2>&1 && static_busybox; then
    exit 0
fi
[ "$(id -u)" -eq 0 ] || {
    echo "install-tools: run as root (or install qemu-system-x86 and busybox-static)" >&2
    exit 1
}
export DEBIAN_FRONTEND=noninteractive
install() {
    echo "== apt-get install $*"
    apt-get install -y -qq --no-install-recommends --no-remove "$@" >/dev/null
}
apt-get update -qq

if ! static_busybox; then
    install busybox-static
fi

if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    utils=$(dpkg-query -W -f '${Version}' qemu-utils 2>/dev/null || true)
    case $utils in
    *bpo*)
        codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT INT TERM
        mkdir -p "$tmp/lists/partial"
        # The system's own sources (sources.list.d) plus backports.
        [ -f /etc/apt/sources.list ] && cat /etc/apt/sources.list >"$tmp/sources.list"
        echo "deb http://deb.debian.org/debian $codename-backports main" >>"$tmp/sources.list"
        set -- -o Dir::Etc::sourcelist="$tmp/sources.list" -o Dir::State::lists="$tmp/lists" \
            -o APT::Sandbox::User=root
        apt-get "$@" update -qq
        install "$@" "qemu-system-x86=$utils" "qemu-system-common=$utils" \
            "qemu-system-data=$utils" "seabios/$codename-backports"
        apt-mark auto qemu-system-common qemu-system-data seabios >/dev/null
        ;;
    *)
        install qemu-system-x86
        ;;
    esac
fi
