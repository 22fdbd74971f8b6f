// ISO 7816-4 client commands against the in-process emulator, under each of its switches for
// real-card behaviour: what is learned about the card, how many APDUs a transfer takes, PIN
// flows and the mapping of status words to errors.
#include <gtest/gtest.h>

#include <string>

#include "card/emulator.hpp"
#include "card/iso7816.hpp"
#include "card/personalize.hpp"
#include "card_link.hpp"
#include "error.hpp"

namespace vscard::card {
namespace {

using testing::EmulatorLink;

const Bytes kAid = from_hex("A0 00 00 00 63 50 4B 43 53 2D 31 35");
constexpr std::uint8_t kRef = 0x81;

Bytes pattern(std::size_t n, std::uint8_t seed = 1) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 7 + i / 251);
    return b;
}

std::size_t count_ins(const ApduLog& log, std::uint8_t ins) {
    const std::string needle = " > 00 " + to_hex(Bytes{ins}) + " ";
    std::size_t n = 0;
    for (const auto& l : log.lines())
        if (l.find(needle) != std::string::npos) ++n;
    return n;
}

std::size_t ceil_div(std::size_t a, std::size_t b) {
    return (a + b - 1) / b;
}

// A card with DF 5015 (named by the PKCS#15 AID) holding EF 4401 of SIZE bytes, EF 4402
// readable after PIN 81, and PIN 81 = "1234" padded to 8 with FF.
struct Rig {
    Emulator emu;
    EmulatorLink link{emu};
    ApduLog log;
    Iso7816 iso;
    Bytes content;

    explicit Rig(EmulatorOptions o = {}, std::size_t size = 1000, bool atr_caps = true)
        : emu(emu::CardImage::blank(), o),
          iso(link, atr_caps ? caps_from_atr(emu.atr()) : CardCaps{}, &log),
          content(pattern(size)) {
        log.enable();
        Emulator setup(emu::CardImage::blank(), EmulatorOptions{});
        EmulatorLink s(setup);
        Iso7816 x(s, caps_from_atr(setup.atr()));
        EmulatorPersonalizer().set_pin(x, kRef, pin("1234"), {}, 3);
        x.create_file(FileSpec{0x5015, true, 0, kAid, {}});
        x.create_file(FileSpec{0x4401, false, size, {}, {}});
        x.update_binary(0, content);
        x.create_file(FileSpec{
            0x4402, false, 4, {}, {Access::pin(kRef), Access::pin(kRef), Access::always()}});
        emu.replace_image(setup.image().clone());
    }
    static Bytes pin(std::string_view p) {
        PinFormat f;
        f.stored_length = 8;
        f.pad_char = 0xFF;
        f.needs_padding = true;
        SecureBytes s =
            encode_pin(ByteView(reinterpret_cast<const std::uint8_t*>(p.data()), p.size()), f);
        return Bytes(s.begin(), s.end());
    }
    Bytes read_4401(std::optional<std::size_t> size) {
        iso.select_path(from_hex("3F00 5015 4401"));
        return iso.read_file(size);
    }
};

TEST(Iso7816, CapsFromAtr) {
    EmulatorOptions o;
    EXPECT_EQ(caps_from_atr(emulator_atr(o)).extended, true);
    o.extended = false;
    EXPECT_EQ(caps_from_atr(emulator_atr(o)).extended, false);
    EXPECT_FALSE(caps_from_atr(from_hex("3B 80 80 01 01")).extended.has_value());
    EXPECT_FALSE(caps_from_atr({}).extended.has_value());
    EXPECT_FALSE(caps_from_atr(from_hex("3B FF")).extended.has_value());  // truncated
}

