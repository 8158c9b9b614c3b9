#!/usr/bin/env bash
# Kill tests: SIGKILL the commands that write volumes and headers at random moments, then check
# what a user would find. Each trial starts from a small volume whose decrypted data were
# recorded, runs one of
#   create --force   (over an existing volume: old password A, new password B)
#   change-password  (A -> B)
#   restore-header   (from a header backup taken under A, after a change to B: B -> A)
#   -R               (the help-desk escrow restore against a server on 127.0.0.1: A -> N)
# and kills it after a random delay (0 to 1.2 times the command's uninterrupted run time), or,
# for every fourth trial of the header rewrites, in the window between their two header writes
# (TCVAULT_TEST_PAUSE_BETWEEN_HEADER_WRITES). After each kill:
#   * the volume opens with the old or the new password (`tcvault info --password-file`);
#   * its decrypted data (`tcvault decrypt`) are the recorded ones (for create: the old volume's
#     data, or a new volume of the full size);
#   * nothing new is left in its folder (`.tcvault-new-*`, `.tcvault-partial-*`, anything),
#     except the old-headers file the header rewrites keep by default, and that only complete
#     and equal to the volume's first 128 KiB before the command.
#
# Usage: scripts/kill-test.sh [TRIALS]   (default 400, spread evenly over the four commands)
#   TCVAULT, TCVAULT_ESCROWD: the binaries (default: built with the test profile)
#   KILL_TEST_COMMANDS: which commands, e.g. "create change-password" (default: all four)
# Runs as root or not; needs python3 (a free port) and nothing else. Exit 1 when any check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-400}
if [ -z "${TCVAULT:-}" ] || [ -z "${TCVAULT_ESCROWD:-}" ]; then
    cargo build --quiet --profile test --bins
    TCVAULT=${TCVAULT:-$PWD/target/debug/tcvault}
    TCVAULT_ESCROWD=${TCVAULT_ESCROWD:-$PWD/target/debug/tcvault-escrowd}
fi
COMMANDS=(${KILL_TEST_COMMANDS:-create change-password restore-header escrow-restore})
PAUSE_ENV=TCVAULT_TEST_PAUSE_BETWEEN_HEADER_WRITES
SIZE=1M
DATA_LEN=$((1048576 - 262144))

W=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$W"
}
trap cleanup EXIT
export HOME="$W/home"
mkdir -p "$HOME" "$W/pristine"
secret() { printf '%s' "$2" > "$W/$1"; chmod 600 "$W/$1"; }
secret A.pw 'kill test old password'
secret B.pw 'kill test new password'
secret N.pw 'kill test help desk password'
UNLOCK=(--veracrypt --prf sha512 --pim 1)
NEW=(--new-prf sha512 --new-pim 1)
now_ms() { date +%s%3N; }
opens() { "$TCVAULT" info "${UNLOCK[@]}" --password-file "$2" "$1" >/dev/null 2>&1; }
decrypt() { rm -f "$3"; "$TCVAULT" decrypt "${UNLOCK[@]}" --password-file "$2" -o "$3" "$1" 2>/dev/null; }

# The pristine volumes, each with its recorded data, and the old password that opens it.
P=$W/pristine
"$TCVAULT" create --size $SIZE --pim 1 --prf sha512 --password-file "$W/A.pw" --escrow no "$P/base.hc" 2>/dev/null
decrypt "$P/base.hc" "$W/A.pw" "$P/base.data"
"$TCVAULT" backup-header "${UNLOCK[@]}" --password-file "$W/A.pw" "$P/base.hc" "$P/A.backup" 2>/dev/null
cp "$P/base.hc" "$P/changed.hc"
"$TCVAULT" change-password "${UNLOCK[@]}" --password-file "$W/A.pw" "${NEW[@]}" \
    --new-password-file "$W/B.pw" --escrow no "$P/changed.hc" 2>/dev/null

