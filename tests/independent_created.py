#!/usr/bin/env python3
"""Independent check of a volume tcvault created, sharing no code with tcvault.

Usage: python3 tests/independent_created.py VOLUME PASSWORD PRF PIM OFFSET LENGTH

PRF is sha512 or sha256 (what hashlib has), the cipher must be AES. Using only hashlib,
zlib and the `cryptography` package's AES-XTS, written from docs/format.md:

* derives the header key for the primary header (byte 0) and the embedded backup
  (size - 131072) with PBKDF2-HMAC-PRF, VeraCrypt's count for PIM (500000 for 0, else
  15000 + 1000 * PIM);
* decrypts bytes 64..512 of each as XTS data unit 0, checks the magic VERA, version 5, both
  CRC-32s, sector size 512 and the layout of docs/format.md section 2 (data at 131072, length size -
  262144), checks that the two copies hold the same keys but different salts;
* decrypts LENGTH bytes at OFFSET of the data area (XTS unit = absolute offset / 512) and prints
  them in hex.

Prints one JSON object on standard output; exit status 0 when every check passed, 1 otherwise,
3 when `cryptography` is missing.
"""

import hashlib
import json
import os
import struct
import sys
import zlib

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError as exc:
    print(f"cryptography missing: {exc}", file=sys.stderr)
    sys.exit(3)


def xts_decrypt(key, unit, data):
    tweak = struct.pack("<QQ", unit, 0)
    d = Cipher(algorithms.AES(key), modes.XTS(tweak)).decryptor()
    return d.update(data) + d.finalize()


def open_header(raw, password, prf, pim):
    iterations = 500000 if pim == 0 else 15000 + 1000 * pim
    dk = hashlib.pbkdf2_hmac(prf, password, raw[:64], iterations, 64)
    plain = xts_decrypt(dk, 0, raw[64:512])
    problems = []
    if plain[0:4] != b"VERA":
        problems.append("magic")
        return None, problems
    version, = struct.unpack(">H", plain[4:6])
    key_crc, = struct.unpack(">I", plain[8:12])
    hidden, vsize, start, length, flags, sector = struct.unpack(">QQQQII", plain[28:68])
    header_crc, = struct.unpack(">I", plain[188:192])
    keys = plain[192:448]
    if version != 5:
        problems.append(f"version {version}")
    if zlib.crc32(keys) != key_crc:
        problems.append("key area CRC")
    if zlib.crc32(plain[0:188]) != header_crc:
        problems.append("header CRC")
    if sector != 512:
        problems.append(f"sector size {sector}")
    fields = dict(hidden=hidden, volume_size=vsize, start=start, length=length, flags=flags,
                  salt=raw[:64].hex(), keys=keys[:64].hex(), tail_zero=keys[64:] == bytes(192))
    return fields, problems


def main(argv):
    if len(argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    path, password, prf, pim, offset, length = argv[1], argv[2].encode(), argv[3], \
        int(argv[4]), int(argv[5]), int(argv[6])
    size = os.path.getsize(path)
    out = {"problems": []}
    with open(path, "rb") as f:
        f.seek(0)
        primary = f.read(512)
        f.seek(size - 131072)
        backup = f.read(512)
        p, pp = open_header(primary, password, prf, pim)
        b, bp = open_header(backup, password, prf, pim)
        out["problems"] += ["primary: " + x for x in pp] + ["backup: " + x for x in bp]
        if p is None or b is None:
            print(json.dumps(out))
            return 1
        if p["start"] != 131072 or p["length"] != size - 262144 or p["volume_size"] != p["length"]:
            out["problems"].append("layout")
        if p["keys"] != b["keys"]:
            out["problems"].append("backup keys differ from primary keys")
        if p["salt"] == b["salt"]:
            out["problems"].append("backup reuses the primary salt")
        if not p["tail_zero"]:
            out["problems"].append("key area tail not zero")
        if p["keys"][:64] == p["keys"][64:]:
            out["problems"].append("equal XTS key halves")
        keys = bytes.fromhex(p["keys"])
        f.seek(131072 + offset)
        data = f.read(length)
        plain = b""
        for i in range(0, length, 512):
            absolute = 131072 + offset + i
            plain += xts_decrypt(keys, absolute // 512, data[i:i + 512])
        out["header"] = {k: p[k] for k in ("hidden", "volume_size", "start", "length", "flags")}
        out["data_hex"] = plain.hex()
    print(json.dumps(out))
    return 0 if not out["problems"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
