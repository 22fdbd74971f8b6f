#pragma once
// ISO/IEC 7816-4 client commands over any Transmitter (PC/SC, the in-process emulator, a test
// script): SELECT, READ/UPDATE BINARY, CREATE/DELETE FILE, VERIFY, CHANGE REFERENCE DATA,
// the key commands of ISO/IEC 7816-8 (MANAGE SECURITY ENVIRONMENT, PERFORM SECURITY
// OPERATION, GENERATE ASYMMETRIC KEY PAIR), and the mapping of status words to typed errors.
//
// Real cards differ; what this layer learns about one card is kept in CardCaps so that later
// operations use it without probing again:
//   - extended length: from the ATR's card capabilities, else tried on the first transfer
//     that would profit from it (6700 to an extended APDU: the card is short-only);
//   - the largest READ BINARY / UPDATE BINARY a card takes: extended cards start at 65535
//     bytes and step down on 6700; short-only cards use 255 (never Le=00, which some cards
//     refuse); a 6Cxx answer or a short read with a known file size lowers it;
//   - whether SELECT returns FCP/FCI: without it the file size is unknown and a whole-file
//     read goes on until the card signals the end (6282, 6B00 or a short read).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "card/apdu.hpp"
#include "card/fcp.hpp"
#include "error.hpp"
#include "secure_bytes.hpp"

namespace vscard::card {

// What is known about a card's ways. nullopt / 0: not known yet (learned on first use).
struct CardCaps {
    std::optional<bool> extended;    // extended length APDUs work
    std::size_t max_read = 0;        // largest Ne of READ BINARY that works
    std::size_t max_write = 0;       // largest data field of UPDATE BINARY that works
    std::optional<bool> fci;         // SELECT answers with FCP/FCI
    std::optional<bool> aid_select;  // SELECT by DF name works
};

// Capabilities announced in the ATR's historical bytes (compact-TLV, ISO 7816-4 §8.1.1):
// extended length (card capabilities, third byte b7). An ATR that says nothing leaves the
// fields unknown. Never throws.
CardCaps caps_from_atr(ByteView atr);

// A status word as a typed error: 6982 Locked ("PIN required"), 6983 Locked ("PIN blocked"),
// 6A82/6A88 NotFound, 6A84 NoSpace, 6A89/6A8A Exists, 6A81/6D00/6E00/688x NotSupported,
// 6581 Io, format errors Invalid, anything else Io. WHAT says what was being done ("reading
// 3F00/5015/4401"); the message names the status word and what the user can do.
Error card_error(std::uint16_t sw, std::string_view what);

// A failed VERIFY (or CHANGE REFERENCE DATA) with the tries the PIN has left: WrongPassword
// for 63Cx with tries left, Locked when the PIN is blocked (6983, or 63C0).
class PinError : public Error {
public:
    PinError(ErrorKind kind, const std::string& message, int tries_left)
        : Error(kind, message), tries_left_(tries_left) {}
    int tries_left() const { return tries_left_; }

private:
    int tries_left_;
};

// How a PIN is encoded for VERIFY (PKCS#15 PinAttributes): type, lengths and padding.
struct PinFormat {
    enum class Type { Bcd = 0, AsciiNumeric = 1, Utf8 = 2, HalfNibbleBcd = 3, Iso9564 = 4 };
    Type type = Type::Utf8;
    std::size_t min_length = 0;
    std::optional<std::size_t> max_length;
    std::size_t stored_length = 0;
    std::uint8_t pad_char = 0x00;
    bool needs_padding = false;
};

// The bytes VERIFY sends for PIN (UTF-8 text). Error(Invalid) when the PIN breaks the format
// (too short, too long, a non-digit for a numeric type).
SecureBytes encode_pin(ByteView pin, const PinFormat& format);

struct PinStatus {
    bool verified = false;
    std::optional<int> tries_left;  // nullopt: the card does not tell
    bool blocked() const { return tries_left && *tries_left == 0; }
};

// Parameters of CREATE FILE.
struct FileSpec {
    std::uint16_t fid = 0;
    bool df = false;
    std::size_t size = 0;  // transparent EF content size
    Bytes df_name;         // DF only; empty: none
    SecurityAttributes access;
};

// The access conditions of a new file in the card's FCP: the one place that knows how a card
// wants them (the emulator: tag 86, three bytes, four with a USE condition; other cards
// would use 8C/AB).
void put_access_conditions(Fcp& fcp, const SecurityAttributes& access);
// The FCP template CREATE FILE sends for SPEC.
Bytes create_file_fcp(const FileSpec& spec);

// What SELECT told about a file: its FCP, when the card gave one.
struct FileInfo {
    std::optional<Fcp> fcp;
    std::optional<std::size_t> size() const;  // transparent EF data size
    bool is_df() const { return fcp && fcp->is_df(); }
};

// MANAGE SECURITY ENVIRONMENT SET: the control reference template (P2) of the operation the
// environment is for, and the algorithm references (tag 80) vscard-emu knows.
enum class SecurityTemplate : std::uint8_t { Signature = 0xB6, Confidentiality = 0xB8 };
inline constexpr std::uint8_t kAlgorithmRsaPkcs1 = 0x02;  // RSA PKCS#1 v1.5: sign, decipher
inline constexpr std::uint8_t kAlgorithmEcdsa = 0x04;     // ECDSA over a hash: sign only
// GENERATE ASYMMETRIC KEY PAIR: the key type (tag 80).
enum class GeneratedKeyType : std::uint8_t { Rsa = 0x01, EcP256 = 0x02, EcP384 = 0x03 };

// Largest READ/UPDATE BINARY offset (P1-P2 hold 15 bits); an EF larger than this plus one
// APDU's worth cannot be read in full.
inline constexpr std::size_t kMaxOffset = 0x7FFF;

// Path text for messages: "3F00/5015/4401".
std::string path_text(ByteView path);

class Iso7816 {
public:
    explicit Iso7816(Transmitter& link, CardCaps caps = {}, ApduLog* log = nullptr)
        : link_(link), caps_(caps), log_(log) {}

