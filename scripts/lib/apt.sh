# Sourced by scripts/test.sh and scripts/setup.d/*.sh: the one way they install Debian packages.
# shellcheck shell=bash
#
# apt_install PKG...: installs the packages (quietly, without recommends) as root, or through
# sudo when it needs no password; otherwise says what it could not install and returns 1. What
# was installed is noted through setup_note (scripts/test.sh says it at the end).
command -v setup_note >/dev/null 2>&1 || setup_note() { echo "setup: $*" >&2; }
apt_install() {
    [ $# -gt 0 ] || return 0
    local -a root=() pkgs
    # Once each (two missing programs may come from one package).
    mapfile -t pkgs < <(printf '%s\n' "$@" | sort -u)
    if [ "$(id -u)" != 0 ]; then
        if sudo -n true 2>/dev/null; then
            root=(sudo)
        else
            echo "tcvault setup: not root, cannot install Debian packages: ${pkgs[*]}" >&2
            return 1
        fi
    fi
    "${root[@]}" apt-get update -qq >/dev/null
    "${root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${pkgs[@]}" >/dev/null
    setup_note "installed Debian packages: ${pkgs[*]}"
}
