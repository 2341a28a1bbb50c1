#!/bin/sh
# fetch-yggdrasil-0.5.sh [DIR]: fetches yggdrasil 0.5 from Debian's
# bookworm-backports for the overlay tests (tests/tests/overlay.rs runs the
# a—b—c line with it as well as with the system's 0.4.7, which it must not
# replace: 0.5 is not wire-compatible with 0.4).
#
#     tests/overlay/fetch-yggdrasil-0.5.sh        # into /var/cache/grid-tests/yggdrasil-0.5
#     tests/overlay/fetch-yggdrasil-0.5.sh target/ygg05
#
# The package is found in the backports Packages index, downloaded, checked
# against the index's SHA256, and unpacked with dpkg-deb -x; nothing is
# installed. DIR gets usr/sbin/yggdrasil, usr/sbin/yggdrasilctl and `version`.
# A DIR that already has them is left alone; remove it to refetch.
set -eu

dir=${1:-${GRID_YGGDRASIL_05:-/var/cache/grid-tests/yggdrasil-0.5}}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
index=dists/bookworm-backports/main/binary-amd64/Packages.xz

if [ -x "$dir/usr/sbin/yggdrasil" ] && [ -x "$dir/usr/sbin/yggdrasilctl" ] && [ -s "$dir/version" ]; then
    echo "fetch-yggdrasil-0.5: $dir is ready ($(cat "$dir/version"))"
    exit 0
fi

for tool in curl xz dpkg-deb sha256sum; do
    command -v $tool >/dev/null 2>&1 || {
        echo "fetch-yggdrasil-0.5: $tool is missing" >&2
        exit 1
    }
done
[ "$(dpkg --print-architecture 2>/dev/null || echo amd64)" = amd64 ] || {
    echo "fetch-yggdrasil-0.5: only amd64 is supported" >&2
    exit 1
}

tmp=$(mktemp -d)
out=
trap 'rm -rf "$tmp" ${out:+"$out"}' EXIT INT TERM

fetch() {
    curl -fsS --retry 2 --connect-timeout 20 --max-time 300 -o "$2" "$1" || {
        echo "fetch-yggdrasil-0.5: cannot download $1" >&2
        exit 1
    }
}

# The yggdrasil stanza of the index: its Version, Filename and SHA256.
fetch "$mirror/$index" "$tmp/Packages.xz"
xz -dc "$tmp/Packages.xz" | awk '
    /^Package: / { p = ($2 == "yggdrasil") }
    p && /^(Version|Filename|SHA256): / { print $1, $2 }
' >"$tmp/stanza"
field() { awk -v f="$1:" '$1 == f { print $2; exit }' "$tmp/stanza"; }
version=$(field Version)
file=$(field Filename)
sum=$(field SHA256)
[ -n "$version" ] && [ -n "$file" ] && [ -n "$sum" ] || {
    echo "fetch-yggdrasil-0.5: no yggdrasil in $mirror/$index" >&2
    exit 1
}
case $version in
0.5.*) ;;
*)
    echo "fetch-yggdrasil-0.5: backports has yggdrasil $version, not 0.5.x" >&2
    exit 1
    ;;
esac

echo "fetch-yggdrasil-0.5: downloading yggdrasil $version"
fetch "$mirror/$file" "$tmp/yggdrasil.deb"
echo "$sum  $tmp/yggdrasil.deb" | sha256sum -c --quiet - || {
    echo "fetch-yggdrasil-0.5: $file does not match the index's SHA256 $sum" >&2
    exit 1
}

out=$dir.new.$$
rm -rf "$out"
mkdir -p "$out"
dpkg-deb -x "$tmp/yggdrasil.deb" "$out"
[ -x "$out/usr/sbin/yggdrasil" ] && [ -x "$out/usr/sbin/yggdrasilctl" ] || {
    echo "fetch-yggdrasil-0.5: the package has no usr/sbin/yggdrasil{,ctl}" >&2
    exit 1
}
echo "$version" >"$out/version"
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
mv "$out" "$dir"
out=
echo "fetch-yggdrasil-0.5: $dir has yggdrasil $version"