TEST(Iso7816, SelectReturnsWhatTheFcpSays) {
    Rig r;
    FileInfo ef = r.iso.select_path(from_hex("3F00 5015 4401"), true);
    ASSERT_TRUE(ef.fcp);
    EXPECT_EQ(ef.size(), 1000u);
    EXPECT_EQ(ef.fcp->fid, 0x4401);
    EXPECT_FALSE(ef.is_df());
    FileInfo df = r.iso.select_aid(kAid, true);
    EXPECT_TRUE(df.is_df());
    EXPECT_EQ(df.fcp->df_name, kAid);
    EXPECT_EQ(r.iso.caps().aid_select, true);
    EXPECT_EQ(r.iso.select_path(from_hex("4402"), true).size(), 4u);  // relative to 5015
    EXPECT_EQ(r.iso.select_fid(0x4401, true).size(), 1000u);
    EXPECT_TRUE(r.iso.select_mf(true).is_df());
    EXPECT_FALSE(r.iso.select_path(from_hex("3F00 5015"), false).fcp);  // P2 0C: none asked
    try {
        r.iso.select_path(from_hex("3F00 5015 4499"));
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::NotFound);
        EXPECT_NE(std::string(e.what()).find("3F00/5015/4499"), std::string::npos) << e.what();
    }
    EXPECT_THROW(r.iso.select_path(from_hex("3F")), Error);
}

TEST(Iso7816, WholeFileInOneExtendedRead) {
    Rig r({}, 5000);
    r.log.clear();
    EXPECT_EQ(r.read_4401(5000), r.content);
    EXPECT_EQ(count_ins(r.log, ins::kReadBinary), 1u);
    EXPECT_EQ(r.iso.caps().extended, true);
}

TEST(Iso7816, ShortOnlyCardReadsAt255PerApduAndNeverSendsLe00) {
    for (bool strict : {false, true}) {
        EmulatorOptions o;
        o.extended = false;
        o.max_le = 255;
        o.wrong_le_6700 = strict;
        for (std::size_t size : {1u, 254u, 255u, 256u, 510u, 511u, 1000u}) {
            Rig r(o, size);
            r.log.clear();
            EXPECT_EQ(r.read_4401(size), r.content) << size;
            EXPECT_EQ(count_ins(r.log, ins::kReadBinary), ceil_div(size, 255)) << size;
            for (const auto& l : r.log.lines()) {
                if (l.find(" > 00 B0") != std::string::npos) {
                    EXPECT_NE(l.substr(l.size() - 3), " 00") << l;
                }
            }
        }
    }
}

TEST(Iso7816, ExtendedLengthIsLearnedByTryingWhenTheAtrIsSilent) {
    EmulatorOptions o;
    o.extended = false;
    Rig r(o, 1000, /*atr_caps=*/false);
    r.log.clear();
    EXPECT_EQ(r.read_4401(1000), r.content);
    EXPECT_EQ(r.iso.caps().extended, false);
    EXPECT_EQ(count_ins(r.log, ins::kReadBinary), 1u + ceil_div(1000, 255));  // one refused
    r.log.clear();
    EXPECT_EQ(r.read_4401(1000), r.content);
    EXPECT_EQ(count_ins(r.log, ins::kReadBinary), ceil_div(1000, 255));  // no probing again

    Rig ext({}, 1000, false);
    EXPECT_EQ(ext.read_4401(1000), ext.content);
    EXPECT_EQ(ext.iso.caps().extended, true);
}

TEST(Iso7816, ExtendedBufferLimitStepsDown) {
    EmulatorOptions o;
    o.max_le = 600;  // extended, but no more than 600 bytes per READ BINARY
    Rig r(o, 3000);
    EXPECT_EQ(r.read_4401(3000), r.content);
    const std::size_t learned = r.iso.caps().max_read;
    EXPECT_GT(learned, 255u);
    EXPECT_LE(learned, 600u);
    r.log.clear();
    EXPECT_EQ(r.read_4401(3000), r.content);
    EXPECT_EQ(count_ins(r.log, ins::kReadBinary), ceil_div(3000, learned));
}

