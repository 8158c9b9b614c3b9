#!/usr/bin/env python3
"""Independent decryption of the reference volumes, sharing no code with tcvault.

Usage: python3 tests/independent_check.py TESTVOLUMES_DIR

For every volume in TESTVOLUMES_DIR/manifest.json that uses the AES cipher with PRF sha512 or
sha256 (keyfile volumes included), and for the header backup files of such volumes, this script:

* derives the header key with Python's hashlib.pbkdf2_hmac (keyfiles are mixed into the password
  with the keyfile pool of docs/format.md section 5, written here from that description and
  zlib.crc32);
* decrypts header bytes 64..512 as XTS data unit 0 with the `cryptography` package's AES-XTS;
* checks the magic `VERA`, both CRC-32s (zlib.crc32), the version, the sector size and the sizes
  and offsets docs/format.md section 2 predicts, and reads the master key halves;
* decrypts the manifest's data patterns (pattern A / B) from the volume's data area with the master
  keys (host offset = encrypted_area_start + pattern offset, XTS data unit = host offset // 512)
  and compares them with the formulas in the manifest.

Header slots checked: the primary header (or, for the hidden volume of outer_hidden.hc, the hidden
header at 65536), the embedded backup (size - 131072 for a normal/outer volume, size - 65536 for a
hidden one) and the headers in the two 131072-byte `.backup` files.

For each (file, slot) it prints one JSON line on standard output with the master key halves and
header fields, so that tests/format/independent.rs can compare them with
`tcvault info --json --show-keys`. Diagnostics go to standard error. The exit status is 0 when
everything matched, 1 on any mismatch, 2 on usage errors and 3 when `cryptography` is missing.
"""

import concurrent.futures
import hashlib
import json
import os
import struct
import sys
import zlib

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError as exc:  # pragma: no cover - depends on the machine
    print(f"independent_check: the 'cryptography' package is missing ({exc}); "
          "install it with: python3 -m pip install cryptography", file=sys.stderr)
    sys.exit(3)

HEADER_SIZE = 512
SALT_LEN = 64
DATA_UNIT = 512
NORMAL_DATA_START = 131072
HIDDEN_HEADER_OFFSET = 65536
BACKUP_NORMAL_FROM_END = 131072
BACKUP_HIDDEN_FROM_END = 65536
BACKUP_FILE_SIZE = 131072
KEYFILE_LIMIT = 1024 * 1024
# AES: one 32-byte key per XTS half.
AES_KEY_LEN = 32
SUPPORTED_PRFS = ("sha512", "sha256")


class Mismatch(Exception):
    """A check failed."""


def iterations_for(pim):
    """PBKDF2 iterations of a VeraCrypt non-system volume (docs/format.md section 4)."""
    return 500000 if pim == 0 else 15000 + 1000 * pim


def keyfile_pool(password, keyfile_paths):
    """The PBKDF2 password: the raw password, or the keyfile pool (docs/format.md section 5)."""
    if not keyfile_paths:
        return password
    size = 64 if len(password) <= 64 else 128
    pool = list(password) + [0] * (size - len(password))
    for path in keyfile_paths:
        with open(path, "rb") as f:
            data = f.read(KEYFILE_LIMIT)
        if not data:
            raise Mismatch(f"keyfile {path} is empty")
        # zlib.crc32(x, v) inverts v on entry and the result on exit, so the running,
        # non-finalised register after each byte is the finalised value xor 0xFFFFFFFF.
        finalised = 0
        pos = 0
        for i in range(len(data)):
            finalised = zlib.crc32(data[i:i + 1], finalised)
            register = finalised ^ 0xFFFFFFFF
            for shift in (24, 16, 8, 0):
                pool[pos] = (pool[pos] + ((register >> shift) & 0xFF)) & 0xFF
                pos = (pos + 1) % size
    return bytes(pool)


