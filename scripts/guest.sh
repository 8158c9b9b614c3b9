#!/usr/bin/env bash
# A Linux guest with device-mapper, dm-crypt and the kernel crypto API, for the tests that need
# a kernel this machine does not have: Debian's own kernel, cryptsetup and tcplay under QEMU,
# everything from Debian packages, downloaded and unpacked (never installed), cached between
# runs.
#
#   scripts/guest.sh prepare        fetch and build what a boot needs (once; then cached)
#   scripts/guest.sh run DISK...    boot the guest with DISK... as /dev/vda, /dev/vdb, ...
#
# The first disk is an ext4 image that holds run.sh at its root. The guest mounts it on /t, runs
# `sh /t/run.sh` with /t as its working directory and everything it prints going to the console
# (this script's standard output), then powers off. The guest reports through what run.sh
# prints: the kernel cannot hand an exit code back, so `run` exits 0 when the guest printed
# "tcvault-guest: done" (after run.sh, whatever run.sh's own status, which it prints as
# "tcvault-guest: status N") and 1 when the guest died or timed out first.
#
# The guest has busybox, cryptsetup, dmsetup and tcplay, with the modules for virtio disks,
# loop devices, dm-crypt, AES, Serpent, Twofish, Camellia, XTS, LRW, the hashes and AF_ALG
# loaded. KVM is used where /dev/kvm works, else TCG (software emulation, about 10 s to boot).
#
# Environment: TCVAULT_GUEST_CACHE (default /var/cache/tcvault-guest), TCVAULT_GUEST_TIMEOUT
# (seconds a run may take, default 1200), TCVAULT_GUEST_MEMORY (MiB, default 1024).
set -euo pipefail

cache=${TCVAULT_GUEST_CACHE:-/var/cache/tcvault-guest}
# The guest's packages. The kernel is the cloud flavour (small, ext4 and virtio built for VMs);
# its ABI name comes from the metapackage's dependency.
kernel_meta=linux-image-cloud-amd64
guest_packages=(busybox-static cryptsetup-bin dmsetup tcplay libpopt0 libcryptsetup12
    libdevmapper1.02.1 libargon2-1 libjson-c5 libssl3 cpio)
# QEMU and the libraries it needs that a plain Debian machine lacks (installing
# qemu-system-x86 would replace the machine's own qemu-utils, so it is only unpacked).
qemu_packages=(qemu-system-x86 qemu-system-common qemu-system-data seabios ipxe-qemu
    libcapstone4 libfdt1 libibverbs1 libpmem1 librdmacm1 libslirp0 libvdeplug2 libndctl6
    libdaxctl1 libnl-3-200 libnl-route-3-200)
# Modules the guest loads, in this order (modprobe pulls in what each needs).
modules=(virtio_pci virtio_blk loop dm_mod dm_crypt xts lrw cbc ecb essiv serpent_generic
    twofish_generic camellia_generic aesni_intel serpent_avx2 twofish_avx_x86_64
    camellia_aesni_avx2 sha512_generic wp512 rmd160 af_alg algif_skcipher algif_hash)

die() {
    echo "scripts/guest.sh: $*" >&2
    exit 1
}

kernel_package() {
    apt-cache depends "$kernel_meta" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'
}

