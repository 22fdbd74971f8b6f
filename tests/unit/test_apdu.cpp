// APDU layer: encoding of the four cases in short and extended form (ISO/IEC 7816-3 §12.1),
// parsing, chaining, the 61xx/6Cxx exchange against a scripted card, and the APDU log.
#include <gtest/gtest.h>

#include <deque>
#include <string>

#include "card/apdu.hpp"
#include "error.hpp"

namespace vscard::card {
namespace {

Bytes h(std::string_view text) {
    return from_hex(text);
}

void expect_error(ErrorKind kind, const std::function<void()>& f) {
    try {
        f();
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), kind) << e.what();
    }
}

// A card that answers from a script and records what it was sent.
class ScriptedCard : public Transmitter {
public:
    explicit ScriptedCard(std::deque<Bytes> answers) : answers_(std::move(answers)) {}
    std::function<Bytes(ByteView)> fallback;  // once the script is used up
    std::vector<Bytes> sent;

    Bytes transmit(ByteView command) override {
        sent.emplace_back(command.begin(), command.end());
        if (answers_.empty()) {
            if (fallback) return fallback(command);
            ADD_FAILURE() << "unexpected command " << to_hex(command);
            return h("6F 00");
        }
        Bytes a = std::move(answers_.front());
        answers_.pop_front();
        return a;
    }

private:
    std::deque<Bytes> answers_;
};

TEST(Apdu, ShortCases) {
    // Case 1: header only.
    EXPECT_EQ(CommandApdu(0x00, 0x44, 0x00, 0x00).encode(), h("00 44 00 00"));
    EXPECT_EQ(CommandApdu(0x00, 0x44, 0x00, 0x00).iso_case(), 1);
    // Case 2S: GET CHALLENGE of 8 bytes; Le 00 stands for 256.
    EXPECT_EQ(CommandApdu(0x00, 0x84, 0x00, 0x00, {}, 8).encode(), h("00 84 00 00 08"));
    EXPECT_EQ(CommandApdu(0x00, 0xB0, 0x00, 0x00, {}, 256).encode(), h("00 B0 00 00 00"));
    // Case 3S: SELECT MF, no response data.
    CommandApdu select(0x00, 0xA4, 0x00, 0x0C, h("3F 00"));
    EXPECT_EQ(select.iso_case(), 3);
    EXPECT_EQ(select.encode(), h("00 A4 00 0C 02 3F 00"));
    // Case 4S: SELECT of the PKCS#15 application by AID, FCI wanted.
    CommandApdu aid(0x00, 0xA4, 0x04, 0x00, h("A0 00 00 00 63 50 4B 43 53 2D 31 35"), 256);
    EXPECT_EQ(aid.iso_case(), 4);
    EXPECT_EQ(aid.encode(), h("00 A4 04 00 0C A0 00 00 00 63 50 4B 43 53 2D 31 35 00"));
}

TEST(Apdu, ExtendedCases) {
    // Case 2E: Le 0000 stands for 65536.
    EXPECT_EQ(CommandApdu(0x00, 0xB0, 0x00, 0x00, {}, 65536).encode(), h("00 B0 00 00 00 00 00"));
    EXPECT_EQ(CommandApdu(0x00, 0xB0, 0x00, 0x00, {}, 257).encode(), h("00 B0 00 00 00 01 01"));
    // Case 3E and 4E with 300 data bytes.
    Bytes data(300, 0xAB);
    Bytes e3 = CommandApdu(0x00, 0xD6, 0x00, 0x00, data).encode();
    ASSERT_EQ(e3.size(), 7u + 300u);
    EXPECT_EQ(Bytes(e3.begin(), e3.begin() + 7), h("00 D6 00 00 00 01 2C"));
    Bytes e4 = CommandApdu(0x00, 0x2A, 0x9E, 0x9A, data, 65536).encode();
    ASSERT_EQ(e4.size(), 9u + 300u);
    EXPECT_EQ(Bytes(e4.end() - 2, e4.end()), h("00 00"));
    // Extended form on request, also when short would do.
    EXPECT_EQ(CommandApdu(0x00, 0x84, 0x00, 0x00, {}, 8).encode(LengthForm::Extended),
              h("00 84 00 00 00 00 08"));
    EXPECT_EQ(CommandApdu(0x00, 0xA4, 0x00, 0x0C, h("3F 00")).encode(LengthForm::Extended),
              h("00 A4 00 0C 00 00 02 3F 00"));
    EXPECT_EQ(CommandApdu(0x00, 0x44, 0x00, 0x00).encode(LengthForm::Extended), h("00 44 00 00"));
}

