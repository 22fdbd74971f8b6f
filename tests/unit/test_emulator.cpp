// The card of vscard-emu, driven directly (no sockets): file system, security conditions,
// PINs, memory limits, the image file, and each switch that imitates a real card's ways.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "card/apdu.hpp"
#include "card/emulator.hpp"
#include "card/fcp.hpp"
#include "card/tlv.hpp"
#include "card_link.hpp"
#include "error.hpp"

namespace vscard::card {
namespace {

namespace fs = std::filesystem;

const Bytes kAid = from_hex("A0 00 00 00 63 50 4B 43 53 2D 31 35");
const Bytes kPin = from_hex("31 32 33 34 FF FF FF FF");
const Bytes kPuk = from_hex("38 37 36 35 34 33 32 31");
constexpr std::uint8_t kPinRef = 0x81;

Bytes h(std::string_view text) {
    return from_hex(text);
}

Bytes cat(ByteView a, ByteView b) {
    Bytes out(a.begin(), a.end());
    out.insert(out.end(), b.begin(), b.end());
    return out;
}

CommandApdu create_ef(std::uint16_t fid, std::size_t size,
                      SecurityAttributes sec = {Access::always(), Access::always(),
                                                Access::always()}) {
    Fcp f;
    f.fid = fid;
    f.descriptor = kDescriptorTransparentEf;
    f.size = size;
    f.security = sec;
    return CommandApdu(0x00, ins::kCreateFile, 0, 0, f.encode());
}

CommandApdu create_df(std::uint16_t fid, Bytes name = {},
                      SecurityAttributes sec = {Access::always(), Access::always(),
                                                Access::always()}) {
    Fcp f;
    f.fid = fid;
    f.descriptor = kDescriptorDf;
    if (!name.empty()) f.df_name = name;
    f.security = sec;
    return CommandApdu(0x00, ins::kCreateFile, 0, 0, f.encode());
}

CommandApdu set_pin(std::uint8_t ref, ByteView pin, ByteView puk = {}, int tries = 3) {
    Bytes data;
    tlv::append(data, 0x81, pin);
    if (!puk.empty()) tlv::append(data, 0x82, puk);
    tlv::append(data, 0x83, Bytes{static_cast<std::uint8_t>(tries)});
    return CommandApdu(0x80, 0x24, 0x00, ref, data);
}

CommandApdu select_fid(std::uint16_t fid, std::uint8_t p2 = 0x0C) {
    return CommandApdu(0x00, ins::kSelect, 0x00, p2,
                       Bytes{static_cast<std::uint8_t>(fid >> 8), static_cast<std::uint8_t>(fid)},
                       p2 == 0x0C ? 0 : 256);
}

CommandApdu read(std::size_t offset, std::size_t ne) {
    return CommandApdu(0x00, ins::kReadBinary, static_cast<std::uint8_t>(offset >> 8),
                       static_cast<std::uint8_t>(offset), {}, ne);
}

CommandApdu update(std::size_t offset, Bytes data) {
    return CommandApdu(0x00, ins::kUpdateBinary, static_cast<std::uint8_t>(offset >> 8),
                       static_cast<std::uint8_t>(offset), std::move(data));
}

CommandApdu verify(ByteView pin, std::uint8_t ref = kPinRef) {
    return CommandApdu(0x00, ins::kVerify, 0x00, ref, Bytes(pin.begin(), pin.end()));
}

struct TestCard {
    Emulator emu;
    explicit TestCard(EmulatorOptions o = {}, std::size_t capacity = emu::kDefaultCapacity)
        : emu(emu::CardImage::blank(capacity), o) {}
    ResponseApdu tx(const CommandApdu& c) { return emu.process(c); }
    ResponseApdu tx(std::string_view hex) {
        return ResponseApdu::parse(emu.process(ByteView(h(hex))));
    }
    std::uint16_t sw(const CommandApdu& c) { return tx(c).sw; }
    std::uint16_t sw(std::string_view hex) { return tx(hex).sw; }
};

// A card with MF / 5015 (PKCS#15 DF, named) / 4401 (EF, 16 bytes) and PIN 81.
void populate(TestCard& card) {
    ASSERT_EQ(card.sw(set_pin(kPinRef, kPin, kPuk)), sw::kOk);
    ASSERT_EQ(card.sw(create_df(0x5015, kAid)), sw::kOk);
    ASSERT_EQ(card.sw(create_ef(0x4401, 16)), sw::kOk);
    ASSERT_EQ(card.sw(update(0, h("00 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF"))), sw::kOk);
    ASSERT_EQ(card.sw(select_fid(kMfFid)), sw::kOk);
}

struct TempDir {
    fs::path path;
    TempDir() {
        std::string t = (fs::temp_directory_path() / "vscard-emu-test.XXXXXX").string();
        path = ::mkdtemp(t.data());
    }
    ~TempDir() { fs::remove_all(path); }
};

TEST(Emulator, AtrIsWellFormedAndAdvertisesExtendedLength) {
    for (bool ext : {true, false}) {
        EmulatorOptions o;
        o.extended = ext;
        Bytes atr = emulator_atr(o);
        EXPECT_EQ(atr[0], 0x3B);
        std::uint8_t x = 0;
        for (std::size_t i = 1; i < atr.size(); ++i) x ^= atr[i];
        EXPECT_EQ(x, 0) << "TCK";
        EXPECT_EQ(atr.size(), 4u + (atr[1] & 0x0F) + 1u);
        EXPECT_TRUE(is_emulator_atr(atr));
        EXPECT_EQ((atr[8] & 0x40) != 0, ext) << to_hex(atr);  // third software function byte
    }
    EXPECT_FALSE(is_emulator_atr(h("3B 80 80 01 01")));
}

TEST(Emulator, BlankCardHasOnlyTheMf) {
    TestCard card;
    ResponseApdu r = card.tx(select_fid(kMfFid, 0x04));
    ASSERT_EQ(r.sw, sw::kOk);
    Fcp fcp = Fcp::parse(r.data);
    EXPECT_EQ(fcp.fid, kMfFid);
    EXPECT_TRUE(fcp.is_df());
    EXPECT_EQ(card.sw(select_fid(0x2F00)), sw::kFileNotFound);
    EXPECT_EQ(card.sw("00 A4 00 0C"), sw::kOk);  // no data: the MF
    EXPECT_EQ(card.sw(read(0, 1)), sw::kNoCurrentEf);
    EXPECT_EQ(card.emu.image().used(), emu::kFileOverhead);
}

TEST(Emulator, CreateUpdateAndReadWithOffsets) {
    TestCard card;
    ASSERT_EQ(card.sw(create_ef(0x1001, 16)), sw::kOk);  // now the current file
    EXPECT_EQ(card.sw(update(4, h("01 02 03 04"))), sw::kOk);
    ResponseApdu r = card.tx(read(0, 256));  // Le 00: everything
    EXPECT_EQ(r.sw, sw::kOk);
    EXPECT_EQ(r.data, h("00 00 00 00 01 02 03 04 00 00 00 00 00 00 00 00"));
    r = card.tx(read(5, 2));
    EXPECT_EQ(r.data, h("02 03"));
    r = card.tx(read(10, 10));  // more than is left: the rest, with 6282
    EXPECT_EQ(r.sw, sw::kEndOfFile);
    EXPECT_EQ(r.data.size(), 6u);
    EXPECT_EQ(card.sw(read(16, 1)), sw::kWrongOffset);
    EXPECT_EQ(card.sw(read(17, 1)), sw::kWrongOffset);
    EXPECT_EQ(card.sw(update(14, h("01 02 03"))), sw::kNotEnoughMemory);
    EXPECT_EQ(card.sw(update(17, h("01"))), sw::kWrongOffset);
    EXPECT_EQ(card.sw("00 B0 80 00 01"), sw::kFunctionNotSupported);  // short EF id
    EXPECT_EQ(card.sw("00 B0 00 00"), sw::kWrongLength);              // no Le
    // Selected again by FID, with its FCP.
    ASSERT_EQ(card.sw(select_fid(kMfFid)), sw::kOk);
    r = card.tx(select_fid(0x1001, 0x04));
    ASSERT_EQ(r.sw, sw::kOk);
    EXPECT_EQ(Fcp::parse(r.data).size, 16u);
    EXPECT_TRUE(Fcp::parse(r.data).is_transparent_ef());
    EXPECT_EQ(card.tx(read(4, 4)).data, h("01 02 03 04"));
}

TEST(Emulator, SelectByPathNameAndRelation) {
    TestCard card;
    populate(card);
    ASSERT_EQ(card.sw(create_ef(0x2F00, 8)), sw::kOk);  // EF.DIR in the MF
    // Path from the MF, with and without the MF's own id.
    EXPECT_EQ(card.sw("00 A4 08 0C 04 50 15 44 01"), sw::kOk);
    EXPECT_EQ(card.tx(read(0, 2)).data, h("00 11"));
    EXPECT_EQ(card.sw("00 A4 08 0C 06 3F 00 50 15 44 01"), sw::kOk);
    EXPECT_EQ(card.sw("00 A4 08 0C 04 50 15 44 02"), sw::kFileNotFound);
    EXPECT_EQ(card.sw("00 A4 08 0C 03 50 15 44"), sw::kLcInconsistent);
    // By DF name, with the name in the FCP.
    ResponseApdu r = card.tx(CommandApdu(0x00, ins::kSelect, 0x04, 0x04, kAid, 256));
    ASSERT_EQ(r.sw, sw::kOk);
    EXPECT_EQ(Fcp::parse(r.data).df_name, kAid);
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kSelect, 0x04, 0x0C, h("A0 00 00 00 63"))),
              sw::kFileNotFound);  // partial names are not supported
    // Relative: path from the current DF, EF by id, parent, sibling.
    EXPECT_EQ(card.sw("00 A4 09 0C 02 44 01"), sw::kOk);
    EXPECT_EQ(card.sw("00 A4 03 0C"), sw::kOk);  // parent of 5015: MF
    EXPECT_EQ(card.sw("00 A4 01 0C 02 50 15"), sw::kOk);
    EXPECT_EQ(card.sw("00 A4 02 0C 02 44 01"), sw::kOk);
    EXPECT_EQ(card.sw("00 A4 01 0C 02 44 01"), sw::kFileNotFound);  // an EF, not a DF
    EXPECT_EQ(card.sw(select_fid(0x2F00)), sw::kOk);       // sibling of the current DF 5015
    EXPECT_EQ(card.sw("00 A4 03 0C"), sw::kFileNotFound);  // current DF: the MF, no parent
    EXPECT_EQ(card.sw("00 A4 00 0D 02 3F 00"), sw::kWrongP1P2);
    EXPECT_EQ(card.sw("00 A4 07 0C 02 3F 00"), sw::kWrongP1P2);
}

