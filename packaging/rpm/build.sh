#!/bin/sh
# Builds the RPM package of pureftpd-systemd with rpmbuild.
#
#   packaging/rpm/build.sh
#
# Builds the release binaries, generates the units (systemd/generate, with
# pure-uploadscript run from /usr/libexec/pureftpd-systemd), the manual pages
# and shell completions (examples/gen-docs.rs), stages every file under
# <target dir>/release/pkg/rpm/root and packs them with
# packaging/rpm/pureftpd-systemd.spec. The last line of output is the path of
# the .rpm. CARGO_TARGET_DIR is honoured; SOURCE_DATE_EPOCH defaults to the
# last commit's time.
#
# rpmbuild rather than cargo-generate-rpm: the latter cannot set the
# Packager, Group, BuildHost and changelog tags, which rpmlint reports as
# errors, nor own directories or mark %license.
set -eu
cd "$(dirname "$0")/../.."
root=$(pwd)

command -v rpmbuild >/dev/null || {
    echo "build.sh: rpmbuild is missing (Debian package rpm; scripts/install-deps installs it)" >&2
    exit 1
}

version=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"name":"pureftpd-systemd","version":"\([^"]*\)".*/\1/p')
[ -n "$version" ] || { echo "build.sh: cannot read the package version" >&2; exit 1; }
. packaging/common.sh
rm -rf "$pkg/rpm"
systemd/generate --uploadscript-dir /usr/libexec/pureftpd-systemd "$pkg/rpm/units" >&2

echo "==> staging" >&2
stage=$pkg/rpm/root
put() { install -D -m "$1" "$2" "$stage/$3"; }
put 0755 "$target_dir/release/ftpwho-query" usr/bin/ftpwho-query
put 0755 "$target_dir/release/ftpwhod" usr/sbin/ftpwhod
put 0755 "$target_dir/release/pureftpd-exporter" usr/sbin/pureftpd-exporter
put 0755 "$target_dir/release/pure-ftpwho" usr/libexec/pureftpd-systemd/pure-ftpwho
put 0755 "$target_dir/release/pure-uploadscript" usr/libexec/pureftpd-systemd/pure-uploadscript
strip --strip-all "$stage"/usr/bin/* "$stage"/usr/sbin/* "$stage"/usr/libexec/pureftpd-systemd/*
for unit in "$pkg"/rpm/units/*; do
    put 0644 "$unit" "usr/lib/systemd/system/${unit##*/}"
done
put 0644 packaging/rpm/50-pureftpd-systemd.preset usr/lib/systemd/system-preset/50-pureftpd-systemd.preset
put 0644 systemd/pureftpd-systemd.sysusers usr/lib/sysusers.d/pureftpd-systemd.conf
put 0644 systemd/pureftpd-systemd.catalog usr/lib/systemd/catalog/pureftpd-systemd.catalog
put 0644 packaging/pure-uploadscript.toml.sample etc/pure-uploadscript.toml
put 0644 packaging/ftpwhod.toml.sample etc/ftpwhod.toml
install -d -m 0755 "$stage/etc/pure-uploadscript.d" "$stage/etc/ftpwhod.d"
put 0644 "$pkg/man/ftpwho-query.1.gz" usr/share/man/man1/ftpwho-query.1.gz
put 0644 "$pkg/man/ftpwhod.8.gz" usr/share/man/man8/ftpwhod.8.gz
put 0644 "$pkg/man/pureftpd-exporter.8.gz" usr/share/man/man8/pureftpd-exporter.8.gz
for name in ftpwhod ftpwho-query pureftpd-exporter; do
    put 0644 "$pkg/completions/bash/$name" "usr/share/bash-completion/completions/$name"
    put 0644 "$pkg/completions/zsh/_$name" "usr/share/zsh/site-functions/_$name"
    put 0644 "$pkg/completions/fish/$name.fish" "usr/share/fish/vendor_completions.d/$name.fish"
done
put 0644 "$pkg/man/pure-ftpwho.8.gz" usr/share/doc/pureftpd-systemd/man8/pure-ftpwho.8.gz
put 0644 "$pkg/man/pure-uploadscript.8.gz" usr/share/doc/pureftpd-systemd/man8/pure-uploadscript.8.gz
put 0644 README.md usr/share/doc/pureftpd-systemd/README.md
put 0644 packaging/pure-uploadscript.toml.sample usr/share/doc/pureftpd-systemd/examples/pure-uploadscript.toml
put 0644 packaging/ftpwhod.toml.sample usr/share/doc/pureftpd-systemd/examples/ftpwhod.toml
put 0644 systemd/sandbox.conf.example usr/share/doc/pureftpd-systemd/examples/sandbox.conf
put 0644 packaging/pureftpd-exporter.toml.sample usr/share/doc/pureftpd-systemd/examples/pureftpd-exporter.toml
put 0644 packaging/grafana-dashboard.json usr/share/doc/pureftpd-systemd/examples/grafana-dashboard.json
put 0644 LICENSE usr/share/licenses/pureftpd-systemd/LICENSE

echo "==> packing" >&2
top=$pkg/rpm/rpmbuild
mkdir -p "$top"
rpmbuild -bb \
    --define "_topdir $top" \
    --define "stage $stage" \
    --define "pkg_version $version" \
    --define "packager pureftpd-systemd developers <pureftpd-systemd@users.noreply.github.com>" \
    --define "_buildhost pureftpd-systemd-build" \
    --define "use_source_date_epoch_as_buildtime 1" \
    --define "clamp_mtime_to_source_date_epoch 1" \
    packaging/rpm/pureftpd-systemd.spec >&2
rpm=$(find "$top/RPMS" -name "pureftpd-systemd-$version-1.*.rpm" | head -n 1)
[ -n "$rpm" ] && [ -f "$rpm" ] || { echo "build.sh: rpmbuild wrote no package" >&2; exit 1; }
out=$target_dir/rpm
mkdir -p "$out"
mv -f "$rpm" "$out/"
echo "$out/${rpm##*/}"
