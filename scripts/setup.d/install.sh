# Sourced by scripts/test.sh: what tests/commands/install.rs needs to check an install into a
# temporary prefix: man (man-db) to find the pages and systemd-analyze (systemd) to verify the
# units. Idempotent; installs only what is missing.
command -v setup_note >/dev/null 2>&1 || setup_note() { echo "setup: $*" >&2; }
install_setup_pkgs=()
command -v man >/dev/null 2>&1 || install_setup_pkgs+=(man-db)
command -v systemd-analyze >/dev/null 2>&1 || install_setup_pkgs+=(systemd)
if [ ${#install_setup_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${install_setup_pkgs[@]}" >/dev/null
        setup_note "installed Debian packages: ${install_setup_pkgs[*]}"
    else
        echo "scripts/setup.d/install.sh: not root, cannot install ${install_setup_pkgs[*]}" >&2
    fi
fi
unset install_setup_pkgs
