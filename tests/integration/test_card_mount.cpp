// Cards in the mount (DESIGN §3, §5, §6): card/SERIAL/ appears and vanishes with the card,
// its areas work with shell tools, and rsync carries them to a VSC and onto a new card. A
// private pcscd with emulated cards (DESIGN §9) and a real mount.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>

#include "agent_client.hpp"
#include "card_rig.hpp"

namespace vscard::test {
namespace {

using CardMount = CardRigTest;

TEST_F(CardMount, CardAppearsWithItsIdAndVanishesOnRemoval) {
    const std::string serial = formatted_card(0);
    mnt = rig->mount();
    const auto card = mnt / "card" / serial;
    auto appeared = wait_path(card, true);
    std::cout << "card/" << serial << " appeared after " << appeared.count() << " ms\n";

    auto r = sh("cd $M/card/" + serial + R"SH(
        test "$(ls)" = "$(printf 'id\nprivate\npublic\nsecret')"
        test "$(cat id/serial)" = ")SH" +
                serial + R"SH("
        test "$(cat id/type)" = pkcs15
        test "$(cat id/state)" = locked
        test "$(cat id/pin-tries-left)" = 3
        test "$(cat id/reader)" = "Test PCD 00 00"
        grep -Eq '^[0-9A-F]{8,}$' id/atr
        fails touch id/x
        fails ls private
        ls public >/dev/null)SH");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

    // Removal also makes the agent forget the card's PIN (DESIGN §4).
    auto u = rig->ctl({"unlock", "card/" + serial, "--password-stdin"}, std::string(kPin) + "\n");
    ASSERT_EQ(u.exit_code, 0) << u.err;
    EXPECT_EQ(pcsc->stop_card(0), 0);
    auto vanished = wait_path(card, false);
    std::cout << "card/" << serial << " vanished after " << vanished.count() << " ms\n";
    EXPECT_TRUE(rig->daemon(mnt).running());
    EXPECT_TRUE(wait_until(
        [&] { return rig->ctl({"status"}).out.find("card/" + serial) == std::string::npos; }, 5s))
        << rig->ctl({"status"}).out;
}

TEST_F(CardMount, ABlankCardFormattedWhileMountedShowsUnderItsSerial) {
    pcsc->start_card(0, pcsc->dir() / "card0.img");
    mnt = rig->mount();
    ASSERT_TRUE(wait_until([&] { return !std::filesystem::is_empty(mnt / "card"); }, 10s));
    auto before = sh("ls $M/card/*/ && ! ls -d $M/card/*/public 2>/dev/null");
    EXPECT_EQ(before.exit_code, 0) << before.out << before.err;  // id/ only
    auto r = rig->ctl({"format", pcsc->reader(0), "--pin-stdin"}, std::string(kPin) + "\n");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex("serial ([0-9a-f]+)"))) << r.out;
    const std::string serial = m[1];
    auto after = sh("test -d $M/card/" + serial + " && ls $M/card/ | grep -qx " + serial +
                    " && test \"$(cat $M/card/" + serial + "/id/type)\" = pkcs15 && ls $M/card/" +
                    serial + "/public");
    EXPECT_EQ(after.exit_code, 0) << after.out << after.err;
}