TEST(Iso7816, SixCxxLimitIsLearned) {
    EmulatorOptions o;
    o.extended = false;
    o.max_le = 100;  // 6C64 to any longer Le
    Rig r(o, 1000);
    EXPECT_EQ(r.read_4401(1000), r.content);
    EXPECT_EQ(r.iso.caps().max_read, 100u);
    r.log.clear();
    EXPECT_EQ(r.read_4401(1000), r.content);
    EXPECT_EQ(count_ins(r.log, ins::kReadBinary), 10u);
    EXPECT_EQ(r.read_4401(std::nullopt), r.content);  // size unknown: 6Cxx is not the end
}

TEST(Iso7816, WithoutFciTheSizeIsUnknownAndReadingGoesToTheEnd) {
    for (bool ext : {true, false}) {
        EmulatorOptions o;
        o.fci = false;
        o.extended = ext;
        for (std::size_t size : {0u, 1u, 255u, 256u, 700u, 5000u}) {
            Rig r(o, size);
            FileInfo f = r.iso.select_path(from_hex("3F00 5015 4401"), true);
            EXPECT_FALSE(f.fcp);
            EXPECT_FALSE(f.size());
            EXPECT_EQ(r.iso.caps().fci, false);
            r.log.clear();
            EXPECT_EQ(r.iso.read_file(f.size()), r.content) << size << " ext " << ext;
            // Whole reads end on 6282 (short read) or, for an exact multiple, 6B00.
            const std::size_t chunk = ext ? 65535 : 255;
            const std::size_t reads = size == 0 ? 1 : size / chunk + 1;
            EXPECT_EQ(count_ins(r.log, ins::kReadBinary), reads) << size;
        }
    }
}

TEST(Iso7816, T0ResponsesThroughGetResponse) {
    EmulatorOptions o;
    o.t0_responses = true;
    o.extended = false;
    Rig r(o, 700);
    FileInfo f = r.iso.select_path(from_hex("3F00 5015 4401"), true);
    EXPECT_EQ(f.size(), 700u);
    r.log.clear();
    EXPECT_EQ(r.iso.read_file(f.size()), r.content);
    EXPECT_EQ(count_ins(r.log, ins::kReadBinary), 3u);
    EXPECT_GE(count_ins(r.log, ins::kGetResponse), 3u);
    PinStatus s = r.iso.pin_status(kRef);
    EXPECT_EQ(s.tries_left, 3);
}

TEST(Iso7816, ReadAtOffsets) {
    Rig r({}, 1000);
    r.iso.select_path(from_hex("3F00 5015 4401"));
    EXPECT_EQ(r.iso.read_binary(990, 100), Bytes(r.content.begin() + 990, r.content.end()));
    EXPECT_EQ(r.iso.read_binary(10, 5), Bytes(r.content.begin() + 10, r.content.begin() + 15));
    EXPECT_TRUE(r.iso.read_binary(1000, 10).empty());  // at or past the end: nothing
    EXPECT_TRUE(r.iso.read_binary(1001, 1).empty());
}

TEST(Iso7816, UpdateInChunksTheCardTakes) {
    for (bool ext : {true, false}) {
        EmulatorOptions o;
        o.extended = ext;
        Rig r(o, 2000);
        const Bytes fresh = pattern(1500, 9);
        r.iso.select_path(from_hex("3F00 5015 4401"));
        r.log.clear();
        r.iso.update_binary(300, fresh);
        EXPECT_EQ(count_ins(r.log, ins::kUpdateBinary), ext ? 1u : ceil_div(1500, 255));
        Bytes expect = r.content;
        std::copy(fresh.begin(), fresh.end(), expect.begin() + 300);
        EXPECT_EQ(r.read_4401(2000), expect);
        // Past the end: nothing written.
        r.iso.select_path(from_hex("3F00 5015 4401"));
        EXPECT_THROW(r.iso.update_binary(1990, Bytes(20, 1)), Error);
        EXPECT_EQ(r.read_4401(2000), expect);
    }
    // A card whose ATR says nothing: writes stay short until a read has shown more.
    for (bool ext : {true, false}) {
        EmulatorOptions o;
        o.extended = ext;
        Rig r(o, 600, false);
        r.iso.select_path(from_hex("3F00 5015 4401"));
        EXPECT_EQ(r.iso.write_chunk(), 255u);
        r.iso.update_binary(0, pattern(600, 3));
        EXPECT_EQ(r.read_4401(600), pattern(600, 3));
        EXPECT_EQ(r.iso.caps().extended, ext);
        EXPECT_EQ(r.iso.write_chunk(), ext ? 65535u : 255u);
    }
}

