#include "card/pcsc.hpp"

#include <PCSC/winscard.h>
#include <openssl/evp.h>

#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <type_traits>

#include "log.hpp"

namespace vscard::card {

static_assert(std::is_same_v<SCARDCONTEXT, long> && std::is_same_v<SCARDHANDLE, long> &&
                  std::is_same_v<LONG, long>,
              "pcsc.hpp stores pcsc-lite handles and codes as long");

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Command: header, extended Lc (3), 65535 data bytes, extended Le (2). Response: 65536 data
// bytes and SW1-SW2.
constexpr std::size_t kMaxCommand = 4 + 3 + 65535 + 2;
constexpr std::size_t kMaxResponse = 65536 + 2;
static_assert(kMaxCommand <= MAX_BUFFER_SIZE_EXTENDED && kMaxResponse <= MAX_BUFFER_SIZE_EXTENDED);

// A removal shows in pcscd only at its next poll of the reader (400 ms for polled drivers).
constexpr auto kRemovalSettle = 1000ms;

std::string explanation(long code) {
    switch (code) {
        case SCARD_E_NO_SERVICE:
        case SCARD_E_SERVICE_STOPPED:
            return "pcscd is not running or cannot be reached at " + pcsc_socket_path() +
                   "; start it ('systemctl start pcscd.socket', Debian package pcscd)";
        case SCARD_F_COMM_ERROR:
            return "the connection to pcscd broke (it stopped or restarted); try again once it "
                   "runs";
        case SCARD_E_NO_READERS_AVAILABLE:
            return "no smart-card reader is connected; plug one in";
        case SCARD_E_UNKNOWN_READER:
            return "no such reader; 'vscardctl readers' lists the connected ones";
        case SCARD_E_READER_UNAVAILABLE:
            return "the reader is not available (unplugged?); plug it in again";
        case SCARD_W_REMOVED_CARD:
        case SCARD_E_NO_SMARTCARD:
            return "the card was removed; insert it again";
        case SCARD_W_RESET_CARD:
            return "the card was reset by another program or the reader; try again";
        case SCARD_W_UNPOWERED_CARD:
            return "the card was powered down; try again";
        case SCARD_W_UNRESPONSIVE_CARD:
            return "the card does not answer; take it out and insert it again";
        case SCARD_E_SHARING_VIOLATION:
            return "the card is in use by another program (exclusive access); try again when "
                   "it is done";
        case SCARD_E_TIMEOUT:
            return "timed out waiting for the card; try again";
        case SCARD_E_CANCELLED:
            return "the operation was cancelled";
        case SCARD_E_PROTO_MISMATCH:
            return "the card speaks none of the protocols asked for (T=0, T=1)";
        case SCARD_E_NOT_TRANSACTED:
            return "the reader could not exchange the command with the card; check that the "
                   "card is inserted properly";
        case SCARD_E_INVALID_HANDLE:
            return "the connection is no longer valid; connect again";
        default:
            return pcsc_stringify_error(code);
    }
}

const SCARD_IO_REQUEST* pci_of(Protocol p) {
    return p == Protocol::T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
}

std::string quoted(const std::string& reader) {
    return "reader '" + reader + "'";
}

}  // namespace

// ---- Status codes ----------------------------------------------------------------------