def xts_decrypt(key_primary, key_secondary, unit, data):
    """AES-XTS decryption of `data` as one data unit numbered `unit` (IEEE 1619)."""
    tweak = unit.to_bytes(16, "little")
    decryptor = Cipher(algorithms.AES(key_primary + key_secondary), modes.XTS(tweak)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def pattern_bytes(what):
    """The 4096-byte pattern named in a manifest `what` field."""
    if what.startswith("pattern A"):
        return bytes((7 * i + 3) % 256 for i in range(4096))
    if what.startswith("pattern B"):
        return bytes((i * i + 0x5A) % 256 for i in range(4096))
    raise Mismatch(f"unknown pattern description: {what!r}")


def parse_size(text):
    """'300K' -> 307200 (VeraCrypt --size syntax: plain bytes or K/M/G suffix)."""
    units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    text = text.strip()
    if text[-1:].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def expected_layout(volume_entry):
    """(encrypted_area_start, data size, hidden size) docs/format.md section 2 predicts."""
    size = volume_entry["size"]
    if volume_entry["type"] == "hidden":
        requested = parse_size(volume_entry["hidden_volume_size_requested"])
        data = requested - 4096 if requested < 2 * 1024 * 1024 else requested - 131072
        return size - BACKUP_NORMAL_FROM_END - requested, data, data
    return NORMAL_DATA_START, size - 2 * NORMAL_DATA_START, 0


class Job:
    """One header to open: where it is, with what, and what it should say."""

    def __init__(self, file, slot, offset, volume_entry, password, pim, keyfiles, host_kind):
        self.file = file
        self.slot = slot
        self.offset = offset
        self.volume_entry = volume_entry
        self.password = password
        self.pim = pim
        self.keyfiles = keyfiles
        self.host_kind = host_kind

    @property
    def prf(self):
        return self.volume_entry["prf"]

    @property
    def volume_type(self):
        return self.volume_entry["type"]


def selected(entry):
    return (entry.get("type") in ("normal", "outer", "hidden")
            and entry.get("cipher") == "AES"
            and entry.get("prf") in SUPPORTED_PRFS)


def password_bytes(entry, field="password"):
    if field == "password" and "password_utf8_hex" in entry:
        return bytes.fromhex(entry["password_utf8_hex"])
    return entry[field].encode("utf-8")


def plan_jobs(manifest):
    jobs = []
    entries = manifest["entries"]
    for e in entries:
        if not selected(e):
            continue
        if e["type"] == "hidden":
            slots = [("hidden", HIDDEN_HEADER_OFFSET),
                     ("backup-hidden", e["size"] - BACKUP_HIDDEN_FROM_END)]
        else:
            slots = [("normal", 0), ("backup-normal", e["size"] - BACKUP_NORMAL_FROM_END)]
        for slot, offset in slots:
            jobs.append(Job(e["file"], slot, offset, e, password_bytes(e), e["pim"],
                            e["keyfiles"], "file"))
    for b in entries:
        if b.get("type") != "backup":
            continue
        of = [v for v in entries if v.get("file") == b["of_volume"] and selected(v)]
        for v in of:
            if v["type"] == "hidden":
                if "hidden_password" not in b:
                    continue
                slot, offset, pw = "hidden", HIDDEN_HEADER_OFFSET, password_bytes(b, "hidden_password")
            else:
                slot, offset, pw = "normal", 0, password_bytes(b)
            jobs.append(Job(b["file"], slot, offset, v, pw, b.get("pim", 0),
                            b.get("keyfiles", []), "header-backup"))
    return jobs


def run_job(job, directory):
    """Opens one header and checks it; returns (result dict, list of error strings)."""
    errors = []
    path = os.path.join(directory, job.file)
    with open(path, "rb") as f:
        host = f.read()
    if job.host_kind == "header-backup" and len(host) != BACKUP_FILE_SIZE:
        errors.append(f"{job.file}: {len(host)} bytes, a header backup has {BACKUP_FILE_SIZE}")
    header = host[job.offset:job.offset + HEADER_SIZE]
    if len(header) != HEADER_SIZE:
        return None, [f"{job.file} {job.slot}: no header at {job.offset}"]
    salt = header[:SALT_LEN]
    kf_paths = [os.path.join(directory, k) for k in job.keyfiles]
    secret = keyfile_pool(job.password, kf_paths)
    dk = hashlib.pbkdf2_hmac(job.prf, secret, salt, iterations_for(job.pim), 2 * AES_KEY_LEN)
    plain = xts_decrypt(dk[:AES_KEY_LEN], dk[AES_KEY_LEN:], 0, header[SALT_LEN:])
    # `plain` is header bytes 64..511; index i here is header offset i + 64.
    h = bytes(SALT_LEN) + plain

    def be(offset, size):
        return int.from_bytes(h[offset:offset + size], "big")

    where = f"{job.file} {job.slot} (offset {job.offset}, {job.prf})"
    if h[64:68] != b"VERA":
        return None, [f"{where}: magic {h[64:68]!r}, expected b'VERA' (wrong key?)"]
    version = be(68, 2)
    if version != 5:
        errors.append(f"{where}: header version {version}, expected 5")
    if zlib.crc32(h[64:252]) != be(252, 4):
        errors.append(f"{where}: header CRC mismatch")
    if zlib.crc32(h[256:512]) != be(72, 4):
        errors.append(f"{where}: key-area CRC mismatch")
    fields = {
        "header_version": version,
        "min_program_version": be(70, 2),
        "hidden_volume_size": be(92, 8),
        "volume_size": be(100, 8),
        "encrypted_area_start": be(108, 8),
        "encrypted_area_length": be(116, 8),
        "flags": be(124, 4),
        "sector_size": be(128, 4),
    }
    if fields["min_program_version"] != 0x010B:
        errors.append(f"{where}: min program version {fields['min_program_version']:#06x}")
    if fields["sector_size"] != 512 or fields["flags"] != 0:
        errors.append(f"{where}: sector size {fields['sector_size']}, flags {fields['flags']}")
    start, data, hidden = expected_layout(job.volume_entry)
    want = {"encrypted_area_start": start, "encrypted_area_length": data,
            "volume_size": data, "hidden_volume_size": hidden}
    for name, value in want.items():
        if fields[name] != value:
            errors.append(f"{where}: {name} = {fields[name]}, docs/format.md predicts {value}")
    key_primary = h[256:256 + AES_KEY_LEN]
    key_secondary = h[256 + AES_KEY_LEN:256 + 2 * AES_KEY_LEN]
    if key_primary == key_secondary:
        errors.append(f"{where}: master key halves are equal")

    patterns_checked = 0
    if job.host_kind == "file":
        for dw in job.volume_entry.get("data_written", []):
            expected = pattern_bytes(dw["what"])
            if "sha256" in dw and hashlib.sha256(expected).hexdigest() != dw["sha256"]:
                errors.append(f"{where}: pattern generator disagrees with the manifest sha256")
            host_offset = fields["encrypted_area_start"] + dw["decrypted_data_area_offset"]
            if host_offset % DATA_UNIT:
                errors.append(f"{where}: pattern offset {host_offset} is not sector aligned")
                continue
            got = b"".join(
                xts_decrypt(key_primary, key_secondary, (host_offset + i) // DATA_UNIT,
                            host[host_offset + i:host_offset + i + DATA_UNIT])
                for i in range(0, len(expected), DATA_UNIT))
            if got != expected:
                first = next(i for i in range(len(expected)) if i >= len(got) or got[i] != expected[i])
                errors.append(f"{where}: {dw['what'][:9]} at data offset "
                              f"{dw['decrypted_data_area_offset']} differs from byte {first} on")
            patterns_checked += 1

    result = {
        "file": job.file,
        "slot": job.slot,
        "type": job.volume_type,
        "host_kind": job.host_kind,
        "prf": job.prf,
        "pim": job.pim,
        "keyfiles": job.keyfiles,
        "iterations": iterations_for(job.pim),
        "header_offset": job.offset,
        "master_key_primary_hex": key_primary.hex(),
        "master_key_secondary_hex": key_secondary.hex(),
        "patterns_checked": patterns_checked,
    }
    result.update(fields)
    return result, errors


def main(argv):
    if len(argv) != 2:
        print("usage: independent_check.py TESTVOLUMES_DIR", file=sys.stderr)
        return 2
    directory = argv[1]
    with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    jobs = plan_jobs(manifest)
    if not jobs:
        print("independent_check: the manifest selects no volume", file=sys.stderr)
        return 1
    errors = []
    results = []
    # hashlib.pbkdf2_hmac releases the GIL, so threads run the derivations in parallel.
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_job, job, directory) for job in jobs]
        for job, fut in zip(jobs, futures):
            try:
                result, errs = fut.result()
            except Exception as exc:  # noqa: BLE001 - any failure is a mismatch to report
                result, errs = None, [f"{job.file} {job.slot}: {exc}"]
            errors.extend(errs)
            if result is not None:
                results.append(result)

    # The same master key must come out of every header of one volume (primary, embedded backup,
    # backup file): they are re-encryptions of one header.
    by_volume = {}
    for r in results:
        key = (r["file"].removesuffix(".backup"), r["type"] == "hidden")
        by_volume.setdefault(key, []).append(r)
    for (volume, hidden), rs in sorted(by_volume.items()):
        keys = {(r["master_key_primary_hex"], r["master_key_secondary_hex"]) for r in rs}
        if len(keys) != 1:
            where = ", ".join(f"{r['file']} {r['slot']}" for r in rs)
            errors.append(f"{volume} ({'hidden' if hidden else 'normal'}): "
                          f"master keys differ between {where}")

    for r in results:
        print(json.dumps(r, sort_keys=True))
    for e in errors:
        print(f"independent_check: MISMATCH: {e}", file=sys.stderr)
    print(f"independent_check: {len(results)} of {len(jobs)} headers opened, "
          f"{sum(r['patterns_checked'] for r in results)} patterns checked, "
          f"{len(errors)} mismatches", file=sys.stderr)
    return 1 if errors or len(results) != len(jobs) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
