// The pure parts of the PC/SC layer: pcsc-lite status codes to typed errors, ATR parsing, the
// stable id of a card without an application, and the reader state machine of the monitor.
#include <PCSC/winscard.h>
#include <gtest/gtest.h>

#include "card/apdu.hpp"
#include "card/emulator.hpp"
#include "card/pcsc.hpp"
#include "card/reader_monitor.hpp"
#include "error.hpp"

namespace vscard::card {
namespace {

using Kind = ReaderEvent::Kind;

TEST(PcscErrors, CodeNames) {
    EXPECT_EQ(pcsc_code_name(SCARD_E_NO_SERVICE), "SCARD_E_NO_SERVICE");
    EXPECT_EQ(pcsc_code_name(SCARD_W_REMOVED_CARD), "SCARD_W_REMOVED_CARD");
    EXPECT_EQ(pcsc_code_name(SCARD_E_NO_READERS_AVAILABLE), "SCARD_E_NO_READERS_AVAILABLE");
    EXPECT_EQ(pcsc_code_name(static_cast<long>(0x80100099)), "0x80100099");
}

TEST(PcscErrors, Kinds) {
    struct {
        long code;
        ErrorKind kind;
    } table[] = {
        {SCARD_E_NO_SERVICE, ErrorKind::Unavailable},
        {SCARD_E_SERVICE_STOPPED, ErrorKind::Unavailable},
        {SCARD_F_COMM_ERROR, ErrorKind::Unavailable},
        {SCARD_W_REMOVED_CARD, ErrorKind::Io},
        {SCARD_E_NO_SMARTCARD, ErrorKind::Io},
        {SCARD_W_RESET_CARD, ErrorKind::Io},
        {SCARD_W_UNRESPONSIVE_CARD, ErrorKind::Io},
        {SCARD_E_NOT_TRANSACTED, ErrorKind::Io},
        {SCARD_E_READER_UNAVAILABLE, ErrorKind::Io},
        {SCARD_E_UNKNOWN_READER, ErrorKind::NotFound},
        {SCARD_E_NO_READERS_AVAILABLE, ErrorKind::NotFound},
        {SCARD_E_SHARING_VIOLATION, ErrorKind::Busy},
        {SCARD_E_TIMEOUT, ErrorKind::Busy},
        {SCARD_E_PROTO_MISMATCH, ErrorKind::NotSupported},
        {SCARD_E_INSUFFICIENT_BUFFER, ErrorKind::Invalid},
        {SCARD_F_INTERNAL_ERROR, ErrorKind::Io},
    };
    for (const auto& row : table)
        EXPECT_EQ(pcsc_error_kind(row.code), row.kind) << pcsc_code_name(row.code);
    EXPECT_EQ(errno_of(pcsc_error_kind(SCARD_W_REMOVED_CARD)), EIO);
}

TEST(PcscErrors, MessagesSayWhatFailedAndWhatToDo) {
    Error e = pcsc_error(SCARD_E_NO_SERVICE, "cannot list the smart-card readers");
    EXPECT_EQ(e.kind(), ErrorKind::Unavailable);
    std::string m = e.what();
    EXPECT_EQ(m.rfind("cannot list the smart-card readers: ", 0), 0u) << m;
    EXPECT_NE(m.find("pcscd is not running"), std::string::npos) << m;
    EXPECT_NE(m.find(pcsc_socket_path()), std::string::npos) << m;
    EXPECT_NE(m.find("systemctl start pcscd.socket"), std::string::npos) << m;
    EXPECT_NE(m.find("(SCARD_E_NO_SERVICE)"), std::string::npos) << m;

    m = pcsc_error(SCARD_W_REMOVED_CARD, "cannot send a command to the card", "Reader 0").what();
    EXPECT_NE(m.find("(reader 'Reader 0')"), std::string::npos) << m;
    EXPECT_NE(m.find("removed; insert it again"), std::string::npos) << m;

    m = pcsc_error(SCARD_E_UNKNOWN_READER, "cannot connect", "X").what();
    EXPECT_NE(m.find("vscardctl readers"), std::string::npos) << m;
    m = pcsc_error(SCARD_E_SHARING_VIOLATION, "cannot connect", "X").what();
    EXPECT_NE(m.find("in use by another program"), std::string::npos) << m;
    m = pcsc_error(static_cast<long>(0x80100099), "x").what();
    EXPECT_NE(m.find("0x80100099"), std::string::npos) << m;
}

TEST(PcscErrors, Classification) {
    EXPECT_TRUE(pcsc_service_lost(SCARD_E_NO_SERVICE));
    EXPECT_TRUE(pcsc_service_lost(SCARD_E_SERVICE_STOPPED));
    EXPECT_TRUE(pcsc_service_lost(SCARD_F_COMM_ERROR));
    EXPECT_FALSE(pcsc_service_lost(SCARD_W_REMOVED_CARD));
    EXPECT_TRUE(pcsc_card_absent(SCARD_W_REMOVED_CARD));
    EXPECT_TRUE(pcsc_card_absent(SCARD_E_NO_SMARTCARD));
    EXPECT_FALSE(pcsc_card_absent(SCARD_W_RESET_CARD));
}

TEST(PcscAtr, EmulatorAtrAnnouncesItsCapabilities) {
    AtrInfo a = parse_atr(emulator_atr({}));
    EXPECT_TRUE(a.valid);
    EXPECT_TRUE(a.t0);
    EXPECT_TRUE(a.t1);
    EXPECT_TRUE(a.extended_length);
    EXPECT_TRUE(a.chaining);
    EXPECT_EQ(a.historical.at(0), 0x80);

    EmulatorOptions plain;
    plain.extended = false;
    plain.chaining = false;
    AtrInfo b = parse_atr(emulator_atr(plain));
    EXPECT_TRUE(b.valid);
    EXPECT_FALSE(b.extended_length);
    EXPECT_FALSE(b.chaining);
}

TEST(PcscAtr, RealWorldAtrs) {
    // T=0 only (no TD1), two historical bytes without a category indicator we know.
    AtrInfo t0 = parse_atr(from_hex("3B 02 14 50"));
    EXPECT_TRUE(t0.valid);
    EXPECT_TRUE(t0.t0);
    EXPECT_FALSE(t0.t1);
    EXPECT_EQ(t0.historical, from_hex("14 50"));
    EXPECT_FALSE(t0.extended_length);

    // A T=1 token: TA1 TB1 TC1 TD1(T=1) TD2(T=1, TA3 TB3), 13 historical bytes with card
    // capabilities 73 C0 21 C0 (chaining, extended Lc/Le), TCK.
    AtrInfo t1 =
        parse_atr(from_hex("3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40"));
    EXPECT_TRUE(t1.valid);
    EXPECT_FALSE(t1.t0);
    EXPECT_TRUE(t1.t1);
    EXPECT_EQ(t1.historical.size(), 13u);
    EXPECT_TRUE(t1.extended_length);
    EXPECT_TRUE(t1.chaining);

    // Category 00: compact-TLV objects followed by three status bytes (not parsed as TLV).
    AtrInfo s = parse_atr(from_hex("3B 88 80 01 00 73 C8 00 40 00 90 00 62"));
    EXPECT_TRUE(s.valid);
    EXPECT_TRUE(s.t0 && s.t1);
    EXPECT_TRUE(s.extended_length);
    EXPECT_FALSE(s.chaining);
}

TEST(PcscAtr, MalformedAtrsAreHarmless) {
    for (const char* hex : {"", "3B", "00 00", "3B 8F 80", "3B 0F 01 02", "3F F0 FF FF"}) {
        AtrInfo a = parse_atr(from_hex(hex));
        EXPECT_FALSE(a.valid) << hex;
        EXPECT_FALSE(a.extended_length) << hex;
    }
    // Compact-TLV running past the end is ignored, the rest stands.
    AtrInfo a = parse_atr(from_hex("3B 83 80 01 80 7F 00"));
    EXPECT_TRUE(a.valid);
    EXPECT_FALSE(a.extended_length);
}

TEST(PcscCardId, StableAndDistinct) {
    Bytes atr = from_hex("3B 02 14 50");
    // Pinned: the id names card/SERIAL and is recorded as a VSC's assigned card, so it must
    // never change between versions.
    EXPECT_EQ(stable_card_id("Reader 0", atr), "atr-432a4c750da3fee9");
    EXPECT_EQ(stable_card_id("Reader 0", atr), stable_card_id("Reader 0", atr));
    EXPECT_NE(stable_card_id("Reader 1", atr), stable_card_id("Reader 0", atr));
    EXPECT_NE(stable_card_id("Reader 0", from_hex("3B 02 14 51")), stable_card_id("Reader 0", atr));
    // Reader and ATR are kept apart: moving a byte across the boundary changes the id.
    EXPECT_NE(stable_card_id("ab", from_hex("3B")), stable_card_id("a", from_hex("62 3B")));
    std::string id = stable_card_id("Test PCD 00 00", emulator_atr({}));
    EXPECT_EQ(id.size(), 20u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 4), std::string::npos) << id;
}

// dwEventState as pcsc-lite builds it: flags in the low word, event counter in the high word.
unsigned long state(unsigned long flags, unsigned counter) {
    return flags | (static_cast<unsigned long>(counter) << 16) | SCARD_STATE_CHANGED;
}

std::vector<Kind> kinds(const std::vector<ReaderEvent>& events) {
    std::vector<Kind> k;
    for (const auto& e : events) k.push_back(e.kind);
    return k;
}

TEST(ReaderTracking, InsertRemoveAndFirstLook) {
    const Bytes atr = emulator_atr({});
    ReaderTrack t;
    std::vector<ReaderEvent> ev;
    track_reader("R", t, state(SCARD_STATE_EMPTY, 0), {}, ev);
    EXPECT_TRUE(ev.empty());
    EXPECT_EQ(t.current & SCARD_STATE_CHANGED, 0u);  // fed back as dwCurrentState
    track_reader("R", t, state(SCARD_STATE_PRESENT, 1), atr, ev);
    ASSERT_EQ(kinds(ev), std::vector<Kind>{Kind::CardInserted});
    EXPECT_EQ(ev[0].reader, "R");
    EXPECT_EQ(ev[0].atr, atr);
    ev.clear();
    // In use by us: a change of flags, no event.
    track_reader("R", t, state(SCARD_STATE_PRESENT | SCARD_STATE_INUSE, 1), atr, ev);
    EXPECT_TRUE(ev.empty());
    track_reader("R", t, state(SCARD_STATE_EMPTY, 2), {}, ev);
    EXPECT_EQ(kinds(ev), std::vector<Kind>{Kind::CardRemoved});
    EXPECT_FALSE(t.present);

    // A card already in at the first look is reported inserted.
    ReaderTrack u;
    ev.clear();
    track_reader("S", u, state(SCARD_STATE_PRESENT, 5), atr, ev);
    EXPECT_EQ(kinds(ev), std::vector<Kind>{Kind::CardInserted});
}

TEST(ReaderTracking, CounterMovesWhilePresentMeansReset) {
    const Bytes atr = emulator_atr({});
    ReaderTrack t;
    std::vector<ReaderEvent> ev;
    track_reader("R", t, state(SCARD_STATE_PRESENT, 1), atr, ev);
    ev.clear();
    // Out and in again between two waits: same ATR, counter +2.
    track_reader("R", t, state(SCARD_STATE_PRESENT, 3), atr, ev);
    ASSERT_EQ(kinds(ev), std::vector<Kind>{Kind::CardReset});
    EXPECT_EQ(ev[0].atr, atr);
    ev.clear();
    // Another card (another ATR): removal and insertion.
    EmulatorOptions other;
    other.extended = false;
    track_reader("R", t, state(SCARD_STATE_PRESENT, 5), emulator_atr(other), ev);
    EXPECT_EQ(kinds(ev), (std::vector<Kind>{Kind::CardRemoved, Kind::CardInserted}));
    EXPECT_EQ(ev[1].atr, emulator_atr(other));
}

TEST(ReaderTracking, MuteCardsAndReadersThatGoAndComeBack) {
    const Bytes atr = emulator_atr({});
    ReaderTrack t;
    std::vector<ReaderEvent> ev;
    track_reader("R", t, state(SCARD_STATE_PRESENT | SCARD_STATE_MUTE, 1), {}, ev);
    EXPECT_TRUE(ev.empty());  // a mute card cannot be used
    track_reader("R", t, state(SCARD_STATE_PRESENT, 1), atr, ev);
    EXPECT_EQ(kinds(ev), std::vector<Kind>{Kind::CardInserted});
    ev.clear();
    track_reader("R", t, SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE | SCARD_STATE_CHANGED, {},
                 ev);
    EXPECT_EQ(kinds(ev), (std::vector<Kind>{Kind::CardRemoved, Kind::ReaderRemoved}));
    EXPECT_TRUE(t.gone);
    EXPECT_TRUE(t.current & SCARD_STATE_UNKNOWN);  // so pcsc-lite tells when it is back
    ev.clear();
    track_reader("R", t, SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE, {}, ev);
    EXPECT_TRUE(ev.empty());  // reported once
    track_reader("R", t, state(SCARD_STATE_PRESENT, 0), atr, ev);
    EXPECT_EQ(kinds(ev), (std::vector<Kind>{Kind::ReaderAdded, Kind::CardInserted}));
}

TEST(ReaderTracking, EventNames) {
    EXPECT_EQ(to_string(Kind::CardInserted), "card inserted");
    EXPECT_EQ(to_string(Kind::ServiceLost), "pcscd lost");
}

}  // namespace
}  // namespace vscard::card