std::string pcsc_code_name(long code) {
    switch (code) {
#define VSCARD_NAME(c) \
    case c:            \
        return #c;
        VSCARD_NAME(SCARD_S_SUCCESS)
        VSCARD_NAME(SCARD_F_INTERNAL_ERROR)
        VSCARD_NAME(SCARD_E_CANCELLED)
        VSCARD_NAME(SCARD_E_INVALID_HANDLE)
        VSCARD_NAME(SCARD_E_INVALID_PARAMETER)
        VSCARD_NAME(SCARD_E_INVALID_TARGET)
        VSCARD_NAME(SCARD_E_NO_MEMORY)
        VSCARD_NAME(SCARD_F_WAITED_TOO_LONG)
        VSCARD_NAME(SCARD_E_INSUFFICIENT_BUFFER)
        VSCARD_NAME(SCARD_E_UNKNOWN_READER)
        VSCARD_NAME(SCARD_E_TIMEOUT)
        VSCARD_NAME(SCARD_E_SHARING_VIOLATION)
        VSCARD_NAME(SCARD_E_NO_SMARTCARD)
        VSCARD_NAME(SCARD_E_UNKNOWN_CARD)
        VSCARD_NAME(SCARD_E_CANT_DISPOSE)
        VSCARD_NAME(SCARD_E_PROTO_MISMATCH)
        VSCARD_NAME(SCARD_E_NOT_READY)
        VSCARD_NAME(SCARD_E_INVALID_VALUE)
        VSCARD_NAME(SCARD_E_SYSTEM_CANCELLED)
        VSCARD_NAME(SCARD_F_COMM_ERROR)
        VSCARD_NAME(SCARD_F_UNKNOWN_ERROR)
        VSCARD_NAME(SCARD_E_INVALID_ATR)
        VSCARD_NAME(SCARD_E_NOT_TRANSACTED)
        VSCARD_NAME(SCARD_E_READER_UNAVAILABLE)
        VSCARD_NAME(SCARD_P_SHUTDOWN)
        VSCARD_NAME(SCARD_E_PCI_TOO_SMALL)
        VSCARD_NAME(SCARD_E_READER_UNSUPPORTED)
        VSCARD_NAME(SCARD_E_DUPLICATE_READER)
        VSCARD_NAME(SCARD_E_CARD_UNSUPPORTED)
        VSCARD_NAME(SCARD_E_NO_SERVICE)
        VSCARD_NAME(SCARD_E_SERVICE_STOPPED)
        VSCARD_NAME(SCARD_E_UNSUPPORTED_FEATURE)  // same value as SCARD_E_UNEXPECTED
        VSCARD_NAME(SCARD_E_NO_READERS_AVAILABLE)
        VSCARD_NAME(SCARD_E_COMM_DATA_LOST)
        VSCARD_NAME(SCARD_E_SERVER_TOO_BUSY)
        VSCARD_NAME(SCARD_W_UNSUPPORTED_CARD)
        VSCARD_NAME(SCARD_W_UNRESPONSIVE_CARD)
        VSCARD_NAME(SCARD_W_UNPOWERED_CARD)
        VSCARD_NAME(SCARD_W_RESET_CARD)
        VSCARD_NAME(SCARD_W_REMOVED_CARD)
        VSCARD_NAME(SCARD_W_SECURITY_VIOLATION)
        VSCARD_NAME(SCARD_W_WRONG_CHV)
        VSCARD_NAME(SCARD_W_CHV_BLOCKED)
#undef VSCARD_NAME
        default: {
            char buf[24];
            std::snprintf(buf, sizeof buf, "0x%08lX",
                          static_cast<unsigned long>(code) & 0xFFFFFFFFUL);
            return buf;
        }
    }
}

ErrorKind pcsc_error_kind(long code) {
    switch (code) {
        case SCARD_E_NO_SERVICE:
        case SCARD_E_SERVICE_STOPPED:
        case SCARD_F_COMM_ERROR:
        case SCARD_E_SERVER_TOO_BUSY:
        case SCARD_P_SHUTDOWN:
            return ErrorKind::Unavailable;
        case SCARD_E_UNKNOWN_READER:
        case SCARD_E_NO_READERS_AVAILABLE:
            return ErrorKind::NotFound;
        case SCARD_E_SHARING_VIOLATION:
        case SCARD_E_TIMEOUT:
            return ErrorKind::Busy;
        case SCARD_E_INVALID_PARAMETER:
        case SCARD_E_INVALID_VALUE:
        case SCARD_E_INSUFFICIENT_BUFFER:
        case SCARD_E_PCI_TOO_SMALL:
            return ErrorKind::Invalid;
        case SCARD_E_PROTO_MISMATCH:
        case SCARD_E_READER_UNSUPPORTED:
        case SCARD_E_CARD_UNSUPPORTED:
        case SCARD_W_UNSUPPORTED_CARD:
        case SCARD_E_UNSUPPORTED_FEATURE:
            return ErrorKind::NotSupported;
        default:  // removed, reset, unresponsive, not transacted...: the medium failed
            return ErrorKind::Io;
    }
}

