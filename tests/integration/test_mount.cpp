// The mount as a user sees it: shell tools on a real FUSE mount of a real store, with the
// real agent and vscardctl.
#include <gtest/gtest.h>

#include <csignal>

#include "crash.hpp"
#include "rig.hpp"

namespace vscard::test {
namespace {

// Raw-string scripts cannot go through a macro, so the check is a function; the failure
// message carries the script's output and the line it stopped at (bash -x is not needed).
void expect_ok(const RunResult& r) {
    EXPECT_EQ(r.exit_code, 0) << "stdout:\n" << r.out << "stderr:\n" << r.err;
}

// A tree with nested folders, odd names, an empty file, a larger file, modes and mtimes.
const char* kMakeTree = R"SH(
make_tree() {
  local d=$1
  mkdir -p "$d/docs/deep/er" "$d/empty dir" "$d/x"
  printf 'hello\n' > "$d/hello.txt"
  : > "$d/empty"
  head -c 300000 /dev/urandom > "$d/docs/blob.bin"
  head -c 70000 /dev/urandom > "$d/docs/deep/er/chunky"
  for i in $(seq 1 40); do head -c $((i * 97)) /dev/urandom > "$d/x/f$i"; done
  printf 'spaces\n' > "$d/docs/with space.txt"
  printf 'utf8\n' > "$d/docs/ünïcödé-名前.txt"
  chmod 600 "$d/hello.txt"; chmod 755 "$d/x/f1"
  touch -d '2001-02-03 04:05:06' "$d/docs/blob.bin"
}
)SH";

class MountTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        rig.create_vsc("alpha", "pw-alpha");
        mnt = rig.mount();
        rig.unlock("alpha", "pw-alpha");
        area = "$M/vsc/alpha/" + GetParam();
    }
    Rig rig;
    std::filesystem::path mnt;
    std::string area;
};

TEST_P(MountTest, CopyToolsRoundTrip) {
    expect_ok(rig.sh(std::string(kMakeTree) + R"SH(
make_tree "$T/src"
A=)SH" + area + R"SH(
cp -a "$T/src" "$A/cp"
diff -r "$T/src" "$A/cp"
[ "$(stat -c %a "$A/cp/hello.txt")" = 600 ]
[ "$(stat -c %Y "$A/cp/docs/blob.bin")" = "$(stat -c %Y "$T/src/docs/blob.bin")" ]
rsync -a "$T/src/" "$A/rs/"
diff -r "$T/src" "$A/rs"
# edits on the source, then rsync with --delete and --inplace
rm "$T/src/x/f3"; printf 'changed\n' >> "$T/src/hello.txt"; mkdir "$T/src/new"; echo n > "$T/src/new/n"
rsync -a --delete "$T/src/" "$A/rs/"
diff -r "$T/src" "$A/rs"
head -c 5000 /dev/urandom > "$T/src/x/f7"
rsync -a --inplace --no-whole-file "$T/src/" "$A/rs/"
diff -r "$T/src" "$A/rs"
rsync -a --delete --inplace "$T/src/" "$A/rs/"
diff -r "$T/src" "$A/rs"
# back out again, and tar in
rsync -a "$A/rs/" "$T/out/"
diff -r "$T/src" "$T/out"
cp -a "$A/cp" "$T/out2"; diff -r "$A/cp" "$T/out2"
tar -C "$T/src" -cf "$T/src.tar" .
mkdir "$A/tar"; tar -C "$A/tar" -xf "$T/src.tar"
diff -r "$T/src" "$A/tar"
[ "$(cd "$T/src" && find . | sort)" = "$(cd "$A/tar" && find . | sort)" ]
du -s "$A/tar" > /dev/null
)SH",
                     mnt));
}