TEST(Iso7816, CreateWithAccessConditionsAndDelete) {
    Rig r;
    const SecurityAttributes guarded{Access::always(), Access::pin(kRef), Access::never()};
    Fcp fcp;
    put_access_conditions(fcp, guarded);
    EXPECT_EQ(tlv::find(Fcp{fcp}.encode(), 0x62).has_value(), true);
    EXPECT_EQ(Fcp::parse(create_file_fcp(FileSpec{0x4403, false, 10, {}, guarded})).security,
              guarded);

    r.iso.select_path(from_hex("3F00 5015"));
    r.iso.create_file(FileSpec{0x4403, false, 10, {}, guarded});
    const emu::File* f = r.emu.image().mf->child(0x5015)->child(0x4403);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->security, guarded);
    EXPECT_EQ(f->data.size(), 10u);
    try {
        r.iso.select_path(from_hex("3F00 5015"));
        r.iso.create_file(FileSpec{0x4403, false, 10, {}, {}});
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Exists);
    }
    r.iso.select_path(from_hex("3F00 5015 4403"));
    try {  // update needs the PIN
        r.iso.update_binary(0, Bytes{1});
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Locked);
        EXPECT_NE(std::string(e.what()).find("PIN required"), std::string::npos);
    }
    EXPECT_THROW(r.iso.delete_file(), Error);  // never
    r.iso.select_path(from_hex("3F00 5015"));
    r.iso.create_file(FileSpec{0x4404, false, 1, {}, {}});
    r.iso.select_path(from_hex("3F00 5015"));
    r.iso.delete_file(0x4404);
    EXPECT_EQ(r.emu.image().mf->child(0x5015)->child(0x4404), nullptr);
}

TEST(Iso7816, CardFullIsNoSpace) {
    Emulator emu(emu::CardImage::blank(emu::kMinCapacity));
    EmulatorLink link(emu);
    Iso7816 iso(link, caps_from_atr(emu.atr()));
    try {
        iso.create_file(FileSpec{0x1001, false, emu::kMinCapacity, {}, {}});
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::NoSpace);
        EXPECT_NE(std::string(e.what()).find("full"), std::string::npos);
    }
}

TEST(Iso7816, PinTriesLeftWrongBlockedAndChange) {
    Rig r;
    PinStatus s = r.iso.pin_status(kRef);
    EXPECT_FALSE(s.verified);
    EXPECT_EQ(s.tries_left, 3);
    EXPECT_EQ(r.iso.pin_status(kRef).tries_left, 3);  // asking spends nothing
    // A protected file before and after VERIFY.
    r.iso.select_path(from_hex("3F00 5015 4402"));
    try {
        r.iso.read_file(4);
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Locked);
    }
    try {
        r.iso.verify(kRef, Rig::pin("9999"));
        FAIL();
    } catch (const PinError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::WrongPassword);
        EXPECT_EQ(e.tries_left(), 2);
        EXPECT_NE(std::string(e.what()).find("2 tries left"), std::string::npos) << e.what();
    }
    EXPECT_EQ(r.iso.pin_status(kRef).tries_left, 2);
    r.iso.verify(kRef, Rig::pin("1234"));
    EXPECT_TRUE(r.iso.pin_status(kRef).verified);
    r.iso.select_path(from_hex("3F00 5015 4402"));
    EXPECT_EQ(r.iso.read_file(4).size(), 4u);
    r.iso.logout(kRef);
    EXPECT_FALSE(r.iso.pin_status(kRef).verified);
    EXPECT_EQ(r.iso.pin_status(kRef).tries_left, 3);  // reset by the right PIN

    r.iso.change_reference_data(kRef, Rig::pin("1234"), Rig::pin("4321"));
    r.iso.logout(kRef);
    r.iso.verify(kRef, Rig::pin("4321"));

    for (int left : {2, 1}) {
        try {
            r.iso.verify(kRef, Rig::pin("0000"));
            FAIL();
        } catch (const PinError& e) {
            EXPECT_EQ(e.tries_left(), left);
        }
    }
    try {  // the try that blocks
        r.iso.verify(kRef, Rig::pin("0000"));
        FAIL();
    } catch (const PinError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Locked);
        EXPECT_EQ(e.tries_left(), 0);
        EXPECT_NE(std::string(e.what()).find("blocked"), std::string::npos);
    }
    EXPECT_TRUE(r.iso.pin_status(kRef).blocked());
    try {  // even the right PIN: 6983
        r.iso.verify(kRef, Rig::pin("4321"));
        FAIL();
    } catch (const PinError& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Locked);
    }
    EXPECT_THROW(r.iso.pin_status(0x82), Error);  // no such PIN: NotFound
}