TEST(Emulator, CreateFileErrors) {
    TestCard card;
    populate(card);
    EXPECT_EQ(card.sw(create_df(0x5015)), sw::kFileExists);
    EXPECT_EQ(card.sw(create_df(0x5016, kAid)), sw::kDfNameExists);
    EXPECT_EQ(card.sw(create_ef(0x3F00, 4)), sw::kFileExists);
    EXPECT_EQ(card.sw(create_ef(0x1001, emu::kMaxEfSize + 1)), sw::kWrongData);
    EXPECT_EQ(card.sw("00 E0 00 00 04 62 02 83 01"), sw::kWrongData);                 // malformed
    EXPECT_EQ(card.sw("00 E0 00 00 09 62 07 83 02 10 01 82 01 01"), sw::kWrongData);  // no size
    EXPECT_EQ(card.sw("00 E0 00 00 09 62 07 80 02 00 10 82 01 01"), sw::kWrongData);  // no FID
    EXPECT_EQ(card.sw("00 E0 00 00 0D 62 0B 80 02 00 10 82 01 02 83 02 10 01"),
              sw::kWrongData);  // linear EF: not supported
    // DFs nest only so deep.
    for (std::uint16_t level = 0; level < emu::kMaxDfDepth; ++level)
        ASSERT_EQ(card.sw(create_df(static_cast<std::uint16_t>(0x6000 + level))), sw::kOk);
    EXPECT_EQ(card.sw(create_df(0x7000)), sw::kNotEnoughMemory);
}

