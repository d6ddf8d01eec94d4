#!/bin/sh
# Builds the Debian package of pureftpd-systemd with cargo-deb.
#
#   packaging/deb/build.sh
#
# Builds the release binaries, generates the units (systemd/generate), the
# manual pages and shell completions (examples/gen-docs.rs) under
# <target dir>/release/pkg/, then packs them as Cargo.toml's
# [package.metadata.deb] lists, and adds the md5sums control file.
# cargo-deb is installed when missing.
# The last line of output is the path of the .deb. CARGO_TARGET_DIR is
# honoured; SOURCE_DATE_EPOCH defaults to the last commit's time.
set -eu
cd "$(dirname "$0")/../.."
root=$(pwd)

if ! cargo deb --version >/dev/null 2>&1; then
    echo "==> installing cargo-deb" >&2
    cargo install cargo-deb --version '^3.8' --locked >&2
fi

. packaging/common.sh
rm -rf "$pkg/deb"
systemd/generate "$pkg/deb/units" >&2

echo "==> packing" >&2
mkdir -p "$target_dir/debian"
deb=$(cargo deb --no-build --output "$target_dir/debian" | tail -n 1)
case $deb in
    /*.deb) [ -f "$deb" ] ;;
    *.deb) deb=$root/$deb; [ -f "$deb" ] ;;
    *) echo "build.sh: cargo deb printed no package path" >&2; exit 1 ;;
esac

# cargo-deb writes no md5sums control file, which dpkg --verify and debsums
# use: add it and repack.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb --raw-extract "$deb" "$work/root"
(
    cd "$work/root"
    find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
        xargs -r -d '\n' md5sum
) >"$work/root/DEBIAN/md5sums"
chmod 0644 "$work/root/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$work/root" "$deb" >&2
echo "$deb"
