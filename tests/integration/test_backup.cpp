// vscardctl backup, restore and verify (DESIGN §6) through a real mount, with emulated cards
// behind a private pcscd (DESIGN §9). `diff -r` checks what the commands claim.
#include <gtest/gtest.h>

#include "card_rig.hpp"

namespace vscard::test {
namespace {

class Backup : public CardRigTest {
protected:
    // vscardctl with --mount of the rig's mount.
    RunResult ctl(std::vector<std::string> args) {
        args.insert(args.begin() + 1, {"--mount", mnt.string()});
        return rig->ctl(std::move(args));
    }

    // The card SERIAL shown in the mount and unlocked.
    void unlocked_card(const std::string& serial) {
        wait_path(mnt / "card" / serial, true);
        auto u = unlock("card/" + serial);
        EXPECT_EQ(u.exit_code, 0) << u.err;
    }

    void expect_same(const std::string& a, const std::string& b) {
        auto r = sh("for area in public private; do diff -r $M/" + a + "/$area $M/" + b +
                    "/$area; done");
        EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    }
};

TEST_F(Backup, BackupVerifyEditBackupAgainAndRestoreOntoANewCard) {
    const std::string s = formatted_card(0);
    const std::string t = formatted_card(1);
    mnt = rig->mount();  // cards formatted while mounted would show as blank ones
    unlocked_card(s);
    unlocked_card(t);
    const std::string card = "card/" + s, vsc = "vsc/" + s, fresh = "card/" + t;
    auto r = sh("C=$M/" + card + R"SH(
        mkdir -p $C/public/docs/old $C/private/keys
        echo hello > $C/public/readme.txt
        head -c 20000 /dev/urandom > $C/public/docs/blob.bin
        echo old > $C/public/docs/old/notes
        echo secret-note > $C/private/keys/note.txt
        chmod 640 $C/public/readme.txt)SH");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

    // No VSC yet: the error says how to make one.
    auto missing = ctl({"backup", card});
    EXPECT_EQ(missing.exit_code, 1);
    EXPECT_NE(missing.err.find("vscardctl create --for-card " + s), std::string::npos)
        << missing.err;

    create_vsc_for(s);
    auto first = ctl({"backup", card});
    ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
    std::cout << first.out;
    EXPECT_NE(first.out.find(card + " -> " + vsc +
                             ": 7 copied, 0 skipped (unchanged), 0 deleted, 0 failed"),
              std::string::npos)
        << first.out;
    EXPECT_EQ(first.out.find("note:"), std::string::npos) << first.out;  // all three areas
    EXPECT_EQ(first.err, "");  // no progress bar when stderr is not a terminal
    expect_same(card, vsc);
    r = sh("test \"$(stat -c %a $M/" + vsc + "/public/readme.txt)\" = 640");
    EXPECT_EQ(r.exit_code, 0) << r.err;

    auto same = ctl({"verify", card, vsc});
    EXPECT_EQ(same.exit_code, 0) << same.out << same.err;
    EXPECT_NE(same.out.find("are identical (public/, private/, secret/: 7 objects"),
              std::string::npos)
        << same.out;

    // Edits on the card: one file changed, one folder gone, one file new.
    r = sh("C=$M/" + card + R"SH(
        echo changed, longer > $C/public/readme.txt
        rm -r $C/public/docs/old
        echo new > $C/private/keys/new.txt)SH");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    auto diff = ctl({"verify", card, vsc});
    EXPECT_EQ(diff.exit_code, 1) << diff.out << diff.err;
    EXPECT_NE(diff.out.find("differs: public/readme.txt"), std::string::npos) << diff.out;
    EXPECT_NE(diff.out.find("only in " + vsc + ": public/docs/old"), std::string::npos) << diff.out;
    EXPECT_NE(diff.out.find("only in " + card + ": private/keys/new.txt"), std::string::npos)
        << diff.out;
    EXPECT_NE(diff.err.find("differ"), std::string::npos) << diff.err;

    auto second = ctl({"backup", card, vsc});
    ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
    std::cout << second.out << diff.out;
    EXPECT_NE(second.out.find("2 copied, 4 skipped (unchanged), 2 deleted, 0 failed"),
              std::string::npos)
        << second.out;
    expect_same(card, vsc);
    EXPECT_EQ(ctl({"verify", card, vsc}).exit_code, 0);

    // Onto a new card that holds something else: mirrored, the stray file deleted. On a
    // terminal a progress bar shows.
    r = sh("echo stray > $M/" + fresh + "/public/stray");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = sh("script -qec 'vscardctl restore --mount $M " + vsc + " " + fresh +
           "' /dev/null | tr '\\r' '\\n'");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    std::cout << r.out;
    EXPECT_NE(r.out.find("6 copied, 0 skipped (unchanged), 1 deleted, 0 failed"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("6/6 objects"), std::string::npos) << r.out;
    expect_same(vsc, fresh);
    auto restored = ctl({"verify", vsc, fresh});
    EXPECT_EQ(restored.exit_code, 0) << restored.out << restored.err;

    // Pulled out and inserted again, the card has forgotten the mtimes: content tells that
    // nothing changed.
    EXPECT_EQ(pcsc->stop_card(1), 0);
    wait_path(mnt / "card" / t, false);
    pcsc->start_card(1, pcsc->dir() / "card1.img");
    wait_path(mnt / "card" / t, true);
    ASSERT_EQ(unlock(fresh).exit_code, 0);
    auto again = ctl({"restore", vsc, fresh, "--quiet"});
    EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
    EXPECT_NE(again.out.find("0 copied, 6 skipped (unchanged), 0 deleted, 0 failed"),
              std::string::npos)
        << again.out;
}

// A card too small for everything: what fits is copied, the rest is listed with its error,
// the exit status says so, and no file of the card is left half-written.
TEST_F(Backup, RestoreOntoAFullCardReportsWhatFailedAndKeepsTheOldContent) {
    const std::string s = formatted_card(0);
    const std::string t = formatted_card(1, {"--size", "40000"});
    mnt = rig->mount();
    unlocked_card(s);
    unlocked_card(t);
    create_vsc_for(s);
    const std::string vsc = "vsc/" + s, small = "card/" + t;
    auto r = sh("V=$M/" + vsc + "; T=$M/" + small + R"SH(
        head -c 20000 /dev/urandom > $V/public/a
        head -c 20000 /dev/urandom > $V/public/b
        echo new > $V/public/c
        echo old content > $T/public/b
        echo old > $T/public/c)SH");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

    auto full = ctl({"restore", vsc, small});
    std::cout << full.out << full.err;
    EXPECT_EQ(full.exit_code, 1) << full.out << full.err;
    EXPECT_NE(full.out.find("2 copied, 0 skipped (unchanged), 0 deleted, 1 failed"),
              std::string::npos)
        << full.out;
    EXPECT_NE(full.out.find("failed: public/b: "), std::string::npos) << full.out;
    EXPECT_NE(full.out.find("No space left on device"), std::string::npos) << full.out;
    EXPECT_NE(full.err.find("1 object of " + vsc + " could not be copied"), std::string::npos)
        << full.err;
    r = sh("T=$M/" + small + R"SH(
        test "$(cat $T/public/b)" = "old content"
        test "$(cat $T/public/c)" = new
        cmp $T/public/a $M/)SH" +
           vsc + R"SH(/public/a
        test "$(ls -A $T/public)" = "$(printf 'a\nb\nc')")SH");
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    auto differs = ctl({"verify", vsc, small});
    EXPECT_EQ(differs.exit_code, 1);
    EXPECT_NE(differs.out.find("differs: public/b"), std::string::npos) << differs.out;
}

TEST_F(Backup, LockedAreasMissingTargetsAndWrongDirectionsAreExplained) {
    const std::string s = formatted_card(0);
    mnt = rig->mount();
    wait_path(mnt / "card" / s, true);
    create_vsc_for(s, false);
    const std::string card = "card/" + s, vsc = "vsc/" + s;

    auto locked_card = ctl({"backup", card});
    EXPECT_EQ(locked_card.exit_code, 1);
    EXPECT_NE(locked_card.err.find(card + "/private is locked; unlock it with 'vscardctl unlock " +
                                   card + "'"),
              std::string::npos)
        << locked_card.err;
    EXPECT_EQ(locked_card.out, "");  // nothing was copied

    ASSERT_EQ(unlock(card).exit_code, 0);
    auto locked_vsc = ctl({"backup", card});
    EXPECT_EQ(locked_vsc.exit_code, 1);
    EXPECT_NE(locked_vsc.err.find(vsc + "/private is locked; unlock it with 'vscardctl unlock " +
                                  vsc + "'"),
              std::string::npos)
        << locked_vsc.err;
    auto untouched = sh("test -z \"$(ls -A $M/" + vsc + "/public)\"");
    EXPECT_EQ(untouched.exit_code, 0) << untouched.err;  // public/ was not copied either

    auto reversed = ctl({"backup", vsc, card});
    EXPECT_EQ(reversed.exit_code, 2) << reversed.err;
    EXPECT_NE(reversed.err.find("vscardctl restore"), std::string::npos) << reversed.err;
    auto absent = ctl({"restore", vsc, "card/0123"});
    EXPECT_EQ(absent.exit_code, 1);
    EXPECT_NE(absent.err.find("insert the card"), std::string::npos) << absent.err;
    auto no_mount = rig->ctl({"verify", "--mount", (rig->dir() / "nowhere").string(), card, vsc});
    EXPECT_EQ(no_mount.exit_code, 4);
    EXPECT_NE(no_mount.err.find("vscard-mountd"), std::string::npos) << no_mount.err;
}

}  // namespace
}  // namespace vscard::test