Error pcsc_error(long code, const std::string& what, const std::string& reader) {
    std::string message = what;
    if (!reader.empty()) message += " (" + quoted(reader) + ")";
    message += ": " + explanation(code) + " (" + pcsc_code_name(code) + ")";
    return Error(pcsc_error_kind(code), message);
}

bool pcsc_service_lost(long code) {
    return code == SCARD_E_NO_SERVICE || code == SCARD_E_SERVICE_STOPPED ||
           code == SCARD_F_COMM_ERROR;
}

bool pcsc_card_absent(long code) {
    return code == SCARD_W_REMOVED_CARD || code == SCARD_E_NO_SMARTCARD;
}

std::string pcsc_socket_path() {
    const char* env = std::getenv("PCSCLITE_CSOCK_NAME");
    return env && *env ? env : "/run/pcscd/pcscd.comm";
}

// ---- ATR ---------------------------------------------------------------------------------

AtrInfo parse_atr(ByteView atr) {
    AtrInfo info;
    if (atr.size() < 2 || (atr[0] != 0x3B && atr[0] != 0x3F)) return info;
    std::size_t k = atr[1] & 0x0F;
    std::uint8_t y = atr[1] >> 4;
    std::size_t pos = 2;
    bool any_td = false;
    while (true) {
        for (std::uint8_t bit : {0x1, 0x2, 0x4}) {  // TA, TB, TC
            if (y & bit) ++pos;
        }
        if (!(y & 0x8)) break;
        if (pos >= atr.size()) return info;
        std::uint8_t td = atr[pos++];
        any_td = true;
        int t = td & 0x0F;
        if (t == 0) info.t0 = true;
        if (t == 1) info.t1 = true;
        y = td >> 4;
    }
    if (!any_td) info.t0 = true;  // no TD1: T=0 only (ISO/IEC 7816-3 §8.2.3)
    if (pos + k > atr.size()) return info;
    info.valid = true;
    info.historical.assign(atr.begin() + static_cast<long>(pos),
                           atr.begin() + static_cast<long>(pos + k));

    // Historical bytes: category 80 = compact-TLV only; 00 = compact-TLV then 3 status bytes.
    const Bytes& h = info.historical;
    if (h.empty() || (h[0] != 0x80 && h[0] != 0x00)) return info;
    std::size_t end = h.size();
    if (h[0] == 0x00) {
        if (end < 4) return info;
        end -= 3;
    }
    for (std::size_t i = 1; i < end;) {
        std::uint8_t tag = h[i] >> 4;
        std::size_t len = h[i] & 0x0F;
        if (i + 1 + len > end) break;
        if (tag == 0x7 && len >= 3) {
            std::uint8_t third = h[i + 3];
            info.chaining = third & 0x80;
            info.extended_length = third & 0x40;
        }
        i += 1 + len;
    }
    return info;
}

std::string stable_card_id(std::string_view reader, ByteView atr) {
    Bytes input(reader.begin(), reader.end());
    input.push_back(0x00);  // keeps ("ab", "c...") and ("a", "bc...") apart
    input.insert(input.end(), atr.begin(), atr.end());
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha256(), nullptr) != 1 || len < 8)
        throw Error(ErrorKind::Io, "SHA-256 failed while deriving a card id");
    std::string hex = to_hex(ByteView(digest, 8), "");
    for (char& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return "atr-" + hex;
}

// ---- Context -----------------------------------------------------------------------------

namespace {

long establish() {
    SCARDCONTEXT context = 0;
    long rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &context);
    if (rv != SCARD_S_SUCCESS) throw pcsc_error(rv, "cannot connect to pcscd");
    return context;
}

// "a\0b\0\0" -> {"a", "b"}
std::vector<std::string> split_multistring(const std::string& buffer) {
    std::vector<std::string> names;
    std::size_t pos = 0;
    while (pos < buffer.size() && buffer[pos] != '\0') {
        std::size_t end = buffer.find('\0', pos);
        if (end == std::string::npos) end = buffer.size();
        names.push_back(buffer.substr(pos, end - pos));
        pos = end + 1;
    }
    return names;
}

}  // namespace

Context::Context() : handle_(establish()) {}

Context::~Context() {
    release();
}