TEST_F(CardMount, AreasWorkAndRsyncCarriesThemToAVscAndOntoANewCard) {
    const std::string serial = formatted_card(0);
    const std::string blank = formatted_card(1);
    mnt = rig->mount();
    wait_path(mnt / "card" / serial, true);
    wait_path(mnt / "card" / blank, true);

    // Writing to a card needs its PIN: before unlocking, the card refuses.
    auto refused = sh("fails cp /etc/hostname $M/card/" + serial + "/public/h");
    EXPECT_EQ(refused.exit_code, 0) << refused.err;
    for (const auto& s : {serial, blank}) {
        auto u = rig->ctl({"unlock", "card/" + s, "--password-stdin"}, std::string(kPin) + "\n");
        ASSERT_EQ(u.exit_code, 0) << u.err;
    }
    auto r = sh("C=$M/card/" + serial + R"SH(
        mkdir -p $C/public/docs/old $C/private/keys
        echo hello > $C/public/readme.txt
        head -c 20000 /dev/urandom > $C/public/docs/blob.bin
        echo old > $C/public/docs/old/notes
        echo secret-note > $C/private/keys/note.txt
        test "$(cat $C/id/state)" = unlocked
        mv $C/public/readme.txt $C/public/docs/readme.txt
        echo again >> $C/public/docs/readme.txt
        truncate -s 3 $C/public/docs/old/notes
        test "$(cat $C/public/docs/readme.txt)" = "$(printf 'hello\nagain')"
        ls -lR $C/public > /dev/null)SH");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

    // Card -> VSC (the card's PIN is the VSC's password) -> diff.
    create_vsc_for(serial);
    r = sh("C=$M/card/" + serial + "; V=$M/vsc/" + serial + R"SH(
        wait_for() { for i in $(seq 50); do test -e "$1" && return 0; sleep 0.1; done; return 1; }
        wait_for $V/public
        test "$(cat $V/id/assigned-card)" = ")SH" +
           serial + R"SH("
        rsync -a $C/public $C/private $V/
        diff -r $C/public $V/public
        diff -r $C/private $V/private)SH");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

    // Keys: a PEM key written into the card's secret/ becomes an envelope under the family
    // key the card and its VSC share, so the envelope moves to the VSC and reads the same.
    r = sh("C=$M/card/" + serial + "; V=$M/vsc/" + serial + R"SH(
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $T/key.pem 2>/dev/null
        cp $T/key.pem $C/secret/signing
        grep -q "VSCARD KEY ENVELOPE" $C/secret/signing
        ! grep -q "PRIVATE KEY" $C/secret/signing
        test -s $C/secret/signing.pub
        rsync -a $C/secret $V/
        diff -r $C/secret $V/secret)SH");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

    // VSC -> a new blank card, with --delete after edits on the VSC side.
    r = sh("T=$M/card/" + blank + "; V=$M/vsc/" + serial + R"SH(
        echo stray > $T/public/stray
        rsync -a --delete $V/public $V/private $T/
        diff -r $V/public $T/public
        diff -r $V/private $T/private
        echo edited > $V/public/docs/old/notes
        rm $V/public/docs/blob.bin
        rsync -a --delete $V/public $V/private $T/
        diff -r $V/public $T/public
        test ! -e $T/public/stray)SH");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

    // The new card, pulled out and inserted again, holds the same (read afresh).
    EXPECT_EQ(pcsc->stop_card(1), 0);
    wait_path(mnt / "card" / blank, false);
    pcsc->start_card(1, pcsc->dir() / "card1.img");
    wait_path(mnt / "card" / blank, true);
    r = sh("diff -r $M/vsc/" + serial + "/public $M/card/" + blank + "/public");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    // Third-party check: OpenSC lists what the mount wrote.
    auto listed = pcsc->run_in_rig("pkcs15-tool", {"--reader", "1", "--list-data-objects"});
    EXPECT_NE(listed.out.find("docs/readme.txt"), std::string::npos) << listed.out << listed.err;
}

TEST_F(CardMount, WrongPinIsReportedWithTriesLeftAndNeverCached) {
    const std::string serial = mounted_card();
    auto wrong = rig->ctl({"unlock", "card/" + serial, "--password-stdin"}, "000000\n");
    EXPECT_EQ(wrong.exit_code, 3) << wrong.err;
    EXPECT_NE(wrong.err.find("2 tries left"), std::string::npos) << wrong.err;
    auto status = rig->ctl({"status"});
    EXPECT_EQ(status.out.find("card/" + serial), std::string::npos) << status.out;
    auto r = sh("C=$M/card/" + serial + R"SH(
        test "$(cat $C/id/pin-tries-left)" = 2
        fails ls $C/private)SH");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

    auto right =
        rig->ctl({"unlock", "card/" + serial, "--password-stdin"}, std::string(kPin) + "\n");
    ASSERT_EQ(right.exit_code, 0) << right.err;
    r = sh("C=$M/card/" + serial + R"SH(
        ls $C/private
        test "$(cat $C/id/state)" = unlocked
        vscardctl lock card/)SH" +
           serial + R"SH(
        for i in $(seq 50); do fails ls $C/private && break; sleep 0.1; done
        fails ls $C/private
        test "$(cat $C/id/state)" = locked)SH");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

    // Blocked after the last try: said so, and nothing unlocks.
    for (int i = 0; i < 3; ++i)
        rig->ctl({"unlock", "card/" + serial, "--password-stdin"}, "000000\n");
    auto blocked =
        rig->ctl({"unlock", "card/" + serial, "--password-stdin"}, std::string(kPin) + "\n");
    EXPECT_NE(blocked.exit_code, 0);
    EXPECT_NE(blocked.err.find("blocked"), std::string::npos) << blocked.err;
}

