#!/usr/bin/env bash
# The whole test suite, installing what it needs first. This is the README's test command and
# what CI runs. Safe to run again: installs are skipped when already present.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the setup steps installed or started, said at the end (setup_note); a PostgreSQL cluster
# the setup started is stopped at the end unless TCVAULT_KEEP_POSTGRES=1.
setup_notes=$(mktemp)
setup_note() { printf '%s\n' "$*" >>"$setup_notes"; }
finish() {
    local rc=$?
    if [ "${tcvault_pg_started:-0}" = 1 ] && [ "${TCVAULT_KEEP_POSTGRES:-0}" != 1 ]; then
        tcvault_pg_stop && setup_note "stopped the PostgreSQL test cluster it had started (TCVAULT_KEEP_POSTGRES=1 keeps it)"
    fi
    if [ -s "$setup_notes" ]; then
        echo "scripts/test.sh, what it changed on this machine:" >&2
        sed 's/^/  /' "$setup_notes" >&2
    fi
    rm -f "$setup_notes"
    exit "$rc"
}
trap finish EXIT

. scripts/lib/apt.sh

# System packages: python3 and pip for the independent cross-check of the format.
need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
apt_install "${need_apt[@]}"

# Python's `cryptography` (AES-XTS) for tests/independent_check.py, which shares no code with
# tcvault. Debian's python3-cryptography is used when pip cannot install into the interpreter.
if ! python3 -c 'import cryptography' 2>/dev/null; then
    setup_note "installed Python's cryptography package (pip, or Debian's python3-cryptography)"
    python3 -m pip install --quiet cryptography 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages cryptography 2>/dev/null \
        || apt_install python3-cryptography
fi


# Each subsystem's own setup (system packages, throwaway servers), one file each; sourced so
# that they can export the variables the tests read.
for setup in scripts/setup.d/*.sh; do
    [ -e "$setup" ] || continue
    # shellcheck source=/dev/null
    . "$setup"
done

# The test profile is optimised (Cargo.toml): PBKDF2 with real iteration counts is 10-30x
# slower unoptimised. --no-fail-fast: one failing test binary must not hide the others' results;
# the doc tests and the fuzz runs go ahead whatever the tests did, and the script fails if any
# of them failed.
status=0
# test-hooks: the pause between header writes that the kill tests use (Cargo.toml).
cargo test --locked --all-targets --features test-hooks --no-fail-fast "$@" || status=$?
cargo test --locked --doc --features test-hooks || status=$?

# The AVX-512 kernels (PBKDF2 lanes and Argon2id: avx512f; Streebog and Whirlpool: also
# avx512bw, avx512vbmi and gfni) are checked only on a CPU that runs them. Their unit tests
# skip elsewhere and cargo test hides why, so say it here.
missing=()
for flag in avx512f avx512bw avx512vbmi gfni; do
    grep -qw "$flag" /proc/cpuinfo || missing+=("$flag")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "scripts/test.sh: this CPU lacks ${missing[*]}: the AVX-512 kernel checks that need it did not run (the portable paths did)" >&2
fi

# Every fuzz target for a bounded time (TCVAULT_FUZZ_SECONDS each; the corpora also replay in
# the cargo test above, through tests/format/fuzz_corpus.rs, and tests/escrow/kill_test.rs runs
# scripts/kill-test.sh with a few dozen trials). A fixed libFuzzer seed keeps this run
# repeatable (a finding fails every run, not one in ten); scripts/fuzz.sh alone uses a random
# seed (TCVAULT_FUZZ_SEED=0) for the long runs that look for new findings.
TCVAULT_FUZZ_SEED=${TCVAULT_FUZZ_SEED:-1} scripts/fuzz.sh --all "${TCVAULT_FUZZ_SECONDS:-15}" \
    || status=$?
exit "$status"
