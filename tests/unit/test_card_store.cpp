// The card medium beyond the conformance suite: what only a card does (labels written by
// other programs, whole-label limits, metadata that lasts one insertion, the PIN asked for
// when the card wants it, removal and reset in the middle of work).
#include <gtest/gtest.h>

#include "card_app_util.hpp"
#include "key_test_util.hpp"
#include "keys.hpp"
#include "store_test_util.hpp"
#include "test_media.hpp"
#include "vfs/area_fs.hpp"
#include "vfs/card_family_key.hpp"
#include "vfs/card_session.hpp"
#include "vfs/card_store.hpp"
#include "vfs/secret_policy.hpp"

namespace vscard {
namespace {

using testing::bv;
using testing::EmulatorChannel;
using testing::FixedPin;
using testing::kPin;
using testing::TestCard;

using testing::P;

class CardStoreTest : public ::testing::Test {
protected:
    CardStoreTest() : card_(testing::formatted_image(64 * 1024)) {}

    // A new session: the card inserted, the PIN source answering PIN.
    void start_session(std::string_view pin) {
        auto channel = std::make_unique<EmulatorChannel>(card_.link);
        channel_ = channel.get();
        session_ = std::make_shared<CardSession>(std::move(channel), "Test PCD 00 00",
                                                 card_.emu.atr(), &card_.log);
        pins_ = std::make_shared<FixedPin>(pin);
        session_->set_pin_source(pins_);
    }
    // A new session (the card inserted), its public or private area as a filesystem.
    std::unique_ptr<AreaFs> insert(pkcs15::Area area = pkcs15::Area::Public,
                                   std::string_view pin = kPin) {
        start_session(pin);
        CardAreaStore::Options options;
        options.area = area;
        options.name = "card/" + session_->serial() + "/" + pkcs15::area_name(area);
        options.time = Timestamp{1000, 0};
        options.file_mode = area == pkcs15::Area::Public ? 0644 : 0600;
        options.dir_mode = area == pkcs15::Area::Public ? 0755 : 0700;
        return std::make_unique<AreaFs>(
            std::make_shared<CardAreaStore>(session_, options),
            area == pkcs15::Area::Public ? Area::Public : Area::Private);
    }
    // The secret area under FAMILY, as the mount opens it.
    std::unique_ptr<AreaFs> insert_secret(const SecureBytes& family) {
        start_session(kPin);
        CardAreaStore::Options options;
        options.area = pkcs15::Area::Vscard;
        options.label_prefix = pkcs15::kSecretLabelPrefix;
        options.family_key = family;
        options.name = "card/" + session_->serial() + "/secret";
        options.time = Timestamp{1000, 0};
        options.file_mode = 0600;
        options.dir_mode = 0700;
        return std::make_unique<AreaFs>(std::make_shared<CardAreaStore>(session_, options),
                                        Area::Secret, std::make_shared<SecretKeyPolicy>(family));
    }
    std::unique_ptr<AreaFs> reinsert(pkcs15::Area area = pkcs15::Area::Public) {
        card_.link.reinsert();
        return insert(area);
    }

    static void put(AreaFs& fs, const std::string& path, const std::string& data) {
        auto h = fs.create(P(path), 0644, false);
        fs.ftruncate(*h, 0);
        EXPECT_EQ(fs.write(*h, 0, data.data(), data.size()), data.size());
        fs.release(*h);
    }
    static std::string get(AreaFs& fs, const std::string& path) {
        auto h = fs.open(P(path), false, false);
        std::string out(static_cast<std::size_t>(fs.fgetattr(*h).size), '\0');
        out.resize(fs.read(*h, 0, out.size(), out.data()));
        fs.release(*h);
        return out;
    }
    // The card as another program sees it.
    pkcs15::CardApp app() {
        card_.link.reinsert();
        auto a = card_.open();
        a.verify_pin(bv(kPin));
        return a;
    }

