// The PKCS#15 application on the in-process emulator: format, locating the application under
// each of the emulator's real-card switches, the cached model (APDU counts), PIN flows, and
// data objects as files (create, read, overwrite, rename, delete, mkdir, card full).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "card/iso7816.hpp"
#include "card_app_util.hpp"
#include "error.hpp"

namespace vscard::pkcs15 {
namespace {

using testing::bv;
using testing::byte_pattern;
using testing::bytes_of;
using testing::formatted_image;
using testing::kPin;
using testing::Snapshot;
using testing::snapshot;
using testing::TestCard;

std::size_t count_ins(const card::ApduLog& log, std::uint8_t ins) {
    const std::string needle = " > 00 " + card::to_hex(Bytes{ins}) + " ";
    std::size_t n = 0;
    for (const auto& l : log.lines())
        if (l.find(needle) != std::string::npos) ++n;
    return n;
}

std::vector<std::string> labels(const CardApp& app, Area area) {
    std::vector<std::string> out;
    for (const auto& f : app.list(area)) out.push_back(f.label);
    std::sort(out.begin(), out.end());
    return out;
}

const card::emu::CardImage& default_image() {
    static const card::emu::CardImage image = formatted_image();
    return image;
}

card::emu::File* file_at(card::emu::CardImage& img, std::initializer_list<std::uint16_t> path) {
    card::emu::File* f = img.mf.get();
    for (auto fid : path) f = f ? f->child(fid) : nullptr;
    return f;
}

void erase_child(card::emu::File* dir, std::uint16_t fid) {
    auto& c = dir->children;
    c.erase(std::remove_if(c.begin(), c.end(), [&](const auto& p) { return p->fid == fid; }),
            c.end());
}

TEST(CardApp, FormatWritesAStructureThatOpens) {
    TestCard card(default_image().clone());
    CardApp app = card.open();
    EXPECT_EQ(app.serial().size(), 16u);
    EXPECT_EQ(app.label(), "Test card");
    EXPECT_EQ(app.app_path(), card::from_hex("3F00 5015"));
    ASSERT_TRUE(app.user_pin());
    EXPECT_EQ(app.user_pin()->reference, 0x81);
    ASSERT_TRUE(app.user_pin()->path);  // OpenSC selects it before VERIFY
    EXPECT_EQ(app.user_pin()->path->value, card::from_hex("3F00 5015"));
    EXPECT_TRUE(app.list(Area::Public).empty());
    EXPECT_TRUE(app.list(Area::Private).empty());
    EXPECT_TRUE(app.certificates().empty());
    EXPECT_TRUE(app.private_keys().empty());
    EXPECT_EQ(app.pin_status().tries_left, 3);

    // Two formats give two serials; a formatted card is not formatted again.
    EXPECT_NE(TestCard(formatted_image()).open().serial(), app.serial());
    card::EmulatorPersonalizer p;
    try {
        format(card.link, p, "again", bv(kPin));
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Exists);
    }
    TestCard blank(card::emu::CardImage::blank());
    EXPECT_THROW(format(blank.link, p, "x", bv("12")), Error);  // PIN too short
}

TEST(CardApp, BlankCardHasNoApplication) {
    TestCard card(card::emu::CardImage::blank());
    try {
        card.open();
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::NotFound);
        EXPECT_NE(std::string(e.what()).find("vscardctl format"), std::string::npos);
    }
}

// ---- every emulator switch: format, write, read back in a new session -------------------------

struct Variation {
    const char* name;
    card::EmulatorOptions options;
};

void PrintTo(const Variation& v, std::ostream* os) {
    *os << v.name;
}

std::vector<Variation> variations() {
    std::vector<Variation> v;
    v.push_back({"default", {}});
    card::EmulatorOptions o;
    o.fci = false;
    v.push_back({"no_fci", o});
    o = {};
    o.extended = false;
    o.max_le = 255;
    o.wrong_le_6700 = true;
    v.push_back({"max_le_255_refusing_le00", o});
    o = {};
    o.aid_select = false;
    v.push_back({"no_aid_select", o});
    o = {};
    o.t0_responses = true;
    v.push_back({"t0_61xx", o});
    o = {};
    o.extended = false;
    v.push_back({"no_extended", o});
    o.chaining = false;
    o.fci = false;
    o.aid_select = false;
    o.t0_responses = true;
    o.max_le = 200;
    v.push_back({"all_at_once", o});
    return v;
}

class CardAppVariation : public ::testing::TestWithParam<Variation> {};

