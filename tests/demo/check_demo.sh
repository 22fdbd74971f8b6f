#!/usr/bin/env bash
# The demo end to end: scripts/demo.sh in a private folder with the built programs, its story's
# outcomes checked (backup and restore identical, the lost card gone from the mount), then
# `--stop`, after which no mount and none of its processes may be left.
# Usage: check_demo.sh BUILD_DIR
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "$1/bin" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vscard-demo-test.XXXXXX")
export VSCARD_DEMO_DIR="$WORK/demo"
DEMO=$VSCARD_DEMO_DIR
M="$DEMO/mnt"

# Processes whose command line names the demo folder: only the demo's own.
demo_processes() {
    local p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$$" ] && continue
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$DEMO" && echo "${p#/proc/}"
    done
    return 0
}

cleanup() {
    cd /
    "$SRC/scripts/demo.sh" --stop >/dev/null 2>&1 || true
    if mountpoint -q "$M" 2>/dev/null; then fusermount3 -u -z "$M" || true; fi
    local pid
    for pid in $(demo_processes); do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
fail() {
    echo "FAIL: $*" >&2
    for log in "$DEMO"/*.log; do
        [ -e "$log" ] && { echo "--- $log" >&2; tail -20 "$log" >&2; }
    done
    exit 1
}

if [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
    echo "skipped: no /dev/fuse or fusermount3"
    exit 77
fi

start=$SECONDS
out=$("$SRC/scripts/demo.sh" --no-install --bin "$BIN" 2>&1) || fail "the demo failed:
$out"
echo "$out"
echo "== the demo took $((SECONDS - start)) s"

echo "== its outcomes"
grep -q "^   backup identical: " <<<"$out" || fail "no identical backup"
grep -q "^   restore identical: " <<<"$out" || fail "no identical restore"
A=$(sed -n 's/.*formatted the card in .*: serial \([0-9a-f]*\), label Demo card A$/\1/p' <<<"$out")
B=$(sed -n 's/.*formatted the card in .*: serial \([0-9a-f]*\), label Demo card B$/\1/p' <<<"$out")
if [ -z "$A" ] || [ -z "$B" ] || [ "$A" = "$B" ]; then fail "no serials of cards A and B"; fi
mountpoint -q "$M" || fail "the demo left no mount"
# shellcheck source=/dev/null
source "$DEMO/env"
[ ! -e "$M/card/$A" ] || fail "card/$A is still in the mount after its loss"
for area in public private; do
    diff -r "$M/vsc/$A/$area" "$M/card/$B/$area" || fail "vsc/$A/$area and card/$B/$area differ"
done
[ -s "$M/card/$B/private/notes/wifi.txt" ] || fail "card/$B/private lacks the restored notes"
[ "$(cat "$M/card/$B/id/label")" = "Demo card B" ] || fail "card/$B has the wrong label"
[ "$(cat "$M/vsc/$A/id/assigned-card")" = "$A" ] || fail "vsc/$A is not assigned to card $A"
vscardctl readers | grep -q "serial $B" || fail "vscardctl does not reach the demo's pcscd"
[ -s "$M/vsc/demo/secret/signing-key.pub" ] || fail "vsc/demo lacks its key"
[ -n "$(demo_processes)" ] || fail "the demo left nothing running"

echo "== --stop"
"$SRC/scripts/demo.sh" --stop
sleep 0.2
! mountpoint -q "$M" 2>/dev/null || fail "the mount is still there after --stop"
left=$(demo_processes)
if [ -n "$left" ]; then
    ps -o pid,args -p "${left//$'\n'/,}" >&2 || true
    fail "processes left after --stop"
fi
echo "== ok: $((SECONDS - start)) s in all"
