# Sourced by scripts/test.sh: what tests/commands/install.rs needs to check an install into a
# temporary prefix: man (man-db) to find the pages and systemd-analyze (systemd) to verify the
# units. Idempotent; installs only what is missing.
# shellcheck source=../lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
install_setup_pkgs=()
command -v man >/dev/null 2>&1 || install_setup_pkgs+=(man-db)
command -v systemd-analyze >/dev/null 2>&1 || install_setup_pkgs+=(systemd)
apt_install "${install_setup_pkgs[@]}" || true
unset install_setup_pkgs