TEST(Emulator, PinProtectedReadBeforeAndAfterVerify) {
    TestCard card;
    populate(card);
    SecurityAttributes pin_rw{Access::pin(kPinRef), Access::pin(kPinRef), Access::pin(kPinRef)};
    ASSERT_EQ(card.sw(create_ef(0x1002, 4, pin_rw)), sw::kOk);  // creation needs no PIN here
    EXPECT_EQ(card.sw(read(0, 4)), sw::kSecurityNotSatisfied);
    EXPECT_EQ(card.sw(update(0, h("AA"))), sw::kSecurityNotSatisfied);
    EXPECT_EQ(card.sw(verify(h("31 32 33 35 FF FF FF FF"))), 0x63C2);
    EXPECT_FALSE(card.emu.verified(kPinRef));
    EXPECT_EQ(card.sw(verify(kPin)), sw::kOk);
    EXPECT_TRUE(card.emu.verified(kPinRef));
    EXPECT_EQ(card.sw(update(0, h("AA BB"))), sw::kOk);
    EXPECT_EQ(card.tx(read(0, 2)).data, h("AA BB"));
    // Power cycle and reset forget the verification (and the current file).
    for (int way = 0; way < 3; ++way) {
        if (way == 0) card.emu.reset();
        if (way == 1) card.emu.power_off();
        if (way == 2) card.emu.power_on();
        EXPECT_FALSE(card.emu.verified(kPinRef));
        EXPECT_EQ(card.sw(read(0, 2)), sw::kNoCurrentEf);
        ASSERT_EQ(card.sw(select_fid(0x1002)), sw::kOk);
        EXPECT_EQ(card.sw(read(0, 2)), sw::kSecurityNotSatisfied);
        ASSERT_EQ(card.sw(verify(kPin)), sw::kOk);
        EXPECT_EQ(card.sw(read(0, 2)), sw::kOk);
    }
    // VERIFY P1=FF forgets the verification too.
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kVerify, 0xFF, kPinRef)), sw::kOk);
    EXPECT_EQ(card.sw(read(0, 2)), sw::kSecurityNotSatisfied);
    // Deleting needs the PIN as well.
    EXPECT_EQ(card.sw("00 E4 00 00"), sw::kSecurityNotSatisfied);
    ASSERT_EQ(card.sw(verify(kPin)), sw::kOk);
    EXPECT_EQ(card.sw("00 E4 00 00"), sw::kOk);
}

TEST(Emulator, NeverMeansNever) {
    TestCard card;
    populate(card);
    ASSERT_EQ(card.sw(verify(kPin)), sw::kOk);
    SecurityAttributes sealed{Access::never(), Access::pin(kPinRef), Access::never()};
    ASSERT_EQ(card.sw(create_ef(0x1003, 4, sealed)), sw::kOk);
    EXPECT_EQ(card.sw(update(0, h("01"))), sw::kOk);
    EXPECT_EQ(card.sw(read(0, 1)), sw::kSecurityNotSatisfied);
    EXPECT_EQ(card.sw("00 E4 00 00"), sw::kSecurityNotSatisfied);
    EXPECT_EQ(card.sw("00 E4 00 00 02 3F 00"), sw::kFileNotFound);
    ASSERT_EQ(card.sw(select_fid(kMfFid)), sw::kOk);
    EXPECT_EQ(card.sw("00 E4 00 00"), sw::kConditionsNotSatisfied);  // not the MF
}

