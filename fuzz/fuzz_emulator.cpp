// The card emulator behind vscard-emu: a session of fuzzed command APDUs against a blank card
// or one formatted with the PKCS#15 structure and a PIN, checking that every answer is a
// well-formed response and that the card image still round-trips; and the image file parser.
// Key commands are fuzzed too, but RSA keys are never generated (see too_slow).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "card/emu_image.hpp"
#include "card/emulator.hpp"
#include "card/iso7816.hpp"
#include "card/personalize.hpp"
#include "error.hpp"
#include "fuzz_util.hpp"
#include "pkcs15/card_app.hpp"

namespace {

using namespace vscard;
using namespace vscard::card;

class Link : public Transmitter {
public:
    explicit Link(Emulator& e) : emu_(e) {}
    Bytes transmit(ByteView command) override { return emu_.process(command); }

private:
    Emulator& emu_;
};

// The emulator state vscardctl format leaves (PIN "1234"), made once.
const emu::CardImage& formatted() {
    static const emu::CardImage image = [] {
        Emulator e(emu::CardImage::blank(16 * 1024));
        Link link(e);
        EmulatorPersonalizer p;
        pkcs15::FormatOptions options;
        options.caps = caps_from_atr(e.atr());
        pkcs15::format(link, p, "Fuzz card", view_of(std::string_view("1234")), options);
        return e.image().clone();
    }();
    return image;
}

// RSA key generation takes seconds under the sanitizers, beyond the time one input may take:
// GENERATE ASYMMETRIC KEY PAIR reaches the card only as an unchained request for an EC key.
bool too_slow(ByteView command) {
    if (command.size() < 2 || command[1] != ins::kGenerateAsymmetricKeyPair) return false;
    try {
        const CommandApdu c = parse_command(command).apdu;
        const Bytes p256{0x80, 0x01, 0x02};
        const Bytes p384{0x80, 0x01, 0x03};
        return (c.cla & 0x10) || (c.data != p256 && c.data != p384);
    } catch (const Error&) {
        return false;  // malformed: refused at once
    }
}

void check_image_round_trip(const emu::CardImage& image) {
    Bytes saved = image.serialize();
    fuzz::check(emu::CardImage::deserialize(saved).serialize() == saved, "image round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    const std::uint8_t mode = in.byte();
    if (mode == 0xFF) {  // an image file as vscard-emu loads it
        try {
            check_image_round_trip(emu::CardImage::deserialize(in.rest()));
        } catch (const Error&) {
        }
        return 0;
    }
    EmulatorOptions options;
    options.fci = (mode & 0x01) == 0;
    options.aid_select = (mode & 0x02) == 0;
    options.extended = (mode & 0x04) == 0;
    options.chaining = (mode & 0x08) == 0;
    options.wrong_le_6700 = (mode & 0x10) != 0;
    options.t0_responses = (mode & 0x20) != 0;
    options.allow_erase = (mode & 0x40) != 0;
    options.max_le = in.byte();
    Emulator emu((mode & 0x80) ? formatted().clone() : emu::CardImage::blank(8 * 1024), options);
    while (!in.empty()) {
        ByteView command = in.part();
        if (command.size() == 1 && command[0] == 0xFF) {
            emu.reset();
            continue;
        }
        if (too_slow(command)) continue;
        Bytes answer = emu.process(command);
        fuzz::check(answer.size() >= 2, "every answer carries a status word");
        fuzz::check(answer.size() <= 65536 + 2, "answers stay within Ne max");
        if (emu.take_changed()) check_image_round_trip(emu.image());
    }
    return 0;
}
