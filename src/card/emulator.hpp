#pragma once
// The card behind vscard-emu: an ISO/IEC 7816-4 file-system card answering command APDUs,
// kept apart from the vpcd socket so that tests drive it directly.
//
// Interindustry commands (CLA 00, chained with CLA 10):
//   SELECT (A4)         P1 00 (FID: current DF, its children, parent, siblings; 3F00 = MF),
//                       01 (child DF), 02 (EF in current DF), 03 (parent DF), 04 (DF name),
//                       08 (path from MF, a leading 3F00 is accepted), 09 (path from current
//                       DF); P2 00 returns FCI '6F', 04 FCP '62', 0C nothing.
//   READ BINARY (B0)    offset in P1-P2 (15 bits); Le 00 / 0000 reads what is left; a longer
//                       explicit Le than what is left returns the rest with 6282.
//   UPDATE BINARY (D6)  offset in P1-P2 (beyond the end: 6B00); data running past the end
//                       of the EF: 6A84, nothing written.
//   CREATE FILE (E0)    data: FCP '62' with 83 (FID), 82 (01 transparent EF or 38 DF),
//                       80 (EF size), 84 (DF name), 86 (security, see card/fcp.hpp: 3 bytes,
//                       or 4 with USE; absent: all "always" but USE "never"). EF content
//                       starts as zeros. The new file becomes the current file. Card memory
//                       exhausted (kFileOverhead + size bytes per file, see
//                       card/emu_image.hpp) or DFs deeper than 8 levels: 6A84.
//   DELETE FILE (E4)    no data: the current file; data FID: a file in the current DF. A DF
//                       goes with its content; the parent DF becomes current; the MF: 6985.
//   ACTIVATE FILE (44)  accepted (files are created activated).
//   VERIFY (20)         P2 = PIN reference. Empty data: 9000 when verified, else 63Cx with
//                       the tries left (no try spent); 6983 when blocked. Wrong PIN: 63Cx,
//                       the try that blocks answers 63C0, then 6983. P1 FF: forget the
//                       verification. The PIN is compared byte for byte, padding included.
//   CHANGE REFERENCE DATA (24)  P1 00: old PIN || new PIN (old length = stored length);
//                       P1 01: new PIN only, PIN verified in this session.
//   RESET RETRY COUNTER (2C)   P1 00: PUK || new PIN; P1 01: PUK only (PUK length = stored).
//   GET RESPONSE (C0)   the rest of a response announced with 61xx.
//   GET DATA (CA)       P1-P2 0101: the card serial; 0102: capacity and free memory (4 + 4
//                       bytes, big-endian).
//   GET CHALLENGE (84)  Le random bytes.
//
// Keys (ISO/IEC 7816-8). A key EF is an ordinary transparent EF holding a PKCS#8
// PrivateKeyInfo DER (RSA 2048..4096 bits, EC P-256 or P-384) followed by zeros up to its
// size; clients write it with UPDATE BINARY (vscard creates key EFs with read never,
// update / delete / use after the PIN), so a key can be used but never read out. Its USE
// condition (the fourth byte of tag 86) guards the operations with it.
//   MANAGE SECURITY ENVIRONMENT (22)  P1 41 (SET), P2 B6 (digital signature template) or B8
//                       (confidentiality template: decipher). Data, in any order:
//                       81 <path of the key EF from the MF, FIDs of 2 bytes, a leading 3F00
//                       accepted, as SELECT P1 08>  80 01 <algorithm: 02 RSA PKCS#1 v1.5,
//                       04 ECDSA (B6 only)>. Other P1-P2: 6A86. A missing, repeated, unknown
//                       or malformed object or an unknown algorithm: 6A80; no EF at the path
//                       (nothing, or a DF): 6A88. Needs no PIN. The environment holds until
//                       the next SET of the same template (a failed SET clears it), power
//                       off/on or reset; the path is looked up again at each operation.
//   PERFORM SECURITY OPERATION (2A) with the key of the environment's EF:
//                       P1-P2 9E9A COMPUTE DIGITAL SIGNATURE: data RSA: a DigestInfo or any
//                       1..k-11 bytes (k: modulus bytes), padded with PKCS#1 block type 1;
//                       ECDSA: the hash, 1..64 bytes; answers r || s, each the field size
//                       (32 / 48 bytes), big-endian, left-padded with zeros.
//                       P1-P2 8086 DECIPHER (RSA): data 00 (padding indicator) || k bytes of
//                       cryptogram; answers the plaintext, PKCS#1 v1.5 type 2 padding removed.
//                       Other P1-P2: 6A86. No environment for that operation: 6985; its EF
//                       gone: 6A88; its USE condition unmet: 6982; the EF not holding a valid
//                       key, a key of the other type than the algorithm (RSA / EC) or the
//                       padding indicator not 00: 6A80; data of a length the key does not
//                       take: 6700; a padding error in the cryptogram: 6A80.
//   GENERATE ASYMMETRIC KEY PAIR (46)  P1-P2 0000 (else 6A86), into the current EF (none or
//                       a DF current: 6986). Data: 80 01 <01 RSA, 02 EC P-256, 03 EC P-384>,
//                       for RSA optionally 81 02 <modulus bits, big-endian: 2048 (default),
//                       3072 or 4096>, e = 65537; anything else: 6A80. Needs the EF's UPDATE
//                       condition (6982). The key's PKCS#8 DER replaces the EF's content,
//                       zero-padded; an EF too small for it: 6A84, nothing written. Answers
//                       the public key as SubjectPublicKeyInfo DER.
//
// Security state (verified PINs), security environments, the current file, pending responses
// and chains are reset by power off/on and reset. Responses longer than Le (or any data under Le
// absent) are announced with 61xx and fetched with GET RESPONSE.
//
// Proprietary commands (CLA 80), for `vscardctl format` and tests:
//   SET PIN: 80 24 00 <ref> Lc <data>, ref 01..FE, data BER-TLV:
//       81 <PIN value, 1..64 bytes, padding included as VERIFY will send it>
//       82 <PUK value, optional>
//       83 01 <max tries, 1..15, default 3>   84 01 <PUK max tries, 1..15, default 3>
//     Creates PIN object <ref>, or replaces it when that PIN is verified in this session;
//     else 6982. Needs kPinOverhead bytes of card memory for a new object (else 6A84). The PIN
//     starts unverified with a full retry counter. (INS 24 is that of CHANGE REFERENCE DATA, so
//     every log that withholds PIN data by instruction also withholds this command's data.)
//   ERASE CARD: 80 EE 00 00: back to a blank card (MF only, no PINs; serial and memory size
//     kept). Only when the emulator runs with allow_erase (--allow-erase), else 6982.
// The ATR's historical bytes carry card capabilities (selection methods, chaining, extended
// length when enabled) and the issuer data "vscard", by which clients recognise the emulator.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>