    TestCard card_;
    EmulatorChannel* channel_ = nullptr;
    std::shared_ptr<CardSession> session_;
    std::shared_ptr<FixedPin> pins_;
};

TEST_F(CardStoreTest, FilesBecomeDataObjectsNamedByTheirPath) {
    auto fs = insert();
    fs->mkdir(P("docs"), 0755);
    fs->mkdir(P("docs/empty"), 0755);
    put(*fs, "docs/a.txt", "alpha");
    put(*fs, "top", "t");
    fs->rename(P("top"), P("docs/top"), false);
    auto a = app();
    std::vector<std::string> labels;
    for (const auto& f : a.list(pkcs15::Area::Public)) labels.push_back(f.label);
    std::sort(labels.begin(), labels.end());
    EXPECT_EQ(labels, (std::vector<std::string>{"docs/", "docs/a.txt", "docs/empty/", "docs/top"}));
    EXPECT_EQ(testing::bytes_of(a.read(pkcs15::Area::Public, "docs/a.txt")),
              Bytes({'a', 'l', 'p', 'h', 'a'}));
}

TEST_F(CardStoreTest, ObjectsWrittenByOtherProgramsShowWithTheirFolders) {
    {
        auto a = app();
        a.write(pkcs15::Area::Public, "x/y/deep.txt", bv("deep"));
        a.write(pkcs15::Area::Private, "p.txt", bv("private"));
    }
    auto fs = reinsert();
    EXPECT_EQ(get(*fs, "x/y/deep.txt"), "deep");
    EXPECT_EQ(fs->getattr(P("x/y")).kind, NodeKind::Dir);
    EXPECT_EQ(fs->getattr(P("x/y/deep.txt")).mode, 0644u);
    EXPECT_EQ(fs->getattr(P("x/y/deep.txt")).mtime, (Timestamp{1000, 0}));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, fs->getattr(P("p.txt")));
    // The last object of a folder known only from labels goes: the folder stays.
    fs->unlink(P("x/y/deep.txt"));
    fs = reinsert();
    EXPECT_EQ(fs->getattr(P("x/y")).kind, NodeKind::Dir);
    auto priv = reinsert(pkcs15::Area::Private);
    EXPECT_EQ(get(*priv, "p.txt"), "private");
    EXPECT_EQ(priv->getattr(P("p.txt")).mode, 0600u);
}

TEST_F(CardStoreTest, ModeAndMtimeLastOneInsertion) {
    auto fs = insert();
    put(*fs, "f", "data");
    fs->chmod(P("f"), 0600);
    fs->set_mtime(P("f"), Timestamp{1234, 5});
    EXPECT_EQ(fs->getattr(P("f")).mode, 0600u);
    EXPECT_EQ(fs->getattr(P("f")).mtime, (Timestamp{1234, 5}));
    EXPECT_VSC_ERROR(ErrorKind::NotSupported, ENOTSUP, fs->setxattr(P("f"), "user.a", "v", 0));
    fs = reinsert();
    EXPECT_EQ(fs->getattr(P("f")).mode, 0644u);
    EXPECT_EQ(fs->getattr(P("f")).mtime, (Timestamp{1000, 0}));
    EXPECT_EQ(get(*fs, "f"), "data");
}

TEST_F(CardStoreTest, LimitsOfTheCard) {
    auto fs = insert();
    const std::string longest(pkcs15::kMaxLabelBytes - 2, 'n');
    fs->mkdir(P("d"), 0755);
    put(*fs, "d/" + longest, "fits");
    EXPECT_VSC_ERROR(ErrorKind::NameTooLong, ENAMETOOLONG,
                     put(*fs, "d/" + longest + "x", "too long with its folder"));
    auto h = fs->create(P("big"), 0644, true);
    const std::string max(pkcs15::kMaxObjectSize, 'b');
    EXPECT_EQ(fs->write(*h, 0, max.data(), max.size()), max.size());
    EXPECT_VSC_ERROR(ErrorKind::TooBig, EFBIG, fs->write(*h, max.size(), "x", 1));
    fs->release(*h);
    fs = reinsert();
    EXPECT_EQ(get(*fs, "d/" + longest), "fits");
    EXPECT_EQ(get(*fs, "big"), max);
}

TEST_F(CardStoreTest, FullCardLeavesPreviousContent) {
    auto fs = insert();
    put(*fs, "keep", "previous content");
    const std::string huge(30000, 'h');
    EXPECT_VSC_ERROR(ErrorKind::NoSpace, ENOSPC, {
        put(*fs, "fill1", huge);
        put(*fs, "fill2", huge);
        put(*fs, "keep", huge);
    });
    EXPECT_EQ(get(*fs, "keep").substr(0, 16), get(*reinsert(), "keep").substr(0, 16));
    EXPECT_EQ(get(*reinsert(), "keep"), "previous content");
}

TEST(CardStoreFull, OpenWithTruncateThenTooMuchKeepsThePreviousContent) {
    TestCard card(testing::formatted_image(40000));
    auto session = std::make_shared<CardSession>(std::make_unique<EmulatorChannel>(card.link),
                                                 "Test PCD 00 00", card.emu.atr(), &card.log);
    session->set_pin_source(std::make_shared<FixedPin>(kPin));
    CardAreaStore::Options options;
    options.name = "card/x/public";
    AreaFs fs(std::make_shared<CardAreaStore>(session, options), Area::Public);
    auto put = [&](const std::string& path, const std::string& data, bool truncate) {
        auto h = truncate ? fs.open(P(path), true, true) : fs.create(P(path), 0644, true);
        fs.write(*h, 0, data.data(), data.size());
        fs.release(*h);
    };
    put("keep", "keep", false);
    put("a", std::string(15000, 'a'), false);
    EXPECT_VSC_ERROR(ErrorKind::NoSpace, ENOSPC, put("keep", std::string(30000, 'k'), true));
    auto h = fs.open(P("keep"), false, false);
    EXPECT_EQ(fs.fgetattr(*h).size, 4u);
    fs.release(*h);
    auto a = testing::TestCard(card.emu.image().clone());
    auto app = a.open();
    EXPECT_EQ(testing::bytes_of(app.read(pkcs15::Area::Public, "keep")),
              Bytes({'k', 'e', 'e', 'p'}));
}

TEST_F(CardStoreTest, ObjectsAnotherProgramWroteMeanwhileAreNeverOverwritten) {
    auto fs = insert();
    put(*fs, "mine-1", "1");
    {
        // Another program (its own connection) adds an object to the same DODF.
        TestCard other(card_.emu.image().clone());
        card::Emulator& shared = card_.emu;
        testing::EmulatorLink link(shared);
        pkcs15::OpenOptions o;
        o.caps = card::caps_from_atr(shared.atr());
        auto app = pkcs15::CardApp::open(link, o);
        app.verify_pin(bv(kPin));
        app.write(pkcs15::Area::Public, "theirs", bv("theirs"));
    }
    put(*fs, "mine-2", "2");
    auto a = app();
    std::vector<std::string> labels;
    for (const auto& f : a.list(pkcs15::Area::Public)) labels.push_back(f.label);
    std::sort(labels.begin(), labels.end());
    EXPECT_EQ(labels, (std::vector<std::string>{"mine-1", "mine-2", "theirs"}));
}

TEST(CardFamilyKey, WrapsUnderThePinAndTheSerial) {
    const SecureBytes key = secure_from("0123456789abcdef0123456789abcdef");
    Bytes wrapped = wrap_family_key(key, bv("1234"), "serial-1", std::chrono::milliseconds(5));
    EXPECT_EQ(unwrap_family_key(wrapped, bv("1234"), "serial-1"), key);
    EXPECT_VSC_ERROR(ErrorKind::WrongPassword, EACCES,
                     unwrap_family_key(wrapped, bv("4321"), "serial-1"));
    EXPECT_VSC_ERROR(ErrorKind::WrongPassword, EACCES,
                     unwrap_family_key(wrapped, bv("1234"), "serial-2"));
    wrapped[7] ^= 0xff;  // N
    EXPECT_THROW(unwrap_family_key(wrapped, bv("1234"), "serial-1"), Error);
    EXPECT_VSC_ERROR(ErrorKind::Corrupt, EIO, unwrap_family_key(bv("not a key"), bv("1"), "s"));
}

TEST_F(CardStoreTest, FamilyKeyIsMadeOnceAndReadBack) {
    auto a = app();
    SecureBytes first = card_family_key(a, bv(kPin), true, std::chrono::milliseconds(5));
    EXPECT_EQ(card_family_key(a, bv(kPin), false), first);
    auto b = app();  // a new session reads it from the card
    EXPECT_EQ(card_family_key(b, bv(kPin), true), first);
    EXPECT_FALSE(b.find(pkcs15::Area::Private, kFamilyKeyLabel));  // not among the user's files
}

TEST_F(CardStoreTest, PinChangeRewrapsTheFamilyKeyAndSurvivesInterruption) {
    SecureBytes key;
    {
        auto a = app();
        key = card_family_key(a, bv(kPin), true, std::chrono::milliseconds(5));
    }
    // Pulled out at every APDU of the change: afterwards the key opens with whichever PIN
    // the card has.
    for (std::size_t cut = 0;; ++cut) {
        SCOPED_TRACE("cut after " + std::to_string(cut));
        card_.link.reinsert();
        auto a = card_.open();
        card_.link.cut_after(cut, cut % 2 == 1);
        bool done = true;
        try {
            change_card_pin(a, bv(kPin), bv("5678"), std::chrono::milliseconds(5));
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::Io) << e.what();
            done = false;
        }
        card_.link.reinsert();
        auto b = card_.open();
        std::string pin(kPin);
        try {
            b.verify_pin(bv(pin));
        } catch (const card::PinError&) {
            pin = "5678";
            b.verify_pin(bv(pin));
        }
        EXPECT_EQ(card_family_key(b, bv(pin), false), key);
        if (pin == "5678") change_card_pin(b, bv(pin), bv(kPin), std::chrono::milliseconds(5));
        if (done) break;
    }
}