    const CardCaps& caps() const { return caps_; }
    CardCaps& caps() { return caps_; }
    ApduLog* log() const { return log_; }

    // One command through exchange() (61xx, 6Cxx, chaining), with the card's length form.
    ResponseApdu transmit(const CommandApdu& command);
    // The same, throwing card_error(sw, WHAT) unless the card answered 9000.
    ResponseApdu transmit_ok(const CommandApdu& command, std::string_view what);

    // SELECT. With WANT_FCP the FCP is asked for (when the card gives one); else none (P2 0C).
    FileInfo select_mf(bool want_fcp = false);
    FileInfo select_aid(ByteView aid, bool want_fcp = false);
    FileInfo select_fid(std::uint16_t fid, bool want_fcp = false);  // P1 00
    // PATH: FIDs, 2 bytes each. Starting with 3F00: from the MF (P1 08, the MF left out),
    // else from the current DF (P1 09).
    FileInfo select_path(ByteView path, bool want_fcp = false);

    // Up to LENGTH bytes of the current EF from OFFSET (fewer at its end), in as few READ
    // BINARY APDUs as the card allows.
    Bytes read_binary(std::size_t offset, std::size_t length);
    // The whole current EF. SIZE: from its FCP; nullopt: read until the card signals the end.
    Bytes read_file(std::optional<std::size_t> size);
    // Writes DATA at OFFSET of the current EF, in chunks the card takes (each chunk one APDU).
    void update_binary(std::size_t offset, ByteView data);
    // The most bytes one READ BINARY APDU asks for now.
    std::size_t read_chunk() const;
    // Writes DATA at OFFSET in ONE UPDATE BINARY APDU, which a card applies whole or not at
    // all. False when the card refuses that length (6700): nothing was written, and
    // write_chunk() has learned the smaller limit.
    bool update_binary_once(std::size_t offset, ByteView data);
    // The largest chunk one UPDATE BINARY APDU carries (what update_binary uses).
    std::size_t write_chunk() const;

