#!/usr/bin/env python3
"""Unlock time of tcvault per PRF beside Python's hashlib PBKDF2, measured side by side in one run.

Usage: benches/unlock_vs_hashlib.py [--loaded] [path/to/tcvault] [repetitions]

Baseline: hashlib.pbkdf2_hmac('sha512', pw, salt, 500000, 192), the cost of deriving a
SHA-512/AES VeraCrypt header key the plain way. The volumes are made first by tcvault itself
(4 MiB, default PIM, one per PRF: the VeraCrypt ones, and TrueCrypt's RIPEMD-160); each is then
opened by `tcvault info` with auto-detection (no --prf), and a wrong password is tried on the
SHA-512 one (every PRF, normal and hidden header: the worst case). Reported per row: the median
seconds, the ratio to the baseline, and where known the target (issue 16: at most 0.2x the
multiple real VeraCrypt 1.26.27 took on the same volume kind, 0.15x for the wrong password).
SHA-512's row has its own limit: one serial PBKDF2-HMAC-SHA-512 chain, so about the baseline.

--loaded keeps one other process spinning on a core during the tcvault runs (the "loaded
machine" case).
"""
import hashlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSWORD = b"unlock-bench Passw0rd 2026"

# (label, create arguments, VeraCrypt's multiple of the baseline for that kind, or None)
VOLUMES = [
    ("sha512", ["--prf", "sha512"], 1.27),
    ("sha256", ["--prf", "sha256", "--cipher", "serpent"], 2.80),
    ("blake2s", ["--prf", "blake2s", "--cipher", "twofish"], 6.67),
    ("whirlpool", ["--prf", "whirlpool", "--cipher", "camellia"], 8.94),
    ("streebog", ["--prf", "streebog", "--cipher", "kuznyechik"], 13.99),
    ("ripemd160 (TrueCrypt)", ["--prf", "ripemd160", "--format", "truecrypt"], None),
    ("argon2id", ["--prf", "argon2id"], None),
]
WRONG_MULTIPLE = 27.98


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def spin(stop):
    while not stop.is_set():
        pass


def main():
    args = [a for a in sys.argv[1:] if a != "--loaded"]
    loaded = len(args) != len(sys.argv) - 1
    binary = args[0] if args else os.path.join(ROOT, "target/release/tcvault")
    reps = int(args[1]) if len(args) > 1 else 3
    work = tempfile.mkdtemp(prefix="tcvault-unlock-bench-")
    pw = os.path.join(work, "pw")
    bad = os.path.join(work, "bad")
    with open(pw, "wb") as f:
        f.write(PASSWORD)
    with open(bad, "wb") as f:
        f.write(b"wrong password")
    vols = []
    for label, extra, multiple in VOLUMES:
        path = os.path.join(work, label.split()[0] + ".hc")
        subprocess.run([binary, "-q", "create", "--quick", "--size", "4M", "--escrow", "no",
                        "--filesystem", "none", "--password-file", pw, *extra, path],
                       check=True)
        vols.append((label, path, multiple))

    def info(pwfile, vol, rc):
        r = subprocess.run([binary, "info", "--password-file", pwfile, vol],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode != rc:
            sys.exit(f"tcvault info {vol} exited {r.returncode}, expected {rc}")

    rows = {"baseline": []}
    salt = os.urandom(64)
    stop = multiprocessing.Event()
    spinner = None
    for _ in range(reps):
        rows["baseline"].append(
            timed(lambda: hashlib.pbkdf2_hmac("sha512", PASSWORD, salt, 500000, 192)))
        if loaded:
            spinner = multiprocessing.Process(target=spin, args=(stop,))
            spinner.start()
        for label, path, _ in vols:
            rows.setdefault(label, []).append(timed(lambda: info(pw, path, 0)))
        rows.setdefault("wrong password", []).append(timed(lambda: info(bad, vols[0][1], 3)))
        if spinner:
            stop.set()
            spinner.join()
            stop.clear()
    base = statistics.median(rows["baseline"])
    targets = {label: m for label, _, m in vols}
    targets["wrong password"] = WRONG_MULTIPLE
    print(f"{reps} repetitions{', one other core kept busy' if loaded else ''}; "
          f"baseline (hashlib sha512 500000x192B) {base:.3f} s")
    print(f"{'volume':24s} {'median':>9s} {'x baseline':>11s} {'VeraCrypt':>10s} {'ratio':>7s}")
    for name, times in rows.items():
        if name == "baseline":
            continue
        m = statistics.median(times)
        vc = targets.get(name)
        vc_s = f"{vc:9.2f}x" if vc else f"{'-':>10s}"
        ratio = f"{m / base / vc:7.2f}" if vc else f"{'-':>7s}"
        print(f"{name:24s} {m:8.3f}s {m / base:10.2f}x {vc_s} {ratio}")
    for f in os.listdir(work):
        os.remove(os.path.join(work, f))
    os.rmdir(work)


if __name__ == "__main__":
    main()
