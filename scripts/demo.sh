#!/usr/bin/env bash
# The whole story on a machine without a reader: a private pcscd with the vpcd driver and
# emulated cards (vscard-emu), the keyring agent and the mount; a VSC with a few files; card A
# formatted and filled through the mount, backed up to its VSC with rsync, "lost" (its
# emulator stops), read from the VSC, and restored onto a new card B. Leaves everything
# running and prints what to try. `scripts/demo.sh --stop` ends it all.
#
# The system's pcscd is never touched: the private one runs in its own mount namespace with
# a folder of the demo over /run/pcscd, and the demo's programs reach it through
# PCSCLITE_CSOCK_NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

usage() {
    cat <<'EOT'
Usage: scripts/demo.sh [--no-install] [--bin DIR] [--no-cards]
       scripts/demo.sh --stop

  --no-install  do not install missing Debian packages; say what is missing instead
  --bin DIR     use the vscard programs in DIR instead of building them into build/bin
  --no-cards    the VSC part only: no pcscd, no emulated cards
  --stop        stop everything a previous run started (mount, emulators, pcscd, agent)

The demo lives in $VSCARD_DEMO_DIR (default /tmp/vscard-demo-$USER).
EOT
}

DEMO=${VSCARD_DEMO_DIR:-/tmp/vscard-demo-$(id -un)}
BIN="$ROOT/build/bin"
BUILD=1
INSTALL=1
CARDS=1
STOP=0
while [ $# -gt 0 ]; do
    case $1 in
        --stop) STOP=1 ;;
        --no-install) INSTALL=0 ;;
        --no-cards) CARDS=0 ;;
        --bin)
            [ $# -ge 2 ] || { echo "demo: --bin needs a folder" >&2; exit 2; }
            BIN=$2
            BUILD=0
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) echo "demo: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

PASSWORD=demo-password   # of vsc/demo
PIN=123456               # of the emulated cards (and so of their VSCs)
M="$DEMO/mnt"
PIDS="$DEMO/pids"

die() {
    echo "demo: $*" >&2
    exit 1
}
step() { printf '\n== %s\n' "$*"; }
say() { printf '   %s\n' "$*"; }
# Prints a command (as run from the mount) and runs it, its output indented.
show() {
    printf '   $ %s\n' "$*"
    "$@" | sed 's/^/     /'
}

