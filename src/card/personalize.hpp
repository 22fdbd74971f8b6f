#pragma once
// The vendor-specific steps of putting a card into service, which ISO 7816-4 leaves to each
// card's personalisation commands: creating a PIN object, and (optionally) telling how much
// memory the card has. Each card family gets a Personalizer; `vscardctl format` picks one by
// the card's ATR.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "card/iso7816.hpp"
#include "secure_bytes.hpp"

namespace vscard::card {

struct CardMemory {
    std::size_t capacity = 0;  // bytes
    std::size_t available = 0;
};

class Personalizer {
public:
    virtual ~Personalizer() = default;
    // The card family, for messages ("vscard emulator").
    virtual std::string name() const = 0;
    // Creates PIN object REFERENCE holding PIN (encoded and padded exactly as VERIFY will send
    // it), with PUK (empty: none) and MAX_TRIES tries. The PIN starts unverified.
    virtual void set_pin(Iso7816& card, std::uint8_t reference, ByteView pin, ByteView puk,
                         int max_tries) = 0;
    // The card's memory when the card can tell; nullopt otherwise.
    virtual std::optional<CardMemory> memory(Iso7816& card) = 0;
};

// vscard-emu (card/emulator.hpp): SET PIN 80 24 00 ref with a BER-TLV of PIN, PUK and tries;
// GET DATA 0102 for the memory.
class EmulatorPersonalizer : public Personalizer {
public:
    std::string name() const override { return "vscard emulator"; }
    void set_pin(Iso7816& card, std::uint8_t reference, ByteView pin, ByteView puk,
                 int max_tries) override;
    std::optional<CardMemory> memory(Iso7816& card) override;
};

// The personaliser for the card with ATR, or nullptr for a card vscard cannot personalise.
std::unique_ptr<Personalizer> personalizer_for(ByteView atr);

}  // namespace vscard::card