# Downloads the packages into $cache/debs and unpacks them into $cache/root.
fetch() {
    local kpkg=$1
    mkdir -p "$cache/debs" "$cache/root"
    (
        cd "$cache/debs"
        # apt's sandbox user cannot write here; downloading as root is what is wanted.
        apt-get download -o APT::Sandbox::User=root "$kpkg" "${guest_packages[@]}" \
            "${qemu_packages[@]}" >/dev/null
    ) || die "apt-get download failed (are the Debian package lists up to date? apt-get update)"
    local deb
    for deb in "$cache"/debs/*.deb; do
        dpkg-deb -x "$deb" "$cache/root"
    done
}

# The shared libraries of the programs given, resolved against the unpacked packages first and
# the machine's own libraries after them, plus libgcc_s (loaded at run time by glibc).
libraries_of() {
    local libpath="$cache/root/lib/x86_64-linux-gnu:$cache/root/usr/lib/x86_64-linux-gnu"
    LD_LIBRARY_PATH=$libpath ldd "$@" | awk '/=> \//{print $3} /^\t\/lib64\//{print $1}' | sort -u
    local gcc
    for gcc in "$cache/root/lib/x86_64-linux-gnu/libgcc_s.so.1" /lib/x86_64-linux-gnu/libgcc_s.so.1; do
        [ -e "$gcc" ] && { echo "$gcc"; break; }
    done
}

# Builds $cache/initrd.gz: busybox, cryptsetup, dmsetup, tcplay with their libraries and
# OpenSSL's legacy provider (Whirlpool and RIPEMD-160), the module closure, and /init.
build_initrd() {
    local kver=$1 root=$cache/root work
    work=$(mktemp -d)
    mkdir -p "$work"/{bin,sbin,dev,proc,sys,run,tmp,t,etc,lib/modules}
    cp "$root/bin/busybox" "$work/bin/busybox"
    local applet
    for applet in $("$root/bin/busybox" --list); do
        [ -e "$work/bin/$applet" ] || ln -s busybox "$work/bin/$applet"
    done
    local prog
    for prog in sbin/cryptsetup sbin/dmsetup usr/sbin/tcplay; do
        cp "$root/$prog" "$work/sbin/"
    done
    # Every library goes to /lib/x86_64-linux-gnu (the loader to /lib64), whether it came from
    # the unpacked packages or from this machine.
    mkdir -p "$work/lib/x86_64-linux-gnu" "$work/lib64"
    local lib
    for lib in $(libraries_of "$root/sbin/cryptsetup" "$root/sbin/dmsetup" "$root/usr/sbin/tcplay"); do
        case "$lib" in
        */ld-linux-x86-64.so.2) cp -L "$lib" "$work/lib64/" ;;
        *) cp -L "$lib" "$work/lib/x86_64-linux-gnu/" ;;
        esac
    done
    local legacy
    for legacy in "$root/usr/lib/x86_64-linux-gnu/ossl-modules/legacy.so" \
        /usr/lib/x86_64-linux-gnu/ossl-modules/legacy.so; do
        if [ -e "$legacy" ]; then
            mkdir -p "$work/usr/lib/x86_64-linux-gnu/ossl-modules"
            cp "$legacy" "$work/usr/lib/x86_64-linux-gnu/ossl-modules/"
            break
        fi
    done
    [ -e "$work/lib64/ld-linux-x86-64.so.2" ] || die "the dynamic loader was not found"
    # The module tree (only the parts the guest can use) with its dependency lists.
    local mdir=lib/modules/$kver part
    mkdir -p "$work/$mdir/kernel"
    for part in crypto drivers/md drivers/block drivers/virtio arch/x86/crypto lib; do
        if [ -d "$root/$mdir/kernel/$part" ]; then
            mkdir -p "$work/$mdir/kernel/$(dirname "$part")"
            cp -r "$root/$mdir/kernel/$part" "$work/$mdir/kernel/$part"
        fi
    done
    cp "$root/$mdir"/modules.{builtin,order} "$work/$mdir/"
    # The packages carry no modules.dep (installing them would run depmod): busybox makes it.
    "$root/bin/busybox" depmod -b "$work" "$kver"
    [ -s "$work/$mdir/modules.dep" ] || die "depmod made no modules.dep"
    cat >"$work/init" <<EOF
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/mapper /run/cryptsetup /run/lock
for m in ${modules[*]}; do modprobe \$m || echo "tcvault-guest: no module \$m"; done
# Let the virtio disks appear.
n=0
while [ ! -b /dev/vda ] && [ \$n -lt 50 ]; do sleep 0.1; n=\$((n + 1)); done
if mount -t ext4 /dev/vda /t; then
    cd /t
    echo "tcvault-guest: running"
    sh /t/run.sh
    echo "tcvault-guest: status \$?"
    cd /
    sync
    umount /t