# A process of this demo: its pid file names it and its command line mentions the demo
# folder (so a recycled pid is never hit).
demo_pid() {
    local file="$PIDS/$1.pid" pid
    [ -f "$file" ] || return 1
    pid=$(cat "$file")
    [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DEMO" &&
        echo "$pid"
}

# Whether PID runs (a zombie, waiting for a parent that does not reap it, has ended).
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# Ends the process NAME of the demo: SIGTERM, then SIGKILL after 5 s.
end_process() {
    local pid
    if pid=$(demo_pid "$1"); then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
        if running "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$PIDS/$1.pid"
}

stop_demo() {
    if [ -d "$M" ] && mountpoint -q "$M" 2>/dev/null; then
        fusermount3 -u "$M" 2>/dev/null || fusermount3 -u -z "$M"
    fi
    end_process mountd
    local f
    for f in "$PIDS"/emu-*.pid; do
        [ -e "$f" ] || continue
        f=${f##*/}
        end_process "${f%.pid}"
    done
    end_process pcscd   # its mount namespace, and the bind mount over /run/pcscd, go with it
    end_process agent
}

if [ "$STOP" = 1 ]; then
    stop_demo
    echo "demo stopped; its files are in $DEMO (remove with: rm -rf $DEMO)"
    exit 0
fi

# ---- what the demo needs -------------------------------------------------------------------

VPCD_DRIVER=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
packages=(rsync openssl diffutils fuse3 util-linux)
[ "$CARDS" = 1 ] && packages+=(pcscd vsmartcard-vpcd)
# shellcheck source=scripts/lib/deps.sh
source scripts/lib/deps.sh
[ "$BUILD" = 1 ] && packages+=("${BUILD_PACKAGES[@]}")
if [ "$INSTALL" = 1 ]; then
    install_packages "${packages[@]}" ||
        die "could not install the Debian packages ${packages[*]}; install them, then run again"
fi
missing=()
for tool in rsync openssl diff fusermount3 mountpoint; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "$CARDS" = 1 ]; then
    PCSCD=$(PATH="$PATH:/usr/sbin:/sbin" command -v pcscd || true)
    [ -n "$PCSCD" ] || missing+=("pcscd (package pcscd)")
    [ -r "$VPCD_DRIVER" ] || missing+=("the vpcd driver (package vsmartcard-vpcd)")
    command -v unshare >/dev/null || missing+=("unshare (package util-linux)")
fi
[ ${#missing[@]} -eq 0 ] ||
    die "missing: ${missing[*]}; install them (or run without --no-install)"
if [ ! -c /dev/fuse ]; then
    die "no /dev/fuse: load the module ('sudo modprobe fuse'); in a container, start it with
      '--device /dev/fuse --cap-add SYS_ADMIN' (docker/podman)"
fi
UNSHARE=(unshare -m --propagation private)
[ "$(id -u)" = 0 ] || UNSHARE=(unshare -r -m --propagation private)
if [ "$CARDS" = 1 ] && ! "${UNSHARE[@]}" true 2>/dev/null; then
    die "cannot make a private mount namespace here (${UNSHARE[*]} true failed), so no private
      pcscd can run; run the demo as root, allow user namespaces
      (sysctl kernel.unprivileged_userns_clone=1), or run 'scripts/demo.sh --no-cards'"
fi

if [ "$BUILD" = 1 ]; then
    build_project build vscard-agent vscard-mountd vscardctl vscard-emu
fi
BIN=$(cd "$BIN" 2>/dev/null && pwd) || die "no folder $BIN (see --bin)"
for prog in vscard-agent vscard-mountd vscardctl vscard-emu; do
    [ -x "$BIN/$prog" ] || die "$BIN/$prog is missing; build it (cmake --build build)"
done

# ---- the demo's own agent, pcscd and mount ------------------------------------------------

stop_demo  # a previous run
on_exit() {
    local rc=$?
    [ "$rc" -eq 0 ] || echo "demo: failed (status $rc); what it started still runs, for a look at
      $DEMO/*.log; stop it with: scripts/demo.sh --stop" >&2
}
trap on_exit EXIT
rm -rf "$DEMO"
mkdir -p "$M" "$PIDS" "$DEMO/cards"
chmod 700 "$DEMO"
export VSCARD_STORE="$DEMO/store" VSCARD_AGENT="$DEMO/agent.sock" PATH="$BIN:$PATH"
export PCSCLITE_CSOCK_NAME="$DEMO/pcscd/run/pcscd.comm" OPENSC_CONF="$DEMO/opensc.conf"

wait_for() {  # wait_for SECONDS COMMAND...: true once COMMAND succeeds
    local tenths=$(($1 * 10))
    shift
    for _ in $(seq "$tenths"); do "$@" && return 0; sleep 0.1; done
    return 1
}
exists() { [ -e "$1" ]; }
listing() { (shopt -s nullglob && cd "$1" && set -- * && echo "${*:-(nothing)}"); }
gone() { [ ! -e "$1" ]; }

step "the agent (holds passwords and PINs, like ssh-agent)"
setsid vscard-agent --socket "$VSCARD_AGENT" </dev/null >"$DEMO/agent.log" 2>&1 &
echo $! >"$PIDS/agent.pid"
wait_for 5 test -S "$VSCARD_AGENT" || die "the agent did not start; see $DEMO/agent.log"
say "vscard-agent --socket $VSCARD_AGENT"

# Is something listening on TCP PORT (hex in /proc/net/tcp*)?
port_busy() {
    grep -qi ":$(printf '%04X' "$1") " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
reader_listed() { vscardctl readers 2>/dev/null | grep -qF "Test PCD 00 00"; }
# card_in N: the reader "Test PCD 00 0N" holds a card.
card_in() {
    vscardctl readers 2>/dev/null |
        awk -F'\t' -v r="Test PCD 00 0$1" '$2 == r && $3 ~ /^card / { ok = 1 } END { exit !ok }'
}

start_pcscd() {
    mkdir -p "$DEMO/pcscd/conf" "$DEMO/pcscd/run"
    local port hex attempt
    for attempt in 1 2 3; do
        port=$((20000 + RANDOM % 12000))
        if port_busy "$port" || port_busy $((port + 1)); then continue; fi
        hex=$(printf '0x%04X' "$port")
        cat >"$DEMO/pcscd/conf/vpcd" <<EOT
FRIENDLYNAME "Test PCD"
DEVICENAME   /dev/null:$hex
LIBPATH      $VPCD_DRIVER
CHANNELID    $hex
EOT
        # Inside the namespace: the demo's folder over /run/pcscd (over a private /run where
        # /run/pcscd does not exist), then pcscd in the foreground.
        # shellcheck disable=SC2016  # expanded by the inner shell
        setsid "${UNSHARE[@]}" sh -c \
            'if [ -d /run/pcscd ] && mount --bind "$0" /run/pcscd 2>/dev/null; then :;
             else mount -t tmpfs -o mode=0755 demo /run && mkdir -p /run/pcscd &&
                  mount --bind "$0" /run/pcscd; fi && exec "$2" -f -c "$1"' \
            "$DEMO/pcscd/run" "$DEMO/pcscd/conf" "$PCSCD" \
            </dev/null >"$DEMO/pcscd.log" 2>&1 &
        echo $! >"$PIDS/pcscd.pid"   # unshare and sh exec: this is pcscd's pid
        if wait_for 5 reader_listed; then
            VPCD_PORT=$port
            return 0
        fi
        end_process pcscd
        echo "demo: the private pcscd did not come up (attempt $attempt); its log:" >&2
        tail -5 "$DEMO/pcscd.log" >&2 || true
    done
    die "no private pcscd; see $DEMO/pcscd.log"
}

# start_card NAME SLOT: vscard-emu with the image cards/NAME.img in reader "Test PCD 00 0SLOT".
start_card() {
    cd /   # not from inside the mount, which would keep it busy
    setsid vscard-emu --vpcd "127.0.0.1:$((VPCD_PORT + $2))" --control "$DEMO/emu-$1.ctl" \
        "$DEMO/cards/$1.img" </dev/null >"$DEMO/emu-$1.log" 2>&1 &
    echo $! >"$PIDS/emu-$1.pid"
    cd "$M"
    wait_for 10 card_in "$2" || die "card $1 did not show in its reader; see $DEMO/emu-$1.log"
}

# format_card NAME SLOT LABEL: formats the card in reader SLOT, prints the serial. The mount
# shows the freshly formatted card under its serial as soon as it is looked for.
format_card() {
    local out serial
    out=$(echo "$PIN" | vscardctl format "Test PCD 00 0$2" --label "$3" --pin-stdin)
    say "\$ vscardctl format 'Test PCD 00 0$2' --label '$3'    (new PIN: $PIN)" >&2
    say "$out" >&2
    serial=$(sed -n 's/.*serial \([0-9a-fA-F]*\),.*/\1/p' <<<"$out")
    [ -n "$serial" ] || die "no serial in: $out"
    wait_for 10 exists "card/$serial/public" ||
        die "card/$serial did not appear; see $DEMO/mountd.log"
    say "card/$serial appears in the mount" >&2
    echo "$serial"
}

if [ "$CARDS" = 1 ]; then
    step "a private pcscd with the virtual reader driver vpcd (the system's pcscd is untouched)"
    cat >"$OPENSC_CONF" <<'EOT'
app default {
    enable_default_driver = true;
    framework pkcs15 { use_file_caching = no; }
}
EOT
    start_pcscd
    say "pcscd -f -c $DEMO/pcscd/conf   (vpcd on TCP ports $VPCD_PORT and $((VPCD_PORT + 1)))"
    say "its socket: PCSCLITE_CSOCK_NAME=$PCSCLITE_CSOCK_NAME"
fi

step "the mount"
mount_args=(-f)
[ "$CARDS" = 1 ] || mount_args+=(--no-pcsc)
setsid vscard-mountd "${mount_args[@]}" "$M" </dev/null >"$DEMO/mountd.log" 2>&1 &
echo $! >"$PIDS/mountd.pid"
wait_for 10 mountpoint -q "$M" || die "vscard-mountd did not mount $M; see $DEMO/mountd.log"
say "vscard-mountd $M"
cd "$M"

# ---- a VSC ---------------------------------------------------------------------------------

step "a virtual smart card vsc/demo, with files in each area"
echo "$PASSWORD" | vscardctl create demo --password-stdin >/dev/null
wait_for 5 exists vsc/demo/public || die "vsc/demo did not appear in the mount"
echo "$PASSWORD" | vscardctl unlock vsc/demo --password-stdin >/dev/null
C=vsc/demo
printf 'Hello from the public area: anyone may read this.\n' >"$C/public/hello.txt"
mkdir -p "$C/public/certs" "$C/private/notes"
printf 'Recovery codes: 1234-5678 9012-3456\n' >"$C/private/notes/recovery.txt"
printf 'Only readable after vscardctl unlock.\n' >"$C/private/readme.txt"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null >"$C/secret/signing-key"
say "vscardctl create demo; vscardctl unlock vsc/demo   (password: $PASSWORD)"
say "vsc/demo/public/hello.txt, private/notes/recovery.txt, secret/signing-key"

# ---- the card story ------------------------------------------------------------------------

if [ "$CARDS" = 1 ]; then
    step "card A: a blank emulated card in reader 'Test PCD 00 00', formatted with a PIN"
    start_card A 0
    A=$(format_card A 0 "Demo card A")
    say "card/$A holds: $(listing "card/$A")"

    step "files written into card A through the mount"
    echo "$PIN" | show vscardctl unlock "card/$A" --password-stdin
    mkdir -p "card/$A/public/certs" "card/$A/private/notes"
    printf 'Card A belongs to the demo user.\n' >"card/$A/public/owner.txt"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
        -subj "/CN=Demo card A" -days 365 2>/dev/null >"card/$A/public/certs/demo.pem"
    printf 'Wi-Fi: demo-net / correct horse battery staple\n' >"card/$A/private/notes/wifi.txt"
    printf 'Recovery codes: 4711-0815 2342-1337\n' >"card/$A/private/recovery-codes.txt"
    (cd "card/$A" && find public private -type f | sed 's/^/   card\/'"$A"'\//')

    step "a VSC for card A (its PIN is the VSC's password) and a backup with rsync"
    echo "$PIN" | show vscardctl create --for-card "$A" --password-stdin
    wait_for 5 exists "vsc/$A/public" || die "vsc/$A did not appear in the mount"
    echo "$PIN" | show vscardctl unlock "vsc/$A" --password-stdin
    show rsync -a "card/$A/public" "card/$A/private" "vsc/$A/"
    show diff -r "card/$A/public" "vsc/$A/public"
    show diff -r "card/$A/private" "vsc/$A/private"
    say "backup identical: vsc/$A holds what card/$A holds"

    step "card A is lost (its emulator stops)"
    end_process emu-A
    wait_for 10 gone "card/$A" || die "card/$A did not vanish"
    say "card/$A vanished from the mount: card/ now holds: $(listing card)"

    step "the data, read from the VSC"
    show cat "vsc/$A/public/owner.txt"
    show cat "vsc/$A/private/notes/wifi.txt"

    step "card B: a new blank card in the same reader, formatted, and the restore"
    start_card B 0
    B=$(format_card B 0 "Demo card B")
    echo "$PIN" | show vscardctl unlock "card/$B" --password-stdin
    show rsync -a "vsc/$A/public" "vsc/$A/private" "card/$B/"
    show diff -r "vsc/$A/public" "card/$B/public"
    show diff -r "vsc/$A/private" "card/$B/private"
    say "restore identical: card/$B holds what card/$A held"
fi

# ---- what to try ---------------------------------------------------------------------------

cat >"$DEMO/env" <<EOT
export VSCARD_STORE=$VSCARD_STORE VSCARD_AGENT=$VSCARD_AGENT PATH=$BIN:\$PATH
EOT
if [ "$CARDS" = 1 ]; then
    cat >>"$DEMO/env" <<EOT
export PCSCLITE_CSOCK_NAME=$PCSCLITE_CSOCK_NAME OPENSC_CONF=$OPENSC_CONF
EOT
fi

cat <<EOT

The demo is running.
  mount:  $M
  store:  $VSCARD_STORE   (one encrypted file per VSC)
  agent:  $VSCARD_AGENT   (password of vsc/demo: $PASSWORD)
  logs:   $DEMO/*.log
EOT
if [ "$CARDS" = 1 ]; then
    cat <<EOT
  pcscd:  private, socket $PCSCLITE_CSOCK_NAME, reader "Test PCD 00 00" (vpcd port $VPCD_PORT)
          and "Test PCD 00 01" (port $((VPCD_PORT + 1)))
  cards:  card/$B in "Test PCD 00 00" (PIN $PIN); card A ($A) is out, its image is $DEMO/cards/A.img
EOT
fi
cat <<EOT

Look around, in a shell with the demo's environment:
  source $DEMO/env
  cd $M
  ls -lR vsc/demo                    # id/ public/ private/ secret/
  cat vsc/demo/secret/signing-key    # an envelope, never the plaintext key
  vscardctl lock vsc/demo; ls vsc/demo/private    # Permission denied
  vscardctl status; vscardctl list
EOT
if [ "$CARDS" = 1 ]; then
    cat <<EOT
  vscardctl readers                  # the demo's readers (its pcscd, not the system's)
  cat card/$B/id/serial card/$B/id/label card/$B/id/pin-tries-left
  ls -lR card/$B/public card/$B/private vsc/$A/public
  vscardctl lock card/$B; ls card/$B/private     # Permission denied
  kill -USR1 \$(cat $PIDS/emu-B.pid)  # pulls card B out; again: puts it back
EOT
fi
cat <<EOT

Stop it all (mount, emulators, pcscd, agent) with: scripts/demo.sh --stop
EOT