TEST(Emulator, CreatingInAProtectedDfNeedsThePin) {
    TestCard card;
    populate(card);
    SecurityAttributes guarded{Access::always(), Access::pin(kPinRef), Access::pin(kPinRef)};
    ASSERT_EQ(card.sw(create_df(0x6000, {}, guarded)), sw::kOk);
    EXPECT_EQ(card.sw(create_ef(0x6001, 4)), sw::kSecurityNotSatisfied);
    ASSERT_EQ(card.sw(verify(kPin)), sw::kOk);
    EXPECT_EQ(card.sw(create_ef(0x6001, 4)), sw::kOk);
}

TEST(Emulator, RetryCounterBlockingAndReset) {
    TestCard card;
    populate(card);
    const Bytes wrong = h("30 30 30 30 FF FF FF FF");
    EXPECT_EQ(card.sw(verify({})), 0x63C3);  // a query spends no try
    EXPECT_EQ(card.sw(verify({})), 0x63C3);
    EXPECT_EQ(card.sw(verify(wrong)), 0x63C2);
    EXPECT_EQ(card.sw(verify({})), 0x63C2);
    EXPECT_EQ(card.sw(verify(wrong)), 0x63C1);
    EXPECT_EQ(card.sw(verify(wrong)), 0x63C0);
    EXPECT_EQ(card.sw(verify(kPin)), sw::kAuthBlocked);  // blocked: even the right PIN
    EXPECT_EQ(card.sw(verify({})), sw::kAuthBlocked);
    EXPECT_EQ(card.emu.image().pins.at(kPinRef).tries_left, 0);
    // Wrong PUK spends a PUK try.
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kResetRetryCounter, 0x01, kPinRef,
                                  h("00 00 00 00 00 00 00 00"))),
              0x63C2);
    // PUK || new PIN unblocks and sets the PIN.
    const Bytes fresh = h("39 39 39 39 FF FF FF FF");
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kResetRetryCounter, 0x00, kPinRef, cat(kPuk, fresh))),
              sw::kOk);
    EXPECT_EQ(card.emu.image().pins.at(kPinRef).puk_tries_left, 3);
    EXPECT_EQ(card.sw(verify({})), 0x63C3);
    EXPECT_EQ(card.sw(verify(kPin)), 0x63C2);
    EXPECT_EQ(card.sw(verify(fresh)), sw::kOk);
    EXPECT_EQ(card.sw(verify({})), sw::kOk);
    EXPECT_EQ(card.emu.image().pins.at(kPinRef).tries_left, 3);  // success restores the counter
    // PUK only: resets the counter, keeps the PIN.
    card.sw(verify(wrong));
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kResetRetryCounter, 0x01, kPinRef, kPuk)), sw::kOk);
    EXPECT_EQ(card.sw(verify({})), 0x63C3);
    EXPECT_EQ(card.sw(verify(h("01"), 0x82)), sw::kReferenceNotFound);
    // A PIN without PUK cannot be reset.
    ASSERT_EQ(card.sw(set_pin(0x82, h("31 32 33 34"))), sw::kOk);
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kResetRetryCounter, 0x01, 0x82, kPuk)),
              sw::kConditionsNotSatisfied);
}

TEST(Emulator, PukBlocksToo) {
    TestCard card;
    ASSERT_EQ(card.sw(set_pin(kPinRef, kPin, kPuk, 2)), sw::kOk);
    for (std::uint16_t expect : {0x63C2, 0x63C1, 0x63C0, 0x6983})
        EXPECT_EQ(card.sw(CommandApdu(0, ins::kResetRetryCounter, 0x01, kPinRef, h("00"))), expect);
    EXPECT_EQ(card.sw(verify({})), 0x63C2);  // the PIN's own counter (max 2) is untouched
}

TEST(Emulator, ChangeReferenceData) {
    TestCard card;
    populate(card);
    const Bytes fresh = h("35 36 37 38 39 FF FF FF");
    // Old || new (the old one's length is that of the stored PIN).
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kChangeReferenceData, 0, kPinRef, cat(fresh, fresh))),
              0x63C2);
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kChangeReferenceData, 0, kPinRef, cat(kPin, fresh))),
              sw::kOk);
    EXPECT_TRUE(card.emu.verified(kPinRef));
    card.emu.reset();
    EXPECT_EQ(card.sw(verify(kPin)), 0x63C2);
    EXPECT_EQ(card.sw(verify(fresh)), sw::kOk);
    // New only: needs the PIN verified in this session.
    card.emu.reset();
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kChangeReferenceData, 1, kPinRef, kPin)),
              sw::kSecurityNotSatisfied);
    ASSERT_EQ(card.sw(verify(fresh)), sw::kOk);
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kChangeReferenceData, 1, kPinRef, kPin)), sw::kOk);
    card.emu.reset();
    EXPECT_EQ(card.sw(verify(kPin)), sw::kOk);
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kChangeReferenceData, 0, kPinRef, kPin)),
              sw::kWrongLength);  // no new PIN
}

