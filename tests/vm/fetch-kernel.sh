#!/bin/sh
# fetch-kernel.sh [DIR]: fetches a Debian kernel and the modules the v9fs
# test needs (tests/tests/v9fs.rs boots it under QEMU and mounts gridd with
# the kernel's own 9P client).
#
#     tests/vm/fetch-kernel.sh                 # into /var/cache/grid-tests/kernel
#     tests/vm/fetch-kernel.sh target/vm-kernel
#
# The kernel package is downloaded with `apt-get download` and unpacked in a
# temporary directory; nothing is installed. DIR gets:
#
#     vmlinuz        the kernel
#     config         its configuration
#     release        its version (uname -r)
#     modules/*.ko   9p, its TCP transport, the e1000 NIC and their
#                    dependencies, decompressed
#     modules.load   their names in load order (dependencies first)
#
# A DIR that already has all of that is left alone; remove it to refetch.
set -eu

dir=${1:-${GRID_VM_KERNEL:-/var/cache/grid-tests/kernel}}
# What the guest needs, besides what the kernel has built in.
want="9p 9pnet_fd e1000"

if [ -s "$dir/vmlinuz" ] && [ -s "$dir/modules.load" ]; then
    echo "fetch-kernel: $dir is ready ($(cat "$dir/release" 2>/dev/null))"
    exit 0
fi

for tool in apt-cache apt-get dpkg; do
    command -v $tool >/dev/null 2>&1 || {
        echo "fetch-kernel: $tool is missing (Debian or Ubuntu needed)" >&2
        exit 1
    }
done

# The flavour the metapackage points at today, e.g. linux-image-6.1.0-56-amd64
# (its Depends may offer "-unsigned" as an alternative: the first will do).
flavour() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
pkg=$(flavour)
if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    pkg=$(flavour)
fi
[ -n "$pkg" ] || {
    echo "fetch-kernel: apt-cache knows no linux-image-amd64 (run apt-get update)" >&2
    exit 1
}
release=${pkg#linux-image-}
release=${release%-unsigned}

tmp=$(mktemp -d)
out=
trap 'rm -rf "$tmp" ${out:+"$out"}' EXIT INT TERM
echo "fetch-kernel: downloading $pkg"
(cd "$tmp" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$pkg" >/dev/null)
dpkg -x "$tmp"/*.deb "$tmp/x"

mods=
for d in "$tmp/x/lib/modules/$release" "$tmp/x/usr/lib/modules/$release"; do
    [ -d "$d" ] && mods=$d
done
[ -n "$mods" ] && [ -f "$tmp/x/boot/vmlinuz-$release" ] || {
    echo "fetch-kernel: $pkg has no vmlinuz-$release or modules" >&2
    exit 1
}

out=$dir.new.$$
rm -rf "$out"
mkdir -p "$out/modules"
: >"$out/modules.load"

# The file of module $1 (names treat - and _ alike), or nothing.
module_file() {
    find "$mods/kernel" \( -name "$1.ko*" -o -name "$(echo "$1" | tr _ -).ko*" \
        -o -name "$(echo "$1" | tr - _).ko*" \) | head -n 1
}

# Copies module $1 and, first, what it depends on (a subshell: recursion
# must not clobber the caller's variables).
add() (
    name=$(echo "$1" | tr - _)
    grep -qx "$name" "$out/modules.load" && return 0
    f=$(module_file "$name")
    if [ -z "$f" ]; then
        if grep -q "/$name.ko" "$mods/modules.builtin" 2>/dev/null ||
            grep -q "/$(echo "$name" | tr _ -).ko" "$mods/modules.builtin" 2>/dev/null; then
            return 0
        fi
        echo "fetch-kernel: $release has no module $name" >&2
        exit 1
    fi
    case $f in
    *.ko) cp "$f" "$out/modules/$name.ko" ;;
    *.ko.xz) xz -dc "$f" >"$out/modules/$name.ko" ;;
    *.ko.zst) zstd -qdc "$f" >"$out/modules/$name.ko" ;;
    *.ko.gz) gzip -dc "$f" >"$out/modules/$name.ko" ;;
    *) echo "fetch-kernel: cannot unpack $f" >&2; exit 1 ;;
    esac
    deps=$(tr '\0' '\n' <"$out/modules/$name.ko" | sed -n 's/^depends=//p' | head -n 1 | tr , ' ')
    for d in $deps; do
        add "$d"
    done
    echo "$name" >>"$out/modules.load"
)
for m in $want; do
    add "$m"
done

cp "$tmp/x/boot/vmlinuz-$release" "$out/vmlinuz"
cp "$tmp/x/boot/config-$release" "$out/config"
echo "$release" >"$out/release"
rm -rf "$dir"
mv "$out" "$dir"
echo "fetch-kernel: $dir has $release with $(tr '\n' ' ' <"$dir/modules.load")"
