# OpenLDAP's slapd for the escrow server's LDAP login tests (tests/escrow/ldap.rs start their own
# slapd on 127.0.0.1 with a throwaway database; nothing of the package's own instance is used).
# Sourced by scripts/test.sh: installs the Debian packages if needed and exports
# TCVAULT_TEST_SLAPD. Safe to run again.
# shellcheck shell=bash

# shellcheck source=../lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"

tcvault_slapd_setup() {
    if [ ! -x /usr/sbin/slapd ] || ! command -v slapadd >/dev/null 2>&1; then
        apt_install slapd ldap-utils || return 1
    fi
    # The package starts its own instance where it can; the tests do not need it.
    if command -v service >/dev/null 2>&1 && service slapd status >/dev/null 2>&1; then
        service slapd stop >/dev/null 2>&1 || true
    fi
    export TCVAULT_TEST_SLAPD=/usr/sbin/slapd
}

tcvault_slapd_setup || echo "tcvault setup: no slapd: the LDAP tests skip (they fail under CI=true)" >&2