TEST(Apdu, RefusesSizesThatDoNotFit) {
    expect_error(ErrorKind::Invalid,
                 [] { CommandApdu(0, 0xD6, 0, 0, Bytes(256, 1)).encode(LengthForm::Short); });
    expect_error(ErrorKind::Invalid,
                 [] { CommandApdu(0, 0xB0, 0, 0, {}, 257).encode(LengthForm::Short); });
    expect_error(ErrorKind::Invalid, [] { CommandApdu(0, 0xD6, 0, 0, Bytes(65536, 1)).encode(); });
    expect_error(ErrorKind::Invalid, [] { CommandApdu(0, 0xB0, 0, 0, {}, 65537).encode(); });
}

TEST(Apdu, ParseAllCasesRoundTrip) {
    std::vector<CommandApdu> commands = {
        CommandApdu(0x00, 0x44, 0, 0),
        CommandApdu(0x00, 0xB0, 0x01, 0x02, {}, 1),
        CommandApdu(0x00, 0xB0, 0, 0, {}, 256),
        CommandApdu(0x00, 0xA4, 0, 0x0C, h("3F 00")),
        CommandApdu(0x00, 0xA4, 4, 0, h("A0 00 00 00 63"), 256),
        CommandApdu(0x00, 0xB0, 0, 0, {}, 65536),
        CommandApdu(0x00, 0xD6, 0, 0, Bytes(1000, 7)),
        CommandApdu(0x00, 0xD6, 0, 0, Bytes(255, 7), 300),
        CommandApdu(0x80, 0xCA, 1, 1, Bytes(65535, 9), 65536),
    };
    for (const auto& c : commands) {
        ParsedCommand p = parse_command(c.encode());
        EXPECT_EQ(p.extended, c.needs_extended());
        EXPECT_EQ(p.apdu.cla, c.cla);
        EXPECT_EQ(p.apdu.ins, c.ins);
        EXPECT_EQ(p.apdu.p1, c.p1);
        EXPECT_EQ(p.apdu.p2, c.p2);
        EXPECT_EQ(p.apdu.data, c.data);
        EXPECT_EQ(p.apdu.ne, c.ne);
    }
    // Extended encoding of a small command decodes as extended.
    EXPECT_TRUE(parse_command(h("00 B0 00 00 00 00 10")).extended);
    EXPECT_EQ(parse_command(h("00 B0 00 00 00 00 10")).apdu.ne, 16u);
}

TEST(Apdu, ParseRefusesMalformedCommands) {
    for (const char* bad : {"", "00", "00 A4 00", "00 A4 00 00 02 3F",  // Lc beyond the data
                            "00 A4 00 00 02 3F 00 00 00",               // Lc short of the data
                            "00 B0 00 00 00 01",                        // truncated extended Le
                            "00 D6 00 00 00 00 00 01",                  // extended Lc 0
                            "00 D6 00 00 00 00 03 01 02",               // extended Lc beyond
                            "00 D6 00 00 00 00 01 01 02"}) {            // trailing byte
        expect_error(ErrorKind::Invalid, [&] { parse_command(h(bad)); });
    }
}