void Context::release() {
    long h = handle_.exchange(0);
    if (h) SCardReleaseContext(h);
}

bool Context::valid() const {
    long h = handle_.load();
    return h && SCardIsValidContext(h) == SCARD_S_SUCCESS;
}

void Context::reestablish() {
    release();
    handle_ = establish();
}

std::vector<std::string> Context::list_readers() {
    bool reestablished = false;
    for (;;) {
        if (!handle_.load()) {
            handle_ = establish();
            reestablished = true;
        }
        std::vector<std::string> names;
        long rv = list_reader_names(handle_.load(), names);
        if (rv == SCARD_S_SUCCESS) return names;
        if ((pcsc_service_lost(rv) || rv == SCARD_E_INVALID_HANDLE) && !reestablished) {
            // pcscd restarted since this context was made: a new one reaches the new daemon.
            reestablish();
            reestablished = true;
            continue;
        }
        throw pcsc_error(rv, "cannot list the smart-card readers");
    }
}

void Context::cancel() {
    long h = handle_.load();
    if (h) SCardCancel(h);
}

std::vector<std::string> list_readers() {
    Context context;
    return context.list_readers();
}

long list_reader_names(long context, std::vector<std::string>& names) {
    names.clear();
    for (int attempt = 0; attempt < 3; ++attempt) {
        DWORD len = 0;
        long rv = SCardListReaders(context, nullptr, nullptr, &len);
        if (rv == SCARD_S_SUCCESS) {
            std::string buffer(len, '\0');
            rv = SCardListReaders(context, nullptr, buffer.data(), &len);
            if (rv == SCARD_S_SUCCESS) {
                buffer.resize(len);
                names = split_multistring(buffer);
                return rv;
            }
        }
        if (rv == SCARD_E_NO_READERS_AVAILABLE) return SCARD_S_SUCCESS;
        if (rv != SCARD_E_INSUFFICIENT_BUFFER) return rv;  // else a reader came in between
    }
    return SCARD_E_INSUFFICIENT_BUFFER;
}

// ---- Card --------------------------------------------------------------------------------

// Cancels the card's connection when a command or a transaction start takes longer than
// CardOptions::timeout. One thread per card (only with a timeout): the cancel may have to
// wait for pcsc-lite, and that must not hold up other cards.
class Card::Watchdog {
public:
    explicit Watchdog(Card& card) : card_(card), thread_([this] { run(); }) {}
    ~Watchdog() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    void arm(std::chrono::milliseconds timeout) {
        std::lock_guard lock(mutex_);
        deadline_ = Clock::now() + timeout;
        armed_ = true;
        cv_.notify_all();
    }
    void disarm() {
        std::lock_guard lock(mutex_);
        armed_ = false;
        cv_.notify_all();
    }

    // Arms for the lifetime of a scope (nothing when there is no watchdog).
    class Scope {
    public:
        Scope(Watchdog* w, std::chrono::milliseconds timeout) : w_(w) {
            if (w_) w_->arm(timeout);
        }
        ~Scope() {
            if (w_) w_->disarm();
        }
        Scope(const Scope&) = delete;
        Scope& operator=(const Scope&) = delete;

    private:
        Watchdog* w_;
    };

private:
    void run() {
        std::unique_lock lock(mutex_);
        while (!stop_) {
            if (!armed_) {
                cv_.wait(lock);
                continue;
            }
            cv_.wait_until(lock, deadline_);
            if (stop_ || !armed_ || Clock::now() < deadline_) continue;
            armed_ = false;
            lock.unlock();
            card_.expire();
            lock.lock();
        }
    }

    Card& card_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stop_ = false;
    bool armed_ = false;
    Clock::time_point deadline_;
    std::thread thread_;  // last: starts once the rest is initialised
};

Card::Card(std::string reader, CardOptions options)
    : reader_(std::move(reader)), options_(options) {
    if (!options_.t0 && !options_.t1)
        throw Error(ErrorKind::Invalid, "a card connection needs T=0 or T=1 allowed");
    std::lock_guard lock(mutex_);
    connect();
    if (options_.timeout.count() > 0) watchdog_ = std::make_unique<Watchdog>(*this);
}

Card::~Card() {
    watchdog_.reset();
    disconnect();
}

