# Sourced (from the repository root, with $root set) by packaging/deb/build.sh
# and packaging/rpm/build.sh: finds the cargo target directory, defaults
# SOURCE_DATE_EPOCH to the last commit's time, builds the release binaries
# and writes the manual pages and shell completions under
# $pkg = <target dir>/release/pkg (packaging/stage-docs).

target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || { echo "build.sh: cannot find the cargo target directory" >&2; exit 1; }
pkg=$target_dir/release/pkg

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
    export SOURCE_DATE_EPOCH
fi

echo "==> building release binaries" >&2
cargo build --release --locked --bins >&2

echo "==> generating units, manual pages and completions" >&2
packaging/stage-docs "$pkg" >&2