TEST_P(MountTest, RenameSemantics) {
    expect_ok(rig.sh("A=" + area + R"SH(
mkdir -p "$A/d1/sub" "$A/d2"
echo one > "$A/d1/a"; echo two > "$A/d2/b"
mv "$A/d1/a" "$A/d2/b"                      # over an existing file, across folders
[ "$(cat "$A/d2/b")" = one ]; [ ! -e "$A/d1/a" ]
mv "$A/d1/sub" "$A/d2/sub2"                 # a folder across folders
[ -d "$A/d2/sub2" ]
echo x > "$A/d2/sub2/x"; mv "$A/d2/sub2" "$A/moved"; [ "$(cat "$A/moved/x")" = x ]
fails mv -T "$A/d2" "$A/d2/inside"   # into itself: EINVAL
mkdir "$A/full"; echo f > "$A/full/f"; mkdir "$A/emptyd"
fails mv -T "$A/emptyd" "$A/full"    # over a non-empty folder
mv -T "$A/full" "$A/emptyd"; [ "$(cat "$A/emptyd/f")" = f ]     # over an empty folder
# the old name of a file open for reading keeps its content
echo keep > "$A/k"; exec 3<"$A/k"; echo new > "$A/k2"; mv "$A/k2" "$A/k"
[ "$(cat <&3)" = keep ]; [ "$(cat "$A/k")" = new ]
rm "$A/k"; rmdir "$A/d1"
fails rmdir "$A/emptyd"
# a folder holding a file deleted while open (kept as .fuse_hidden*, not listed) stays busy
# until the file is closed; the open file reads on meanwhile
mkdir "$A/o1"; echo open1 > "$A/o1/f"; exec 4<"$A/o1/f"; rm "$A/o1/f"
[ -z "$(ls -A "$A/o1")" ]; fails rmdir "$A/o1"
[ "$(cat <&4)" = open1 ]; exec 4<&-
rmdir "$A/o1"   # at once, although the kernel sends the close after close() returned
[ ! -e "$A/o1" ]
mkdir "$A/o2" "$A/o3"; echo open2 > "$A/o2/f"; exec 4<"$A/o2/f"; rm "$A/o2/f"
fails mv -T "$A/o3" "$A/o2"
exec 4<&-; mv -T "$A/o3" "$A/o2"   # the same for a folder moved over it
[ -d "$A/o2" ] && [ ! -e "$A/o3" ]
)SH",
                     mnt));
}

TEST_P(MountTest, PosixDetails) {
    expect_ok(rig.sh("A=" + area + R"SH(
echo data > "$A/f"
ino=$(stat -c %i "$A/f")
chmod 640 "$A/f"; [ "$(stat -c %a "$A/f")" = 640 ]
touch -m -d '1999-12-31 23:59:58' "$A/f"; [ "$(stat -c %Y "$A/f")" = 946684798 ]
setfattr -n user.color -v blue "$A/f"
[ "$(getfattr --only-values -n user.color "$A/f")" = blue ]
setfattr -x user.color "$A/f"
fails getfattr -n user.color "$A/f"
fails setfattr -n trusted.x -v 1 "$A/f"
out=$(getfattr -n security.capability "$A/f" 2>&1 || true); [[ $out == *"No such attribute"* ]]
df -P "$A" | tail -1 | awk '{ if ($2 <= 0) exit 1 }'
dd if=/dev/zero of="$A/sync" bs=4k count=3 conv=fsync status=none
truncate -s 5 "$A/f"; [ "$(cat "$A/f")" = "data" ]
truncate -s 10000 "$A/f"; [ "$(stat -c %s "$A/f")" = 10000 ]
[ "$(head -c 5 "$A/f")" = "data" ]; [ "$(tail -c 9995 "$A/f" | tr -d '\0' | wc -c)" = 0 ]
printf 'XY' | dd of="$A/f" bs=1 seek=70000 conv=notrunc status=none
[ "$(stat -c %s "$A/f")" = 70002 ]; [ "$(tail -c 2 "$A/f")" = XY ]
[ "$(stat -c %i "$A/f")" = "$ino" ]
# a folder listed in many calls (the kernel's buffer holds a few dozen entries with attributes)
mkdir "$A/many"; (cd "$A/many" && touch $(seq -f 'a-rather-long-file-name-%04g' 1 700))
[ "$(ls "$A/many" | wc -l)" = 700 ]; [ "$(ls -l "$A/many" | grep -c rather-long)" = 700 ]
[ "$(find "$A/many" -type f | sort | tail -1)" = "$A/many/a-rather-long-file-name-0700" ]
rm -r "$A/many"
long=$(printf 'n%.0s' $(seq 1 256))
fails touch "$A/$long"
echo "$ino" > "$T/ino"
)SH",
                     mnt));
    // Inode numbers stay the same across a remount.
    rig.unmount(mnt);
    mnt = rig.mount({}, "mnt2");
    expect_ok(rig.sh("A=" + area + R"SH(
[ "$(stat -c %i "$A/f")" = "$(cat "$T/ino")" ]
[ "$(stat -c %a "$A/f")" = 640 ]
)SH",
                     mnt));
}