TEST(Iso7816, PinEncodings) {
    auto enc = [](std::string_view pin, PinFormat f) {
        SecureBytes s =
            encode_pin(ByteView(reinterpret_cast<const std::uint8_t*>(pin.data()), pin.size()), f);
        return Bytes(s.begin(), s.end());
    };
    PinFormat f;
    f.min_length = 4;
    f.max_length = 8;
    f.stored_length = 8;
    f.pad_char = 0xFF;
    f.needs_padding = true;
    EXPECT_EQ(enc("1234", f), from_hex("31 32 33 34 FF FF FF FF"));
    EXPECT_THROW(enc("123", f), Error);
    EXPECT_THROW(enc("123456789", f), Error);
    f.needs_padding = false;
    EXPECT_EQ(enc("1234", f), from_hex("31 32 33 34"));
    f.type = PinFormat::Type::AsciiNumeric;
    EXPECT_THROW(enc("12a4", f), Error);
    f.type = PinFormat::Type::Bcd;
    f.needs_padding = true;
    f.stored_length = 4;
    EXPECT_EQ(enc("12345", f), from_hex("12 34 5F FF"));
    f.type = PinFormat::Type::HalfNibbleBcd;
    f.stored_length = 6;
    EXPECT_EQ(enc("1234", f), from_hex("F1 F2 F3 F4 FF FF"));
    f.type = PinFormat::Type::Iso9564;
    EXPECT_EQ(enc("1234", f), from_hex("24 12 34 FF FF FF FF FF"));
}

TEST(Iso7816, StatusWordsBecomeTypedErrors) {
    struct Case {
        std::uint16_t sw;
        ErrorKind kind;
        const char* says;
    };
    for (const Case& c : {Case{0x6982, ErrorKind::Locked, "PIN required"},
                          Case{0x6983, ErrorKind::Locked, "PIN blocked"},
                          Case{0x6A82, ErrorKind::NotFound, "no such file"},
                          Case{0x6A84, ErrorKind::NoSpace, "card is full"},
                          Case{0x6A89, ErrorKind::Exists, "exists"},
                          Case{0x6D00, ErrorKind::NotSupported, "does not support"},
                          Case{0x6700, ErrorKind::Invalid, "rejected"},
                          Case{0x6F00, ErrorKind::Io, "unexpected"}}) {
        Error e = card_error(c.sw, "reading x");
        EXPECT_EQ(e.kind(), c.kind) << sw_hex(c.sw);
        const std::string m = e.what();
        EXPECT_NE(m.find(c.says), std::string::npos) << m;
        EXPECT_NE(m.find(sw_hex(c.sw)), std::string::npos) << m;
        EXPECT_EQ(m.rfind("reading x: ", 0), 0u) << m;
    }
}

TEST(Iso7816, PinDataNeverReachesTheLog) {
    Rig r;
    r.iso.verify(kRef, Rig::pin("1234"));
    for (const auto& l : r.log.lines()) EXPECT_EQ(l.find("31 32 33 34"), std::string::npos) << l;
}

}  // namespace
}  // namespace vscard::card