TEST_F(CardMount, FullCardLeavesPreviousContentAndRemovalIsAnIoError) {
    const std::string serial = formatted_card(0, {"--size", "40000"});
    mnt = rig->mount();
    wait_path(mnt / "card" / serial, true);
    auto u = rig->ctl({"unlock", "card/" + serial, "--password-stdin"}, std::string(kPin) + "\n");
    ASSERT_EQ(u.exit_code, 0) << u.err;
    auto r = sh("C=$M/card/" + serial + R"SH(
        echo keep > $C/public/keep
        head -c 15000 /dev/urandom > $C/public/a
        head -c 30000 /dev/urandom > $T/big
        # cp writes the whole file before its close: all of it lands, or none.
        out=$(cp $T/big $C/public/keep 2>&1 || true)
        echo "$out" | grep -q "No space left on device"
        test "$(cat $C/public/keep)" = keep
        fails cp $T/big $C/public/new
        test ! -s $C/public/new
        df $C/public | tail -1)SH");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;

    // Pulled out while a file is open: the handle fails with EIO, the mount stays.
    const auto open_file = mnt / "card" / serial / "public" / "a";
    int fd = ::open(open_file.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    EXPECT_EQ(pcsc->stop_card(0), 0);
    wait_path(mnt / "card" / serial, false);
    char buf[64];
    errno = 0;
    EXPECT_EQ(::read(fd, buf, sizeof buf), -1);
    EXPECT_EQ(errno, EIO) << std::strerror(errno);
    ::close(fd);
    EXPECT_TRUE(rig->daemon(mnt).running());
    // Inserted again, it shows with the content it had.
    pcsc->start_card(0, pcsc->dir() / "card0.img", {"--size", "40000"});
    wait_path(mnt / "card" / serial, true);
    r = sh("test \"$(cat $M/card/" + serial + "/public/keep)\" = keep");
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

// DESIGN §5: the directory is read once per insertion; listing again sends no APDU.
TEST_F(CardMount, ListingAgainSendsNoApdu) {
    const std::string serial = formatted_card(0, {"--verbose"});
    mnt = rig->mount();
    wait_path(mnt / "card" / serial, true);
    ASSERT_EQ(unlock("card/" + serial).exit_code, 0);
    auto r = sh("C=$M/card/" + serial + R"SH(
        mkdir -p $C/public/a/b
        for i in 1 2 3 4 5; do echo $i > $C/public/a/b/f$i; echo $i > $C/public/f$i; done
        ls -lR $C/public > /dev/null)SH");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = sh("df $M/card/" + serial + "/public > /dev/null");  // memory asked once, then known
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto apdus = [&] {
        auto log = read_text(pcsc->card_log(0));
        std::size_t n = 0;
        for (std::size_t at = 0; (at = log.find(" > ", at)) != std::string::npos; ++at) ++n;
        return n;
    };
    const std::size_t before = apdus();
    r = sh("ls -lR $M/card/" + serial + "/public > /dev/null; df $M/card/" + serial +
           "/public > /dev/null; find $M/card/" + serial + "/public -type f | wc -l");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "10\n");
    EXPECT_EQ(apdus(), before) << "APDUs sent by a second listing";
    // Reading the files once costs APDUs; reading them again does not.
    r = sh("cat $M/card/" + serial + "/public/f* > /dev/null");
    const std::size_t after_read = apdus();
    r = sh("echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; cat $M/card/" + serial +
           "/public/f* > /dev/null");
    EXPECT_EQ(apdus(), after_read) << "APDUs sent by reading cached files again";
}

TEST_F(CardMount, RemovalDuringAnRsyncLeavesBothSidesConsistent) {
    const std::string serial = mounted_card();
    ASSERT_EQ(unlock("card/" + serial).exit_code, 0);
    auto r = sh(R"SH(
        mkdir -p $T/src
        for i in $(seq 1 40); do head -c 700 /dev/urandom > $T/src/f$i; done)SH");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // rsync into the card while the card is pulled out half-way.
    ProcessOptions o = rig->options();
    o.env["M"] = mnt.string();
    Process rsync("bash",
                  {"-c", "rsync -a " + (rig->dir() / "src").string() + "/ $M/card/" + serial +
                             "/public/dst/ 2>&1; echo rsync-exit=$?"},
                  o);
    ASSERT_TRUE(wait_until(
        [&] {
            return std::filesystem::exists(mnt / "card" / serial / "public" / "dst" / "f5") ||
                   !rsync.running();
        },
        20s));
    EXPECT_EQ(pcsc->stop_card(0), 0);
    ASSERT_TRUE(rsync.wait(30s));
    EXPECT_NE(rsync.out().find("rsync-exit="), std::string::npos);
    EXPECT_EQ(rsync.out().find("rsync-exit=0\n"), std::string::npos)
        << "rsync finished before the card was pulled: " << rsync.out();
    EXPECT_TRUE(rig->daemon(mnt).running());

    // Back in: every file on the card is whole (equal to its source), the card's structure
    // reads cleanly (OpenSC too), and a new rsync completes the copy.
    pcsc->start_card(0, pcsc->dir() / "card0.img");
    wait_path(mnt / "card" / serial, true);
    ASSERT_EQ(unlock("card/" + serial).exit_code, 0);
    r = sh("cd $M/card/" + serial + R"SH(/public/dst
        for f in *; do cmp $f $T/src/$f; done    # every file under its name is whole
        rsync -a --delete $T/src/ ./              # also drops the interrupted rsync's temp file
        diff -r $T/src .)SH");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    auto listed = pcsc->run_in_rig("pkcs15-tool", {"--list-data-objects"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
}

TEST_F(CardMount, TheMountOutlivesAPcscdRestart) {
    const std::string serial = mounted_card();
    pcsc->restart_pcscd();
    // The card comes back as a new insertion once pcscd is reachable again.
    EXPECT_TRUE(
        wait_until([&] { return sh("cat $M/card/" + serial + "/id/serial").exit_code == 0; }, 15s));
    EXPECT_TRUE(rig->daemon(mnt).running());
    auto r = sh("ls $M/card/" + serial + "/public");
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(CardMount, PasswdChangesThePinAndKeepsTheKeys) {
    const std::string serial = mounted_card();
    ASSERT_EQ(unlock("card/" + serial).exit_code, 0);
    auto r = sh("C=$M/card/" + serial + R"SH(
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $T/k.pem 2>/dev/null
        cp $T/k.pem $C/secret/k
        cp $C/secret/k $T/envelope)SH");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto p = rig->ctl({"passwd", "card/" + serial, "--password-stdin"},
                      std::string(kPin) + "\n654321\n");
    ASSERT_EQ(p.exit_code, 0) << p.err;
    // The agent got the new PIN: the mount goes on working; a new unlock needs the new PIN.
    r = sh("cmp $M/card/" + serial + "/secret/k $T/envelope");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    rig->ctl({"lock", "card/" + serial});
    auto old_pin =
        rig->ctl({"unlock", "card/" + serial, "--password-stdin"}, std::string(kPin) + "\n");
    EXPECT_EQ(old_pin.exit_code, 3) << old_pin.err;
    auto new_pin = rig->ctl({"unlock", "card/" + serial, "--password-stdin"}, "654321\n");
    ASSERT_EQ(new_pin.exit_code, 0) << new_pin.err;
    r = sh("cmp $M/card/" + serial + "/secret/k $T/envelope");
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(CardMount, KeysRestoreOntoANewCardFormattedForTheVsc) {
    const std::string serial = mounted_card();
    ASSERT_EQ(unlock("card/" + serial).exit_code, 0);
    create_vsc_for(serial);
    auto r = sh("C=$M/card/" + serial + "; V=$M/vsc/" + serial + R"SH(
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $T/k.pem 2>/dev/null
        cp $T/k.pem $C/secret/k
        rsync -a $C/secret $V/
        diff -r $C/secret $V/secret)SH");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Card A is lost; card B is formatted for the VSC's keys and takes them.
    EXPECT_EQ(pcsc->stop_card(0), 0);
    pcsc->start_card(1, pcsc->dir() / "new.img");
    auto f = rig->ctl({"format", pcsc->reader(1), "--pin-stdin", "--for-vsc", serial},
                      std::string(kPin) + "\n");
    ASSERT_EQ(f.exit_code, 0) << f.err;
    EXPECT_NE(f.out.find("keys of vsc/" + serial + " importable"), std::string::npos) << f.out;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(f.out, m, std::regex("serial ([0-9a-f]+)"))) << f.out;
    const std::string fresh = m[1];
    wait_path(mnt / "card" / fresh, true);
    ASSERT_EQ(unlock("card/" + fresh).exit_code, 0);
    r = sh("V=$M/vsc/" + serial + "; B=$M/card/" + fresh + R"SH(
        rsync -a $V/secret $B/
        diff -r $V/secret $B/secret
        printf 'restored' > $T/data
        vscardctl sign card/)SH" +
           fresh + R"SH( k --in $T/data --out $T/sig
        openssl dgst -sha256 -verify $B/secret/k.pub -signature $T/sig $T/data)SH");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;  // the new card uses the restored key
    // A card not made for the VSC refuses its envelopes.
    pcsc->start_card(0, pcsc->dir() / "other.img");
    f = rig->ctl({"format", pcsc->reader(0), "--pin-stdin"}, std::string(kPin) + "\n");
    ASSERT_EQ(f.exit_code, 0) << f.err;
    ASSERT_TRUE(std::regex_search(f.out, m, std::regex("serial ([0-9a-f]+)"))) << f.out;
    const std::string other = m[1];
    wait_path(mnt / "card" / other, true);
    ASSERT_EQ(unlock("card/" + other).exit_code, 0);
    r = sh("fails cp $M/vsc/" + serial + "/secret/k $M/card/" + other + "/secret/k");
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

// DESIGN §5: a key written into card/S/secret/ goes into the card's own key store (OpenSC
// lists it and has the card sign with it); a key the card made itself shows as an entry that
// cannot be read, its public key beside it, and is deleted only on purpose.
TEST_F(CardMount, SecretKeysAreTheCardsOwnAndCardMadeKeysStayOnIt) {
    const std::string serial = mounted_card();
    ASSERT_EQ(unlock("card/" + serial).exit_code, 0);
    auto r = sh("C=$M/card/" + serial + R"SH(
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $T/k.pem 2>/dev/null
        openssl pkey -in $T/k.pem -pubout -out $T/k.pub
        cp $T/k.pem $C/secret/signing
        cmp $C/secret/signing.pub $T/k.pub)SH");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    // Third-party check: OpenSC sees the private key and its public key.
    auto keys = pcsc->run_in_rig("pkcs15-tool", {"--reader", "0", "--list-keys"});
    EXPECT_NE(keys.out.find("signing"), std::string::npos)
        << "exit " << keys.exit_code << ": " << keys.out << keys.err;
    auto pubs = pcsc->run_in_rig("pkcs15-tool", {"--reader", "0", "--list-public-keys"});
    EXPECT_NE(pubs.out.find("signing"), std::string::npos) << pubs.out << pubs.err;
    // The card signs with it (OpenSC's driver for unknown cards does no signing, so vscardctl).
    r = sh("C=$M/card/" + serial + R"SH(
        printf 'signed by the card' > $T/data
        vscardctl sign card/)SH" +
           serial + R"SH( signing < $T/data > $T/sig
        openssl dgst -sha256 -verify $C/secret/signing.pub -signature $T/sig $T/data)SH");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

    // A key made on the card: vscardctl beside the running mount.
    auto g = rig->ctl({"generate-key", "card/" + serial, "made", "--type", "p256"});
    ASSERT_EQ(g.exit_code, 0) << g.err;
    EXPECT_NE(g.out.find("-----BEGIN PUBLIC KEY-----"), std::string::npos) << g.out;
    std::ofstream(rig->dir() / "made.pub")
        << g.out.substr(g.out.find("-----BEGIN PUBLIC KEY-----"));
    EXPECT_EQ(pcsc->stop_card(0), 0);
    wait_path(mnt / "card" / serial, false);
    pcsc->start_card(0, pcsc->dir() / "card0.img");
    wait_path(mnt / "card" / serial, true);
    ASSERT_EQ(unlock("card/" + serial).exit_code, 0);
    r = sh("C=$M/card/" + serial + R"SH(
        test "$(ls $C/secret | tr '\n' ' ')" = "made made.pub signing signing.pub "
        cmp $C/secret/made.pub $T/made.pub
        out=$(cat $C/secret/made 2>&1) && exit 1
        echo "$out" | grep -q "Permission denied"
        fails rm $C/secret/made
        fails mv $C/secret/made $C/secret/moved
        fails cp $T/k.pem $C/secret/made
        test -e $C/secret/made)SH");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    // A backup copies what can be copied and says what stays on the card.
    r = sh("C=$M/card/" + serial + R"SH(
        mkdir $T/backup
        rc=0; rsync -a $C/secret/ $T/backup/ 2>$T/rsync.err || rc=$?
        echo "rsync exit $rc"
        grep -q made $T/rsync.err
        test -s $T/backup/signing && test -s $T/backup/made.pub)SH");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("rsync exit 23"), std::string::npos) << r.out;

    // vscardctl backup, verify and restore say so and succeed.
    create_vsc_for(serial);
    for (auto args :
         std::vector<std::vector<std::string>>{{"backup", "card/" + serial},
                                               {"verify", "card/" + serial, "vsc/" + serial},
                                               {"restore", "vsc/" + serial, "card/" + serial}}) {
        args.push_back("--mount");
        args.push_back(mnt.string());
        auto b = rig->ctl(args);
        EXPECT_EQ(b.exit_code, 0) << args[0] << ": " << b.out << b.err;
        EXPECT_NE(b.out.find("kept on the card: secret/made"), std::string::npos) << b.out;
    }

    // Deleting it is final, so it takes --yes.
    auto d = rig->ctl({"delete-key", "card/" + serial, "made"});
    EXPECT_EQ(d.exit_code, 2) << d.err;
    EXPECT_NE(d.err.find("--yes"), std::string::npos) << d.err;
    d = rig->ctl({"delete-key", "card/" + serial, "made", "--yes"});
    ASSERT_EQ(d.exit_code, 0) << d.err;
    keys = pcsc->run_in_rig("pkcs15-tool", {"--reader", "0", "--list-keys"});
    EXPECT_EQ(keys.out.find("made"), std::string::npos) << keys.out;
    EXPECT_NE(keys.out.find("signing"), std::string::npos) << keys.out;

    // A PIN in the agent that the card refuses (changed by another tool) is forgotten at once.
    const std::string stale = "999999";
    AgentClient(rig->agent_socket())
        .put("card/" + serial,
             ByteView(reinterpret_cast<const std::uint8_t*>(stale.data()), stale.size()),
             std::chrono::seconds(0));
    auto s =
        rig->ctl({"sign", "card/" + serial, "signing", "--in", (rig->dir() / "data").string()});
    EXPECT_EQ(s.exit_code, 3) << s.err;
    EXPECT_NE(s.err.find("tries left"), std::string::npos) << s.err;
    EXPECT_FALSE(AgentClient(rig->agent_socket()).get("card/" + serial));
}