INSTANTIATE_TEST_SUITE_P(Areas, MountTest, ::testing::Values("public", "private"));

class MountFixture : public ::testing::Test {
protected:
    Rig rig;
};

TEST_F(MountFixture, LayoutAndIdFiles) {
    rig.create_vsc("beta", "pw");
    auto mnt = rig.mount();
    expect_ok(rig.sh(R"SH(
[ "$(ls "$M")" = "$(printf 'card\nvsc')" ]
[ "$(ls "$M/vsc/beta")" = "$(printf 'id\nprivate\npublic\nsecret')" ]
[ "$(cat "$M/vsc/beta/id/type")" = vsc ]
[ "$(cat "$M/vsc/beta/id/label")" = beta ]
[ "$(cat "$M/vsc/beta/id/state")" = locked ]
uid=$(cat "$M/vsc/beta/id/uid"); [ ${#uid} = 32 ]
fails bash -c 'echo x > "$1"' _ "$M/vsc/beta/id/label"
fails touch "$M/vsc/beta/id/new"
fails mkdir "$M/vsc/made-up"
)SH",
                     mnt));
}

TEST_F(MountFixture, LockedPrivateAreaAndLiveUnlock) {
    rig.create_vsc("gamma", "pw-gamma");
    auto mnt = rig.mount();
    expect_ok(rig.sh(R"SH(
P="$M/vsc/gamma/private"
err=$(ls "$P" 2>&1 || true); [[ "$err" == *"Permission denied"* ]]
fails cat "$P/x"
fails touch "$P/x"
fails ls "$M/vsc/gamma/secret"
# a wrong password is refused and unlocks nothing
if echo wrong | vscardctl unlock vsc/gamma --password-stdin 2>"$T/err"; then exit 1; fi
grep -q "wrong password" "$T/err"; [ "$(wc -l < "$T/err")" = 1 ]
[ "$(cat "$M/vsc/gamma/id/state")" = locked ]
echo pw-gamma | vscardctl unlock vsc/gamma --password-stdin
echo secret-text > "$P/note"; [ "$(cat "$P/note")" = secret-text ]
[ "$(cat "$M/vsc/gamma/id/state")" = unlocked ]
exec 3<"$P/note"
vscardctl lock vsc/gamma
sleep 0.5
fails ls "$P"
fails cat "$P/note"
fails cat <&3          # the open handle fails too
[ "$(cat "$M/vsc/gamma/id/state")" = locked ]
echo pw-gamma | vscardctl unlock vsc/gamma --password-stdin --timeout 2s
[ "$(cat "$P/note")" = secret-text ]
sleep 3.5
fails cat "$P/note"      # the timeout locked it
)SH",
                     mnt));
    // Nothing private reached the store file in clear.
    auto r = rig.sh("! grep -q secret-text \"$T\"/store/gamma.vsc*");
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(MountFixture, SecretKeysBecomeEnvelopes) {
    rig.create_vsc("keys", "pw-keys");
    rig.create_vsc("other", "pw-other");
    auto mnt = rig.mount();
    rig.unlock("keys", "pw-keys");
    rig.unlock("other", "pw-other");
    expect_ok(rig.sh(R"SH(
S="$M/vsc/keys/secret"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/rsa.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$T/ec.pem" 2>/dev/null
openssl pkey -in "$T/ec.pem" -outform DER -out "$T/ec.der"
cp "$T/rsa.pem" "$S/rsa"; cp "$T/ec.der" "$S/ec"
head -1 "$S/rsa" | grep -q "BEGIN VSCARD KEY ENVELOPE"
head -1 "$S/ec" | grep -q "BEGIN VSCARD KEY ENVELOPE"
openssl pkey -in "$T/rsa.pem" -pubout | cmp - "$S/rsa.pub"
openssl pkey -in "$T/ec.pem" -pubout | cmp - "$S/ec.pub"
# the envelope is stable and re-imports as itself
cp "$S/rsa" "$T/rsa.env"; cmp "$S/rsa" "$T/rsa.env"
rm "$S/rsa"; cp "$T/rsa.env" "$S/rsa"; cmp "$S/rsa" "$T/rsa.env"
# rsync of the whole area out and back in (temp file + rename)
rsync -a "$S/" "$T/secret-backup/"
rm -r "$S"/*
rsync -a "$T/secret-backup/" "$S/"
diff -r "$T/secret-backup" "$S"
# another card family cannot take it; junk is refused; nothing half-written stays
fails cp "$T/rsa.env" "$M/vsc/other/secret/rsa"
[ "$(stat -c %s "$M/vsc/other/secret/rsa")" = 0 ]
fails bash -c 'echo junk > "$1"' _ "$S/junk"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out "$T/small.pem" 2>/dev/null
fails cp "$T/small.pem" "$S/small"
)SH",
                     mnt));
    // The private key bytes appear nowhere in the store or the logs.
    auto r = rig.sh(R"SH(
body=$(sed -n 2p "$T/rsa.pem")
! grep -rqF "$body" "$T/store" "$T"/*.log
)SH");
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(MountFixture, VscsAppearAndVanishWhileMounted) {
    auto mnt = rig.mount();
    expect_ok(rig.sh(R"SH(
[ -z "$(ls "$M/vsc")" ]
echo pw | vscardctl create late --password-stdin --kdf-target 20ms
for i in $(seq 1 40); do [ -d "$M/vsc/late" ] && break; sleep 0.05; done
[ "$(ls "$M/vsc")" = late ]
echo hi > "$M/vsc/late/public/hi"
rm "$VSCARD_STORE/late.vsc"*
for i in $(seq 1 40); do [ -z "$(ls "$M/vsc")" ] && break; sleep 0.05; done
[ -z "$(ls "$M/vsc")" ]
)SH",
                     mnt));
}

TEST_F(MountFixture, DamagedVscFileGivesClearErrors) {
    rig.create_vsc("good", "pw");
    rig.create_vsc("bad", "pw");
    auto r = rig.sh(R"SH(
f="$VSCARD_STORE/bad.vsc"
size=$(stat -c %s "$f")
head -c $((size / 2)) /dev/urandom | dd of="$f" bs=1 seek=100 conv=notrunc status=none
)SH");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto mnt = rig.mount();
    expect_ok(rig.sh(R"SH(
[ "$(ls "$M/vsc")" = "$(printf 'bad\ngood')" ]
err=$(ls "$M/vsc/bad/public" 2>&1 || true); [[ "$err" == *"Input/output error"* ]]
echo ok > "$M/vsc/good/public/ok"; [ "$(cat "$M/vsc/good/public/ok")" = ok ]
vscardctl list > "$T/list"
grep -q "^vsc/bad	damaged	.*bad.vsc" "$T/list"
grep -q "^vsc/good	locked" "$T/list"
)SH",
                     mnt));
    EXPECT_NE(read_text(rig.log("mnt")).find("bad.vsc"), std::string::npos)
        << read_text(rig.log("mnt"));
}

TEST_F(MountFixture, TwoMountsSideBySide) {
    auto store2 = rig.dir() / "store2";
    rig.create_vsc("one", "pw");
    rig.create_vsc("two", "pw", store2);
    auto m1 = rig.mount({}, "m1");
    auto m2 = rig.mount(store2, "m2");
    auto r = rig.sh("M1=" + m1.string() + " M2=" + m2.string() + R"SH(
[ "$(ls "$M1/vsc")" = one ]; [ "$(ls "$M2/vsc")" = two ]
echo 1 > "$M1/vsc/one/public/f"; echo 2 > "$M2/vsc/two/public/f"
cp "$M1/vsc/one/public/f" "$M2/vsc/two/public/from-one"
[ "$(cat "$M2/vsc/two/public/from-one")" = 1 ]; [ "$(cat "$M2/vsc/two/public/f")" = 2 ]
)SH");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST_F(MountFixture, KillDuringRsyncLeavesStoreIntact) {
    rig.create_vsc("crash", "pw-crash");
    auto mnt = rig.mount();
    rig.unlock("crash", "pw-crash");
    // A large tree: 1,000 files, some of them big, so the kill lands mid-transfer.
    make_versioned_tree(rig, "big", 1000, 30000000, 1);
    for (std::string area : {"public", "private"}) {
        kill_daemon_during_rsync(rig, mnt, rig.dir() / "big/v1", mnt / "vsc/crash" / area / "big",
                                 700ms);
        mnt = remount_and_check(rig, mnt, "crash", "pw-crash");
        // Every file that made it is whole; rsync then completes the copy.
        expect_ok(rig.sh(std::string(kOldOrNew) + "A=$M/vsc/crash/" + area + R"SH(/big
old_or_new "$A" "$T/big/v1" "$T/big/v1" missing-ok
rsync -a --delete "$T/big/v1/" "$A/"
diff -r "$T/big/v1" "$A"
)SH",
                         mnt));
    }
}

TEST_F(MountFixture, OtherUsersAreShutOut) {
    rig.create_vsc("mine", "pw");
    auto mnt = rig.mount();
    auto r = rig.sh(R"SH(
echo mine > "$M/vsc/mine/public/f"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
fails as_nobody ls "$M"
fails as_nobody cat "$M/vsc/mine/public/f"
fails as_nobody touch "$M/vsc/mine/public/g"
err=$(as_nobody stat "$M/vsc" 2>&1 || true); [[ "$err" == *"Permission denied"* ]]
)SH",
                    mnt);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

// A normal user's mount: the kernel lets only that user in and leaves the permission checks
// to the mount, which must give what the owner bits of each mode allow, as a disk would.
TEST_F(MountFixture, PermissionBitsHoldInANormalUsersMount) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount as another uid";
    expect_ok(rig.sh(R"SH(
chmod 711 "$T"
U="$T/nobody"; mkdir -p "$U"; chown 65534:65534 "$U"; chmod 700 "$U"
cat > "$U/run.sh" <<'EOF'
set -euo pipefail
trap 'echo "line $LINENO: failed: $BASH_COMMAND" >&2' ERR
fails() { if "$@" 2>/dev/null; then echo "unexpectedly succeeded: $*" >&2; return 1; fi; }
# forgotten PATH: what the kernel cached of PATH goes at once, not when the cache times out.
forgotten() { for i in $(seq 10); do stat "$1" >/dev/null 2>&1 || return 0; sleep 0.05; done; return 1; }
export HOME=$U XDG_RUNTIME_DIR=$U/run VSCARD_STORE=$U/store VSCARD_AGENT=$U/agent.sock
mkdir -p "$U/run" "$U/mnt"
vscard-agent --socket "$VSCARD_AGENT" 2>"$U/agent.log" &
agent=$!
trap 'fusermount3 -u "$U/mnt" 2>/dev/null; kill $agent' EXIT
for i in $(seq 100); do [ -S "$VSCARD_AGENT" ] && break; sleep 0.1; done
echo pw | vscardctl create mine --password-stdin --kdf-target 20ms >/dev/null
vscard-mountd --no-pcsc "$U/mnt"
echo pw | vscardctl unlock vsc/mine --password-stdin >/dev/null
for area in public private; do
  A=$U/mnt/vsc/mine/$area
  for i in $(seq 50); do ls "$A" >/dev/null 2>&1 && break; sleep 0.1; done
  mkdir "$A/d"; echo data > "$A/d/f"; stat "$A/d/f" >/dev/null
  chmod 600 "$A/d"                     # not searchable
  forgotten "$A/d/f"
  fails cat "$A/d/f"
  fails touch "$A/d/g"
  fails bash -c "cd '$A/d'"
  [ ! -x "$A/d" ]
  [ "$(ls "$A/d")" = f ]               # r alone lists the names
  chmod 500 "$A/d"                     # searchable, not writable
  [ "$(cat "$A/d/f")" = data ]
  fails touch "$A/d/g"; fails rm "$A/d/f"; fails mv "$A/d/f" "$A/f"; fails mkdir "$A/d/e"
  chmod 300 "$A/d"; fails ls "$A/d"; touch "$A/d/g"
  chmod 700 "$A/d"
  chmod 200 "$A/d/f"                   # write-only
  fails cat "$A/d/f"; [ -w "$A/d/f" ]; [ ! -r "$A/d/f" ]
  echo new > "$A/d/f"
  chmod 400 "$A/d/f"                   # read-only
  fails bash -c "echo x > '$A/d/f'"; fails truncate -s 0 "$A/d/f"; fails setfattr -n user.a -v 1 "$A/d/f"
  [ "$(cat "$A/d/f")" = new ]
  printf '#!/bin/sh\necho ran\n' > "$A/s"
  fails "$A/s"
  chmod 700 "$A/s"; [ "$("$A/s")" = ran ]
  rm -r "$A/d" "$A/s"
done
EOF
chown 65534:65534 "$U/run.sh"
setpriv --reuid=65534 --regid=65534 --clear-groups env -i PATH="$PATH" U="$U" bash "$U/run.sh"
)SH"));
}

TEST_F(MountFixture, PasswordChangeKeepsDataAndTheMountWorking) {
    rig.create_vsc("pw", "old-password");
    auto mnt = rig.mount();
    rig.unlock("pw", "old-password");
    expect_ok(rig.sh(R"SH(
P="$M/vsc/pw/private"
echo kept > "$P/f"
fails bash -c 'printf "wrong\nnew-password\n" | vscardctl passwd vsc/pw --password-stdin'
printf 'old-password\nnew-password\n' | vscardctl passwd vsc/pw --password-stdin
[ "$(cat "$P/f")" = kept ]                     # still unlocked: the agent got the new one
vscardctl lock vsc/pw
fails bash -c 'echo old-password | vscardctl unlock vsc/pw --password-stdin'
echo new-password | vscardctl unlock vsc/pw --password-stdin
[ "$(cat "$P/f")" = kept ]
)SH",
                     mnt));
    auto check = rig.ctl({"check", "vsc/pw", "--password-stdin"}, "new-password\n");
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

TEST_F(MountFixture, SigtermUnmountsCleanly) {
    rig.create_vsc("term", "pw");
    auto mnt = rig.mount();
    expect_ok(rig.sh("echo data > \"$M/vsc/term/public/f\"", mnt));
    Process& daemon = rig.daemon(mnt);
    daemon.kill(SIGTERM);
    ASSERT_TRUE(daemon.wait(10s));
    EXPECT_EQ(daemon.exit_code(), 0) << read_text(rig.log("mnt"));
    EXPECT_FALSE(is_mounted(mnt));
    mnt = rig.mount({}, "again");
    expect_ok(rig.sh("[ \"$(cat \"$M/vsc/term/public/f\")\" = data ]", mnt));
}

TEST_F(MountFixture, CommandLineContract) {
    for (const char* b : {"vscard-mountd", "vscard-agent", "vscardctl"}) {
        auto help = run(b, {"--help"});
        EXPECT_EQ(help.exit_code, 0) << b;
        EXPECT_NE(help.out.find("Usage"), std::string::npos) << b << help.out;
        auto version = run(b, {"--version"});
        EXPECT_EQ(version.exit_code, 0) << b;
        EXPECT_NE(version.out.find("0."), std::string::npos) << b << version.out;
        auto bad = run(b, {"--no-such-option"});
        EXPECT_NE(bad.exit_code, 0) << b;
        EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << b << bad.err;
    }
    auto missing = run("vscard-mountd", {(rig.dir() / "nowhere").string()}, rig.options());
    EXPECT_NE(missing.exit_code, 0);
    EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
    EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;
    // Without -f the command returns once the mount is up; fusermount3 -u ends the daemon.
    std::filesystem::create_directories(rig.dir() / "bg");
    auto bg = run("vscard-mountd", {(rig.dir() / "bg").string()}, rig.options());
    EXPECT_EQ(bg.exit_code, 0) << bg.err;
    EXPECT_TRUE(is_mounted(rig.dir() / "bg"));
    run("fusermount3", {"-u", (rig.dir() / "bg").string()});
    EXPECT_TRUE(wait_until([&] { return !is_mounted(rig.dir() / "bg"); }, 5s));
    auto nopw = rig.ctl({"unlock", "vsc/none", "--password-stdin"}, "x\n");
    EXPECT_NE(nopw.exit_code, 0);
    EXPECT_NE(nopw.err.find("no VSC named"), std::string::npos) << nopw.err;
}

}  // namespace
}  // namespace vscard::test
