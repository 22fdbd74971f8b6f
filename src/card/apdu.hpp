#pragma once
// ISO/IEC 7816-3/-4 APDUs: command encoding (short and extended length, cases 1-4), response
// parsing, command chaining, and the response-side exchange logic (61xx GET RESPONSE loop,
// 6Cxx resend) written against a small Transmitter so it runs over PC/SC, vpcd or a script.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "secure_bytes.hpp"

namespace vscard::card {

// Status words used across the card code (ISO/IEC 7816-4 §5.6).
namespace sw {
inline constexpr std::uint16_t kOk = 0x9000;
inline constexpr std::uint16_t kEndOfFile = 0x6282;  // fewer bytes than Ne before EOF
inline constexpr std::uint16_t kMemoryFailure = 0x6581;
inline constexpr std::uint16_t kWrongLength = 0x6700;
inline constexpr std::uint16_t kChannelNotSupported = 0x6881;
inline constexpr std::uint16_t kSmNotSupported = 0x6882;
inline constexpr std::uint16_t kLastCommandOfChainExpected = 0x6883;
inline constexpr std::uint16_t kChainingNotSupported = 0x6884;
inline constexpr std::uint16_t kFileTypeMismatch = 0x6981;  // e.g. READ BINARY on a DF
inline constexpr std::uint16_t kSecurityNotSatisfied = 0x6982;
inline constexpr std::uint16_t kAuthBlocked = 0x6983;
inline constexpr std::uint16_t kConditionsNotSatisfied = 0x6985;
inline constexpr std::uint16_t kNoCurrentEf = 0x6986;
inline constexpr std::uint16_t kWrongData = 0x6A80;
inline constexpr std::uint16_t kFunctionNotSupported = 0x6A81;
inline constexpr std::uint16_t kFileNotFound = 0x6A82;
inline constexpr std::uint16_t kNotEnoughMemory = 0x6A84;
inline constexpr std::uint16_t kWrongP1P2 = 0x6A86;
inline constexpr std::uint16_t kLcInconsistent = 0x6A87;
inline constexpr std::uint16_t kReferenceNotFound = 0x6A88;
inline constexpr std::uint16_t kFileExists = 0x6A89;
inline constexpr std::uint16_t kDfNameExists = 0x6A8A;
inline constexpr std::uint16_t kWrongOffset = 0x6B00;
inline constexpr std::uint16_t kInsNotSupported = 0x6D00;
inline constexpr std::uint16_t kClaNotSupported = 0x6E00;
}  // namespace sw

// Instruction bytes (ISO/IEC 7816-4 §5.1.2 / §11).
namespace ins {
inline constexpr std::uint8_t kVerify = 0x20;
inline constexpr std::uint8_t kManageSecurityEnvironment = 0x22;
inline constexpr std::uint8_t kChangeReferenceData = 0x24;
inline constexpr std::uint8_t kPerformSecurityOperation = 0x2A;
inline constexpr std::uint8_t kResetRetryCounter = 0x2C;
inline constexpr std::uint8_t kActivateFile = 0x44;
inline constexpr std::uint8_t kGenerateAsymmetricKeyPair = 0x46;
inline constexpr std::uint8_t kGetChallenge = 0x84;
inline constexpr std::uint8_t kSelect = 0xA4;
inline constexpr std::uint8_t kReadBinary = 0xB0;
inline constexpr std::uint8_t kGetResponse = 0xC0;
inline constexpr std::uint8_t kGetData = 0xCA;
inline constexpr std::uint8_t kUpdateBinary = 0xD6;
inline constexpr std::uint8_t kCreateFile = 0xE0;
inline constexpr std::uint8_t kDeleteFile = 0xE4;
}  // namespace ins

// Whether a command with instruction INS carries PIN/PUK bytes in its data field (VERIFY,
// CHANGE REFERENCE DATA, RESET RETRY COUNTER, in any class): such data is never logged.
bool carries_pin(std::uint8_t ins);

enum class LengthForm {
    Auto,      // short when Nc <= 255 and Ne <= 256, else extended
    Short,     // refuse what does not fit
    Extended,  // extended whenever there is a length field (case 1 has none)
};

struct CommandApdu {
    std::uint8_t cla = 0x00;
    std::uint8_t ins = 0x00;
    std::uint8_t p1 = 0x00;
    std::uint8_t p2 = 0x00;
    Bytes data;          // Nc = data.size(): 0..65535
    std::size_t ne = 0;  // expected response bytes: 0 = no Le field, 1..65536 (256 / 65536 = Le 00)

    CommandApdu() = default;
    CommandApdu(std::uint8_t cla_, std::uint8_t ins_, std::uint8_t p1_, std::uint8_t p2_,
                Bytes data_ = {}, std::size_t ne_ = 0)
        : cla(cla_), ins(ins_), p1(p1_), p2(p2_), data(std::move(data_)), ne(ne_) {}