TEST_P(CardAppVariation, FormatWriteAndReadBack) {
    const auto& o = GetParam().options;
    TestCard card(formatted_image(card::emu::kDefaultCapacity, {}, o), o);
    const Bytes big = byte_pattern(3000), small = byte_pattern(300, 7);
    {
        CardApp app = card.open();
        app.verify_pin(bv(kPin));
        app.write(Area::Public, "docs/big.bin", big);
        app.write(Area::Private, "secret.txt", small);
        app.mkdir(Area::Public, "empty");
        EXPECT_EQ(bytes_of(app.read(Area::Public, "docs/big.bin")), big);
        app.write(Area::Public, "docs/big.bin", small);  // overwrite
        app.rename(Area::Private, "secret.txt", "notes/secret.txt");
    }
    card.link.reinsert();
    CardApp app = card.open();
    EXPECT_EQ(labels(app, Area::Public), (std::vector<std::string>{"docs/big.bin", "empty/"}));
    EXPECT_EQ(bytes_of(app.read(Area::Public, "docs/big.bin")), small);
    EXPECT_EQ(app.size(Area::Public, "docs/big.bin"), small.size());
    EXPECT_EQ(app.size(Area::Public, "empty/"), 0u);
    EXPECT_THROW(app.read(Area::Private, "notes/secret.txt"), Error);  // PIN first
    app.verify_pin(bv(kPin));
    EXPECT_EQ(bytes_of(app.read(Area::Private, "notes/secret.txt")), small);
    if (!o.fci) {
        EXPECT_FALSE(app.caps().fci.value_or(true));
    }
    if (!o.aid_select) {
        EXPECT_NE(app.caps().aid_select, true);
    }
}

