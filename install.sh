#!/bin/sh
# install.sh: build and install grid on Debian (12 or later), then start
# gridd with its built-in defaults. Run from a checkout of this repository:
#
#     ./install.sh
#
# As root, gridd runs as a system service with state in /var/lib/grid.
# As a user, packages and binaries are installed with sudo and gridd runs
# as that user with state in ~/.local/share/grid.
set -eu
cd "$(dirname "$0")"

if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ]; then
    # `sudo ./install.sh` would make a root-only service that the user who
    # typed it cannot reach, and leave a root-owned target/ behind.
    echo "install.sh: run it as yourself (it uses sudo where it must), or as root without sudo for a system-wide gridd" >&2
    exit 2
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi

echo "== packages"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq build-essential pkg-config fuse3 libfuse3-dev ca-certificates >/dev/null

# Debian 12's own rustc (1.63) is too old; its rustc-web/cargo-web (1.88+) is not.
# rustfmt-web and rust-web-clippy come apart from it: ./test.sh runs
# `cargo fmt` and `cargo clippy`.
cargo_ok() {
    command -v cargo >/dev/null 2>&1 || return 1
    v=$(cargo --version | sed -n 's/^cargo 1\.\([0-9]*\).*/\1/p')
    [ -n "$v" ] && [ "$v" -ge 88 ]
}
if ! cargo_ok; then
    $SUDO apt-get install -y -qq rustc-web cargo-web rustfmt-web rust-web-clippy >/dev/null
fi
cargo_ok || { echo "install.sh: need cargo 1.88 or later" >&2; exit 1; }

echo "== build"
cargo build --release --locked --bins

echo "== install"
# -s: the release profile keeps line tables for profiling; installed copies need not.
$SUDO install -s -m 0755 target/release/gridd /usr/local/bin/gridd
$SUDO install -s -m 0755 target/release/grid /usr/local/bin/grid
# mount(8) runs /sbin/mount.TYPE for `mount -t grid`; grid acts as
# mount.grid when called by that name.
$SUDO ln -sf /usr/local/bin/grid /sbin/mount.grid
$SUDO mkdir -p /usr/local/share/man/man1 /usr/local/share/man/man4 /usr/local/share/man/man5 /usr/local/share/man/man7 /usr/local/share/man/man8
for page in man/*.[0-9]; do
    [ -f "$page" ] || continue
    sec=${page##*.}
    $SUDO install -m 0644 "$page" "/usr/local/share/man/man$sec/"
done

echo "== start"
if [ "$(id -u)" -eq 0 ] && [ -d /run/systemd/system ]; then
    install -m 0644 contrib/gridd.service /etc/systemd/system/gridd.service
    systemctl daemon-reload
    systemctl enable --now gridd
    systemctl --no-pager status gridd | head -5 || true
elif [ "$(id -u)" -ne 0 ] && systemctl --user show-environment >/dev/null 2>&1; then
    mkdir -p "$HOME/.config/systemd/user"
    install -m 0644 contrib/gridd-user.service "$HOME/.config/systemd/user/gridd.service"
    systemctl --user daemon-reload
    # Keep the user's gridd running after logout (an ssh session ending).
    $SUDO loginctl enable-linger "$(id -un)" || true
    systemctl --user enable --now gridd
else
    # No systemd (a container, a chroot): run it in the background.
    state=$(if [ "$(id -u)" -eq 0 ]; then echo /var/lib/grid; else echo "${XDG_DATA_HOME:-$HOME/.local/share}/grid"; fi)
    mkdir -p "$state" && chmod 700 "$state"
    nohup /usr/local/bin/gridd >>"$state/gridd.log" 2>&1 &
    echo "gridd started in the background (pid $!); log: $state/gridd.log"
fi

# Wait until it serves, then show it.
i=0
while [ $i -lt 50 ]; do
    if /usr/local/bin/grid status >/dev/null 2>&1; then break; fi
    i=$((i + 1)); sleep 0.1
done
/usr/local/bin/grid status || { echo "install.sh: gridd is not answering; see its log" >&2; exit 1; }
echo "grid is running. Try: grid ls /   (man grid, man gridfs)"