// Issue contract: a malicious card (endless 61xx chains, oversized answers, meaningless
// status words) cannot crash or hang the daemon; the card behaves again, the mount serves it.
TEST_F(CardMount, AHostileCardCannotCrashOrHangTheMount) {
    const std::string serial = mounted_card();
    ASSERT_EQ(unlock("card/" + serial).exit_code, 0);
    auto r = sh("echo kept > $M/card/" + serial + "/public/kept");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    int n = 0;
    for (const char* mode : {"endless-61xx", "oversized", "bad-status"}) {
        SCOPED_TRACE(mode);
        EXPECT_EQ(pcsc->control(0, std::string("hostile ") + mode),
                  std::string("ok hostile ") + mode);
        const std::string file = "$M/card/" + serial + "/public/new" + std::to_string(++n);
        // cp reports an error of close(2), where a shell's redirection would not.
        r = sh("echo x > $T/x; fails cp $T/x " + file + "; ls $M/card/ > /dev/null; cat $M/card/" +
               serial + "/id/pin-tries-left");
        EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
        ASSERT_TRUE(rig->daemon(mnt).running());
    }
    EXPECT_EQ(pcsc->control(0, "hostile off"), "ok hostile off");
    // The card answers sensibly again: the mount reads it afresh and goes on.
    r = sh("C=$M/card/" + serial + R"SH(/public
        for i in $(seq 50); do echo again > $C/again 2>/dev/null && break; sleep 0.2; done
        test "$(cat $C/again)" = again
        test "$(cat $C/kept)" = kept)SH");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

}  // namespace
}  // namespace vscard::test
