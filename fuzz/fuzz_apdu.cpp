// Command and response APDUs: the parser the emulator uses on every command, the client's
// exchange() (chaining, 61xx / 6Cxx handling) against a card that answers with fuzzed bytes,
// and the APDU log's description of commands.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "card/apdu.hpp"
#include "error.hpp"
#include "fuzz_util.hpp"

namespace {

using namespace vscard;
using namespace vscard::card;

// A card whose every answer is the next part of the fuzz input.
class ScriptedCard : public Transmitter {
public:
    explicit ScriptedCard(fuzz::Input& in) : in_(in) {}
    Bytes transmit(ByteView command) override {
        try {
            parse_command(command);
        } catch (const Error&) {
            fuzz::check(false, "exchange() sends only well-formed commands");
        }
        ByteView answer = in_.part();
        return Bytes(answer.begin(), answer.end());
    }

private:
    fuzz::Input& in_;
};

// The APDU log never shows what follows the header of a command that carries a PIN (the
// header itself, "CC II P1 P2", is shown).
void check_description(ByteView raw) {
    const std::string text = describe_command(raw);
    const std::size_t header = to_hex(raw.first(std::min<std::size_t>(raw.size(), 4))).size();
    if (raw.size() >= 9 && carries_pin(raw[1]))
        fuzz::check(text.find(to_hex(raw.subspan(5)), header) == std::string::npos,
                    "PIN data withheld from the APDU log");
}

void parse_and_reencode(ByteView raw) {
    check_description(raw);
    ParsedCommand p;
    try {
        p = parse_command(raw);
    } catch (const Error&) {
        return;
    }
    Bytes again = p.apdu.encode(p.extended ? LengthForm::Extended : LengthForm::Short);
    fuzz::check(again == Bytes(raw.begin(), raw.end()), "parsed command re-encodes to its bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    const std::uint8_t mode = in.byte();
    parse_and_reencode(in.part());

    try {
        ResponseApdu r = ResponseApdu::parse(in.part());
        r.tries_left();
        sw_hex(r.sw);
    } catch (const Error&) {
    }

    // One command sent through exchange() to a card answering with the remaining parts.
    CommandApdu command(in.byte(), in.byte(), in.byte(), in.byte());
    ByteView body = in.part();
    command.data.assign(body.begin(), body.end());
    command.ne = in.u16();
    if (mode & 0x01) command.ne += 1;  // reaches 65536
    ExchangeOptions options;
    options.extended = (mode & 0x02) != 0;
    options.chunk = 1 + in.byte();
    options.max_rounds = 1 + (mode >> 4);
    options.max_response = 1u << 16;
    ApduLog log;
    log.enable((mode & 0x04) != 0);
    options.log = &log;
    ScriptedCard card(in);
    try {
        ResponseApdu r = exchange(card, command, options);
        fuzz::check(r.data.size() <= options.max_response, "response within max_response");
    } catch (const Error&) {
    }
    log.lines();
    return 0;
}