else
    echo "tcvault-guest: the test disk did not mount"
fi
echo "tcvault-guest: done"
poweroff -f
EOF
    chmod 755 "$work/init"
    (cd "$work" && find . | "$root/bin/cpio" --quiet -o -H newc) | gzip -1 >"$cache/initrd.gz.new"
    mv "$cache/initrd.gz.new" "$cache/initrd.gz"
    rm -rf "$work"
}

prepare() {
    local kpkg kver stamp
    kpkg=$(kernel_package)
    [ -n "$kpkg" ] || die "no $kernel_meta package is known to apt (apt-get update?)"
    kver=${kpkg#linux-image-}
    stamp="$kpkg ${guest_packages[*]} ${qemu_packages[*]} ${modules[*]} $(sha256sum "$0" | cut -c1-16)"
    if [ -e "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$stamp" ] && [ -e "$cache/initrd.gz" ]; then
        return 0
    fi
    rm -rf "$cache"
    mkdir -p "$cache"
    fetch "$kpkg"
    cp "$cache/root/boot/vmlinuz-$kver" "$cache/vmlinuz"
    build_initrd "$kver"
    echo "$stamp" >"$cache/stamp"
}

# Becomes QEMU on the guest's kernel and initrd with the disks given (exec, so that timeout(1)
# stops QEMU itself); the console goes to standard output.
qemu() {
    local root=$cache/root accel=$1
    shift
    LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu" \
        exec "$root/usr/bin/qemu-system-x86_64" \
        -L "$root/usr/share/qemu" -L "$root/usr/share/seabios" \
        -accel "$accel" -cpu max -smp 2 -m "${TCVAULT_GUEST_MEMORY:-1024}" \
        -kernel "$cache/vmlinuz" -initrd "$cache/initrd.gz" \
        -append "console=ttyS0 quiet panic=-1 rdinit=/init" \
        -display none -serial stdio -monitor none -no-reboot -nodefaults "$@" </dev/null
}

# kvm where a guest really boots with it (a /dev/kvm can be there and hang every guest: seen
# on these machines), else tcg; found out once per cache (TCVAULT_GUEST_KVM=0 skips it).
accelerator() {
    if [ ! -e "$cache/accel" ]; then
        local accel=tcg,thread=multi
        if [ "${TCVAULT_GUEST_KVM:-1}" != 0 ] && [ -w /dev/kvm ] \
            && timeout -k 5 20 "$0" qemu kvm 2>/dev/null | grep -q '^tcvault-guest: done'; then
            accel=kvm
        fi
        echo "$accel" >"$cache/accel"
    fi
    cat "$cache/accel"
}

run() {
    [ "$#" -ge 1 ] || die "run needs at least one disk image"
    [ -e "$cache/stamp" ] || die "the guest is not prepared: scripts/guest.sh prepare"
    local accel
    accel=$(accelerator)
    local drives=() disk
    for disk in "$@"; do
        drives+=(-drive "file=$disk,format=raw,if=virtio,cache=unsafe")
    done
    local log status=0
    log=$(mktemp)
    timeout -k 5 "${TCVAULT_GUEST_TIMEOUT:-1200}" "$0" qemu "$accel" "${drives[@]}" | tee "$log" \
        || status=$?
    if ! grep -q '^tcvault-guest: done' "$log"; then
        rm -f "$log"
        die "the guest did not finish (qemu status $status)"
    fi
    rm -f "$log"
}

case "${1:-}" in
prepare) prepare ;;
run)
    shift
    run "$@"
    ;;
qemu) # internal: one QEMU process, for timeout(1)
    shift
    qemu "$@"
    ;;
*) die "usage: scripts/guest.sh prepare | run DISK..." ;;
esac
