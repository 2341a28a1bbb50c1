#!/bin/sh
# test.sh: the whole test suite. Formatting, lints, every crate's unit and
# integration tests, the end-to-end tests against real gridd processes,
# diod's tools and FUSE mounts, and a build of the fuzz targets.
#
#     ./test.sh
#
# As root it first installs the system packages the tests use (diod,
# fuse3, yggdrasil, iproute2, iputils-ping, iperf3, curl, xz-utils,
# qemu-system-x86, busybox-static) and fetches a Debian kernel for the v9fs test
# (tests/vm/) and yggdrasil 0.5 for the overlay tests (tests/overlay/),
# and then a test that would skip fails (GRID_TESTS_STRICT=1);
# as a user, tests whose tools are missing say SKIP.
set -eu
cd "$(dirname "$0")"

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    need=
    for p in diod fuse3 libfuse3-dev pkg-config yggdrasil iproute2 iputils-ping iperf3 curl xz-utils; do
        dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
    done
    # With Debian's cargo-web (./install.sh's), `cargo fmt` and `cargo
    # clippy` are packages of their own.
    if dpkg -s cargo-web >/dev/null 2>&1; then
        for p in rustfmt-web rust-web-clippy; do
            dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
        done
    fi
    if [ -n "$need" ]; then
        echo "== apt-get install$need"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
    fi
    # The v9fs test boots a Debian kernel under QEMU and mounts gridd with
    # the kernel's own 9P client: QEMU, a static busybox, and the kernel
    # (downloaded, not installed) in /var/cache/grid-tests/kernel.
    tests/vm/install-tools.sh
    tests/vm/fetch-kernel.sh
    # The overlay tests also run against yggdrasil 0.5 (bookworm-backports),
    # unpacked beside the system's 0.4.7 in /var/cache/grid-tests/yggdrasil-0.5.
    tests/overlay/fetch-yggdrasil-0.5.sh
    # Everything is installed: from here a test that would skip fails.
    export GRID_TESTS_STRICT=1
fi

echo "== fmt"
cargo fmt --all --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== build"
# The end-to-end tests run the real binaries; cargo does not build another
# package's binaries for an integration test, so build them first.
cargo build --workspace --bins
echo "== test"
cargo test --workspace --no-fail-fast
echo "== fuzz targets build"
if [ -f fs/fuzz/Cargo.toml ]; then
    cargo build --manifest-path fs/fuzz/Cargo.toml --bins
fi
echo "== all tests passed"