TEST(Emulator, SetPinRules) {
    TestCard card;
    EXPECT_EQ(card.sw(set_pin(kPinRef, kPin)), sw::kOk);
    EXPECT_FALSE(card.emu.verified(kPinRef));
    EXPECT_EQ(card.sw(set_pin(kPinRef, h("31"))), sw::kSecurityNotSatisfied);  // not verified
    ASSERT_EQ(card.sw(verify(kPin)), sw::kOk);
    EXPECT_EQ(card.sw(set_pin(kPinRef, h("31"), {}, 5)), sw::kOk);
    EXPECT_EQ(card.sw(verify({})), 0x63C5);
    EXPECT_EQ(card.sw(set_pin(0x00, kPin)), sw::kWrongP1P2);
    EXPECT_EQ(card.sw(set_pin(0xFF, kPin)), sw::kWrongP1P2);
    EXPECT_EQ(card.sw(set_pin(0x01, kPin, {}, 16)), sw::kWrongData);
    EXPECT_EQ(card.sw(set_pin(0x01, Bytes(65, 0x31))), sw::kWrongData);
    EXPECT_EQ(card.sw("80 24 00 01 03 81 05 31"), sw::kWrongData);  // malformed TLV
    EXPECT_EQ(card.sw("80 24 00 01 03 99 01 31"), sw::kWrongData);  // unknown object
    EXPECT_EQ(card.sw("80 99 00 00"), sw::kInsNotSupported);
}

TEST(Emulator, MemoryFullKeepsPreviousContent) {
    TestCard card({}, 1024);
    EXPECT_EQ(card.emu.image().available(), 1024u - emu::kFileOverhead);
    ASSERT_EQ(card.sw(create_ef(0x1001, 500)), sw::kOk);
    Bytes content(500, 0x42);
    ASSERT_EQ(card.sw(update(0, Bytes(content.begin(), content.begin() + 255))), sw::kOk);
    ASSERT_EQ(card.sw(update(255, Bytes(content.begin() + 255, content.end()))), sw::kOk);
    ASSERT_EQ(card.sw(select_fid(kMfFid)), sw::kOk);
    EXPECT_EQ(card.sw(create_ef(0x1002, 500)), sw::kNotEnoughMemory);
    EXPECT_FALSE(card.emu.image().mf->child(0x1002));
    // GET DATA 0102: capacity and free memory.
    ResponseApdu mem = card.tx("00 CA 01 02 00");
    ASSERT_EQ(mem.sw, sw::kOk);
    EXPECT_EQ(mem.data, h("00 00 04 00 00 00 01 CC"));  // 1024, and 460 free
    std::size_t fits = card.emu.image().available() - emu::kFileOverhead;
    EXPECT_EQ(card.sw(create_ef(0x1002, fits + 1)), sw::kNotEnoughMemory);
    EXPECT_EQ(card.sw(create_ef(0x1002, fits)), sw::kOk);
    EXPECT_EQ(card.emu.image().available(), 0u);
    EXPECT_EQ(card.sw(create_df(0x5000)), sw::kNotEnoughMemory);
    EXPECT_EQ(card.sw(set_pin(0x01, kPin)), sw::kNotEnoughMemory);
    // The earlier file is intact.
    ASSERT_EQ(card.sw(select_fid(kMfFid)), sw::kOk);
    ASSERT_EQ(card.sw(select_fid(0x1001)), sw::kOk);
    ResponseApdu r = card.tx(CommandApdu(0, ins::kReadBinary, 0, 0, {}, 65536));
    EXPECT_EQ(r.data, content);
    // Deleting frees the memory again.
    EXPECT_EQ(card.sw("00 E4 00 00"), sw::kOk);
    EXPECT_EQ(card.sw(create_ef(0x1003, 400)), sw::kOk);
}

TEST(Emulator, DeleteFile) {
    TestCard card;
    populate(card);
    std::size_t before = card.emu.image().used();
    ASSERT_EQ(card.sw(create_ef(0x1001, 100)), sw::kOk);
    ASSERT_EQ(card.sw(select_fid(kMfFid)), sw::kOk);
    EXPECT_EQ(card.sw("00 E4 00 00 02 10 01"), sw::kOk);
    EXPECT_EQ(card.emu.image().used(), before);
    EXPECT_EQ(card.sw("00 E4 00 00 02 10 01"), sw::kFileNotFound);
    // A DF goes with everything in it; its parent becomes current.
    ASSERT_EQ(card.sw("00 A4 08 0C 04 50 15 44 01"), sw::kOk);
    ASSERT_EQ(card.sw("00 A4 03 0C"), sw::kOk);  // parent of the current DF 5015: the MF
    ASSERT_EQ(card.sw("00 A4 01 0C 02 50 15"), sw::kOk);
    EXPECT_EQ(card.sw("00 E4 00 00"), sw::kOk);
    EXPECT_EQ(card.sw("00 A4 01 0C 02 50 15"), sw::kFileNotFound);
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kSelect, 0x04, 0x0C, kAid)), sw::kFileNotFound);
    EXPECT_EQ(card.emu.image().used(), emu::kFileOverhead + emu::kPinOverhead);
    EXPECT_EQ(card.sw(create_df(0x5015, kAid)), sw::kOk);  // the name is free again
}

