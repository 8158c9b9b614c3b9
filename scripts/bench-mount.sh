#!/usr/bin/env bash
# Sequential throughput through a mounted volume (FUSE + loop + ext4) beside a plain ext4 image
# on a loop device on the same disk, in one run. Not a test: prints a table of MB/s.
#
#   scripts/bench-mount.sh [SIZE_MIB] [CHAIN...]    (as root; default: 1024 AES Serpent AES-Twofish-Serpent)
#   REPS=7 scripts/bench-mount.sh ...               (rounds; default 5)
#
# Write: dd of SIZE MiB in 1 MiB blocks with conv=fdatasync. Read: dd of the same file after
# dropping the page cache. Needs root, /dev/fuse, and what scripts/setup.d/mount.sh installs.
#
# Single runs on a shared virtual disk vary by 2x and more, so the configurations are measured
# in REPS interleaved rounds, each on a new image or volume, and the table gives the median with
# the range; ratios are medians against the plain loop device's medians. One noise source seen
# here is the virtual machine handing freed memory back to its host (free page reporting): a read
# right after drop_caches may fill page cache the host has to fault back in, which costs tcvault
# more (its data is copied in by a guest CPU; a plain loop device's by the virtual disk). AES reads
# right after a write ran at 1.4-1.6 GB/s, and at 2.2-3.1 GB/s when 3 GiB of memory was touched
# just before the read.
#
# Images and volumes are sparse files of 3 x SIZE (+64 MiB): with the file filling most of a
# smaller filesystem, ext4 switches to slow non-delayed allocation part-way through the write
# ("nonda"), at a point that depends on timing, and the write figures become bimodal for both.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
shift || true
chains=("$@")
[ ${#chains[@]} -gt 0 ] || chains=(AES Serpent AES-Twofish-Serpent)
reps=${REPS:-5}
. scripts/setup.d/mount.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --quiet --profile test --bin tcvault
cargo test --quiet --no-run --test mount 2>/dev/null
tcv="$CARGO_TARGET_DIR/debug/tcvault"
work=$(mktemp -d "${TMPDIR:-/var/tmp}/tcvault-bench.XXXXXX")
mnt="$work/mnt"
mkdir -p "$mnt"
pw="$work/pw"
printf 'mount-test password' >"$pw"
results="$work/results"
: >"$results"
cleanup() {
    mountpoint -q "$mnt" && { "$tcv" unmount "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null || true; }
    [ -n "${plain_loop:-}" ] && losetup -d "$plain_loop" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

vol_bytes=$(( (3 * size_mib + 64) * 1024 * 1024 ))

# MB/s (10^6 bytes per second) of a dd run, from its byte count and seconds.
dd_rate() {
    awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") s = $(i - 1); printf "%.0f\n", $1 / s / 1e6 }'
}

measure() { # label
    local f="$mnt/bench.bin" w r
    w=$(dd if=/dev/zero of="$f" bs=1M count="$size_mib" conv=fdatasync 2>&1 | dd_rate)
    sync
    echo 3 >/proc/sys/vm/drop_caches
    r=$(dd if="$f" of=/dev/null bs=1M 2>&1 | dd_rate)
    printf '%s\t%s\t%s\n' "$1" "$w" "$r" >>"$results"
    printf '  %-28s write %5s MB/s   read %5s MB/s\n' "$1" "$w" "$r"
    rm -f "$f"
}

for rep in $(seq "$reps"); do
    echo "round $rep of $reps"
    # The disk itself: dd on a plain file in the work directory.
    mkdir -p "$work/raw"
    mount --bind "$work/raw" "$mnt"
    measure "plain file (no loop)"
    umount "$mnt"

    # The baseline the target is stated against: a plain ext4 image on a loop device with
    # direct I/O (as tcvault's loop device), on the same disk.
    truncate -s "$vol_bytes" "$work/plain.img"
    mkfs.ext4 -q -F -E nodiscard "$work/plain.img"
    plain_loop=$(losetup -f --show --direct-io=on "$work/plain.img")
    mount "$plain_loop" "$mnt"
    measure "plain ext4 on loop"
    umount "$mnt"
    losetup -d "$plain_loop"
    plain_loop=
    rm -f "$work/plain.img"

    for chain in "${chains[@]}"; do
        vol="$work/$chain.hc"
        TCVAULT_BENCH_VOLUME="$vol" TCVAULT_BENCH_CHAIN="$chain" TCVAULT_BENCH_SIZE="$vol_bytes" \
            cargo test --quiet --profile test --test mount -- --ignored --exact bench_volume >/dev/null
        "$tcv" mount "$vol" "$mnt" --password-file "$pw" --prf sha512 --pim 1 >/dev/null
        measure "tcvault $chain"
        "$tcv" unmount "$mnt" >/dev/null
        rm -f "$vol"
    done
done

echo
echo "median (min-max) of $reps rounds, $size_mib MiB, MB/s; ratio: median / plain ext4 on loop"
python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, w, r = line.rstrip("\n").split("\t")
    rows.setdefault(label, ([], []))
    rows[label][0].append(int(w))
    rows[label][1].append(int(r))
base = rows.get("plain ext4 on loop")
def cell(xs, b):
    m = statistics.median(xs)
    s = f"{m:6.0f} ({min(xs)}-{max(xs)})"
    if b is not None:
        s += f" {m / statistics.median(b):5.2f}x"
    return s
print(f"{'':28} {'write':28} {'read':28}")
for label, (w, r) in rows.items():
    tc = label.startswith("tcvault") and base is not None
    print(f"{label:28} {cell(w, base[0] if tc else None):28} {cell(r, base[1] if tc else None):28}")
PY
