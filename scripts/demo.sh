#!/usr/bin/env bash
# Installs what is missing, builds, and starts a demo: a virtual smart card (VSC) with a few
# files in each area, the keyring agent and the mount. Leaves them running and prints what to
# try. `scripts/demo.sh --stop` ends the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEMO=${VSCARD_DEMO_DIR:-/tmp/vscard-demo-$(id -un)}
BIN="$ROOT/build/bin"
PASSWORD=demo-password

stop_demo() {
    if [ -d "$DEMO/mnt" ] && mountpoint -q "$DEMO/mnt" 2>/dev/null; then
        fusermount3 -u "$DEMO/mnt" || fusermount3 -u -z "$DEMO/mnt"
    fi
    if [ -f "$DEMO/agent.pid" ]; then
        kill "$(cat "$DEMO/agent.pid")" 2>/dev/null || true
        rm -f "$DEMO/agent.pid"
    fi
}

if [ "${1:-}" = "--stop" ]; then
    stop_demo
    echo "demo stopped; its files are in $DEMO (remove with: rm -rf $DEMO)"
    exit 0
fi

source scripts/lib/deps.sh
install_packages "${BUILD_PACKAGES[@]}" rsync openssl diffutils
build_project build vscard-agent vscard-mountd vscardctl

stop_demo  # a previous run
rm -rf "$DEMO"
mkdir -p "$DEMO/mnt"
chmod 700 "$DEMO"
export VSCARD_STORE="$DEMO/store" VSCARD_AGENT="$DEMO/agent.sock"

setsid "$BIN/vscard-agent" --socket "$VSCARD_AGENT" </dev/null >"$DEMO/agent.log" 2>&1 &
echo $! > "$DEMO/agent.pid"
for _ in $(seq 1 50); do [ -S "$VSCARD_AGENT" ] && break; sleep 0.1; done

echo "$PASSWORD" | "$BIN/vscardctl" create demo --password-stdin
"$BIN/vscard-mountd" "$DEMO/mnt"   # returns once the mount is up
echo "$PASSWORD" | "$BIN/vscardctl" unlock vsc/demo --password-stdin

C="$DEMO/mnt/vsc/demo"
printf 'Hello from the public area: anyone may read this.\n' > "$C/public/hello.txt"
mkdir -p "$C/public/certs" "$C/private/notes"
printf 'Recovery codes: 1234-5678 9012-3456\n' > "$C/private/notes/recovery.txt"
printf 'Only readable after vscardctl unlock.\n' > "$C/private/readme.txt"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null > "$C/secret/signing-key"

cat <<EOT

The demo is running.
  store:  $VSCARD_STORE   (one encrypted file per VSC: demo.vsc)
  mount:  $DEMO/mnt
  agent:  $VSCARD_AGENT   (password of vsc/demo: $PASSWORD)

Try, in a shell with:
  export VSCARD_STORE=$VSCARD_STORE VSCARD_AGENT=$VSCARD_AGENT PATH=$BIN:\$PATH

  ls -lR $C                         # id/ public/ private/ secret/
  cat $C/id/state                    # unlocked
  cat $C/secret/signing-key          # an envelope, never the plaintext key
  cat $C/secret/signing-key.pub      # the public key
  vscardctl lock vsc/demo; ls $C/private    # Permission denied
  vscardctl unlock vsc/demo                 # asks for the password
  rsync -a $C/{public,private,secret} $DEMO/backup/   # a backup is an ordinary copy
  vscardctl status; vscardctl list

Stop it with: scripts/demo.sh --stop
EOT