ESCROW_ARGS=()
setup_escrow() {
    secret passphrase 'kill test authority passphrase'
    secret helpdesk.pw 'kill test help desk network password'
    "$TCVAULT" escrow keygen --private-key "$W/authority.key.pem" --public-key "$W/authority.pub.pem" \
        --passphrase-file "$W/passphrase" > "$W/fingerprint"
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$TCVAULT_ESCROWD" init "$W/server" --host localhost --port "$port" \
        --authority-key "$W/authority.pub.pem" >/dev/null
    local conf=$W/server/escrowd.xml
    sed -i -e 's|<LISTEN_ADDRESS>[^<]*<|<LISTEN_ADDRESS>127.0.0.1<|' \
        -e 's|<ADMIN_SUBNET_MASK>[^<]*<|<ADMIN_SUBNET_MASK>127.0.0.0/8<|' "$conf"
    "$TCVAULT_ESCROWD" -c "$conf" user add helpdesk --admin --password-file "$W/helpdesk.pw"
    "$TCVAULT_ESCROWD" -c "$conf" serve > "$W/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    cat > "$W/escrow.xml" <<XML
<tcvault-escrow>
  <server>https://localhost:$port</server>
  <ca-certificate>$W/server/cert.pem</ca-certificate>
  <authority-key>$W/authority.pub.pem</authority-key>
  <authority-fingerprint>$(cat "$W/fingerprint")</authority-fingerprint>
  <policy>ask</policy>
</tcvault-escrow>
XML
    printf 'helpdesk\nkill test help desk network password\n' > "$W/helpdesk.cred"
    cp "$P/base.hc" "$P/escrowed.hc"
    # Deposit the pristine volume's keys (through the change-password hook, same password).
    "$TCVAULT" change-password "${UNLOCK[@]}" --password-file "$W/A.pw" "${NEW[@]}" \
        --new-password-file "$W/A.pw" --escrow yes --escrow-config "$W/escrow.xml" \
        --escrow-credentials "$W/helpdesk.cred" "$P/escrowed.hc" 2> "$W/deposit.log"
    local entry
    entry=$(grep -o 'escrow number [0-9]*' "$W/deposit.log" | grep -o '[0-9]*$' | head -n1)
    [ -n "$entry" ] || { cat "$W/deposit.log" >&2; echo "kill-test: no escrow entry" >&2; exit 1; }
    ESCROW_ARGS=(--escrow-config "$W/escrow.xml" --admin-password-file "$W/helpdesk.pw"
        --private-key "$W/authority.key.pem" --private-key-passphrase-file "$W/passphrase"
        --new-password-file "$W/N.pw" --new-pim 1 --entry "$entry")
}
for c in "${COMMANDS[@]}"; do [ "$c" = escrow-restore ] && setup_escrow; done

# One trial's command line, run in its folder $T on volume vol.hc; sets PRISTINE, OLD, NEWPW.
command_for() {
    case $1 in
        create)
            PRISTINE=base.hc OLD=A.pw NEWPW=B.pw
            CMD=("$TCVAULT" create --force --size $SIZE --pim 1 --prf sha512 --password-file "$W/B.pw" --escrow no vol.hc) ;;
        change-password)
            PRISTINE=base.hc OLD=A.pw NEWPW=B.pw
            CMD=("$TCVAULT" change-password "${UNLOCK[@]}" --password-file "$W/A.pw" "${NEW[@]}"
                --new-password-file "$W/B.pw" --escrow no vol.hc) ;;
        restore-header)
            PRISTINE=changed.hc OLD=B.pw NEWPW=A.pw
            CMD=("$TCVAULT" restore-header "${UNLOCK[@]}" --password-file "$W/A.pw" --file "$P/A.backup"
                --force --escrow no vol.hc) ;;
        escrow-restore)
            PRISTINE=escrowed.hc OLD=A.pw NEWPW=N.pw
            CMD=("$TCVAULT" -R helpdesk vol.hc "${ESCROW_ARGS[@]}") ;;
    esac
}

# Each command's uninterrupted run time (and a check that it succeeds at all).
declare -A RUN_MS
for c in "${COMMANDS[@]}"; do
    T=$W/measure-$c
    mkdir -p "$T"
    command_for "$c"
    cp "$P/$PRISTINE" "$T/vol.hc"
    t0=$(now_ms)
    (cd "$T" && "${CMD[@]}" </dev/null >/dev/null 2>"$T/err") || {
        cat "$T/err" >&2; echo "kill-test: $c fails without a kill" >&2; exit 1; }
    RUN_MS[$c]=$(( $(now_ms) - t0 + 1 ))
    rm -rf "$T"
done

failures=0 passes=0 killed=0 paused=0
declare -A FAIL_KIND
fail() {
    failures=$((failures + 1))
    FAIL_KIND["$1: $2"]=$(( ${FAIL_KIND["$1: $2"]:-0} + 1 ))
    [ "${KILL_TEST_VERBOSE:-}" ] && echo "trial $3 ($1): $2${4:+: $4}" >&2
    return 0
}