#include "card/apdu.hpp"
#include "card/emu_image.hpp"

namespace vscard::card {

// Behaviours of real cards that clients must cope with; each is a vscard-emu switch.
struct EmulatorOptions {
    bool fci = true;         // --no-fci: SELECT answers 9000 without FCI/FCP
    bool aid_select = true;  // --no-aid-select: SELECT by DF name answers 6A82
    bool extended = true;    // --no-extended: extended APDUs answer 6700, not in the ATR
    bool chaining = true;    // --no-chaining: chained commands answer 6884
    // --max-le N: READ BINARY with Ne above N answers 6Cxx (xx = what would be returned,
    // at most N) or, with wrong_le_6700 (--max-le-6700), 6700. 0: no limit.
    std::size_t max_le = 0;
    bool wrong_le_6700 = false;
    // --t0: every response with data is announced with 61xx and fetched by GET RESPONSE.
    bool t0_responses = false;
    bool allow_erase = false;  // --allow-erase: accept the proprietary ERASE CARD
};

class Emulator {
public:
    explicit Emulator(emu::CardImage image, EmulatorOptions options = {});

    const EmulatorOptions& options() const { return options_; }
    Bytes atr() const;

    void power_on() { reset_session(); }
    void power_off() { reset_session(); }
    void reset() { reset_session(); }

