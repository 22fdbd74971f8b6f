#!/usr/bin/env bash
# Packaging checks: the units pass systemd-analyze verify, the udev rule parses, and the .deb
# installs into a scratch root with the expected files and removes cleanly.
# Usage: check_packaging.sh BUILD_DIR
set -euo pipefail
BUILD=$(cd "$1" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vscard-pkg.XXXXXX")
RULE_COPY=""
cleanup() {
    [ -n "$RULE_COPY" ] && rm -f "$RULE_COPY"
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== units: systemd-analyze verify"
cmake --install "$BUILD" --prefix "$WORK/usr" > /dev/null
mkdir -m 700 "$WORK/xdg"
export MANPATH="$WORK/usr/share/man"
units="$WORK/usr/lib/systemd/user"
XDG_RUNTIME_DIR="$WORK/xdg" systemd-analyze --user verify \
    "$units/vscard-agent.socket" "$units/vscard-agent.service" \
    "$units/vscard-mountd.service" "$units/vscard.target" || fail "user units"
cp "$WORK/usr/lib/systemd/system/vscard-mountd@.service" "$WORK/vscard-mountd@alice.service"
systemd-analyze verify "$WORK/vscard-mountd@alice.service" || fail "system unit"

echo "== udev rule"
rule="$WORK/usr/lib/udev/rules.d/60-vscard.rules"
if command -v udevadm > /dev/null && udevadm verify --help > /dev/null 2>&1; then
    udevadm verify "$rule" || fail "udev rule"
elif command -v udevadm > /dev/null && [ "$(id -u)" = 0 ]; then
    # udevadm before 254 has no verify: load the rule from /run and look for complaints.
    mkdir -p /run/udev/rules.d
    RULE_COPY=/run/udev/rules.d/60-vscard-check-$$.rules
    cp "$rule" "$RULE_COPY"
    out=$(udevadm test --action=add /sys/class/net/lo 2>&1 || true)
    grep -q "Reading rules file: $RULE_COPY" <<<"$out" || fail "udevadm did not read the rule"
    if grep "$RULE_COPY:" <<<"$out"; then fail "udev rule has errors"; fi
else
    echo "skipped: no udevadm verify, and udevadm test needs root"
fi

echo "== .deb"
(cd "$WORK" && cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/deb" > cpack.log) \
    || { cat "$WORK/cpack.log"; fail "cpack"; }
deb=$(ls "$WORK"/deb/vscard_*.deb)
dpkg-deb -I "$deb" | grep -E "Depends:.*fuse3" > /dev/null || fail "Depends lacks fuse3"
dpkg-deb -I "$deb" | grep -E "Depends:.*libssl3" > /dev/null || fail "Depends lacks libssl3"
root="$WORK/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
dpkg --root="$root" --force-depends --force-script-chrootless -i "$deb" > "$WORK/dpkg.log" 2>&1 \
    || fail "dpkg -i"
listed=$(dpkg --root="$root" -L vscard | sort)
for f in /usr/bin/vscard-agent /usr/bin/vscard-mountd /usr/bin/vscardctl /usr/bin/vscard-emu \
         /usr/lib/systemd/user/vscard-agent.socket /usr/lib/systemd/user/vscard-agent.service \
         /usr/lib/systemd/user/vscard-mountd.service /usr/lib/systemd/user/vscard.target \
         /usr/lib/systemd/system/vscard-mountd@.service /usr/lib/udev/rules.d/60-vscard.rules \
         /usr/share/man/man1/vscardctl.1 /usr/share/man/man1/vscard-mountd.1 \
         /usr/share/man/man1/vscard-agent.1 /usr/share/doc/vscard/README.md; do
    grep -qx "$f" <<<"$listed" || fail "package lacks $f"
    [ -e "$root$f" ] || fail "$f not installed"
done
grep -q "ExecStart=/usr/bin/vscard-mountd" "$root/usr/lib/systemd/user/vscard-mountd.service" \
    || fail "unit does not run /usr/bin/vscard-mountd"
"$root/usr/bin/vscardctl" --version > /dev/null || fail "installed vscardctl does not run"
dpkg --root="$root" --force-script-chrootless -r vscard > /dev/null || fail "dpkg -r"
left=$(cd "$root" && find usr -type f 2>/dev/null || true)
[ -z "$left" ] || fail "files left after dpkg -r: $left"
echo "packaging OK"