INSTANTIATE_TEST_SUITE_P(Switches, CardAppVariation, ::testing::ValuesIn(variations()),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- locating the application --------------------------------------------------------------

TEST(CardApp, NoAidSelectUsesThePathFromEfDir) {
    card::EmulatorOptions o;
    o.aid_select = false;
    TestCard card(default_image().clone(), o);
    card.log.enable();
    CardApp app = card.open();
    EXPECT_EQ(app.app_path(), card::from_hex("3F00 5015"));
    for (const auto& l : card.log.lines()) EXPECT_EQ(l.find(" > 00 A4 04"), std::string::npos);
}

TEST(CardApp, WithoutEfDirTheAidThenTheDefaultPath) {
    auto img = default_image().clone();
    erase_child(img.mf.get(), 0x2F00);
    {
        TestCard card(img.clone());
        CardApp app = card.open();
        EXPECT_TRUE(app.app_path().empty());  // selected by AID
        EXPECT_EQ(app.caps().aid_select, true);
        app.verify_pin(bv(kPin));
        app.write(Area::Public, "x", byte_pattern(10));  // paths relative to the application
        card.link.reinsert();
        EXPECT_EQ(bytes_of(card.open().read(Area::Public, "x")), byte_pattern(10));
    }
    card::EmulatorOptions o;
    o.aid_select = false;
    TestCard card(img.clone(), o);
    CardApp app = card.open();
    EXPECT_EQ(app.app_path(), card::from_hex("3F00 5015"));
    EXPECT_EQ(app.caps().aid_select, false);
    app.verify_pin(bv(kPin));
    app.write(Area::Public, "y", byte_pattern(10));
    EXPECT_EQ(bytes_of(app.read(Area::Public, "y")), byte_pattern(10));
}

TEST(CardApp, EfDirWithoutPathSelectsByAid) {
    auto img = default_image().clone();
    DirRecord r;
    r.aid = kPkcs15Aid;
    r.label = "no path";
    file_at(img, {0x2F00})->data = serialize_dir({r});
    TestCard card(std::move(img));
    CardApp app = card.open();
    EXPECT_TRUE(app.app_path().empty());
    EXPECT_EQ(app.label(), "Test card");
}

// ---- the cached model: APDU counts -----------------------------------------------------------

TEST(CardApp, ListingIsCachedAndReadsTakeCeilOfSizeOverMaxRead) {
    for (bool ext : {true, false}) {
        card::EmulatorOptions o;
        o.extended = ext;
        TestCard card(formatted_image(card::emu::kDefaultCapacity, {}, o), o);
        const std::size_t sizes[] = {1, 255, 256, 1000, 5000};
        {
            CardApp app = card.open();
            app.verify_pin(bv(kPin));
            for (std::size_t s : sizes)
                app.write(Area::Public, "f" + std::to_string(s), byte_pattern(s));
        }
        card.link.reinsert();
        card.log.clear();
        card.log.enable();
        CardApp app = card.open();
        const auto opened = card.apdus();
        std::cout << "[ measured ] open (" << (ext ? "extended" : "short only") << "): " << opened
                  << " APDUs\n";
        EXPECT_LE(opened, ext ? 18u : 30u);
        const auto before = card.apdus();
        auto first = app.list(Area::Public);
        for (const auto& f : first) EXPECT_TRUE(f.size.has_value()) << f.label;
        auto again = app.list(Area::Public);
        app.list(Area::Private);
        app.find(Area::Public, "f1");
        EXPECT_EQ(card.apdus(), before) << "listing sends no APDU";
        EXPECT_EQ(first.size(), again.size());
        const std::size_t max_read = ext ? 65535 : 255;
        for (std::size_t s : sizes) {
            card.log.clear();
            EXPECT_EQ(bytes_of(app.read(Area::Public, "f" + std::to_string(s))), byte_pattern(s));
            const std::size_t reads = (s + max_read - 1) / max_read;
            EXPECT_EQ(count_ins(card.log, card::ins::kReadBinary), reads) << s;
            EXPECT_EQ(count_ins(card.log, card::ins::kSelect), 1u) << s;
            EXPECT_EQ(card.apdus(), 1u + reads) << s;
            card.log.clear();
            app.read(Area::Public, "f" + std::to_string(s));  // cached
            EXPECT_EQ(card.apdus(), 0u);
        }
    }
}

// ---- PIN flows -------------------------------------------------------------------------------

TEST(CardApp, PinFlows) {
    TestCard card(default_image().clone());
    {
        CardApp app = card.open();
        app.verify_pin(bv(kPin));
        app.write(Area::Private, "p", byte_pattern(20));
    }
    card.link.reinsert();
    CardApp app = card.open();
    EXPECT_EQ(app.pin_status().tries_left, 3);
    EXPECT_EQ(app.pin_status().tries_left, 3);  // no try spent
    try {
        app.read(Area::Private, "p");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Locked);
        EXPECT_NE(std::string(e.what()).find("PIN required"), std::string::npos) << e.what();
    }
    try {
        app.verify_pin(bv("0000"));
        FAIL();
    } catch (const card::PinError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::WrongPassword);
        EXPECT_EQ(e.tries_left(), 2);
    }
    EXPECT_EQ(app.pin_status().tries_left, 2);
    EXPECT_THROW(app.verify_pin(bv("12")), Error);  // too short: refused before the card
    EXPECT_EQ(app.pin_status().tries_left, 2);
    app.verify_pin(bv(kPin));
    EXPECT_TRUE(app.pin_status().verified);
    EXPECT_EQ(bytes_of(app.read(Area::Private, "p")), byte_pattern(20));
    app.change_pin(bv(kPin), bv("56789"));
    app.logout();
    EXPECT_FALSE(app.pin_status().verified);
    EXPECT_THROW(app.read(Area::Private, "p"), Error);  // logout dropped the cached content
    for (int left : {2, 1}) {
        try {
            app.verify_pin(bv(kPin));
            FAIL();
        } catch (const card::PinError& e) {
            EXPECT_EQ(e.tries_left(), left);
        }
    }
    try {
        app.verify_pin(bv(kPin));
        FAIL();
    } catch (const card::PinError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Locked);
        EXPECT_EQ(e.tries_left(), 0);
    }
    EXPECT_TRUE(app.pin_status().blocked());
    try {
        app.verify_pin(bv("56789"));
        FAIL();
    } catch (const card::PinError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Locked);
        EXPECT_NE(std::string(e.what()).find("blocked"), std::string::npos);
    }
}

// ---- data objects as files -----------------------------------------------------------------