TEST(Emulator, ChangesAreReportedForSaving) {
    TestCard card;
    populate(card);
    EXPECT_TRUE(card.emu.take_changed());
    EXPECT_FALSE(card.emu.take_changed());
    card.sw(select_fid(0x5015));
    card.sw(verify({}));
    card.sw("00 CA 01 01 00");
    EXPECT_FALSE(card.emu.take_changed());
    card.sw(verify(h("00")));  // a spent try must survive a restart
    EXPECT_TRUE(card.emu.take_changed());
    card.sw(verify(kPin));  // counter restored
    EXPECT_TRUE(card.emu.take_changed());
    card.sw(verify(kPin));  // nothing new
    EXPECT_FALSE(card.emu.take_changed());
}

TEST(Emulator, ImageRoundTrip) {
    TestCard card;
    populate(card);
    card.sw(verify(h("00")));
    const emu::CardImage& img = card.emu.image();
    Bytes data = img.serialize();
    emu::CardImage back = emu::CardImage::deserialize(data);
    EXPECT_EQ(back.serialize(), data);
    EXPECT_EQ(back.serial, img.serial);
    EXPECT_EQ(back.used(), img.used());
    EXPECT_EQ(back.pins.at(kPinRef).tries_left, 2);
    EXPECT_EQ(Bytes(back.pins.at(kPinRef).puk.begin(), back.pins.at(kPinRef).puk.end()), kPuk);

    TempDir dir;
    fs::path file = dir.path / "card.img";
    emu::save_image(file, img);
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(fs::directory_iterator(dir.path)->path(), file);  // no temporary left
    TestCard again;
    again.emu.replace_image(emu::load_image(file));
    ASSERT_EQ(again.sw("00 A4 08 0C 04 50 15 44 01"), sw::kOk);
    EXPECT_EQ(again.tx(read(0, 4)).data, h("00 11 22 33"));
    EXPECT_EQ(again.sw(verify({})), 0x63C2);
    EXPECT_EQ(again.tx("00 CA 01 01 00").data, img.serial);
}

TEST(Emulator, DamagedImagesAreRefusedNamingTheFile) {
    TestCard card;
    populate(card);
    Bytes good = card.emu.image().serialize();
    TempDir dir;
    fs::path file = dir.path / "damaged.img";
    auto expect_corrupt = [&](const Bytes& data, const std::string& reason) {
        std::ofstream(file, std::ios::binary | std::ios::trunc)
            .write(reinterpret_cast<const char*>(data.data()), static_cast<long>(data.size()));
        try {
            emu::load_image(file);
            ADD_FAILURE() << "accepted: " << reason;
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::Corrupt) << reason;
            EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
        }
    };
    Bytes flipped = good;
    flipped[40] ^= 0x01;
    expect_corrupt(flipped, "checksum");
    expect_corrupt(Bytes(good.begin(), good.end() - 1), "length");
    expect_corrupt(Bytes(good.begin(), good.begin() + 10), "not a vscard-emu card image");
    expect_corrupt(h("00 01 02"), "not a vscard-emu card image");
    Bytes v2 = good;
    v2[9] = 2;
    expect_corrupt(v2, "version 2");
    try {
        emu::load_image(dir.path / "missing.img");
        ADD_FAILURE();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    }
}

TEST(Emulator, ImageStructureIsValidated) {
    // A correct checksum does not make a bad structure acceptable.
    emu::CardImage img = emu::CardImage::blank(1024);
    auto f = std::make_unique<emu::File>();
    f->fid = 0x1001;
    f->data.assign(2000, 0);  // beyond the memory
    f->parent = img.mf.get();
    img.mf->children.push_back(std::move(f));
    EXPECT_THROW(emu::CardImage::deserialize(img.serialize()), Error);
    img.mf->children.clear();
    for (int i = 0; i < 2; ++i) {
        auto dup = std::make_unique<emu::File>();
        dup->fid = 0x1001;
        dup->parent = img.mf.get();
        img.mf->children.push_back(std::move(dup));
    }
    EXPECT_THROW(emu::CardImage::deserialize(img.serialize()), Error);
}

TEST(Emulator, NoFciSwitch) {
    EmulatorOptions o;
    o.fci = false;
    TestCard card(o);
    populate(card);
    ResponseApdu r = card.tx(select_fid(0x5015, 0x04));
    EXPECT_EQ(r.sw, sw::kOk);
    EXPECT_TRUE(r.data.empty());
    r = card.tx(select_fid(0x4401, 0x00));
    EXPECT_EQ(r.sw, sw::kOk);
    EXPECT_TRUE(r.data.empty());
    // Size unknown: reading until the card signals the end still works.
    EXPECT_EQ(card.tx(read(0, 256)).data.size(), 16u);
    EXPECT_EQ(card.sw(read(16, 256)), sw::kWrongOffset);
}