void Card::connect() {
    cancelled_ = false;
    timed_out_ = false;
    if (!context_) context_ = std::make_unique<Context>();
    DWORD protocols = (options_.t0 ? SCARD_PROTOCOL_T0 : 0) | (options_.t1 ? SCARD_PROTOCOL_T1 : 0);
    SCARDHANDLE h = 0;
    DWORD active = 0;
    long rv = SCardConnect(context_->handle(), reader_.c_str(), SCARD_SHARE_SHARED, protocols, &h,
                           &active);
    if (pcsc_service_lost(rv) || rv == SCARD_E_INVALID_HANDLE) {
        context_->reestablish();  // pcscd restarted: Error(Unavailable) if it is not back
        rv = SCardConnect(context_->handle(), reader_.c_str(), SCARD_SHARE_SHARED, protocols, &h,
                          &active);
    }
    if (rv != SCARD_S_SUCCESS) {
        const std::string where = quoted(reader_);
        switch (rv) {
            case SCARD_E_UNKNOWN_READER:
                throw Error(ErrorKind::NotFound, "there is no " + where +
                                                     "; 'vscardctl readers' lists the "
                                                     "connected ones (SCARD_E_UNKNOWN_READER)");
            case SCARD_E_NO_SMARTCARD:
            case SCARD_W_REMOVED_CARD:
                throw Error(ErrorKind::NotFound, "there is no card in " + where + ": insert one (" +
                                                     pcsc_code_name(rv) + ")");
            case SCARD_E_READER_UNAVAILABLE:
                throw Error(ErrorKind::NotFound,
                            where + " is not available (unplugged?): plug it in again (" +
                                pcsc_code_name(rv) + ")");
            case SCARD_W_UNRESPONSIVE_CARD:
            case SCARD_W_UNPOWERED_CARD:
                throw Error(ErrorKind::Io, "the card in " + where +
                                               " does not answer: take it out and insert it "
                                               "again (" +
                                               pcsc_code_name(rv) + ")");
            default:
                throw pcsc_error(rv, "cannot connect to the card", reader_);
        }
    }
    handle_ = h;
    ++generation_;
    {
        std::lock_guard info(info_mutex_);
        protocol_ = active == SCARD_PROTOCOL_T0 ? Protocol::T0 : Protocol::T1;
    }
    state_ = State::Connected;
    failure_.clear();
    read_status(h);
}

void Card::read_status(long h) {
    BYTE atr[MAX_ATR_SIZE];
    DWORD atr_len = sizeof atr;
    DWORD reader_len = 0;
    DWORD state = 0;
    DWORD protocol = 0;
    long rv = SCardStatus(h, nullptr, &reader_len, &state, &protocol, atr, &atr_len);
    if (rv != SCARD_S_SUCCESS) fail(rv, "cannot read the card's ATR");
    std::lock_guard info(info_mutex_);
    atr_.assign(atr, atr + atr_len);
    if (protocol == SCARD_PROTOCOL_T0) protocol_ = Protocol::T0;
    if (protocol == SCARD_PROTOCOL_T1) protocol_ = Protocol::T1;
}

void Card::disconnect() noexcept {
    long h = handle_.exchange(0);
    if (h) SCardDisconnect(h, SCARD_LEAVE_CARD);
}

Bytes Card::atr() const {
    std::lock_guard info(info_mutex_);
    return atr_;
}

Protocol Card::protocol() const {
    std::lock_guard info(info_mutex_);
    return protocol_;
}

bool Card::usable() const {
    return state_ == State::Connected && !cancelled_ && handle_.load() != 0;
}

void Card::check_usable() const {
    if (cancelled_) {
        if (timed_out_)
            throw Error(ErrorKind::Busy,
                        "the card in " + quoted(reader_) + " did not complete a command within " +
                            std::to_string(options_.timeout.count()) +
                            " ms (another program may hold it in a transaction, or the card "
                            "does not answer); the connection was closed: try again");
        throw Error(ErrorKind::Io,
                    "the connection to the card in " + quoted(reader_) + " was cancelled");
    }
    if (state_ != State::Connected) throw Error(ErrorKind::Io, failure_);
}