TEST(Apdu, Responses) {
    ResponseApdu r = ResponseApdu::parse(h("01 02 90 00"));
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.data, h("01 02"));
    EXPECT_EQ(r.encode(), h("01 02 90 00"));
    r = ResponseApdu::parse(h("6A 82"));
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.sw, 0x6A82);
    EXPECT_EQ(r.sw1(), 0x6A);
    EXPECT_EQ(r.sw2(), 0x82);
    EXPECT_TRUE(r.data.empty());
    EXPECT_FALSE(r.tries_left());
    EXPECT_EQ(ResponseApdu::parse(h("63 C2")).tries_left(), 2);
    EXPECT_EQ(ResponseApdu::parse(h("63 C0")).tries_left(), 0);
    EXPECT_EQ(ResponseApdu::parse(h("69 83")).tries_left(), 0);
    EXPECT_FALSE(ResponseApdu::parse(h("63 00")).tries_left());
    expect_error(ErrorKind::Invalid, [] { ResponseApdu::parse(h("90")); });
    EXPECT_EQ(sw_hex(0x6A82), "6A82");
}

TEST(Apdu, Hex) {
    EXPECT_EQ(to_hex(h("00 a4 0F")), "00 A4 0F");
    EXPECT_EQ(to_hex(h("00A4"), ""), "00A4");
    EXPECT_EQ(from_hex("3f:00"), h("3F 00"));
    EXPECT_THROW(from_hex("3F0"), Error);
    EXPECT_THROW(from_hex("3G"), Error);
}

TEST(Apdu, Chaining) {
    Bytes data(600);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i);
    CommandApdu c(0x00, 0xDB, 0x3F, 0xFF, data, 256);
    auto parts = chain(c, 255);
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(parts[0].cla, 0x10);
    EXPECT_EQ(parts[1].cla, 0x10);
    EXPECT_EQ(parts[2].cla, 0x00);
    EXPECT_EQ(parts[0].data.size(), 255u);
    EXPECT_EQ(parts[2].data.size(), 90u);
    EXPECT_EQ(parts[0].ne, 0u);
    EXPECT_EQ(parts[2].ne, 256u);
    Bytes joined;
    for (const auto& p : parts) {
        EXPECT_EQ(p.ins, 0xDB);
        EXPECT_EQ(p.p1, 0x3F);
        EXPECT_EQ(p.p2, 0xFF);
        joined.insert(joined.end(), p.data.begin(), p.data.end());
    }
    EXPECT_EQ(joined, data);
    EXPECT_EQ(chain(c, 600).size(), 1u);
    EXPECT_EQ(chain(CommandApdu(0x80, 0xDB, 0, 0, Bytes(20)), 8)[0].cla, 0x90);
    EXPECT_THROW(chain(c, 0), Error);
}

TEST(Exchange, GetResponseCollectsAllData) {
    // 61xx without data (T=0 style), then 61xx with data.
    ScriptedCard card({h("61 04"), h("01 02 03 04 61 02"), h("05 06 90 00")});
    ResponseApdu r = exchange(card, CommandApdu(0x00, 0xA4, 0x04, 0x00, h("A0 00 00 00 63")));
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.data, h("01 02 03 04 05 06"));
    ASSERT_EQ(card.sent.size(), 3u);
    EXPECT_EQ(card.sent[1], h("00 C0 00 00 04"));
    EXPECT_EQ(card.sent[2], h("00 C0 00 00 02"));
}

TEST(Exchange, GetResponseOfProprietaryClassUsesInterindustryClass) {
    ScriptedCard card({h("61 00"), h("90 00")});
    exchange(card, CommandApdu(0x80, 0xCA, 0x01, 0x01, {}, 16));
    EXPECT_EQ(card.sent[1], h("00 C0 00 00 00"));  // 61 00: up to 256 more
}

