// The card's own key store (pkcs15::CardApp import_key, generate_key, remove_key, rename_key,
// sign) on the emulator: keys the card uses but never gives back, written in an order that
// survives the card being pulled at any APDU.
#include <gtest/gtest.h>

#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "card_app_util.hpp"
#include "error.hpp"
#include "key_test_util.hpp"
#include "store_test_util.hpp"

namespace vscard::pkcs15 {
namespace {

using testing::bv;
using testing::byte_pattern;
using testing::formatted_image;
using testing::kPin;
using testing::TestCard;

const Bytes kMessage = byte_pattern(100, 9);

// A key as the card takes it.
struct TestKey {
    Bytes pkcs8;
    Bytes spki;
};

TestKey test_key(EVP_PKEY* key) {
    return {testing::pkcs8_of(key), testing::spki_of(key)};
}

EVP_PKEY* test_p384_key() {
    static testing::Pkey key(EVP_EC_gen("P-384"));
    return key.get();
}

// Whether key LABEL of the card signs kMessage so that public key SPKI verifies it.
bool signs(CardApp& app, const std::string& label, ByteView spki, bool rsa) {
    Bytes sig =
        app.sign(label, rsa ? testing::digest_info_sha256(kMessage) : testing::sha256(kMessage));
    testing::Pkey pub = testing::public_key_of(spki);
    return pub && testing::verify_sha256(pub.get(), kMessage, rsa ? sig : testing::ecdsa_der(sig));
}

// Files in the key FID range of the application (key files and public key files).
std::size_t key_range_files(const TestCard& card) {
    std::size_t n = 0;
    for (const auto& c : card.emu.image().mf->child(0x5015)->children)
        if (c->fid >= 0x4600 && c->fid <= 0x47FF) ++n;
    return n;
}

// label -> SubjectPublicKeyInfo of every key a fresh session finds, after checking that each
// one signs with the public key recorded beside it.
std::map<std::string, Bytes> key_view(TestCard& card) {
    card.link.reinsert();
    CardApp app = card.open();
    app.verify_pin(bv(kPin));
    std::map<std::string, Bytes> out;
    for (const auto& k : app.private_keys()) {
        auto spki = app.public_key(k.common.label);
        EXPECT_TRUE(spki) << "no public key for " << k.common.label;
        if (!spki) continue;
        const bool rsa = k.kind == KeyKind::PrivateRsa;
        EXPECT_TRUE(signs(app, k.common.label, *spki, rsa)) << k.common.label;
        EXPECT_TRUE(out.emplace(k.common.label, *spki).second) << "two keys " << k.common.label;
    }
    return out;
}

class CardKeys : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        rsa_ = test_key(testing::test_rsa_key());
        ec_ = test_key(testing::test_ec_key());
        ec384_ = test_key(test_p384_key());
    }
    static inline std::optional<TestKey> rsa_, ec_, ec384_;
};

TEST_F(CardKeys, ImportedKeysSignAndNeverReadBack) {
    TestCard card(formatted_image());
    {
        CardApp app = card.open();
        app.verify_pin(bv(kPin));
        app.import_key("rsa", rsa_->pkcs8, rsa_->spki);
        app.import_key("ec", ec_->pkcs8, ec_->spki);
        app.import_key("ec384", ec384_->pkcs8, ec384_->spki);
        EXPECT_TRUE(signs(app, "rsa", rsa_->spki, true));
        EXPECT_TRUE(signs(app, "ec", ec_->spki, false));
        EXPECT_TRUE(signs(app, "ec384", ec384_->spki, false));
    }
    card.link.reinsert();
    CardApp app = card.open();
    auto rsa = app.private_key("rsa");
    ASSERT_TRUE(rsa);
    EXPECT_EQ(rsa->kind, KeyKind::PrivateRsa);
    EXPECT_EQ(rsa->key_size, 2048);
    EXPECT_EQ(rsa->usage, kUsageSign | kUsageDecrypt);
    EXPECT_EQ(rsa->access_flags, kAccessSensitive);  // imported: not made on the card
    EXPECT_TRUE(rsa->common.is_private());
    auto ec = app.private_key("ec");
    ASSERT_TRUE(ec);
    EXPECT_EQ(ec->kind, KeyKind::PrivateEc);
    EXPECT_EQ(ec->key_size, 256);
    EXPECT_EQ(app.public_key("ec"), ec_->spki);  // no PIN needed for public keys
    // Without the PIN the card refuses to use the key; with it, it never gives it out.
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, app.sign("ec", testing::sha256(kMessage)));
    app.verify_pin(bv(kPin));
    EXPECT_TRUE(signs(app, "ec", ec_->spki, false));
    app.iso().select_path(ec->path.value);  // absolute: the application's path and the FID
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, app.iso().read_binary(0, 16));
    EXPECT_EQ(key_range_files(card), 6u);
}

