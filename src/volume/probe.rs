//! Recognises what the first bytes of a device or a decrypted data area hold: a filesystem or a
//! partition table, by their on-disk signatures. Used to refuse overwriting a device that holds
//! something, and to check that a restored header's keys really decrypt this volume's data.

/// How many leading bytes [`detect`] looks at (btrfs keeps its superblock at 64 KiB).
pub const PROBE_LEN: usize = 64 * 1024 + 4096;

/// The name of the filesystem or partition table whose signature `head` (the first bytes of a
/// device or data area, as many as [`PROBE_LEN`] or fewer) carries.
pub fn detect(head: &[u8]) -> Option<&'static str> {
    let at = |off: usize, sig: &[u8]| head.get(off..off + sig.len()) == Some(sig);
    if at(3, b"EXFAT   ") {
        return Some("exFAT");
    }
    if at(3, b"NTFS    ") {
        return Some("NTFS");
    }
    if at(0, b"XFSB") {
        return Some("XFS");
    }
    if at(0x438, &[0x53, 0xEF]) {
        return Some("ext2/3/4");
    }
    if at(0x10040, b"_BHRfS_M") {
        return Some("btrfs");
    }
    if at(0, b"LUKS\xba\xbe") {
        return Some("LUKS");
    }
    if at(4086, b"SWAPSPACE2") || at(4086, b"SWAP-SPACE") {
        return Some("swap");
    }
    if at(512, b"EFI PART") {
        return Some("GPT partition table");
    }
    let boot_sig = at(510, &[0x55, 0xAA]);
    if boot_sig && (at(0x36, b"FAT") || at(0x52, b"FAT32")) {
        return Some("FAT");
    }
    if at(0x8001, b"CD001") {
        return Some("ISO 9660");
    }
    if boot_sig && has_mbr_partitions(head) {
        return Some("MBR partition table");
    }
    None
}

/// An MBR with at least one partition entry whose status byte is valid and type non-zero.
fn has_mbr_partitions(head: &[u8]) -> bool {
    (0..4).any(|i| {
        let e = 446 + 16 * i;
        head.get(e..e + 16)
            .is_some_and(|p| (p[0] == 0 || p[0] == 0x80) && p[4] != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_signatures_and_not_noise() {
        let mut b = vec![0u8; PROBE_LEN];
        assert_eq!(detect(&b), None);
        b[0x438] = 0x53;
        b[0x439] = 0xEF;
        assert_eq!(detect(&b), Some("ext2/3/4"));
        let mut f = vec![0u8; 1024];
        f[0x52..0x57].copy_from_slice(b"FAT32");
        f[510] = 0x55;
        f[511] = 0xAA;
        assert_eq!(detect(&f), Some("FAT"));
        let noise: Vec<u8> = (0..PROBE_LEN as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(detect(&noise), None);
        assert_eq!(detect(&[]), None);
    }
}
