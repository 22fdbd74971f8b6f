#include "card/personalize.hpp"

#include <openssl/crypto.h>

#include "card/emulator.hpp"
#include "card/tlv.hpp"
#include "error.hpp"

namespace vscard::card {

void EmulatorPersonalizer::set_pin(Iso7816& card, std::uint8_t reference, ByteView pin,
                                   ByteView puk, int max_tries) {
    if (max_tries < 1 || max_tries > 15)
        throw Error(ErrorKind::Invalid, "the PIN's tries must be 1 to 15");
    CommandApdu c(0x80, ins::kChangeReferenceData, 0x00, reference);
    tlv::append(c.data, 0x81, pin);
    if (!puk.empty()) tlv::append(c.data, 0x82, puk);
    tlv::append(c.data, 0x83, Bytes{static_cast<std::uint8_t>(max_tries)});
    ResponseApdu r = card.transmit(c);
    OPENSSL_cleanse(c.data.data(), c.data.size());
    if (!r.ok()) throw card_error(r.sw, "setting the card's PIN");
}

std::optional<CardMemory> EmulatorPersonalizer::memory(Iso7816& card) {
    ResponseApdu r = card.transmit(CommandApdu(0x00, ins::kGetData, 0x01, 0x02, {}, 8));
    if (!r.ok() || r.data.size() != 8) return std::nullopt;
    auto u32 = [&](std::size_t at) {
        return static_cast<std::size_t>(tlv::decode_uint(ByteView(r.data).subspan(at, 4), 4));
    };
    return CardMemory{u32(0), u32(4)};
}

std::unique_ptr<Personalizer> personalizer_for(ByteView atr) {
    if (is_emulator_atr(atr)) return std::make_unique<EmulatorPersonalizer>();
    return nullptr;
}

}  // namespace vscard::card