    // The response APDU to a command APDU; never throws for any input.
    Bytes process(ByteView command);
    ResponseApdu process(const CommandApdu& command);

    // True once after each command that changed the content (files, PINs, retry counters):
    // the caller saves the image then.
    bool take_changed();

    const emu::CardImage& image() const { return image_; }
    // Replaces the content (e.g. reloaded after a failed save); resets the session.
    void replace_image(emu::CardImage image);
    bool verified(std::uint8_t pin_reference) const { return verified_.count(pin_reference); }
    // True when COMMAND (asked before it is processed) or its answer carries key material
    // that a log must not show: UPDATE BINARY into an EF that is never readable (a key
    // file), DECIPHER (the answer is plaintext). Never throws.
    bool is_secret(ByteView command) const;

private:
    struct Response {
        Bytes data;
        std::uint16_t sw;
    };
    static Response status(std::uint16_t s) { return {{}, s}; }

    void reset_session();
    Response dispatch(const CommandApdu& c);
    Response deliver(Bytes data, std::uint16_t final_sw, std::size_t ne);
    Response get_response(const CommandApdu& c);
    Response select(const CommandApdu& c);
    Response read_binary(const CommandApdu& c);
    Response update_binary(const CommandApdu& c);
    Response create_file(const CommandApdu& c);
    Response delete_file(const CommandApdu& c);
    Response verify(const CommandApdu& c);
    Response change_reference_data(const CommandApdu& c);
    Response reset_retry_counter(const CommandApdu& c);
    Response get_data(const CommandApdu& c);
    Response get_challenge(const CommandApdu& c);
    Response manage_security_environment(const CommandApdu& c);
    Response perform_security_operation(const CommandApdu& c);
    Response generate_key_pair(const CommandApdu& c);
    Response set_pin(const CommandApdu& c);
    Response erase_card(const CommandApdu& c);

    bool allowed(Access a) const;
    emu::File* find_by_fid(std::uint16_t fid) const;
    emu::File* find_by_name(emu::File* dir, ByteView name) const;
    emu::File* walk_path(emu::File* from, ByteView path) const;
    // The EF at PATH from the MF (a leading 3F00 accepted); nullptr for nothing or a DF.
    emu::File* key_file(ByteView path) const;
    void make_current(emu::File* f);
    Bytes fcp_of(const emu::File& f, tlv::Tag tag) const;
    // Compares GIVEN with a stored PIN or PUK, maintaining its retry counter LEFT.
    std::uint16_t check_secret(const SecureBytes& stored, std::uint8_t& left, std::uint8_t max,
                               ByteView given);

    emu::CardImage image_;
    EmulatorOptions options_;
    bool changed_ = false;
    // Session state, reset at power on/off and reset.
    emu::File* current_df_ = nullptr;
    emu::File* current_ef_ = nullptr;
    std::set<std::uint8_t> verified_;
    struct SecurityEnvironment {
        Bytes path;  // of the key EF, from the MF (without 3F00)
        std::uint8_t algorithm = 0;
    };
    std::optional<SecurityEnvironment> signature_env_;  // MSE SET B6
    std::optional<SecurityEnvironment> decipher_env_;   // MSE SET B8
    // The rest of a response announced with 61xx.
    Bytes pending_;
    std::uint16_t pending_sw_ = sw::kOk;
    std::optional<CommandApdu> chain_;  // chained command being collected
    bool last_extended_ = false;        // the command being handled used extended length
};

// Atr for the given options (also used by clients to recognise the emulator).
Bytes emulator_atr(const EmulatorOptions& options);
// True when ATR carries the emulator's issuer data.
bool is_emulator_atr(ByteView atr);

}  // namespace vscard::card
