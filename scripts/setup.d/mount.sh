# Sourced by scripts/test.sh (and scripts/bench-mount.sh): what `tcvault mount` and tests/mount/ need on the machine.
# FUSE (fusermount3), loop/blkid/mount (util-linux), the mkfs tools for `--filesystem`, the
# userspace FAT/exFAT/NTFS drivers used when the kernel has no driver for them, and fuse2fs for
# user-mode ext4 mounts. Idempotent.
# shellcheck source=../lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
mount_setup_pkgs=()
for pair in fusermount3:fuse3 blkid:util-linux losetup:mount mkfs.ext4:e2fsprogs \
    mkfs.fat:dosfstools fusefat:fusefat mount.exfat-fuse:exfat-fuse mkfs.exfat:exfatprogs \
    ntfs-3g:ntfs-3g mkfs.ntfs:ntfs-3g mkfs.xfs:xfsprogs fuse2fs:fuse2fs; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "${pair%%:*}" >/dev/null 2>&1 \
        || mount_setup_pkgs+=("${pair#*:}")
done
apt_install "${mount_setup_pkgs[@]}" || true
unset mount_setup_pkgs pair
# The loop driver may be a module on other kernels; harmless when built in.
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || true
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
# User-mode mounts (tests/mount/user_mode.rs runs them as real users) need /dev/fuse open to
# every user, as udev makes it on Debian (KERNEL=="fuse", MODE="0666"); some containers create
# it root-only.
if [ "$(id -u)" = 0 ] && [ -c /dev/fuse ] && [ "$(stat -c %a /dev/fuse)" != 666 ]; then
    setup_note "made /dev/fuse mode 0666 (was $(stat -c %a /dev/fuse)) for user-mode mounts"
    chmod 0666 /dev/fuse
fi
