#pragma once
// One inserted card as the mount uses it (DESIGN §3, §5): the connection, the PKCS#15
// application read from it once per insertion, and its PIN.
//
// Every operation runs under the channel's hold (a PC/SC transaction), one at a time. A
// card reset drops the application model (it is read again) and the verified PIN; when the
// card then asks for its PIN (a private read, any write on a card formatted with
// pin_for_writes), the session asks its PinSource and VERIFYs once before trying again. A
// wrong PIN is forgotten by the source at once, so a cached PIN never burns a second try.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "card/apdu.hpp"
#include "card/iso7816.hpp"
#include "error.hpp"
#include "pkcs15/card_app.hpp"
#include "secure_bytes.hpp"

namespace vscard {

namespace card {
class Card;
}

// What a session runs over: PC/SC in the mount, the in-process emulator in tests.
class CardChannel {
public:
    virtual ~CardChannel() = default;
    virtual card::Transmitter& link() = 0;
    // Exclusive use of the card for one multi-APDU operation (others wait); released when
    // the returned object goes.
    virtual std::shared_ptr<void> hold() = 0;
    // Grows each time the card's session starts again (reset, reconnect).
    virtual std::uint64_t resets() const = 0;
};

// A card in a PC/SC reader.
std::unique_ptr<CardChannel> pcsc_channel(std::unique_ptr<card::Card> card);

// Where the session gets the card's PIN when the card asks for it (the agent in the mount).
class PinSource {
public:
    virtual ~PinSource() = default;
    virtual std::optional<SecureBytes> get() = 0;
    virtual void forget() = 0;  // it was wrong: never try it again
};

class CardSession {
public:
    // Opens the card's PKCS#15 application. A card without one (Error NotFound from the
    // application, or one vscard cannot read) still makes a session: has_app() is false and
    // only its identity is known. Io when the card goes away meanwhile.
    CardSession(std::unique_ptr<CardChannel> channel, std::string reader, Bytes atr,
                card::ApduLog* log = nullptr);
    ~CardSession();

    // DESIGN §3: the TokenInfo serial, or the stable id of reader and ATR without an app.
    std::string serial() const;
    std::string label() const;
    const std::string& reader() const { return reader_; }
    const Bytes& atr() const { return atr_; }
    bool has_app() const;
    // Why the card has no usable application ("" when it has one).
    std::string app_problem() const;
    // A card that had no application when it came may have been formatted since (by
    // `vscardctl format` through another connection): looks again, at most every 250 ms
    // unless NOW_PLEASE. True when the application is there now (serial() and label() are
    // then the card's).
    bool look_for_app(bool now_please = false);

    void set_pin_source(std::shared_ptr<PinSource> pins);

    // Runs FN on the application (under the hold). A reset before or during it re-reads the
    // application and runs FN again; Error(Locked) from FN (the card wants its PIN) VERIFYs
    // with the PIN source once and runs FN again.
    template <typename Fn>
    auto run(Fn&& fn) -> decltype(fn(std::declval<pkcs15::CardApp&>()));
    // As run(), for FN that changes the card: the application is read again first when
    // another program changed its directory since (so its entries are never overwritten).
    template <typename Fn>
    auto run_write(Fn&& fn) -> decltype(fn(std::declval<pkcs15::CardApp&>())) {
        return run(std::forward<Fn>(fn), true);
    }

    // Tries left without spending one (VERIFY without data).
    card::PinStatus pin_status();
    // VERIFYs now with the PIN source's PIN (the private area is being opened), also when
    // another program left the card verified. Locked with a message saying what to do when
    // there is none, it is wrong (tries left) or blocked.
    void verify();
    // The card forgets the verified PIN, cached private content is dropped.
    void logout();
    // The card left its reader: every later call fails with Error(Io) at once.
    void removed();
    bool is_removed() const;
    // What run() counted so far (APDUs sent), for tests and the benchmark.
    std::uint64_t apdu_count() const;

private:
    template <typename Fn>
    auto run(Fn&& fn, bool write) -> decltype(fn(std::declval<pkcs15::CardApp&>()));
    // The hold, the application read again after a reset (or, for WRITE, a change by others).
    std::shared_ptr<void> begin(bool write = false);
    void open_app();       // reads the application afresh (caller holds the hold)
    void verify_locked();  // caller holds mutex_ and the hold
    [[noreturn]] void gone() const;

    std::unique_ptr<CardChannel> channel_;
    const std::string reader_;
    const Bytes atr_;
    card::ApduLog own_log_;
    card::ApduLog* log_;
    std::string serial_, label_, app_problem_;
    bool has_app_ = false;
    std::chrono::steady_clock::time_point last_look_{};

    mutable std::recursive_mutex mutex_;
    std::optional<pkcs15::CardApp> app_;
    std::uint64_t seen_resets_ = 0;
    bool stale_ = false;  // an Io error left the model unsure of the card: read it again
    bool removed_ = false;
    std::shared_ptr<PinSource> pins_;
};

template <typename Fn>
auto CardSession::run(Fn&& fn) -> decltype(fn(std::declval<pkcs15::CardApp&>())) {
    return run(std::forward<Fn>(fn), false);
}

template <typename Fn>
auto CardSession::run(Fn&& fn, bool write) -> decltype(fn(std::declval<pkcs15::CardApp&>())) {
    std::lock_guard lock(mutex_);
    bool verified_here = false;
    for (int attempt = 0;; ++attempt) {
        std::shared_ptr<void> hold;
        try {
            hold = begin(write);
            return fn(*app_);
        } catch (const Error& e) {
            const bool reset = seen_resets_ != channel_->resets();
            if (e.kind() == ErrorKind::Locked && !verified_here && pins_) {
                verified_here = true;
                if (!hold) hold = begin(write);
                verify_locked();
                continue;
            }
            if (e.kind() == ErrorKind::Io) {
                stale_ = true;
                if (reset && attempt == 0) continue;  // the card was reset under us: again
            }
            throw;
        }
    }
}

}  // namespace vscard
