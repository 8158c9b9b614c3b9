# The Linux guest of tests/guest (scripts/guest.sh: Debian's kernel with dm-crypt, cryptsetup and
# tcplay under QEMU, from Debian packages unpacked into a cache, never installed). Sourced by
# scripts/test.sh: prepares the guest (a download the first time, then cached) and exports
# TCVAULT_GUEST. Safe to run again.
# shellcheck shell=bash

# shellcheck source=../lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"

tcvault_guest_setup() {
    local here
    here=$(dirname "${BASH_SOURCE[0]}")/..
    # mkfs.ext4 -d makes the guest's test disk.
    command -v mkfs.ext4 >/dev/null 2>&1 || apt_install e2fsprogs || return 1
    local cache=${TCVAULT_GUEST_CACHE:-/var/cache/tcvault-guest} fresh=0
    [ -e "$cache/stamp" ] || fresh=1
    if ! "$here/guest.sh" prepare; then
        # The package lists may be too old for the kernel they name.
        [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null && "$here/guest.sh" prepare || return 1
    fi
    [ "$fresh" = 0 ] || setup_note "prepared the test guest in $cache (Debian packages unpacked there, not installed)"
    export TCVAULT_GUEST=1
}

tcvault_guest_setup || echo "tcvault setup: no guest: the tests/guest tests skip (they fail under CI=true)" >&2