TEST_F(CardStoreTest, PinIsAskedForWhenTheCardWantsItAndAWrongOneIsForgotten) {
    auto fs = insert(pkcs15::Area::Public, "9999");  // a wrong PIN in the source
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, put(*fs, "f", "data"));
    EXPECT_TRUE(pins_->forgotten());
    EXPECT_EQ(session_->pin_status().tries_left, 2);
    // Asked again: the source has nothing now, no further try is spent.
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, put(*fs, "f", "data"));
    EXPECT_EQ(session_->pin_status().tries_left, 2);

    fs = reinsert();  // the right PIN
    put(*fs, "f", "data");
    EXPECT_TRUE(session_->pin_status().verified);
    // After a reset the card has forgotten the PIN: verified again when needed.
    channel_->reset();
    put(*fs, "f", "after reset");
    EXPECT_EQ(get(*reinsert(), "f"), "after reset");
}

TEST_F(CardStoreTest, RemovalMidWriteIsAnIoErrorAndLosesNothing) {
    auto fs = insert();
    put(*fs, "f", "old content");
    for (std::size_t cut = 0; cut < 12; ++cut) {
        SCOPED_TRACE("cut after " + std::to_string(cut));
        auto h = fs->open(P("f"), true, false);
        fs->write(*h, 0, "NEW CONTENT", 11);
        card_.link.cut_after(cut, cut % 2 == 1);
        bool failed = false;
        try {
            fs->release(*h);
        } catch (const Error& e) {
            failed = true;
            EXPECT_EQ(e.kind(), ErrorKind::Io) << e.what();
        }
        fs = reinsert();
        std::string now = get(*fs, "f");
        EXPECT_TRUE(now == "old content" || now == "NEW CONTENT") << now;
        if (!failed) {
            EXPECT_EQ(now, "NEW CONTENT");
        }
        put(*fs, "f", "old content");
    }
}