for ((i = 0; i < TRIALS; i++)); do
    c=${COMMANDS[$((i % ${#COMMANDS[@]}))]}
    command_for "$c"
    T=$W/trial-$i
    mkdir -p "$T"
    cp "$P/$PRISTINE" "$T/vol.hc"
    head -c 131072 "$T/vol.hc" > "$W/head.before"
    before=$(cd "$T" && ls -A)
    aim=no
    if [ "$c" != create ] && [ $((i / ${#COMMANDS[@]} % 4)) = 3 ]; then aim=yes; fi
    if [ $aim = yes ]; then
        (cd "$T" && exec env "$PAUSE_ENV=1" "${CMD[@]}" </dev/null >/dev/null 2>"$W/err") &
        pid=$!
        for _ in $(seq 1000); do
            grep -q 'paused after' "$W/err" 2>/dev/null && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.01
        done
    else
        (cd "$T" && exec "${CMD[@]}" </dev/null >/dev/null 2>"$W/err") &
        pid=$!
        max=$(( RUN_MS[$c] * 12 / 10 ))
        d=$(( (RANDOM * 32768 + RANDOM) % max ))
        sleep "$(printf '%d.%03d' $((d / 1000)) $((d % 1000)))"
    fi
    kill -KILL "$pid" 2>/dev/null || true
    status=0
    wait "$pid" 2>/dev/null || status=$?
    if [ $status = 137 ]; then
        killed=$((killed + 1))
        [ $aim = yes ] && grep -q 'paused after' "$W/err" && paused=$((paused + 1))
    elif [ $status != 0 ]; then
        fail "$c" "exited $status without a kill" "$i" "$(tail -n1 "$W/err")"
    fi

    ok=yes
    if opens "$T/vol.hc" "$W/$OLD"; then
        decrypt "$T/vol.hc" "$W/$OLD" "$W/data.after" || { fail "$c" "decrypt failed" "$i"; ok=no; }
        if [ $ok = yes ] && ! cmp -s "$W/data.after" "$P/base.data"; then
            fail "$c" "data differ" "$i"; ok=no
        fi
    elif opens "$T/vol.hc" "$W/$NEWPW"; then
        decrypt "$T/vol.hc" "$W/$NEWPW" "$W/data.after" || { fail "$c" "decrypt failed" "$i"; ok=no; }
        if [ $ok = yes ] && [ "$c" = create ]; then
            [ "$(stat -c %s "$W/data.after")" = $DATA_LEN ] || { fail "$c" "new volume of the wrong size" "$i"; ok=no; }
        elif [ $ok = yes ] && ! cmp -s "$W/data.after" "$P/base.data"; then
            fail "$c" "data differ" "$i"; ok=no
        fi
    else
        fail "$c" "opens with neither password" "$i"; ok=no
    fi
    after=$(cd "$T" && ls -A)
    for f in $(comm -13 <(printf '%s\n' "$before" | sort) <(printf '%s\n' "$after" | sort)); do
        case $f in
            vol.hc.old-headers-*)
                if ! cmp -s "$T/$f" "$W/head.before"; then
                    fail "$c" "incomplete old-headers file" "$i" "$f"; ok=no
                fi ;;
            .tcvault-new-*) fail "$c" "leftover .tcvault-new-* file" "$i" "$f ($(stat -c %s "$T/$f") bytes)"; ok=no ;;
            .tcvault-partial-*) fail "$c" "leftover .tcvault-partial-* file" "$i" "$f ($(stat -c %s "$T/$f") bytes)"; ok=no ;;
            *) fail "$c" "leftover file" "$i" "$f"; ok=no ;;
        esac
    done
    [ $ok = yes ] && passes=$((passes + 1))
    rm -rf "$T"
done

echo "kill-test: $TRIALS trials of ${COMMANDS[*]}; $killed killed ($paused between the two header writes), the rest finished first"
for c in "${COMMANDS[@]}"; do echo "kill-test: $c runs ${RUN_MS[$c]} ms uninterrupted"; done
for k in "${!FAIL_KIND[@]}"; do echo "kill-test: FAILED ${FAIL_KIND[$k]}x: $k"; done | sort
echo "kill-test: $passes passed, $((TRIALS - passes)) failed"
[ $failures = 0 ]
