#pragma once
// The in-process emulator as a card::Transmitter, with a switch that pulls the card out at a
// given APDU: the command either never reaches the card, or is applied and its answer lost.
#include <cstddef>
#include <optional>

#include "card/apdu.hpp"
#include "card/emulator.hpp"
#include "error.hpp"

namespace vscard::testing {

class EmulatorLink : public card::Transmitter {
public:
    explicit EmulatorLink(card::Emulator& e) : emu_(e) {}

    Bytes transmit(ByteView command) override {
        const std::size_t n = sent_++;
        if (cut_at_ && n >= *cut_at_) {
            if (n == *cut_at_ && applied_) emu_.process(command);
            throw Error(ErrorKind::Io, "card removed (test)");
        }
        return emu_.process(command);
    }

    std::size_t sent() const { return sent_; }
    // Pulls the card out at the Nth APDU from now (0: the next one). APPLIED: that APDU
    // still reaches the card, only its answer is lost.
    void cut_after(std::size_t n, bool applied) {
        cut_at_ = sent_ + n;
        applied_ = applied;
    }
    // The card back in: a fresh session (power on), no cut.
    void reinsert() {
        cut_at_.reset();
        emu_.power_on();
    }
    card::Emulator& emulator() { return emu_; }

private:
    card::Emulator& emu_;
    std::size_t sent_ = 0;
    std::optional<std::size_t> cut_at_;
    bool applied_ = false;
};

}  // namespace vscard::testing
