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
//                       80 (EF size), 84 (DF name), 86 (security, see card/fcp.hpp; absent:
//                       all "always"). EF content starts as zeros. The new file becomes the
//                       current file. Card memory exhausted (kFileOverhead + size bytes per
//                       file, see card/emu_image.hpp) or DFs deeper than 8 levels: 6A84.
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
// Security state (verified PINs), the current file, pending responses and chains are reset by
// power off/on and reset. Responses longer than Le (or any data under Le absent) are announced
// with 61xx and fetched with GET RESPONSE.
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
    Response set_pin(const CommandApdu& c);
    Response erase_card(const CommandApdu& c);

    bool allowed(Access a) const;
    emu::File* find_by_fid(std::uint16_t fid) const;
    emu::File* find_by_name(emu::File* dir, ByteView name) const;
    emu::File* walk_path(emu::File* from, ByteView path) const;
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
    Bytes pending_;  // rest of a response announced with 61xx
    std::uint16_t pending_sw_ = sw::kOk;
    std::optional<CommandApdu> chain_;  // chained command being collected
    bool last_extended_ = false;        // the command being handled used extended length
};

// Atr for the given options (also used by clients to recognise the emulator).
Bytes emulator_atr(const EmulatorOptions& options);
// True when ATR carries the emulator's issuer data.
bool is_emulator_atr(ByteView atr);

}  // namespace vscard::card