TEST(Exchange, WrongLengthIsResentWithTheExactLe) {
    Bytes answer(32, 0xEE);
    answer.push_back(0x90);
    answer.push_back(0x00);
    ScriptedCard card2({h("6C 20"), answer});
    ResponseApdu r = exchange(card2, CommandApdu(0x00, 0xB0, 0x00, 0x00, {}, 256));
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.data.size(), 32u);
    EXPECT_EQ(card2.sent[0], h("00 B0 00 00 00"));
    EXPECT_EQ(card2.sent[1], h("00 B0 00 00 20"));
}

TEST(Exchange, EndlessGetResponseChainIsCapped) {
    ScriptedCard card({});
    card.fallback = [](ByteView) { return h("AA 61 01"); };
    ExchangeOptions o;
    o.max_rounds = 10;
    expect_error(ErrorKind::Io,
                 [&] { exchange(card, CommandApdu(0x00, 0xA4, 0x00, 0x00, h("3F 00")), o); });
    EXPECT_LE(card.sent.size(), 11u);

    ScriptedCard resend({});
    resend.fallback = [](ByteView) { return h("6C 10"); };
    expect_error(ErrorKind::Io,
                 [&] { exchange(resend, CommandApdu(0x00, 0xB0, 0, 0, {}, 256), o); });
    EXPECT_LE(resend.sent.size(), 11u);
}

TEST(Exchange, EndlessDataIsCappedBySize) {
    ScriptedCard card({});
    card.fallback = [&](ByteView) {
        Bytes chunk(256, 0x55);
        chunk.push_back(0x61);
        chunk.push_back(0x00);
        return chunk;
    };
    ExchangeOptions o;
    o.max_rounds = 1000000;
    o.max_response = 4096;
    expect_error(ErrorKind::Io, [&] { exchange(card, CommandApdu(0, 0xCA, 1, 1, {}, 256), o); });
    EXPECT_LE(card.sent.size(), 4096u / 256u + 2u);
}

TEST(Exchange, MalformedResponse) {
    ScriptedCard card({h("90")});
    expect_error(ErrorKind::Io, [&] { exchange(card, CommandApdu(0, 0x44, 0, 0)); });
}

TEST(Exchange, ChainsWhenTheCardLacksExtendedLength) {
    ScriptedCard card({h("90 00"), h("90 00")});
    ResponseApdu r = exchange(card, CommandApdu(0x00, 0xD6, 0x00, 0x00, Bytes(300, 1)));
    EXPECT_TRUE(r.ok());
    ASSERT_EQ(card.sent.size(), 2u);
    EXPECT_EQ(Bytes(card.sent[0].begin(), card.sent[0].begin() + 5), h("10 D6 00 00 FF"));
    EXPECT_EQ(Bytes(card.sent[1].begin(), card.sent[1].begin() + 5), h("00 D6 00 00 2D"));

    // A refusal in the middle stops the chain.
    ScriptedCard refusing({h("68 84")});
    EXPECT_EQ(exchange(refusing, CommandApdu(0, 0xD6, 0, 0, Bytes(600, 1))).sw, 0x6884);
    EXPECT_EQ(refusing.sent.size(), 1u);

    // With extended length: one APDU.
    ScriptedCard ext({h("90 00")});
    ExchangeOptions o;
    o.extended = true;
    exchange(ext, CommandApdu(0x00, 0xD6, 0x00, 0x00, Bytes(300, 1)), o);
    ASSERT_EQ(ext.sent.size(), 1u);
    EXPECT_EQ(Bytes(ext.sent[0].begin(), ext.sent[0].begin() + 7), h("00 D6 00 00 00 01 2C"));
}

TEST(Exchange, LeIsClampedWithoutExtendedLength) {
    ScriptedCard card({h("90 00")});
    exchange(card, CommandApdu(0x00, 0xB0, 0x00, 0x00, {}, 4000));
    EXPECT_EQ(card.sent[0], h("00 B0 00 00 00"));
}

