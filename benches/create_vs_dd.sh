#!/usr/bin/env bash
# Fill throughput of `tcvault create` beside dd writing zeros, in one run, on the same disk.
# Usage: benches/create_vs_dd.sh [path/to/tcvault] [directory] [size-MiB]
# Prints MB/s for each and the ratio to dd. The PIM is 1 so that key derivation (not what is
# measured) takes milliseconds.
set -euo pipefail
BIN=${1:-target/release/tcvault}
DIR=${2:-$(mktemp -d -p "${TMPDIR:-/var/tmp}")}
MIB=${3:-1024}
PW="$DIR/pw"
printf 'fill benchmark' > "$PW"
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
rate() { echo "scale=0; $MIB * 1.048576 / $1" | bc -l; }
dd_s=$(secs dd if=/dev/zero of="$DIR/dd.bin" bs=1M count="$MIB" conv=fdatasync)
rm -f "$DIR/dd.bin"
printf '%-28s %8s MB/s  %5s\n' "dd zeros (fdatasync)" "$(rate "$dd_s")" "1.00x"
for cipher in aes aes-twofish-serpent serpent twofish; do
    rm -f "$DIR/v.hc"
    s=$(secs "$BIN" create --size "${MIB}M" --cipher "$cipher" --pim 1 --password-file "$PW" "$DIR/v.hc")
    printf '%-28s %8s MB/s  %5.2fx\n' "create $cipher" "$(rate "$s")" "$(echo "$dd_s / $s" | bc -l)"
done
rm -f "$DIR/v.hc" "$PW"