TEST(Emulator, NoAidSelectSwitch) {
    EmulatorOptions o;
    o.aid_select = false;
    TestCard card(o);
    populate(card);
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kSelect, 0x04, 0x0C, kAid)), sw::kFileNotFound);
    EXPECT_EQ(card.sw("00 A4 08 0C 02 50 15"), sw::kOk);  // the path from EF.DIR works
}

TEST(Emulator, ExtendedLengthAndNoExtendedSwitch) {
    TestCard card;
    ASSERT_EQ(card.sw(create_ef(0x1001, 1000)), sw::kOk);
    Bytes big(600);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 7);
    EXPECT_EQ(card.sw(update(100, big)), sw::kOk);  // extended Lc
    ResponseApdu r = card.tx(CommandApdu(0, ins::kReadBinary, 0, 0, {}, 65536));
    ASSERT_EQ(r.sw, sw::kOk);
    ASSERT_EQ(r.data.size(), 1000u);
    EXPECT_EQ(Bytes(r.data.begin() + 100, r.data.begin() + 700), big);
    r = card.tx(CommandApdu(0, ins::kReadBinary, 0, 0, {}, 700));  // explicit extended Le
    EXPECT_EQ(r.data.size(), 700u);
    EXPECT_EQ(card.tx("00 B0 00 00 00 01 00").sw, sw::kOk);  // extended Le 256, not "all"

    EmulatorOptions o;
    o.extended = false;
    TestCard shorty(o);
    ASSERT_EQ(shorty.sw(create_ef(0x1001, 1000)), sw::kOk);
    EXPECT_EQ(shorty.sw("00 B0 00 00 00 00 00"), sw::kWrongLength);
    EXPECT_EQ(shorty.sw("00 D6 00 00 00 00 01 AA"), sw::kWrongLength);
    EXPECT_EQ(shorty.tx(read(0, 256)).data.size(), 256u);
}

TEST(Emulator, MaxLeSwitch) {
    EmulatorOptions o;
    o.max_le = 255;
    TestCard card(o);
    ASSERT_EQ(card.sw(create_ef(0x1001, 1000)), sw::kOk);
    EXPECT_EQ(card.sw(read(0, 256)), 0x6CFF);  // Le 00 refused: at most 255
    EXPECT_EQ(card.tx(read(0, 255)).data.size(), 255u);
    EXPECT_EQ(card.sw(read(900, 256)), 0x6C64);  // 100 bytes left
    EXPECT_EQ(card.sw(CommandApdu(0, ins::kReadBinary, 0, 0, {}, 65536)), 0x6CFF);

    o.wrong_le_6700 = true;
    TestCard strict(o);
    ASSERT_EQ(strict.sw(create_ef(0x1001, 1000)), sw::kOk);
    EXPECT_EQ(strict.sw(read(0, 256)), sw::kWrongLength);
    EXPECT_EQ(strict.sw(read(0, 255)), sw::kOk);
}

TEST(Emulator, ChainingAndNoChainingSwitch) {
    TestCard card;
    ASSERT_EQ(card.sw(create_ef(0x1001, 400)), sw::kOk);
    Bytes data(400);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i);
    auto parts = chain(update(0, data), 255);
    ASSERT_EQ(parts.size(), 2u);
    card.emu.take_changed();
    EXPECT_EQ(card.sw(parts[0]), sw::kOk);
    EXPECT_FALSE(card.emu.take_changed());  // nothing written before the last part
    EXPECT_EQ(card.sw(parts[1]), sw::kOk);
    EXPECT_EQ(card.tx(CommandApdu(0, ins::kReadBinary, 0, 0, {}, 65536)).data, data);
    // The last part must match the chain.
    EXPECT_EQ(card.sw(parts[0]), sw::kOk);
    EXPECT_EQ(card.sw(update(2, h("01"))), sw::kLastCommandOfChainExpected);

    EmulatorOptions o;
    o.chaining = false;
    TestCard plain(o);
    ASSERT_EQ(plain.sw(create_ef(0x1001, 400)), sw::kOk);
    EXPECT_EQ(plain.sw(parts[0]), sw::kChainingNotSupported);
    EXPECT_EQ((emulator_atr(o)[8] & 0x80), 0);
}

TEST(Emulator, GetResponseForLongAnswers) {
    TestCard card;
    populate(card);
    // Le shorter than the FCP: the first bytes, then 61xx for the rest.
    CommandApdu sel = select_fid(0x5015, 0x04);
    sel.ne = 5;
    ResponseApdu r = card.tx(sel);
    ASSERT_EQ(r.sw1(), 0x61);
    ASSERT_EQ(r.data.size(), 5u);
    Bytes fcp = r.data;
    ResponseApdu rest = card.tx(CommandApdu(0, ins::kGetResponse, 0, 0, {}, r.sw2()));
    ASSERT_EQ(rest.sw, sw::kOk);
    fcp.insert(fcp.end(), rest.data.begin(), rest.data.end());
    EXPECT_EQ(Fcp::parse(fcp).df_name, kAid);
    EXPECT_EQ(card.sw("00 C0 00 00 10"), sw::kConditionsNotSatisfied);  // nothing pending
    // No Le at all (case 3): 61xx announces the FCI.
    r = card.tx("00 A4 00 00 02 3F 00");
    EXPECT_EQ(r.sw1(), 0x61);
    EXPECT_TRUE(r.data.empty());
    // Any other command drops the pending response.
    card.tx("00 CA 01 01 00");
    EXPECT_EQ(card.sw("00 C0 00 00 10"), sw::kConditionsNotSatisfied);
}