TEST(CardApp, ObjectRoundTrips) {
    TestCard card(default_image().clone());
    CardApp app = card.open();
    // Writing public objects needs the PIN on a card formatted with the defaults.
    try {
        app.write(Area::Public, "a", byte_pattern(5));
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Locked);
    }
    EXPECT_TRUE(app.list(Area::Public).empty());
    app.verify_pin(bv(kPin));
    app.write(Area::Public, "a", byte_pattern(100));
    app.write(Area::Public, "dir/b", byte_pattern(2000, 3));
    app.write(Area::Private, "dir/b", byte_pattern(50, 5));  // same label, other area
    app.write(Area::Vscard, "family-key", byte_pattern(64, 9));
    app.mkdir(Area::Public, "dir/sub");
    EXPECT_THROW(app.mkdir(Area::Public, "dir/sub/"), Error);
    EXPECT_EQ(labels(app, Area::Public), (std::vector<std::string>{"a", "dir/b", "dir/sub/"}));
    EXPECT_EQ(labels(app, Area::Private), (std::vector<std::string>{"dir/b"}));
    EXPECT_EQ(labels(app, Area::Vscard), (std::vector<std::string>{"family-key"}));

    app.write(Area::Public, "a", byte_pattern(4000, 2));    // grow
    app.write(Area::Public, "dir/b", byte_pattern(10, 4));  // shrink
    app.write(Area::Public, "dir/b", {});                   // truncate to nothing
    app.rename(Area::Public, "a", "dir/a");
    app.write(Area::Public, "c", byte_pattern(30, 8));
    app.rename(Area::Public, "c", "dir/a");  // over an existing object
    EXPECT_THROW(app.rename(Area::Public, "nope", "x"), Error);
    EXPECT_THROW(app.rename(Area::Public, "dir/a", "folder/"), Error);
    app.rename_prefix(Area::Public, "dir/", "moved/");
    app.remove(Area::Private, "dir/b");
    EXPECT_THROW(app.remove(Area::Private, "dir/b"), Error);

    const Snapshot expect{{{Area::Public, "moved/a"}, byte_pattern(30, 8)},
                          {{Area::Public, "moved/b"}, {}},
                          {{Area::Public, "moved/sub/"}, {}},
                          {{Area::Vscard, "family-key"}, byte_pattern(64, 9)}};
    Snapshot now;
    for (auto area : {Area::Public, Area::Private, Area::Vscard})
        for (const auto& f : app.list(area))
            now[{area, f.label}] = bytes_of(app.read(area, f.label));
    EXPECT_EQ(now, expect);
    EXPECT_EQ(snapshot(card), expect) << testing::describe(snapshot(card));
    // Only the objects' files are left: no leftovers of replaced content.
    const card::emu::File* app_df = card.emu.image().mf->child(0x5015);
    std::size_t data_files = 0;
    for (const auto& c : app_df->children)
        if (c->fid >= 0x6000) ++data_files;
    EXPECT_EQ(data_files, expect.size());
}

TEST(CardApp, NamesAndSizesAreChecked) {
    TestCard card(default_image().clone());
    CardApp app = card.open();
    app.verify_pin(bv(kPin));
    EXPECT_THROW(app.write(Area::Public, "", byte_pattern(1)), Error);
    try {
        app.write(Area::Public, std::string(kMaxLabelBytes + 1, 'x'), byte_pattern(1));
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::NameTooLong);
    }
    try {
        app.write(Area::Public, "big", Bytes(kMaxObjectSize + 1));
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::TooBig);
    }
    app.write(Area::Public, std::string(kMaxLabelBytes, 'y'), byte_pattern(3));
    card.link.reinsert();
    EXPECT_EQ(card.open().list(Area::Public).at(0).label, std::string(kMaxLabelBytes, 'y'));
}

TEST(CardApp, CardFullIsNoSpaceWithThePreviousContentIntact) {
    TestCard card(formatted_image(8 * 1024));
    CardApp app = card.open();
    app.verify_pin(bv(kPin));
    app.write(Area::Public, "keep", byte_pattern(1500));
    std::size_t n = 0;
    for (;; ++n) {
        try {
            app.write(Area::Public, "fill" + std::to_string(n),
                      byte_pattern(700, static_cast<std::uint8_t>(n)));
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::NoSpace) << e.what();
            break;
        }
        ASSERT_LT(n, 20u);
    }
    const std::size_t used = card.emu.image().used();
    try {  // an overwrite that needs room for the new content beside the old
        app.write(Area::Public, "keep", byte_pattern(3000, 2));
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::NoSpace);
        EXPECT_EQ(errno_of(e.kind()), ENOSPC);
    }
    EXPECT_EQ(card.emu.image().used(), used) << "nothing left behind";
    EXPECT_EQ(bytes_of(app.read(Area::Public, "keep")), byte_pattern(1500));
    const Snapshot s = snapshot(card);
    EXPECT_EQ(s.at({Area::Public, "keep"}), byte_pattern(1500));
    EXPECT_EQ(s.size(), n + 1);
    // Room again after a delete.
    CardApp again = card.open();
    again.verify_pin(bv(kPin));
    again.remove(Area::Public, "fill0");
    again.write(Area::Public, "keep", byte_pattern(600, 4));
    EXPECT_EQ(snapshot(card).at({Area::Public, "keep"}), byte_pattern(600, 4));
}

