#pragma once
// PC/SC access through pcsc-lite (DESIGN §5): a context per user of pcscd, reader
// enumeration, and a card connection (Card) that carries APDUs for the APDU layer.
//
// pcsc-lite serialises the calls made on one context, and a SCardGetStatusChange blocks its
// context until something happens; so every Card and every ReaderMonitor (reader_monitor.hpp)
// has a context of its own. pcscd may be socket-activated and restart at any time: a context
// whose daemon went away is re-established on the next use (Context::list_readers, Card
// reconnect), never kept in a broken state.
//
// Errors: pcscd unreachable -> Error(Unavailable); the card removed (at connect time: absent)
// -> Error(Io) "... was removed"; unknown reader -> Error(NotFound); the card reset by
// another program -> CardReset (an Error(Io)); another program holding the card -> waits (see
// Transaction), or Error(Busy) after CardOptions::timeout. Messages say what to do.
//
// The pcsc-lite headers stay out of this header (they define LONG, DWORD, BYTE... globally):
// SCARDCONTEXT and SCARDHANDLE are `long` and status codes are `long` on pcsc-lite.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "card/apdu.hpp"
#include "error.hpp"
#include "secure_bytes.hpp"

namespace vscard::card {

// ---- Status codes ----------------------------------------------------------------------

// Symbolic name of a pcsc-lite status code ("SCARD_E_NO_SERVICE"), or its hex value.
std::string pcsc_code_name(long code);
// The error kind a status code becomes (see the header comment).
ErrorKind pcsc_error_kind(long code);
// A typed error for a failed pcsc-lite call: "WHAT[ (reader 'R')]: <explanation> (<name>)".
// WHAT names the operation ("cannot list the readers"); READER (if any) the reader involved.
Error pcsc_error(long code, const std::string& what, const std::string& reader = {});
// pcscd is gone (stopped, restarting, never started): re-establish the context.
bool pcsc_service_lost(long code);
// The card is not in the reader any more (or never was).
bool pcsc_card_absent(long code);

// The socket pcsc-lite clients of this process use (PCSCLITE_CSOCK_NAME or the default).
std::string pcsc_socket_path();

// ---- ATR ---------------------------------------------------------------------------------

// What a client needs from an ATR (ISO/IEC 7816-3 §8, historical bytes ISO/IEC 7816-4 §8.1.1).
struct AtrInfo {
    bool valid = false;  // TS, T0 and the interface bytes parsed
    bool t0 = false;     // protocols offered (no TD1 means T=0 only)
    bool t1 = false;
    Bytes historical;
    // From the card capabilities (compact-TLV tag 7, third byte): b7 extended Lc/Le, b8
    // command chaining.
    bool extended_length = false;
    bool chaining = false;
};
// Lenient: whatever cannot be parsed is left false/empty; never throws.
AtrInfo parse_atr(ByteView atr);

// The id of a card without a recognised application (DESIGN §3: "a stable id derived from
// reader and ATR"): "atr-" and 16 hex digits of SHA-256(reader, 0, ATR). The same card in
// the same reader gets the same id across insertions, pcscd restarts and program runs.
std::string stable_card_id(std::string_view reader, ByteView atr);

// ---- Context -----------------------------------------------------------------------------

// One SCARDCONTEXT. Calls on it are serialised by pcsc-lite; cancel() is the one call that
// other threads may make while it is in use.
class Context {
public:
    // Error(Unavailable) when pcscd cannot be reached.
    Context();
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    long handle() const { return handle_.load(); }
    // SCardIsValidContext. pcsc-lite answers this from its own table: a context whose pcscd
    // restarted still looks valid until a call reports SCARD_E_NO_SERVICE.
    bool valid() const;
    // Releases the context and establishes a new one (after pcscd restarted).
    void reestablish();
    // The reader names; empty when there is none. Re-establishes the context once when pcscd
    // restarted since the last call. Error(Unavailable) when pcscd cannot be reached.
    std::vector<std::string> list_readers();
    // Wakes a SCardGetStatusChange blocked on this context in another thread.
    void cancel();

private:
    void release();
    std::atomic<long> handle_{0};
};

// The reader names of the pcscd this process talks to (a context of its own).
std::vector<std::string> list_readers();
// SCardListReaders on CONTEXT without any recovery, for callers that track pcscd themselves
// (ReaderMonitor): fills NAMES (empty for SCARD_E_NO_READERS_AVAILABLE, which counts as
// success) and returns the status code.
long list_reader_names(long context, std::vector<std::string>& names);

// ---- Card --------------------------------------------------------------------------------

enum class Protocol { T0, T1 };

struct CardOptions {
    bool t0 = true;  // protocols to accept: the reader/card pick among these (pcsc-lite
    bool t1 = true;  // prefers T=1 when both are offered)
    // Longest wait for one command or transaction start (another program's transaction, a
    // card that does not answer); 0 waits as long as pcsc-lite does (forever). After a
    // timeout the connection is closed: Error(Busy), then reconnect().
    std::chrono::milliseconds timeout{0};
    // Every APDU transmitted is counted there, and recorded when the log is enabled (PIN
    // data withheld by ApduLog). Do not also pass it in ExchangeOptions: it would count twice.
    ApduLog* log = nullptr;
};

// The card was reset (by another program or the reader) before the command reached it. The
// connection is already re-established and the command was NOT sent; the card's security
// state (verified PINs) and current file are gone. Callers drop what they cached, VERIFY
// again and redo their operation from the start. Kind Io (EIO) if it reaches the user.
class CardReset : public Error {
public:
    explicit CardReset(const std::string& message) : Error(ErrorKind::Io, message) {}
};

// A shared-mode connection to the card in one reader. Thread-safe: transmits are serialised
// per card, and a Transaction keeps other threads of this process out until it ends.
//
// Removal at any point: the APDU under way and every later call fail with Error(Io) "the
// card in reader R was removed" (never a crash or a hang) until reconnect() finds a card
// again. pcscd going away mid-operation: Error(Io) likewise; reconnect() re-establishes the
// context. A card reset: CardReset once, the connection carries on (resets() grows).
class Card : public Transmitter {
public:
    // Connects in shared mode. Error(Unavailable): pcscd unreachable; Error(NotFound): no such
    // reader, or no card in it; Error(Io): the card does not answer; Error(NotSupported):
    // it offers none of the protocols asked for (also when another program already runs the
    // card in the other one). pcscd itself holds a connect back while another program has a
    // transaction on the card; that wait is not bounded by CardOptions::timeout.
    explicit Card(std::string reader, CardOptions options = {});
    ~Card() override;
    Card(const Card&) = delete;
    Card& operator=(const Card&) = delete;