    // ISO 7816-3 §12.1.3 case: 1 (no data, no Le), 2 (Le only), 3 (data only), 4 (both).
    int iso_case() const;
    bool needs_extended() const { return data.size() > 255 || ne > 256; }
    // Encodes the command. Throws Error(Invalid) when Nc > 65535, Ne > 65536, or when FORM is
    // Short and the command needs extended length.
    Bytes encode(LengthForm form = LengthForm::Auto) const;
};

// A command as received by a card: the decoded fields plus whether extended length was used.
struct ParsedCommand {
    CommandApdu apdu;
    bool extended = false;
};

// Decodes a command APDU (ISO 7816-3 §12.1.3 rules); Error(Invalid) for any malformed length.
ParsedCommand parse_command(ByteView raw);

struct ResponseApdu {
    Bytes data;
    std::uint16_t sw = 0;

    // Error(Invalid) when RAW holds fewer than the two status bytes.
    static ResponseApdu parse(ByteView raw);
    Bytes encode() const;

    bool ok() const { return sw == sw::kOk; }
    std::uint8_t sw1() const { return static_cast<std::uint8_t>(sw >> 8); }
    std::uint8_t sw2() const { return static_cast<std::uint8_t>(sw & 0xFF); }
    // Tries left for 63Cx (x = 0..15); 0 for 6983 (blocked); nullopt otherwise.
    std::optional<int> tries_left() const;
};

// Status word as four hex digits ("6A82").
std::string sw_hex(std::uint16_t sw);
// Bytes as upper-case hex pairs separated by SEP ("00 A4 04 00").
std::string to_hex(ByteView bytes, std::string_view sep = " ");
// Parses hex digits, ignoring spaces and colons; Error(Invalid) on anything else.
Bytes from_hex(std::string_view text);

// Splits COMMAND into a chain (ISO 7816-4 §5.1.1.1) of commands with at most MAX_CHUNK data
// bytes each: all but the last have CLA | 0x10 and no Le; the last keeps Le. A command that
// already fits comes back unchanged. Error(Invalid) for MAX_CHUNK 0 or over 65535.
std::vector<CommandApdu> chain(const CommandApdu& command, std::size_t max_chunk = 255);

// Debugging/counting log of the APDUs exchanged. Off by default: then only the counter runs.
// When on, each command and response is recorded as hex with its sequence number, except the
// data field of PIN-carrying commands (carries_pin), of which only the header and Lc appear.
class ApduLog {
public:
    void enable(bool on = true);
    bool enabled() const;
    // Also sends each line to SINK (e.g. log_line) when set.
    void set_sink(std::function<void(const std::string&)> sink);

    // SECRET: the data field (of a command) or the data (of a response) carries key material
    // and is withheld, as the data of PIN-carrying commands always is.
    void command(ByteView raw, bool secret = false);
    void response(ByteView raw, bool secret = false);

    std::uint64_t commands() const;  // counted also while disabled
    std::vector<std::string> lines() const;
    void clear();

private:
    void add(std::string line);
    mutable std::mutex mutex_;
    bool enabled_ = false;
    std::uint64_t count_ = 0;
    std::vector<std::string> lines_;
    std::function<void(const std::string&)> sink_;
};

// Text of a command for the log: full hex, or for PIN-carrying commands the header and the
// data length only ("00 20 00 81 Lc=8 [PIN data withheld]"); the same for any command when
// SECRET ("00 D6 00 00 Lc=138 [key data withheld]").
std::string describe_command(ByteView raw, bool secret = false);
// Text of a response for the log: full hex, or when SECRET the data length and the status
// word ("[256 bytes withheld] 90 00").
std::string describe_response(ByteView raw, bool secret = false);

// Sends one raw command and returns the raw response (PC/SC, vpcd, a test script...).
class Transmitter {
public:
    virtual ~Transmitter() = default;
    virtual Bytes transmit(ByteView command) = 0;
};

struct ExchangeOptions {
    bool extended = false;               // the card takes extended length APDUs
    std::size_t chunk = 255;             // chaining chunk when data does not fit a short APDU
    std::size_t max_rounds = 64;         // GET RESPONSE / resend rounds before giving up
    std::size_t max_response = 1 << 20;  // total response bytes before giving up
    ApduLog* log = nullptr;
    bool secret = false;  // the data of command and response carry key material: not logged
};

// Sends COMMAND and returns the complete response: chains data that does not fit (when the
// card lacks extended length), follows 61xx with GET RESPONSE (concatenating the data),
// resends with Le=xx on 6Cxx. Ne beyond what the form allows is clamped (the 61xx loop
// fetches the rest). Error(Io) when the card answers malformed or without end (more than
// MAX_ROUNDS rounds or MAX_RESPONSE bytes): a misbehaving card can neither hang the caller
// nor exhaust its memory.
ResponseApdu exchange(Transmitter& card, const CommandApdu& command,
                      const ExchangeOptions& options = {});

}  // namespace vscard::card