TEST(CardApp, DodfGrowsIntoALargerFile) {
    FormatOptions f;
    f.dodf_size = 128;
    for (bool ext : {true, false}) {
        card::EmulatorOptions o;
        o.extended = ext;
        TestCard card(formatted_image(card::emu::kDefaultCapacity, f, o), o);
        CardApp app = card.open();
        app.verify_pin(bv(kPin));
        Snapshot expect;
        for (int i = 0; i < 30; ++i) {
            const std::string label = "folder/object number " + std::to_string(i);
            app.write(Area::Public, label, byte_pattern(10, static_cast<std::uint8_t>(i)));
            expect[{Area::Public, label}] = byte_pattern(10, static_cast<std::uint8_t>(i));
        }
        for (int i = 0; i < 30; i += 3) {  // removals from the middle
            const std::string label = "folder/object number " + std::to_string(i);
            app.remove(Area::Public, label);
            expect.erase({Area::Public, label});
        }
        EXPECT_EQ(snapshot(card), expect);
        const auto* df = card.emu.image().mf->child(0x5015);
        EXPECT_EQ(df->child(0x4405), nullptr) << "the first DODF file was replaced";
    }
}

TEST(CardApp, OtherObjectsAndUnknownEntriesAreKept) {
    auto img = default_image().clone();
    // A DODF holding an entry of another application and one the codec does not model.
    DataObject other;
    other.common.label = "other app object";
    other.app_name = "other";
    other.app_oid = "1.2.3.4";
    other.path = Path::from_hex("3F0050154700");
    other.path.index = 8;  // as pkcs15-init writes them: a range of the file
    other.path.length = 40;
    const Bytes unknown = card::from_hex("A018300A0C0865787465726E616C3000A1083006300404024511");
    Bytes dodf = serialize_dodf({other, UnknownEntry{unknown}});
    auto* df = file_at(img, {0x5015});
    std::copy(dodf.begin(), dodf.end(), df->child(0x4405)->data.begin());
    auto ef = std::make_unique<card::emu::File>();
    ef->fid = 0x4700;
    ef->data = Bytes(8, 0xEE);
    const Bytes other_content = byte_pattern(40);
    ef->data.insert(ef->data.end(), other_content.begin(), other_content.end());
    ef->data.resize(64, 0xEE);
    ef->parent = df;
    df->children.push_back(std::move(ef));

    TestCard card(std::move(img));
    {
        CardApp app = card.open();
        EXPECT_EQ(labels(app, Area::Public), (std::vector<std::string>{"other app object"}));
        EXPECT_EQ(app.find(Area::Public, "other app object")->size, 40u);
        EXPECT_EQ(bytes_of(app.read(Area::Public, "other app object")), other_content);
        app.verify_pin(bv(kPin));
        app.write(Area::Public, "mine", byte_pattern(5));
        app.rename(Area::Public, "mine", "mine2");
        app.remove(Area::Public, "mine2");
    }
    const Bytes now = card.emu.image().mf->child(0x5015)->child(0x4405)->data;
    EXPECT_TRUE(std::equal(dodf.begin(), dodf.end(), now.begin())) << "entries kept byte for byte";
    card.link.reinsert();
    CardApp app = card.open();
    EXPECT_EQ(app.find(Area::Public, "other app object")->object.app_name, "other");
}

TEST(CardApp, ACardWithoutDodfGetsOne) {
    // As pkcs15-init leaves a card before its first data object: no DODF in the ODF.
    auto img = default_image().clone();
    auto* odf = file_at(img, {0x5015, 0x5031});
    Entries<OdfEntry> entries;
    for (const auto& e : parse_odf(odf->data))
        if (std::get<OdfEntry>(e).type != DfType::DODF) entries.push_back(e);
    const Bytes fewer = serialize_odf(entries);
    std::fill(odf->data.begin(), odf->data.end(), 0x00);
    std::copy(fewer.begin(), fewer.end(), odf->data.begin());
    TestCard card(std::move(img));
    {
        CardApp app = card.open();
        EXPECT_TRUE(app.list(Area::Public).empty());
        app.verify_pin(bv(kPin));
        app.write(Area::Public, "first", byte_pattern(33));
    }
    card.link.reinsert();
    CardApp app = card.open();
    EXPECT_EQ(bytes_of(app.read(Area::Public, "first")), byte_pattern(33));
    const auto odf_now = parse_odf(card.emu.image().mf->child(0x5015)->child(0x5031)->data);
    EXPECT_EQ(odf_now.size(), entries.size() + 1);
}

}  // namespace
}  // namespace vscard::pkcs15
