#!/usr/bin/env python3
"""A third, independent maker of legacy TrueCrypt volumes (issue 8), sharing no code with tcvault
or with tests/common/legacy.rs.

Usage: python3 tests/legacy_check.py OUTDIR

Writes three small volumes into OUTDIR, from docs/legacy-format.md with hashlib, zlib.crc32 and
the `cryptography` package's AES, Blowfish and Triple DES (ECB, one block at a time):

* lrw-aes.tc          LRW, AES, PBKDF2-HMAC-SHA-512 (1,000 iterations), header version 2
* cbc-blowfish.tc     CBC, Blowfish (TrueCrypt's little-endian variant), SHA-1 (2,000), version 1
* cbc-triple-des.tc   CBC, Triple DES, SHA-1 (2,000), header version 2

each 192 KiB, password "python legacy", and data byte i of the data area (host byte 512 + i)
equal to (7*i + 3*(i >> 9) + 1) mod 256. One JSON line per volume on standard output: file,
mode, cipher, prf, header_version, host_size and the 256-byte key area in hex, for
tests/commands/legacy.rs to compare with its own reader and with `tcvault`.

Exit status: 0 when written, 2 on usage errors, 3 when `cryptography` is missing.
"""

import hashlib
import json
import os
import struct
import sys
import zlib

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import Blowfish, TripleDES
    except ImportError:  # cryptography < 43
        Blowfish, TripleDES = algorithms.Blowfish, algorithms.TripleDES
except ImportError:
    print("legacy_check.py: the `cryptography` package is missing", file=sys.stderr)
    sys.exit(3)

PASSWORD = b"python legacy"
HOST = 192 * 1024


def data_byte(i):
    return (7 * i + 3 * (i >> 9) + 1) & 0xFF


def ecb(algorithm):
    """A one-block encryption function."""
    enc = Cipher(algorithm, modes.ECB()).encryptor()
    return enc.update


def aes_enc(key):
    return ecb(algorithms.AES(key))


def blowfish_le_enc(key):
    # TrueCrypt's Blowfish: each 32-bit half read little-endian; standard Blowfish is
    # big-endian, so swap the bytes of each half around it.
    f = ecb(Blowfish(key))

    def e(block):
        swapped = block[3::-1] + block[7:3:-1]
        out = f(swapped)
        return out[3::-1] + out[7:3:-1]

    return e


def tdes_enc(key):
    return ecb(TripleDES(key))


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def gf128_mul(a, b):
    """Big-endian GF(2^128), x^128 + x^7 + x^2 + x + 1."""
    r = 0
    for i in range(128):
        if (b >> i) & 1:
            r ^= a
        a <<= 1
        if a >> 128:
            a ^= (1 << 128) | 0x87
    return r


def lrw_encrypt(enc, k2, first_index, data):
    k = int.from_bytes(k2[:16], "big")
    out = bytearray()
    for j in range(0, len(data), 16):
        t = gf128_mul(k, first_index + j // 16).to_bytes(16, "big")
        out += xor(enc(xor(data[j : j + 16], t)), t)
    return bytes(out)


def cbc_encrypt(enc, bs, iv, w, data):
    out = bytearray()
    prev = iv[:bs]
    for j in range(0, len(data), bs):
        c = enc(xor(data[j : j + bs], prev))
        prev = c
        out += xor(c, (w * 2)[:bs])
    return bytes(out)


def crc(b):
    return zlib.crc32(b) & 0xFFFFFFFF


def sector_iv_w(seed, s, bs):
    x = b"".join(
        struct.pack("<Q", struct.unpack("<Q", seed[8 * k : 8 * k + 8])[0] ^ s) for k in range(4)
    )
    if bs == 16:
        iv = x[:16]
        w = struct.pack("<I", crc(x[16:20]) ^ crc(x[28:32])) + struct.pack(
            "<I", crc(x[20:24]) ^ crc(x[24:28])
        )
    else:
        iv = x[:8]
        w = struct.pack("<I", crc(x[8:12]) ^ crc(x[20:24])) + struct.pack(
            "<I", crc(x[12:16]) ^ crc(x[16:20])
        )
    return iv, w


def make(path, mode, cipher, prf, version):
    key_len, bs, maker = {
        "AES": (32, 16, aes_enc),
        "Blowfish": (56, 8, blowfish_le_enc),
        "Triple DES": (24, 8, tdes_enc),
    }[cipher]
    iterations = {"sha1": 2000, "sha512": 1000}[prf]
    key_area = os.urandom(256)
    salt = os.urandom(64)
    min_program = 0x0410 if mode == "LRW" else 0x0100
    header = bytearray(512)
    header[:64] = salt
    header[64:68] = b"TRUE"
    struct.pack_into(">HHI", header, 68, version, min_program, crc(key_area))
    header[256:512] = key_area  # fields 92..124 stay 0 for versions 1-2
    dk = hashlib.pbkdf2_hmac(prf, PASSWORD, salt, iterations, 192)
    hdr_enc = maker(dk[32 : 32 + key_len])
    if mode == "LRW":
        body = lrw_encrypt(hdr_enc, dk[:16], 1, bytes(header[64:]))
    else:
        body = cbc_encrypt(hdr_enc, bs, dk[:bs], dk[8:16], bytes(header[64:]))
    header[64:] = body

    data = bytes(data_byte(i) for i in range(HOST - 512))
    enc = maker(key_area[32 : 32 + key_len])
    if mode == "LRW":
        # Sector s (relative), block j: index s*32 + 1 + j, i.e. one run from index 1.
        area = lrw_encrypt(enc, key_area[:16], 1, data)
    else:
        out = bytearray()
        for s in range(len(data) // 512):
            iv, w = sector_iv_w(key_area[:32], s + 1, bs)  # first data sector is s = 1
            out += cbc_encrypt(enc, bs, iv, w, data[512 * s : 512 * s + 512])
        area = bytes(out)
    with open(path, "wb") as f:
        f.write(bytes(header) + area)
    return {
        "file": os.path.basename(path),
        "mode": mode,
        "cipher": cipher,
        "prf": prf,
        "header_version": version,
        "host_size": HOST,
        "key_area": key_area.hex(),
    }


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    for name, mode, cipher, prf, version in [
        ("lrw-aes.tc", "LRW", "AES", "sha512", 2),
        ("cbc-blowfish.tc", "CBC", "Blowfish", "sha1", 1),
        ("cbc-triple-des.tc", "CBC", "Triple DES", "sha1", 2),
    ]:
        line = make(os.path.join(out, name), mode, cipher, prf, version)
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
