#!/usr/bin/env bash
# Sequential throughput through a mounted volume (FUSE + loop + ext4) beside a plain ext4 image
# on a loop device on the same disk, in one run. Not a test: prints a table of MB/s.
#
#   sudo scripts/bench-mount.sh [SIZE_MIB] [CHAIN...]      (default: 1024 AES Serpent AES-Twofish-Serpent)
#
# Write: dd of SIZE MiB in 1 MiB blocks with conv=fdatasync. Read: dd of the same file after
# dropping the page cache. Needs root, /dev/fuse, and what scripts/setup.d/mount.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
shift || true
chains=("$@")
[ ${#chains[@]} -gt 0 ] || chains=(AES Serpent AES-Twofish-Serpent)
. scripts/setup.d/mount.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --quiet --profile test --bin tcvault
tcv="$CARGO_TARGET_DIR/debug/tcvault"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/tcvault-bench.XXXXXX")
mnt="$work/mnt"
mkdir -p "$mnt"
pw="$work/pw"
printf 'mount-test password' >"$pw"
cleanup() {
    mountpoint -q "$mnt" && { "$tcv" unmount "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null || true; }
    [ -n "${plain_loop:-}" ] && losetup -d "$plain_loop" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

vol_bytes=$(( (size_mib + size_mib / 8 + 64) * 1024 * 1024 ))

measure() { # label
    local f="$mnt/bench.bin" w r
    w=$(dd if=/dev/zero of="$f" bs=1M count="$size_mib" conv=fdatasync 2>&1 | awk '/copied/ {print $(NF-1), $NF}')
    sync
    echo 3 >/proc/sys/vm/drop_caches
    r=$(dd if="$f" of=/dev/null bs=1M 2>&1 | awk '/copied/ {print $(NF-1), $NF}')
    printf '%-24s write %-12s read %s\n' "$1" "$w" "$r"
    rm -f "$f"
}

# The disk itself: dd on a plain file in the work directory.
mkdir -p "$work/raw"
mount --bind "$work/raw" "$mnt"
measure "plain file (no loop)"
umount "$mnt"

# The baseline the target is stated against: plain ext4 image on a loop device on the same
# disk, buffered (losetup's default) and with direct I/O (as tcvault's loop device).
for dio in off on; do
    truncate -s "$vol_bytes" "$work/plain.img"
    mkfs.ext4 -q -F -E nodiscard "$work/plain.img"
    plain_loop=$(losetup -f --show --direct-io="$dio" "$work/plain.img")
    mount "$plain_loop" "$mnt"
    measure "plain ext4, loop dio=$dio"
    umount "$mnt"
    losetup -d "$plain_loop"
    plain_loop=
    rm -f "$work/plain.img"
done

for chain in "${chains[@]}"; do
    vol="$work/$chain.hc"
    TCVAULT_BENCH_VOLUME="$vol" TCVAULT_BENCH_CHAIN="$chain" TCVAULT_BENCH_SIZE="$vol_bytes" \
        cargo test --quiet --test mount -- --ignored --exact bench_volume >/dev/null
    "$tcv" mount "$vol" "$mnt" --password-file "$pw" --prf sha512 --pim 1 >/dev/null
    measure "tcvault $chain"
    "$tcv" unmount "$mnt" >/dev/null
    rm -f "$vol"
done
