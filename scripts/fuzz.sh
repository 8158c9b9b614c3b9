#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (cargo-fuzz with libFuzzer, `--sanitizer none`, which works
# on the stable toolchain; the targets are safe Rust, so what they look for is panics and
# broken properties, which need no sanitizer).
#
#   scripts/fuzz.sh TARGET SECONDS      one target for SECONDS
#   scripts/fuzz.sh --all SECONDS_EACH  every target in turn
#   scripts/fuzz.sh --list              the targets
#   scripts/fuzz.sh --seeds             rewrite the seed corpora from fuzz/src/seeds.rs
#
# Installs cargo-fuzz first when it is missing (idempotent). Each run starts from the checked-in
# corpus fuzz/corpus/TARGET (read only) and keeps what it finds in fuzz/target/found/TARGET
# (ignored by git); a failing input lands in fuzz/artifacts/TARGET/, and the run exits 1
# naming it. Reproduce one with `cd fuzz && cargo fuzz run --sanitizer none TARGET FILE`;
# to keep it as a regression input, copy it into fuzz/corpus/TARGET/ (`cargo test` replays
# every corpus file through tests/format/fuzz_corpus.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_FUZZ_VERSION=0.13.2

usage() { sed -n '6,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

ensure_cargo_fuzz() {
    if ! cargo fuzz --version 2>/dev/null | grep -q "cargo-fuzz $CARGO_FUZZ_VERSION"; then
        cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
    fi
}

targets() { sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^tcvault-fuzz$'; }

run_one() {
    local target=$1 seconds=$2 found=fuzz/target/found/$1 scratch log
    mkdir -p "$found"
    scratch=$(mktemp -d)
    log=$scratch/log
    local status=0
    # TMPDIR: the targets' scratch files go where this script removes them afterwards.
    (cd fuzz && TMPDIR=$scratch cargo fuzz run --sanitizer none "$target" \
        "../$found" "corpus/$target" -- \
        -max_total_time="$seconds" -seed="${TCVAULT_FUZZ_SEED:-0}" -timeout=20 -rss_limit_mb=3072 -max_len=8192 \
        -print_final_stats=1 </dev/null) >"$log" 2>&1 || status=$?
    local runs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    if [ $status != 0 ]; then
        # The panic message first: the tail alone is mostly the fuzzer's own report.
        grep -A1 -m1 "panicked at" "$log" >&2 || true
        tail -n 40 "$log" >&2
        echo "fuzz: $target FAILED after ${runs:-?} runs (see fuzz/artifacts/$target/)" >&2
        rm -rf "$scratch"
        return 1
    fi
    echo "fuzz: $target ok: ${runs:-?} runs in ${seconds}s, corpus $(ls "$found" | wc -l) found + $(ls "fuzz/corpus/$target" | wc -l) checked in"
    rm -rf "$scratch"
}

case ${1:-} in
    --list) targets ;;
    --seeds) TCVAULT_WRITE_FUZZ_SEEDS=1 cargo test --quiet --test format fuzz_corpus::seeds_are_checked_in ;;
    --all)
        [ $# = 2 ] || usage
        ensure_cargo_fuzz
        (cd fuzz && cargo fuzz build --sanitizer none)
        failed=0 passed=0
        for t in $(targets); do
            if run_one "$t" "$2"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
        done
        echo "fuzz: $passed passed, $failed failed"
        [ $failed = 0 ] ;;
    ''|-*) usage ;;
    *)
        [ $# = 2 ] || usage
        targets | grep -qx "$1" || { echo "fuzz: no target $1 (scripts/fuzz.sh --list)" >&2; exit 2; }
        ensure_cargo_fuzz
        run_one "$1" "$2" ;;
esac