TEST_F(CardKeys, ImportingTheSameKeyAgainChangesNothing) {
    TestCard card(formatted_image());
    CardApp app = card.open();
    app.verify_pin(bv(kPin));
    app.import_key("k", ec_->pkcs8, ec_->spki);
    const auto used = card.emu.image().used();
    const auto before = card.emu.image().serialize();
    const std::size_t sent = card.link.sent();
    app.import_key("k", ec_->pkcs8, ec_->spki);
    EXPECT_EQ(card.emu.image().serialize(), before);
    EXPECT_EQ(card.emu.image().used(), used);
    std::cout << "[ measured ] import of a key already there: " << card.link.sent() - sent
              << " APDUs\n";
    EXPECT_LE(card.link.sent() - sent, 6u);  // the key directories read again, nothing written
}

TEST_F(CardKeys, TheApduLogNeverShowsTheKey) {
    TestCard card(formatted_image());
    card.log.enable();
    CardApp app = card.open();
    app.verify_pin(bv(kPin));
    app.import_key("k", rsa_->pkcs8, rsa_->spki);
    ASSERT_TRUE(signs(app, "k", rsa_->spki, true));
    const ByteView middle(rsa_->pkcs8.data() + 600, 12);
    std::size_t withheld = 0;
    for (const auto& line : card.log.lines()) {
        EXPECT_EQ(line.find(card::to_hex(middle, " ")), std::string::npos) << line;
        EXPECT_EQ(line.find(card::to_hex(middle, "")), std::string::npos) << line;
        if (line.find("withheld") != std::string::npos) ++withheld;
    }
    EXPECT_GT(withheld, 0u);
}

TEST_F(CardKeys, ReplacingAKeyLeavesNoFileOfTheOldOne) {
    TestCard card(formatted_image());
    CardApp app = card.open();
    app.verify_pin(bv(kPin));
    app.import_key("k", ec_->pkcs8, ec_->spki);
    const auto used = card.emu.image().used();
    app.import_key("k", ec384_->pkcs8, ec384_->spki);
    EXPECT_TRUE(signs(app, "k", ec384_->spki, false));
    EXPECT_EQ(app.public_key("k"), ec384_->spki);
    EXPECT_EQ(app.private_keys().size(), 1u);
    EXPECT_EQ(app.public_keys().size(), 1u);
    EXPECT_EQ(key_range_files(card), 2u);
    EXPECT_GT(card.emu.image().used(), used);  // the P-384 key is larger
    app.import_key("k", ec_->pkcs8, ec_->spki);
    EXPECT_EQ(card.emu.image().used(), used);
    EXPECT_EQ(key_view(card), (std::map<std::string, Bytes>{{"k", ec_->spki}}));
}

