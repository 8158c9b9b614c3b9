#!/usr/bin/env python3
"""Unlock time of tcvault beside Python's hashlib PBKDF2, measured side by side in one run.

Usage: benches/unlock_vs_hashlib.py [path/to/tcvault] [repetitions]

Baseline: hashlib.pbkdf2_hmac('sha512', pw, salt, 500000, 192), the cost of deriving a
SHA-512/AES VeraCrypt header key the plain way. Reported: median seconds and ratio to the
baseline for (1) unlocking testvolumes/aes_sha512.hc with auto-detection and (2) a wrong
password over every PRF, normal and hidden header (the worst case).
"""
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/tcvault")
REPS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
VOLUME = os.path.join(ROOT, "testvolumes/aes_sha512.hc")
PASSWORD = b"DevSet-vc-Passw0rd-2026"


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def tcvault(password, expect_rc):
    with tempfile.NamedTemporaryFile() as f:
        f.write(password)
        f.flush()
        r = subprocess.run([BIN, "info", "--password-file", f.name, VOLUME],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode != expect_rc:
            sys.exit(f"tcvault exited {r.returncode}, expected {expect_rc}")


def main():
    salt = os.urandom(64)
    rows = {"baseline hashlib sha512 500000x192B": [], "unlock aes_sha512 (auto-detect)": [],
            "wrong password (every PRF, both headers)": []}
    for _ in range(REPS):
        rows["baseline hashlib sha512 500000x192B"].append(
            timed(lambda: hashlib.pbkdf2_hmac("sha512", PASSWORD, salt, 500000, 192)))
        rows["unlock aes_sha512 (auto-detect)"].append(timed(lambda: tcvault(PASSWORD, 0)))
        rows["wrong password (every PRF, both headers)"].append(
            timed(lambda: tcvault(b"wrong password", 3)))
    base = statistics.median(rows["baseline hashlib sha512 500000x192B"])
    for name, times in rows.items():
        m = statistics.median(times)
        print(f"{name:45s} {m:8.3f} s   {m / base:6.2f}x baseline")


if __name__ == "__main__":
    main()