// ---- the secret area and the card's own key store ----------------------------------------

class CardSecretTest : public CardStoreTest {
protected:
    const SecureBytes family_ = secure_from("0123456789abcdef0123456789abcdef");

    static std::string as_string(const Bytes& b) { return std::string(b.begin(), b.end()); }

    // Whether the card's key LABEL signs with the public key SPKI.
    bool card_signs(const std::string& label, ByteView spki) {
        auto a = app();
        const Bytes message = testing::byte_pattern(64);
        Bytes sig = a.sign(label, testing::sha256(message));
        testing::Pkey pub = testing::public_key_of(spki);
        return pub && testing::verify_sha256(pub.get(), message, testing::ecdsa_der(sig));
    }
    std::size_t key_files() {
        std::size_t n = 0;
        for (const auto& c : card_.emu.image().mf->child(0x5015)->children)
            if (c->fid >= 0x4600 && c->fid <= 0x47FF) ++n;
        return n;
    }
};

TEST_F(CardSecretTest, AKeyWrittenIntoSecretGoesIntoTheCardsKeyStore) {
    const Bytes der = testing::pkcs8_of(testing::test_ec_key());
    const Bytes spki = testing::spki_of(testing::test_ec_key());
    {
        auto fs = insert_secret(family_);
        put(*fs, "signing", as_string(der));
        EXPECT_EQ(get(*fs, "signing").rfind("-----BEGIN VSCARD KEY ENVELOPE-----", 0), 0u);
        EXPECT_EQ(get(*fs, "signing.pub").rfind("-----BEGIN PUBLIC KEY-----", 0), 0u);
    }
    EXPECT_TRUE(card_signs("signing", spki));
    EXPECT_EQ(key_files(), 2u);
    {
        // The envelope moves the key with it; an envelope written again changes nothing.
        auto fs = insert_secret(family_);
        const std::string envelope = get(*fs, "signing");
        fs->rename(P("signing"), P("renamed"), false);
        put(*fs, "renamed", envelope);
    }
    EXPECT_FALSE(app().private_key("signing"));
    EXPECT_TRUE(card_signs("renamed", spki));
    EXPECT_EQ(key_files(), 2u);
    {
        auto fs = insert_secret(family_);
        fs->unlink(P("renamed"));
    }
    EXPECT_TRUE(app().private_keys().empty());
    EXPECT_EQ(key_files(), 0u);
}