TEST_F(CardKeys, GeneratedKeysSignAndSayTheyWereMadeOnTheCard) {
    TestCard card(formatted_image());
    CardApp app = card.open();
    app.verify_pin(bv(kPin));
    const Bytes p256 = app.generate_key("gen", card::GeneratedKeyType::EcP256);
    const Bytes p384 = app.generate_key("gen384", card::GeneratedKeyType::EcP384);
    EXPECT_TRUE(signs(app, "gen", p256, false));
    EXPECT_TRUE(signs(app, "gen384", p384, false));
    EXPECT_EQ(app.private_key("gen")->access_flags,
              kAccessSensitive | kAccessAlwaysSensitive | kAccessNeverExtractable | kAccessLocal);
    EXPECT_EQ(app.public_key("gen"), p256);
    EXPECT_VSC_ERROR(ErrorKind::Exists, EEXIST,
                     app.generate_key("gen", card::GeneratedKeyType::EcP256));
    EXPECT_EQ(key_view(card), (std::map<std::string, Bytes>{{"gen", p256}, {"gen384", p384}}));
}

TEST_F(CardKeys, GeneratedRsaKeySigns) {
    TestCard card(formatted_image());
    CardApp app = card.open();
    app.verify_pin(bv(kPin));
    const Bytes spki = app.generate_key("rsa", card::GeneratedKeyType::Rsa, 2048);
    EXPECT_TRUE(signs(app, "rsa", spki, true));
    EXPECT_EQ(app.private_key("rsa")->key_size, 2048);
}

TEST_F(CardKeys, RemovingAndRenamingKeys) {
    TestCard card(formatted_image());
    CardApp app = card.open();
    app.verify_pin(bv(kPin));
    const auto used = card.emu.image().used();
    app.import_key("a", ec_->pkcs8, ec_->spki);
    app.import_key("b", rsa_->pkcs8, rsa_->spki);
    app.rename_key("a", "c");
    EXPECT_FALSE(app.private_key("a"));
    EXPECT_TRUE(signs(app, "c", ec_->spki, false));
    EXPECT_VSC_ERROR(ErrorKind::Exists, EEXIST, app.rename_key("c", "b"));
    EXPECT_EQ(key_view(card), (std::map<std::string, Bytes>{{"b", rsa_->spki}, {"c", ec_->spki}}));
    card.link.reinsert();
    CardApp again = card.open();
    again.verify_pin(bv(kPin));
    again.remove_key("b");
    again.remove_key("c");
    EXPECT_TRUE(again.private_keys().empty());
    EXPECT_TRUE(again.public_keys().empty());
    EXPECT_EQ(key_range_files(card), 0u);
    EXPECT_EQ(card.emu.image().used(), used);
    EXPECT_THROW(again.remove_key("c"), Error);
}

TEST_F(CardKeys, AFullCardKeepsItsKeys) {
    TestCard card(formatted_image(6 * 1024));
    CardApp app = card.open();
    app.verify_pin(bv(kPin));
    app.import_key("small", ec_->pkcs8, ec_->spki);
    // Fill the card until an RSA key (about 1.5 KiB with its public key) no longer fits.
    for (int i = 0; card.emu.image().available() > 1200; ++i)
        app.write(Area::Public, "fill" + std::to_string(i), byte_pattern(256));
    const auto before = card.emu.image().serialize();
    EXPECT_VSC_ERROR(ErrorKind::NoSpace, ENOSPC, app.import_key("big", rsa_->pkcs8, rsa_->spki));
    EXPECT_EQ(card.emu.image().serialize(), before);
    EXPECT_VSC_ERROR(ErrorKind::NoSpace, ENOSPC, app.import_key("small", rsa_->pkcs8, rsa_->spki));
    EXPECT_EQ(key_view(card), (std::map<std::string, Bytes>{{"small", ec_->spki}}));
}