TEST(Emulator, T0ResponsesSwitch) {
    EmulatorOptions o;
    o.t0_responses = true;
    TestCard card(o);
    populate(card);
    ResponseApdu r = card.tx(CommandApdu(0, ins::kSelect, 0x08, 0x04, h("50 15 44 01"), 256));
    ASSERT_EQ(r.sw1(), 0x61);
    EXPECT_TRUE(r.data.empty());
    r = card.tx(CommandApdu(0, ins::kGetResponse, 0, 0, {}, r.sw2()));
    EXPECT_EQ(r.sw, sw::kOk);
    EXPECT_EQ(Fcp::parse(r.data).fid, 0x4401);
    r = card.tx(read(0, 4));
    EXPECT_EQ(r.sw, 0x6104);
}

// The APDU layer's exchange() against the emulator: what a PC/SC client will do.
using vscard::testing::EmulatorLink;

TEST(Emulator, ExchangeCopesWithEveryVariation) {
    EmulatorOptions o;
    o.t0_responses = true;
    o.max_le = 255;
    o.extended = false;
    TestCard card(o);
    populate(card);
    EmulatorLink link(card.emu);
    ExchangeOptions x;  // no extended length: chaining and short Le
    ASSERT_EQ(exchange(link, create_ef(0x1001, 600), x).sw, sw::kOk);
    Bytes data(600, 0x3C);
    ASSERT_EQ(exchange(link, update(0, data), x).sw, sw::kOk);  // chained
    ResponseApdu r = exchange(link, read(0, 256), x);           // 6CFF, then 61xx
    EXPECT_EQ(r.sw, sw::kOk);
    EXPECT_EQ(r.data.size(), 255u);
    r = exchange(link, CommandApdu(0, ins::kSelect, 0x04, 0x00, kAid, 256), x);
    EXPECT_EQ(r.sw, sw::kOk);
    EXPECT_EQ(Fcp::parse(r.data).df_name, kAid);
}

TEST(Emulator, EraseCardSwitch) {
    TestCard card;
    populate(card);
    EXPECT_EQ(card.sw("80 EE 00 00"), sw::kSecurityNotSatisfied);
    EmulatorOptions o;
    o.allow_erase = true;
    TestCard erasable(o);
    populate(erasable);
    Bytes serial = erasable.emu.image().serial;
    EXPECT_EQ(erasable.sw("80 EE 00 00"), sw::kOk);
    EXPECT_TRUE(erasable.emu.image().mf->children.empty());
    EXPECT_TRUE(erasable.emu.image().pins.empty());
    EXPECT_EQ(erasable.emu.image().serial, serial);
    EXPECT_TRUE(erasable.emu.take_changed());
}

TEST(Emulator, ClassesAndUnknownInstructions) {
    TestCard card;
    EXPECT_EQ(card.sw("0C A4 00 0C 02 3F 00"), sw::kSmNotSupported);
    EXPECT_EQ(card.sw("01 A4 00 0C 02 3F 00"), sw::kChannelNotSupported);
    EXPECT_EQ(card.sw("FF A4 00 0C 02 3F 00"), sw::kClaNotSupported);
    EXPECT_EQ(card.sw("A0 A4 00 0C 02 3F 00"), sw::kClaNotSupported);
    EXPECT_EQ(card.sw("00 12 00 00"), sw::kInsNotSupported);
    EXPECT_EQ(card.sw("00 44 00 00"), sw::kOk);
    ResponseApdu r = card.tx("00 84 00 00 08");
    EXPECT_EQ(r.sw, sw::kOk);
    EXPECT_EQ(r.data.size(), 8u);
    r = card.tx("00 CA 01 01 00");
    EXPECT_EQ(r.data, card.emu.image().serial);
    EXPECT_EQ(card.sw("00 CA 00 5A 00"), sw::kReferenceNotFound);
}

TEST(Emulator, GarbageNeverBreaksTheCard) {
    TestCard card;
    populate(card);
    std::mt19937 rng(11);
    for (int i = 0; i < 20000; ++i) {
        Bytes cmd(rng() % 12);
        for (auto& b : cmd) b = static_cast<std::uint8_t>(rng());
        if (cmd.size() > 1 && (i & 1)) cmd[0] = 0x00;  // mostly interindustry
        Bytes resp = card.emu.process(ByteView(cmd));
        ASSERT_GE(resp.size(), 2u);
    }
    card.emu.reset();
    EXPECT_EQ(card.sw("00 A4 08 0C 02 50 15"), sw::kOk);
}

}  // namespace
}  // namespace vscard::card
