#pragma once
// The card family's secret-area key on a card (DESIGN §5): a private data object of
// application "vscard", wrapped under a key derived from the card's PIN with scrypt, so that
// the card and the VSCs made --for-card share it and key envelopes move both ways.
//
// Wrapped form: "VSCFK" 0x01, scrypt N (u64), r (u32), p (u32), salt length (u8), salt, then
// AES-256-GCM of the key with the card's serial as additional data (all integers big-endian).
#include <chrono>
#include <optional>
#include <string_view>

#include "pkcs15/card_app.hpp"
#include "secure_bytes.hpp"

namespace vscard {

inline constexpr std::string_view kFamilyKeyLabel = "family-key";

Bytes wrap_family_key(ByteView family_key, ByteView pin, std::string_view serial,
                      std::chrono::milliseconds kdf_target);
// WrongPassword when PIN does not open it (the card's PIN changed without a rewrap),
// Corrupt when the object is not a wrapped family key.
SecureBytes unwrap_family_key(ByteView wrapped, ByteView pin, std::string_view serial);

// The family key of the card behind APP (its PIN verified), read with PIN. A card that has
// none yet gets a new random one when CREATE is set (else NotFound).
SecureBytes card_family_key(pkcs15::CardApp& app, ByteView pin, bool create,
                            std::chrono::milliseconds kdf_target = std::chrono::milliseconds(250));

// Gives the card behind APP (its PIN verified) the family key KEY, wrapped under PIN: a new
// card restored from a VSC takes the VSC's key, so the VSC's envelopes import there.
void set_card_family_key(pkcs15::CardApp& app, ByteView key, ByteView pin,
                         std::chrono::milliseconds kdf_target = std::chrono::milliseconds(250));

// Changes the card's PIN from OLD_PIN to NEW_PIN (verified with OLD_PIN first) and rewraps its
// family key, in an order that never strands the key: the key wrapped under NEW_PIN is written
// beside the old one first, then the PIN changes, then the new object replaces the old. After
// an interruption between those steps, card_family_key() still opens the key with the PIN the
// card has.
void change_card_pin(pkcs15::CardApp& app, ByteView old_pin, ByteView new_pin,
                     std::chrono::milliseconds kdf_target = std::chrono::milliseconds(250));

}  // namespace vscard