TEST(ApduLog, OffByDefaultButCounts) {
    ApduLog log;
    ScriptedCard card({h("90 00"), h("90 00")});
    ExchangeOptions o;
    o.log = &log;
    exchange(card, CommandApdu(0x00, 0xA4, 0x00, 0x0C, h("3F 00")), o);
    EXPECT_FALSE(log.enabled());
    EXPECT_TRUE(log.lines().empty());
    EXPECT_EQ(log.commands(), 1u);
    log.enable();
    std::vector<std::string> sunk;
    log.set_sink([&](const std::string& l) { sunk.push_back(l); });
    exchange(card, CommandApdu(0x00, 0xA4, 0x00, 0x0C, h("3F 00")), o);
    ASSERT_EQ(log.lines().size(), 2u);
    EXPECT_EQ(log.lines()[0], "apdu #2 > 00 A4 00 0C 02 3F 00");
    EXPECT_EQ(log.lines()[1], "apdu #2 < 90 00");
    EXPECT_EQ(sunk, log.lines());
    log.clear();
    EXPECT_EQ(log.commands(), 0u);
}

TEST(ApduLog, NeverContainsPinBytes) {
    const Bytes pin = h("C0 FF EE 42 13 37 FF FF");
    const Bytes puk = h("5A A5 77 88");
    const std::string pin_hex = to_hex(pin), pin_plain = to_hex(pin, "");
    const std::string fragment = to_hex(ByteView(pin).first(4));
    ApduLog log;
    log.enable();
    ScriptedCard card({});
    card.fallback = [](ByteView) { return h("63 C2"); };
    ExchangeOptions o;
    o.log = &log;
    Bytes pin_pair = pin;
    pin_pair.insert(pin_pair.end(), pin.begin(), pin.end());
    Bytes puk_pin = puk;
    puk_pin.insert(puk_pin.end(), pin.begin(), pin.end());
    exchange(card, CommandApdu(0x00, ins::kVerify, 0x00, 0x81, pin), o);
    exchange(card, CommandApdu(0x00, ins::kChangeReferenceData, 0x00, 0x81, pin_pair), o);
    exchange(card, CommandApdu(0x00, ins::kResetRetryCounter, 0x00, 0x81, puk_pin), o);
    exchange(card, CommandApdu(0x80, ins::kChangeReferenceData, 0x00, 0x81, pin), o);  // SET PIN
    // A chained VERIFY: every part is withheld.
    ExchangeOptions chained = o;
    chained.chunk = 3;
    exchange(card, CommandApdu(0x00, ins::kVerify, 0x00, 0x81, pin), chained);
    // Raw entries, even malformed ones.
    log.command(h("00 20 00 81 08 C0 FF EE 42"));
    auto lines = log.lines();
    ASSERT_FALSE(lines.empty());
    std::string all;
    for (const auto& l : lines) all += l + "\n";
    EXPECT_EQ(all.find(fragment), std::string::npos) << all;
    EXPECT_EQ(all.find(pin_plain.substr(0, 8)), std::string::npos) << all;
    EXPECT_EQ(all.find(to_hex(puk)), std::string::npos) << all;
    EXPECT_NE(all.find("00 20 00 81 Lc=8 [PIN data withheld]"), std::string::npos) << all;
    EXPECT_NE(all.find("00 24 00 81 Lc=16"), std::string::npos) << all;
    EXPECT_NE(all.find("00 2C 00 81 Lc=12"), std::string::npos) << all;
    EXPECT_NE(all.find("80 24 00 81 Lc=8"), std::string::npos) << all;
    EXPECT_NE(all.find("10 20 00 81 Lc=3"), std::string::npos) << all;
    EXPECT_EQ(describe_command(h("00 20 00 81")), "00 20 00 81");  // status query: no data
}

}  // namespace
}  // namespace vscard::card