    // One raw APDU (up to 65544 bytes, extended length included) and its response (up to
    // 65536 data bytes + SW) with the SCARD_IO_REQUEST of the active protocol.
    Bytes transmit(ByteView command) override;
    // card::exchange() (61xx, 6Cxx, chaining) holding the card for the whole exchange, so no
    // other thread's APDU lands between a command and its GET RESPONSE. Without OPTIONS,
    // extended length is used when the ATR announces it.
    ResponseApdu exchange(const CommandApdu& command);
    ResponseApdu exchange(const CommandApdu& command, const ExchangeOptions& options);
    ExchangeOptions exchange_options() const;

    const std::string& reader() const { return reader_; }
    Bytes atr() const;
    Protocol protocol() const;
    AtrInfo atr_info() const { return parse_atr(atr()); }
    bool extended_length() const { return atr_info().extended_length; }
    // stable_card_id(reader, ATR).
    std::string id() const { return stable_card_id(reader_, atr()); }
    // How many times the card session started again (reset detected, reconnect): a layer that
    // caches card state (verified PINs, directory) compares it with the value it saw.
    std::uint64_t resets() const { return resets_.load(); }
    // False after removal, loss of pcscd, cancel() or a timeout, until reconnect().
    bool usable() const;

    // Opens the session again: after removal (once a card is back), after pcscd restarted,
    // after cancel() or a timeout; with RESET_CARD on a working connection, resets the card
    // (warm reset) instead. Counts as a reset. Errors as for the constructor.
    void reconnect(bool reset_card = false);
    // From any thread: ends a wait for another program's transaction at once and closes the
    // connection; an APDU already on its way to the card cannot be recalled (pcsc-lite has no
    // means), so this returns once it is answered. Calls fail with Error(Io) until reconnect().
    void cancel();

private:
    friend class Transaction;
    class Watchdog;
    enum class State { Connected, Removed, Lost, Cancelled };

    void connect();
    void disconnect() noexcept;
    void check_usable() const;
    [[noreturn]] void fail(long rv, const std::string& what);
    [[noreturn]] void removed(const std::string& detail);
    void recover_from_reset();
    bool card_vanishes(long handle);
    void read_status(long handle);
    void expire();

    const std::string reader_;
    const CardOptions options_;
    mutable std::recursive_mutex mutex_;  // one APDU or Transaction at a time
    std::unique_ptr<Context> context_;
    std::atomic<long> handle_{0};
    std::uint64_t generation_ = 0;  // new handle, new number (Transaction ends only its own)
    std::atomic<State> state_{State::Lost};
    std::string failure_;  // why the connection is unusable (under mutex_)
    std::atomic<bool> cancelled_{false};
    std::atomic<bool> timed_out_{false};
    std::atomic<std::uint64_t> resets_{0};
    mutable std::mutex info_mutex_;  // atr_ and protocol_, readable during a transaction
    Bytes atr_;
    Protocol protocol_ = Protocol::T1;
    std::unique_ptr<Watchdog> watchdog_;
};

// Exclusive access for a multi-APDU operation (SCardBeginTransaction ... SCardEndTransaction
// with SCARD_LEAVE_CARD): other programs' commands and transactions wait, and so do other
// threads of this process using the same Card. Create and destroy it in the same thread.
//
// pcsc-lite semantics: while another program holds a transaction, SCardBeginTransaction and
// SCardTransmit of this program wait (pcsc-lite polls every 100 ms) until it ends; bounded by
// CardOptions::timeout (Error(Busy)) or cancel(). With PCSCLITE_NO_BLOCKING set, pcsc-lite
// fails them at once instead: Error(Busy) "in use by another program".
class Transaction {
public:
    // A reset noticed here is recovered from silently (nothing was lost yet): callers compare
    // card.resets() with their cached value after this. Errors as for Card::transmit.
    explicit Transaction(Card& card);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;

private:
    Card& card_;
    std::unique_lock<std::recursive_mutex> lock_;
    std::uint64_t generation_;
};

}  // namespace vscard::card