// vscardctl and the mount hold two models of one card: a key written through one must not
// be lost by a key write through the other.
TEST_F(CardKeys, AKeyWrittenByAnotherProgramIsKept) {
    TestCard card(formatted_image());
    CardApp mount = card.open();
    mount.verify_pin(bv(kPin));
    mount.import_key("first", ec_->pkcs8, ec_->spki);
    Bytes generated;
    {
        TestCard& same = card;
        CardApp other = same.open();
        other.verify_pin(bv(kPin));
        generated = other.generate_key("other", card::GeneratedKeyType::EcP256);
    }
    mount.import_key("second", rsa_->pkcs8, rsa_->spki);
    mount.write(Area::Public, "data", byte_pattern(500));
    mount.remove_key("first");
    EXPECT_EQ(key_view(card),
              (std::map<std::string, Bytes>{{"other", generated}, {"second", rsa_->spki}}));
}

// Pulling the card at every APDU of a key write: a fresh session finds the keys as before or
// as after, each usable with the public key beside it, and the next key write reclaims what
// the cut left behind.
TEST_F(CardKeys, EveryCutLeavesTheOldOrTheNewKeys) {
    struct Op {
        const char* name;
        std::function<void(CardApp&)> run;
    };
    const std::vector<Op> ops = {
        {"import", [](CardApp& a) { a.import_key("new", ec_->pkcs8, ec_->spki); }},
        {"replace", [](CardApp& a) { a.import_key("old", ec384_->pkcs8, ec384_->spki); }},
        {"remove", [](CardApp& a) { a.remove_key("old"); }},
        {"rename", [](CardApp& a) { a.rename_key("old", "renamed"); }},
        {"generate", [](CardApp& a) { a.generate_key("gen", card::GeneratedKeyType::EcP256); }},
    };
    card::emu::CardImage base;
    {
        TestCard card(formatted_image(16 * 1024));
        CardApp app = card.open();
        app.verify_pin(bv(kPin));
        app.import_key("old", rsa_->pkcs8, rsa_->spki);
        app.write(Area::Public, "a.txt", byte_pattern(300));
        base = card.emu.image().clone();
    }
    TestCard first(base.clone());
    const auto before = key_view(first);
    std::size_t cuts = 0;
    for (const Op& op : ops) {
        TestCard ref(base.clone());
        std::size_t total = 0;
        {
            CardApp app = ref.open();
            app.verify_pin(bv(kPin));
            const std::size_t start = ref.link.sent();
            op.run(app);
            total = ref.link.sent() - start;
        }
        const auto after = key_view(ref);
        ASSERT_NE(after, before) << op.name;
        std::cout << "[ measured ] key " << op.name << ": " << total << " APDUs\n";
        for (std::size_t n = 0; n < total; ++n) {
            for (bool applied : {false, true}) {
                SCOPED_TRACE(std::string(op.name) + " cut at APDU " + std::to_string(n) +
                             (applied ? " (applied)" : " (never arrived)"));
                TestCard card(base.clone());
                {
                    CardApp app = card.open();
                    app.verify_pin(bv(kPin));
                    card.link.cut_after(n, applied);
                    EXPECT_THROW(op.run(app), Error);
                }
                const auto now = key_view(card);
                ++cuts;
                // A generated key the cut left without its PrKDF entry is gone with the cut;
                // one that has it is the new state (its public key is the card's own).
                if (op.name == std::string("generate") && now.size() == after.size())
                    EXPECT_TRUE(now.count("gen"));
                else if (now != before && now != after)
                    ADD_FAILURE() << "neither the old nor the new keys";
                // The next key write takes the leftovers' FIDs back.
                card.link.reinsert();
                CardApp again = card.open();
                again.verify_pin(bv(kPin));
                const std::size_t keys = again.private_keys().size();
                again.import_key("recovered", ec_->pkcs8, ec_->spki);
                again.remove_key("recovered");
                EXPECT_EQ(again.public_keys().size(), keys) << "a public key without its key";
                EXPECT_EQ(key_range_files(card), 2 * keys) << "a leftover key file stayed";
            }
        }
    }
    std::cout << "[ measured ] " << cuts << " cuts of key writes\n";
}

}  // namespace
}  // namespace vscard::pkcs15