TEST_F(CardSecretTest, AnotherKeyOverAnEntryReplacesTheCardsKey) {
    testing::Pkey other(EVP_EC_gen("P-256"));
    {
        auto fs = insert_secret(family_);
        put(*fs, "k", as_string(testing::pkcs8_of(testing::test_ec_key())));
        put(*fs, "k", as_string(testing::pkcs8_of(other.get())));
    }
    EXPECT_TRUE(card_signs("k", testing::spki_of(other.get())));
    EXPECT_EQ(app().private_keys().size(), 1u);
    EXPECT_EQ(key_files(), 2u);
}

TEST_F(CardSecretTest, KeysTheCardMadeShowAsEntriesThatCannotBeOpened) {
    Bytes spki;
    {
        auto a = app();
        spki = a.generate_key("made-here", card::GeneratedKeyType::EcP256);
    }
    auto fs = insert_secret(family_);
    std::vector<std::string> names;
    for (const auto& [name, attr] : fs->readdir(P(""))) names.push_back(name);
    EXPECT_EQ(names, (std::vector<std::string>{"made-here", "made-here.pub"}));
    EXPECT_EQ(get(*fs, "made-here.pub"), keys::public_pem_of_spki(spki));
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, fs->open(P("made-here"), false, false));
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, fs->create(P("made-here"), 0600, false));
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, fs->open(P("made-here.pub"), true, false));
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, fs->unlink(P("made-here")));
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, fs->unlink(P("made-here.pub")));
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, fs->rename(P("made-here"), P("elsewhere"), false));
    put(*fs, "other", as_string(testing::pkcs8_of(testing::test_ec_key())));
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, fs->rename(P("other"), P("made-here"), false));
    // Still there, and still the card's.
    EXPECT_TRUE(card_signs("made-here", spki));
    auto again = insert_secret(family_);
    EXPECT_EQ(again->readdir(P("")).size(), 4u);
}