void Card::removed(const std::string& detail) {
    if (state_ != State::Removed)
        log_line("the card in " + quoted(reader_) + " was removed (" + detail + ")");
    state_ = State::Removed;
    failure_ = "the card in " + quoted(reader_) + " was removed; insert it again";
    disconnect();
    throw Error(ErrorKind::Io, "the card in " + quoted(reader_) +
                                   " was removed during the operation (" + detail +
                                   "); insert it again");
}

void Card::fail(long rv, const std::string& what) {
    if (cancelled_) {
        state_ = State::Cancelled;
        check_usable();  // throws the cancel or timeout error
        throw Error(ErrorKind::Io,
                    "the connection to the card in " + quoted(reader_) + " was cancelled");
    }
    if (rv == SCARD_W_RESET_CARD || rv == SCARD_W_UNPOWERED_CARD) {
        recover_from_reset();
        throw CardReset("the card in " + quoted(reader_) +
                        " was reset by another program or the reader (" + pcsc_code_name(rv) +
                        "); the command was not sent and the card's PIN verification and "
                        "selected file are gone: start the operation again");
    }
    if (pcsc_card_absent(rv) || rv == SCARD_E_READER_UNAVAILABLE || rv == SCARD_E_UNKNOWN_READER)
        removed(pcsc_code_name(rv));
    if (pcsc_service_lost(rv) || rv == SCARD_E_INVALID_HANDLE) {
        state_ = State::Lost;
        failure_ = "lost the connection to pcscd while using the card in " + quoted(reader_) +
                   " (pcscd stopped or restarted, " + pcsc_code_name(rv) +
                   "); try again once it runs";
        log_line(failure_);
        disconnect();
        throw Error(ErrorKind::Io, failure_);
    }
    if (rv == SCARD_E_NOT_TRANSACTED || rv == SCARD_W_UNRESPONSIVE_CARD ||
        rv == SCARD_E_COMM_DATA_LOST || rv == SCARD_F_UNKNOWN_ERROR || rv == SCARD_E_TIMEOUT) {
        // A card pulled out mid-APDU first shows as a failed exchange; pcscd sees the removal
        // at its next poll of the reader.
        if (card_vanishes(handle_.load())) removed(pcsc_code_name(rv));
    }
    throw pcsc_error(rv, what, reader_);
}

bool Card::card_vanishes(long h) {
    if (!h) return false;
    const auto deadline = Clock::now() + kRemovalSettle;
    do {
        BYTE atr[MAX_ATR_SIZE];
        DWORD atr_len = sizeof atr;
        DWORD reader_len = 0;
        DWORD state = 0;
        DWORD protocol = 0;
        long rv = SCardStatus(h, nullptr, &reader_len, &state, &protocol, atr, &atr_len);
        if (pcsc_card_absent(rv) || rv == SCARD_E_READER_UNAVAILABLE) return true;
        if (rv == SCARD_S_SUCCESS && (state & SCARD_ABSENT)) return true;
        if (rv != SCARD_S_SUCCESS) return false;
        std::this_thread::sleep_for(50ms);
    } while (Clock::now() < deadline);
    return false;
}

void Card::recover_from_reset() {
    DWORD protocols = (options_.t0 ? SCARD_PROTOCOL_T0 : 0) | (options_.t1 ? SCARD_PROTOCOL_T1 : 0);
    DWORD active = 0;
    long h = handle_.load();
    long rv = SCardReconnect(h, SCARD_SHARE_SHARED, protocols, SCARD_LEAVE_CARD, &active);
    if (rv != SCARD_S_SUCCESS) {
        if (rv == SCARD_W_RESET_CARD) rv = SCARD_E_NOT_TRANSACTED;  // never loop on resets
        fail(rv, "cannot reconnect to the card after a reset");
    }
    {
        std::lock_guard info(info_mutex_);
        protocol_ = active == SCARD_PROTOCOL_T0 ? Protocol::T0 : Protocol::T1;
    }
    read_status(h);
    ++resets_;
    log_line("the card in " + quoted(reader_) + " was reset; reconnected");
}

void Card::expire() {
    timed_out_ = true;
    cancel();
}

