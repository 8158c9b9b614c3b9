#!/usr/bin/env bash
# Installs tcvault: both binaries, the man pages, the bash/zsh/fish completions, the systemd
# units and an example mount table.
#
#   scripts/install.sh [--prefix DIR] [--destdir DIR] [--no-build | --from DIR]
#
# --prefix (default /usr/local) is where the files will live; --destdir (default empty) is put
# in front of every path while copying, for packaging or a trial run, as `make install
# DESTDIR=` does. The build is `cargo build --release --locked` (minutes the first time)
# unless --no-build says the release binaries in target/release (or $CARGO_TARGET_DIR) are
# already built, or --from names another directory of built binaries (with the man/ and
# completions/ that build.rs writes beside them). Where files go, under the prefix:
#
#   bin/tcvault, bin/tcvault-escrowd             (the server only if it was built)
#   share/man/man1/tcvault*.1                     (`man tcvault`; MANPATH finds a custom prefix)
#   share/bash-completion/completions/tcvault     (bash-completion loads it on demand)
#   share/zsh/site-functions/_tcvault             (zsh's $fpath)
#   share/fish/vendor_completions.d/tcvault.fish  (fish)
#   lib/systemd/system/tcvault.service, tcvault@.service   (@BINDIR@ replaced)
#   share/doc/tcvault/tab.example                 (copy to /etc/tcvault/tab)
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local
destdir=
build=1
from=
while [ $# -gt 0 ]; do
    case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
    --destdir=*) destdir=${1#--destdir=}; shift ;;
    --no-build) build=0; shift ;;
    --from) from=${2:?--from needs a directory}; build=0; shift 2 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scripts/install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$prefix" in
/*) ;;
*) echo "scripts/install.sh: --prefix must be an absolute path" >&2; exit 2 ;;
esac

target=${from:-${CARGO_TARGET_DIR:-target}/release}
if [ "$build" = 1 ]; then
    echo "building the release binaries (the first build takes several minutes)..." >&2
    cargo build --release --locked --bins
fi
[ -x "$target/tcvault" ] || { echo "scripts/install.sh: $target/tcvault is not built" >&2; exit 1; }
[ -d "$target/man" ] || { echo "scripts/install.sh: $target/man is missing (build.rs makes it)" >&2; exit 1; }

root="$destdir$prefix"
bindir="$prefix/bin"
install -d "$root/bin" "$root/share/man/man1" "$root/share/bash-completion/completions" \
    "$root/share/zsh/site-functions" "$root/share/fish/vendor_completions.d" \
    "$root/lib/systemd/system" "$root/share/doc/tcvault"

install -m 0755 "$target/tcvault" "$root/bin/tcvault"
[ -x "$target/tcvault-escrowd" ] && install -m 0755 "$target/tcvault-escrowd" "$root/bin/tcvault-escrowd"
for page in "$target"/man/*.1; do
    case "$(basename "$page")" in
    tcvault-escrowd*) [ -x "$target/tcvault-escrowd" ] || continue ;;
    esac
    install -m 0644 "$page" "$root/share/man/man1/"
done
comp="$target/completions"
install -m 0644 "$comp/tcvault.bash" "$root/share/bash-completion/completions/tcvault"
install -m 0644 "$comp/_tcvault" "$root/share/zsh/site-functions/_tcvault"
install -m 0644 "$comp/tcvault.fish" "$root/share/fish/vendor_completions.d/tcvault.fish"
if [ -x "$target/tcvault-escrowd" ]; then
    install -m 0644 "$comp/tcvault-escrowd.bash" "$root/share/bash-completion/completions/tcvault-escrowd"
    install -m 0644 "$comp/_tcvault-escrowd" "$root/share/zsh/site-functions/_tcvault-escrowd"
    install -m 0644 "$comp/tcvault-escrowd.fish" "$root/share/fish/vendor_completions.d/tcvault-escrowd.fish"
fi
for unit in tcvault.service tcvault@.service; do
    sed "s|@BINDIR@|$bindir|g" "systemd/$unit" >"$root/lib/systemd/system/$unit"
    chmod 0644 "$root/lib/systemd/system/$unit"
done
install -m 0644 systemd/tab.example "$root/share/doc/tcvault/tab.example"

echo "installed under $root:"
echo "  $bindir/tcvault, man pages in $prefix/share/man (try: man tcvault), completions for bash, zsh and fish,"
echo "  systemd units tcvault.service and tcvault@.service, and $prefix/share/doc/tcvault/tab.example"
