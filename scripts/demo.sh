#!/usr/bin/env bash
# The whole tcvault story on an embedded default, everything on 127.0.0.1 in a scratch folder:
# an escrow server (SQLite, self-signed certificate), an authority key pair, a volume created with
# escrow on, mounted, written, unmounted; the password forgotten, the header slots copied without
# it (`backup-header --raw`); the help desk restores access with `tcvault -R` through that 1 KB
# header backup; the volume mounts with the new password and the
# data read back. Without root or FUSE the mount steps are skipped (said so) and the data are
# checked with `tcvault decrypt` instead.
#
# Usage: scripts/demo.sh   (builds the binaries first, in cargo's test profile: optimised, and the
# same build scripts/test.sh uses, so neither rebuilds for the other; with TCVAULT_BIN_DIR set it
# uses the tcvault and tcvault-escrowd binaries there instead, as tests/escrow/demo.rs does)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${TCVAULT_BIN_DIR:-}" ]; then
    export PATH="$TCVAULT_BIN_DIR:$PATH"
else
    echo "building tcvault (shared with scripts/test.sh; the first build takes several minutes)" >&2
    cargo build --locked --profile test --bins
    export PATH="${CARGO_TARGET_DIR:-$PWD/target}/debug:$PATH"
fi
W=$(mktemp -d)
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    mountpoint -q "$W/mnt" 2>/dev/null && tcvault unmount "$W/mnt" >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
secret() { printf '%s' "$2" > "$W/$1"; chmod 600 "$W/$1"; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

step "Escrow authority key pair (the private key stays with the help desk)"
secret passphrase 'help desk passphrase'
tcvault escrow keygen --private-key "$W/authority.key.pem" --public-key "$W/authority.pub.pem" \
    --passphrase-file "$W/passphrase" > "$W/fingerprint"
echo "authority fingerprint: $(cat "$W/fingerprint")"

step "Escrow server on 127.0.0.1:$PORT (SQLite, self-signed certificate)"
tcvault-escrowd init "$W/server" --host localhost --port "$PORT" --authority-key "$W/authority.pub.pem"
CONF="$W/server/escrowd.xml"
secret alice.pw 'alice network password'
secret helpdesk.pw 'helpdesk network password'
tcvault-escrowd -c "$CONF" user add alice --password-file "$W/alice.pw"
tcvault-escrowd -c "$CONF" user add helpdesk --admin --password-file "$W/helpdesk.pw"
tcvault-escrowd -c "$CONF" serve > "$W/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
cat > "$W/escrow.xml" <<XML
<tcvault-escrow>
  <server>https://localhost:$PORT</server>
  <ca-certificate>$W/server/cert.pem</ca-certificate>
  <authority-key>$W/authority.pub.pem</authority-key>
  <authority-fingerprint>$(cat "$W/fingerprint")</authority-fingerprint>
  <policy>ask</policy>
</tcvault-escrow>
XML
printf 'alice\nalice network password\n' > "$W/alice.cred"
printf 'helpdesk network password\n' > "$W/helpdesk.pw"
ESCROW=(--escrow-config "$W/escrow.xml" --escrow yes --escrow-credentials "$W/alice.cred")

can_mount=no
if [ "$(id -u)" = 0 ] && [ -e /dev/fuse ] && [ -e /dev/loop-control ]; then can_mount=yes; fi
FS=none
[ $can_mount = yes ] && FS=ext4

step "Alice creates a volume (filesystem: $FS) and escrows its keys"
secret old.pw 'the password alice will forget'
tcvault create --size 32M --pim 1 --filesystem "$FS" --password-file "$W/old.pw" "${ESCROW[@]}" \
    "$W/alice.hc" 2> >(tee "$W/create.log" >&2)
sleep 0.2
ENTRY=$(grep -o 'escrow number [0-9]*' "$W/create.log" | grep -o '[0-9]*$')
echo "(escrow entry $ENTRY: the help desk will find it by the salts of her header)"
head -c 1048576 /dev/urandom > "$W/data.bin"
if [ $can_mount = yes ]; then
    step "Mount, write a file, unmount"
    mkdir -p "$W/mnt"
    # The mount's escrow hook finds the keys already escrowed.
    tcvault mount --pim 1 --password-file "$W/old.pw" "${ESCROW[@]}" "$W/alice.hc" "$W/mnt"
    cp "$W/data.bin" "$W/mnt/data.bin" && sync
    tcvault list
    tcvault unmount "$W/mnt"
else
    echo "(no root or FUSE here: skipping mount; the data check below uses tcvault decrypt)"
fi
tcvault decrypt --pim 1 --password-file "$W/old.pw" "$W/alice.hc" > "$W/before.img"

step "Alice forgets her password; she copies her header slots without it (backup-header --raw)"
rm "$W/old.pw"
tcvault backup-header --raw "$W/alice.hc" "$W/alice-1k.hdr"
echo "She mails the 1 KB header backup $W/alice-1k.hdr to the help desk."

step "The help desk restores the 1 KB backup with tcvault -R helpdesk"
secret new.pw 'a fresh password from the help desk'
tcvault -R helpdesk "$W/alice-1k.hdr" --escrow-config "$W/escrow.xml" \
    --admin-password-file "$W/helpdesk.pw" --private-key "$W/authority.key.pem" \
    --private-key-passphrase-file "$W/passphrase" --new-password-file "$W/new.pw" --new-pim 1 \
    --no-keep-old-header

step "Alice restores the returned backup into her volume"
FORCE=()
[ "$FS" = none ] && FORCE=(--force)   # no filesystem to recognise the volume's data by
tcvault restore-header --pim 1 --password-file "$W/new.pw" --file "$W/alice-1k.hdr" \
    --no-keep-old-header --escrow no "${FORCE[@]}" "$W/alice.hc"

step "The volume opens with the new password; the data are unchanged"
tcvault decrypt --pim 1 --password-file "$W/new.pw" "$W/alice.hc" > "$W/after.img"
cmp "$W/before.img" "$W/after.img" && echo "decrypted data area: identical"
if [ $can_mount = yes ]; then
    tcvault mount --pim 1 --password-file "$W/new.pw" --escrow no "$W/alice.hc" "$W/mnt"
    cmp "$W/data.bin" "$W/mnt/data.bin" && echo "data.bin read back through the mount: identical"
    tcvault unmount "$W/mnt"
fi
echo
echo "Done."