void Card::cancel() {
    // No mutex_ here: the thread to be cancelled holds it. pcsc-lite releases its context
    // lock between the polls of a blocked SCardTransmit/SCardBeginTransaction, where the
    // disconnect gets in; their next poll then finds the handle gone.
    cancelled_ = true;
    disconnect();
}

Bytes Card::transmit(ByteView command) {
    std::lock_guard lock(mutex_);
    check_usable();
    if (command.size() < 4 || command.size() > kMaxCommand)
        throw Error(ErrorKind::Invalid, "a command APDU has 4 to " + std::to_string(kMaxCommand) +
                                            " bytes, not " + std::to_string(command.size()));
    if (options_.log) options_.log->command(command);
    Bytes response(kMaxResponse);
    DWORD len = static_cast<DWORD>(response.size());
    long rv = SCARD_E_INVALID_HANDLE;
    {
        Watchdog::Scope watch(watchdog_.get(), options_.timeout);
        if (long h = handle_.load())
            rv = SCardTransmit(h, pci_of(protocol()), command.data(),
                               static_cast<DWORD>(command.size()), nullptr, response.data(), &len);
    }
    if (rv != SCARD_S_SUCCESS) fail(rv, "cannot send a command to the card");
    if (len < 2) {
        // A reader may report success with nothing when the card went away mid-exchange.
        if (card_vanishes(handle_.load())) removed("empty response");
        throw Error(ErrorKind::Io, "the card in " + quoted(reader_) +
                                       " answered without a status word; take it out and "
                                       "insert it again");
    }
    response.resize(len);
    if (options_.log) options_.log->response(response);
    return response;
}

ExchangeOptions Card::exchange_options() const {
    ExchangeOptions o;
    o.extended = extended_length();
    return o;
}

ResponseApdu Card::exchange(const CommandApdu& command) {
    return exchange(command, exchange_options());
}

ResponseApdu Card::exchange(const CommandApdu& command, const ExchangeOptions& options) {
    std::lock_guard lock(mutex_);
    return card::exchange(*this, command, options);
}

void Card::reconnect(bool reset_card) {
    std::lock_guard lock(mutex_);
    if (reset_card && state_ == State::Connected && !cancelled_ && handle_.load()) {
        DWORD protocols =
            (options_.t0 ? SCARD_PROTOCOL_T0 : 0) | (options_.t1 ? SCARD_PROTOCOL_T1 : 0);
        DWORD active = 0;
        long h = handle_.load();
        long rv = SCardReconnect(h, SCARD_SHARE_SHARED, protocols, SCARD_RESET_CARD, &active);
        if (rv == SCARD_S_SUCCESS) {
            {
                std::lock_guard info(info_mutex_);
                protocol_ = active == SCARD_PROTOCOL_T0 ? Protocol::T0 : Protocol::T1;
            }
            read_status(h);
            ++resets_;
            return;
        }
        // Otherwise the connection is broken anyway: open a new one below.
    }
    disconnect();
    if (state_ == State::Lost && context_) context_->reestablish();
    connect();
    ++resets_;
}

// ---- Transaction -------------------------------------------------------------------------

Transaction::Transaction(Card& card) : card_(card), lock_(card.mutex_) {
    for (int attempt = 0;; ++attempt) {
        card_.check_usable();
        long rv = SCARD_E_INVALID_HANDLE;
        {
            Card::Watchdog::Scope watch(card_.watchdog_.get(), card_.options_.timeout);
            if (long h = card_.handle_.load()) rv = SCardBeginTransaction(h);
        }
        if (rv == SCARD_S_SUCCESS) break;
        if ((rv == SCARD_W_RESET_CARD || rv == SCARD_W_UNPOWERED_CARD) && attempt == 0 &&
            !card_.cancelled_) {
            card_.recover_from_reset();  // nothing was sent yet: carry on with the new session
            continue;
        }
        card_.fail(rv, "cannot start a transaction on the card");
    }
    generation_ = card_.generation_;
}

Transaction::~Transaction() {
    // Only on the handle it began on; failures mean the card or pcscd went away, which ends
    // the transaction anyway.
    if (card_.generation_ != generation_ || card_.state_ != Card::State::Connected) return;
    if (long h = card_.handle_.load()) SCardEndTransaction(h, SCARD_LEAVE_CARD);
}

}  // namespace vscard::card