    // CREATE FILE in the current DF; the new file becomes current.
    void create_file(const FileSpec& spec);
    // DELETE FILE: FID in the current DF, or the current file when nullopt.
    void delete_file(std::optional<std::uint16_t> fid = std::nullopt);

    // VERIFY without data: the PIN's state, no try spent.
    PinStatus pin_status(std::uint8_t reference);
    // VERIFY. PinError with the tries left on a wrong PIN (WrongPassword) or a blocked one.
    void verify(std::uint8_t reference, ByteView pin);
    // VERIFY P1 FF: the card forgets the verification (cards without it: ignored).
    void logout(std::uint8_t reference);
    // CHANGE REFERENCE DATA P1 00 (old || new); PinError as verify().
    void change_reference_data(std::uint8_t reference, ByteView old_pin, ByteView new_pin);

    // MANAGE SECURITY ENVIRONMENT SET (00 22 41 TMPL): the key in the EF at KEY_PATH (FIDs
    // from the MF, a leading 3F00 allowed) and ALGORITHM (kAlgorithm...) for the following
    // operations of that template. NotFound when no EF is at KEY_PATH.
    void set_security_environment(SecurityTemplate tmpl, ByteView key_path, std::uint8_t algorithm);
    // PERFORM SECURITY OPERATION COMPUTE DIGITAL SIGNATURE (00 2A 9E 9A) over DATA with the
    // signature environment's key: RSA a DigestInfo (or other bytes up to the modulus size -
    // 11), ECDSA a hash (answered as r || s). Locked when the key's PIN is not verified.
    Bytes compute_signature(ByteView data);
    // PERFORM SECURITY OPERATION DECIPHER (00 2A 80 86, data 00 || CRYPTOGRAM) with the
    // confidentiality environment's RSA key: the plaintext, PKCS#1 v1.5 padding removed.
    WipedBytes decipher(ByteView cryptogram);
    // GENERATE ASYMMETRIC KEY PAIR (00 46 00 00) into the current EF (created and selected
    // by the caller; its UPDATE condition applies): the key's PKCS#8 DER replaces the EF's
    // content, zero-padded. RSA_BITS: 2048, 3072 or 4096 (RSA only). Returns the public key
    // (SubjectPublicKeyInfo DER). NoSpace when the EF is too small for the key.
    Bytes generate_key_pair(GeneratedKeyType type, unsigned rsa_bits = 2048);

    // While one lives, the commands sent through ISO carry key material (e.g. UPDATE BINARY
    // of a key file): the APDU log withholds their data and that of the responses.
    class KeyMaterial {
    public:
        explicit KeyMaterial(Iso7816& iso) : iso_(iso), was_(iso.secret_) { iso.secret_ = true; }
        ~KeyMaterial() { iso_.secret_ = was_; }
        KeyMaterial(const KeyMaterial&) = delete;
        KeyMaterial& operator=(const KeyMaterial&) = delete;

    private:
        Iso7816& iso_;
        bool was_;
    };

private:
    class Tap;
    ExchangeOptions options(bool extended) const;
    ResponseApdu send(const CommandApdu& command, bool extended, bool* saw_6c = nullptr);
    FileInfo select(std::uint8_t p1, Bytes data, bool want_fcp, std::string_view what);
    // A READ BINARY at OFFSET for NE bytes, stepping the read limit down on 6700.
    ResponseApdu read_once(std::size_t offset, std::size_t ne, bool* limited);
    [[noreturn]] void pin_failure(const ResponseApdu& r, std::string_view what);

    Transmitter& link_;
    CardCaps caps_;
    ApduLog* log_;
    bool secret_ = false;  // see KeyMaterial
};

}  // namespace vscard::card