// What another program (a card issuer's tool) put in the card's CDF and PuKDF shows in
// public/: certificates as NAME.crt (DER), public keys of no key of the card as NAME.pub
// (PEM), read-only.
TEST_F(CardStoreTest, CertificatesAndPublicKeysOfTheCardShowReadOnlyInPublic) {
    const Bytes cert_der = testing::byte_pattern(700, 5);  // shown as stored, not parsed
    const Bytes spki = testing::spki_of(testing::test_ec_key());
    {
        auto a = app();
        card::Iso7816& iso = a.iso();
        auto put_file = [&](std::uint16_t fid, const Bytes& data) {
            iso.select_path(Bytes{0x3F, 0x00, 0x50, 0x15});
            card::FileSpec spec;
            spec.fid = fid;
            spec.size = data.size();
            iso.create_file(spec);
            iso.update_binary(0, data);
        };
        put_file(0x5100, cert_der);
        put_file(0x5101, spki);
        auto rewrite = [&](pkcs15::DfType type, const Bytes& entries) {
            iso.select_path(Bytes{0x3F, 0x00, 0x50, 0x15, 0x50, 0x31});
            for (const auto& e : pkcs15::parse_odf(iso.read_file(std::nullopt)))
                if (const auto* o = std::get_if<pkcs15::OdfEntry>(&e); o && o->type == type) {
                    iso.select_path(o->path.value);
                    iso.update_binary(0, entries);
                }
        };
        pkcs15::CertObject cert;
        cert.common.label = "Card Authentication";
        cert.id = {0x01};
        cert.path = pkcs15::Path::from_hex("3F0050155100");
        rewrite(pkcs15::DfType::CDF, pkcs15::serialize_cdf({cert}));
        pkcs15::KeyObject pub;
        pub.kind = pkcs15::KeyKind::PublicEc;
        pub.common.label = "issuer";
        pub.id = {0x02};
        pub.usage = pkcs15::kUsageVerify;
        pub.path = pkcs15::Path::from_hex("3F0050155101");
        rewrite(pkcs15::DfType::PuKDF, pkcs15::serialize_pukdf({pub}));
    }
    auto fs = reinsert(pkcs15::Area::Public);
    put(*fs, "notes.txt", "mine");
    std::vector<std::string> names;
    for (const auto& [name, attr] : fs->readdir(P(""))) names.push_back(name);
    EXPECT_EQ(names,
              (std::vector<std::string>{"Card Authentication.crt", "issuer.pub", "notes.txt"}));
    EXPECT_EQ(get(*fs, "Card Authentication.crt"), std::string(cert_der.begin(), cert_der.end()));
    EXPECT_EQ(get(*fs, "issuer.pub"), keys::public_pem_of_spki(spki));
    // Read-only, and the same date at every insertion: the card keeps none.
    const Attr cert = fs->getattr(P("Card Authentication.crt"));
    EXPECT_EQ(cert.mtime, Timestamp{});
    EXPECT_EQ(cert.mode & 0777, 0444u);
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES,
                     fs->open(P("Card Authentication.crt"), true, false));
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, fs->unlink(P("issuer.pub")));
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, fs->rename(P("notes.txt"), P("issuer.pub"), false));
    EXPECT_EQ(get(*fs, "issuer.pub"), keys::public_pem_of_spki(spki));
}

}  // namespace
}  // namespace vscard
