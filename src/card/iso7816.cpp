#include "card/iso7816.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <string>

#include "card/tlv.hpp"

namespace vscard::card {
namespace {

constexpr std::size_t kShortMax = 255;  // never Le=00: some cards refuse it
constexpr std::size_t kExtendedMax = 65535;
// Steps down from an extended transfer the card refused with 6700.
constexpr std::size_t kLadder[] = {4096, 2048, 1024, 512, kShortMax};

std::size_t step_below(std::size_t n) {
    for (std::size_t s : kLadder)
        if (s < n) return s;
    return kShortMax;
}

std::uint8_t hi(std::size_t v) {
    return static_cast<std::uint8_t>((v >> 8) & 0xFF);
}
std::uint8_t lo(std::size_t v) {
    return static_cast<std::uint8_t>(v & 0xFF);
}

// Answers to a READ BINARY at or past the end (6A86: cards that check the offset as P1-P2).
bool is_end_of_file(std::uint16_t s) {
    return s == sw::kWrongOffset || s == sw::kWrongP1P2;
}

}  // namespace

// Sees the raw responses exchange() hides, to notice a 6Cxx (the card's Le limit).
class Iso7816::Tap : public Transmitter {
public:
    explicit Tap(Transmitter& inner) : inner_(inner) {}
    Bytes transmit(ByteView command) override {
        Bytes r = inner_.transmit(command);
        if (r.size() >= 2 && r[r.size() - 2] == 0x6C) saw_6c = true;
        return r;
    }
    bool saw_6c = false;

private:
    Transmitter& inner_;
};

CardCaps caps_from_atr(ByteView atr) {
    CardCaps caps;
    if (atr.size() < 2) return caps;
    const std::size_t k = atr[1] & 0x0F;
    std::uint8_t y = atr[1] >> 4;
    std::size_t i = 2;
    for (;;) {  // interface bytes TAi TBi TCi TDi
        i += (y & 1) + ((y >> 1) & 1) + ((y >> 2) & 1);
        if (!(y & 8)) break;
        if (i >= atr.size()) return caps;
        y = atr[i++] >> 4;
    }
    if (i + k > atr.size() || k == 0) return caps;
    ByteView hist = atr.subspan(i, k);
    ByteView objects;
    if (hist[0] == 0x80)
        objects = hist.subspan(1);
    else if (hist[0] == 0x00 && hist.size() >= 4)
        objects = hist.subspan(1, hist.size() - 4);  // status indicator in the last 3 bytes
    else
        return caps;
    for (std::size_t p = 0; p < objects.size();) {
        const std::uint8_t tag = objects[p] >> 4, len = objects[p] & 0x0F;
        if (p + 1 + len > objects.size()) break;
        if (tag == 0x7 && len >= 3) caps.extended = (objects[p + 3] & 0x40) != 0;
        p += 1 + len;
    }
    return caps;
}

Error card_error(std::uint16_t s, std::string_view what) {
    const std::string at = std::string(what) + ": ";
    const std::string code = " (SW " + sw_hex(s) + ")";
    switch (s) {
        case sw::kSecurityNotSatisfied:
            return Error(ErrorKind::Locked,
                         at +
                             "PIN required: the card refuses this until its PIN is verified; "
                             "unlock the card first" +
                             code);
        case sw::kAuthBlocked:
            return Error(ErrorKind::Locked, at +
                                                "PIN blocked: no tries left; the card must be "
                                                "unblocked with its PUK" +
                                                code);
        case sw::kConditionsNotSatisfied:
            return Error(ErrorKind::Locked,
                         at + "the card refuses this in its current state" + code);
        case sw::kFileNotFound:
            return Error(ErrorKind::NotFound, at + "no such file on the card" + code);
        case sw::kReferenceNotFound:
            return Error(ErrorKind::NotFound, at + "the card has no such PIN or key" + code);
        case sw::kNotEnoughMemory:
            return Error(ErrorKind::NoSpace,
                         at + "the card is full; delete objects to make room" + code);
        case sw::kFileExists:
        case sw::kDfNameExists:
            return Error(ErrorKind::Exists, at + "the file already exists on the card" + code);
        case sw::kFunctionNotSupported:
        case sw::kInsNotSupported:
        case sw::kClaNotSupported:
        case sw::kChannelNotSupported:
        case sw::kSmNotSupported:
        case sw::kChainingNotSupported:
            return Error(ErrorKind::NotSupported,
                         at + "the card does not support this command" + code);
        case sw::kMemoryFailure:
            return Error(ErrorKind::Io, at + "the card reports a memory failure" + code);
        case sw::kWrongLength:
        case sw::kWrongData:
        case sw::kWrongP1P2:
        case sw::kLcInconsistent:
        case sw::kWrongOffset:
        case sw::kFileTypeMismatch:
        case sw::kNoCurrentEf:
            return Error(ErrorKind::Invalid, at + "the card rejected the command" + code);
        default:
            if ((s & 0xFFF0) == 0x63C0)
                return Error(ErrorKind::WrongPassword, at + "verification failed" + code);
            return Error(ErrorKind::Io, at + "unexpected answer from the card" + code);
    }
}

SecureBytes encode_pin(ByteView pin, const PinFormat& f) {
    using Type = PinFormat::Type;
    if (pin.size() < f.min_length)
        throw Error(ErrorKind::Invalid, "the PIN is too short: it has at least " +
                                            std::to_string(f.min_length) + " characters");
    if (f.max_length && pin.size() > *f.max_length)
        throw Error(ErrorKind::Invalid, "the PIN is too long: it has at most " +
                                            std::to_string(*f.max_length) + " characters");
    const bool numeric = f.type != Type::Utf8;
    if (numeric)
        for (std::uint8_t c : pin)
            if (c < '0' || c > '9')
                throw Error(ErrorKind::Invalid, "the card's PIN has digits only");
    SecureBytes out;
    switch (f.type) {
        case Type::Utf8:
        case Type::AsciiNumeric:
            out.assign(pin.begin(), pin.end());
            break;
        case Type::HalfNibbleBcd:
            for (std::uint8_t c : pin) out.push_back(static_cast<std::uint8_t>(0xF0 | (c - '0')));
            break;
        case Type::Bcd:
            for (std::size_t i = 0; i < pin.size(); i += 2) {
                std::uint8_t low = i + 1 < pin.size()
                                       ? static_cast<std::uint8_t>(pin[i + 1] - '0')
                                       : static_cast<std::uint8_t>(f.pad_char & 0x0F);
                out.push_back(static_cast<std::uint8_t>((pin[i] - '0') << 4 | low));
            }
            break;
        case Type::Iso9564: {  // format 2 PIN block: 2L, digits, F-filled, 8 bytes
            if (pin.size() < 4 || pin.size() > 14)
                throw Error(ErrorKind::Invalid, "the card's PIN has 4 to 14 digits");
            Bytes nibbles{0x2, static_cast<std::uint8_t>(pin.size())};
            for (std::uint8_t c : pin) nibbles.push_back(static_cast<std::uint8_t>(c - '0'));
            nibbles.resize(16, 0xF);
            for (std::size_t i = 0; i < 16; i += 2)
                out.push_back(static_cast<std::uint8_t>(nibbles[i] << 4 | nibbles[i + 1]));
            OPENSSL_cleanse(nibbles.data(), nibbles.size());
            return out;
        }
    }
    if (f.needs_padding && f.stored_length) {
        if (out.size() > f.stored_length)
            throw Error(ErrorKind::Invalid, "the PIN is too long: the card stores at most " +
                                                std::to_string(f.stored_length) + " bytes");
        out.resize(f.stored_length, f.pad_char);
    }
    return out;
}

void put_access_conditions(Fcp& fcp, const SecurityAttributes& access) {
    fcp.security = access;
}

Bytes create_file_fcp(const FileSpec& spec) {
    Fcp f;
    f.fid = spec.fid;
    f.descriptor = spec.df ? kDescriptorDf : kDescriptorTransparentEf;
    if (!spec.df) f.size = spec.size;
    if (spec.df && !spec.df_name.empty()) f.df_name = spec.df_name;
    put_access_conditions(f, spec.access);
    return f.encode();
}

std::optional<std::size_t> FileInfo::size() const {
    if (!fcp || fcp->is_df()) return std::nullopt;
    if (fcp->size) return fcp->size;
    return fcp->total_size;
}

std::string path_text(ByteView path) {
    std::string out;
    for (std::size_t i = 0; i + 1 < path.size(); i += 2) {
        if (!out.empty()) out += '/';
        out += to_hex(path.subspan(i, 2), "");
    }
    return out.empty() ? "(current DF)" : out;
}

ExchangeOptions Iso7816::options(bool extended) const {
    ExchangeOptions o;
    o.extended = extended;
    o.log = log_;
    o.secret = secret_;
    return o;
}

ResponseApdu Iso7816::send(const CommandApdu& command, bool extended, bool* saw_6c) {
    Tap tap(link_);
    ResponseApdu r = exchange(tap, command, options(extended));
    if (saw_6c) *saw_6c = tap.saw_6c;
    return r;
}

ResponseApdu Iso7816::transmit(const CommandApdu& command) {
    return send(command, caps_.extended.value_or(false));
}

ResponseApdu Iso7816::transmit_ok(const CommandApdu& command, std::string_view what) {
    ResponseApdu r = transmit(command);
    if (!r.ok()) throw card_error(r.sw, what);
    return r;
}

FileInfo Iso7816::select(std::uint8_t p1, Bytes data, bool want_fcp, std::string_view what) {
    const bool ask = want_fcp && caps_.fci != false;
    CommandApdu c(0x00, ins::kSelect, p1, ask ? 0x04 : 0x0C, std::move(data), ask ? 256 : 0);
    ResponseApdu r = transmit(c);
    if (ask && (r.sw == sw::kWrongP1P2 || r.sw == sw::kFunctionNotSupported)) {
        caps_.fci = false;  // the card answers no FCP: select without asking
        c.p2 = 0x0C;
        c.ne = 0;
        r = transmit(c);
    }
    if (!r.ok()) throw card_error(r.sw, what);
    FileInfo info;
    if (ask) {
        if (r.data.empty()) {
            caps_.fci = false;
        } else {
            try {
                info.fcp = Fcp::parse(r.data);
                caps_.fci = true;
            } catch (const Error&) {
                // proprietary answer: as good as none
            }
        }
    }
    return info;
}

FileInfo Iso7816::select_mf(bool want_fcp) {
    return select(0x00, Bytes{hi(kMfFid), lo(kMfFid)}, want_fcp, "selecting the MF");
}

FileInfo Iso7816::select_aid(ByteView aid, bool want_fcp) {
    FileInfo f = select(0x04, Bytes(aid.begin(), aid.end()), want_fcp,
                        "selecting application " + to_hex(aid, ""));
    caps_.aid_select = true;
    return f;
}

FileInfo Iso7816::select_fid(std::uint16_t fid, bool want_fcp) {
    Bytes d{hi(fid), lo(fid)};
    return select(0x00, d, want_fcp, "selecting " + to_hex(d, ""));
}

FileInfo Iso7816::select_path(ByteView path, bool want_fcp) {
    if (path.empty() || path.size() % 2)
        throw Error(ErrorKind::Invalid, "a card path is FIDs of 2 bytes each, not " +
                                            std::to_string(path.size()) + " bytes");
    const std::string what = "selecting " + path_text(path);
    if (path[0] == hi(kMfFid) && path[1] == lo(kMfFid)) {
        if (path.size() == 2) return select_mf(want_fcp);
        return select(0x08, Bytes(path.begin() + 2, path.end()), want_fcp, what);
    }
    return select(0x09, Bytes(path.begin(), path.end()), want_fcp, what);
}

std::size_t Iso7816::read_chunk() const {
    if (caps_.max_read) return caps_.max_read;
    return caps_.extended != false ? kExtendedMax : kShortMax;
}

std::size_t Iso7816::write_chunk() const {
    if (caps_.max_write) return caps_.max_write;
    return caps_.extended == true ? kExtendedMax : kShortMax;
}

ResponseApdu Iso7816::read_once(std::size_t offset, std::size_t ne, bool* limited) {
    for (;;) {
        const bool ext = ne > kShortMax;
        CommandApdu c(0x00, ins::kReadBinary, hi(offset), lo(offset), {}, ne);
        ResponseApdu r = send(c, ext, limited);
        if (ext && r.sw == sw::kWrongLength) {
            // An extended Le the card refuses: short-only when that was a guess, else a
            // smaller buffer.
            const bool known = caps_.extended == true;
            caps_.max_read = known ? step_below(ne) : kShortMax;
            if (!known) caps_.extended = false;
            ne = std::min(ne, caps_.max_read);
            continue;
        }
        if (ext && (r.ok() || r.sw == sw::kEndOfFile)) caps_.extended = true;
        return r;
    }
}

Bytes Iso7816::read_binary(std::size_t offset, std::size_t length) {
    Bytes out;
    std::size_t limit_seen = 0;  // a 6Cxx-shortened read, confirmed as a limit by more data
    while (out.size() < length) {
        if (offset > kMaxOffset)
            throw Error(ErrorKind::TooBig, "the file is larger than READ BINARY can reach (" +
                                               std::to_string(kMaxOffset + 1) + " bytes)");
        const std::size_t n = std::min(read_chunk(), length - out.size());
        bool limited = false;
        ResponseApdu r = read_once(offset, n, &limited);
        if (is_end_of_file(r.sw)) break;  // at or past the end
        if (!r.ok() && r.sw != sw::kEndOfFile)
            throw card_error(r.sw, "reading " + std::to_string(n) + " bytes at offset " +
                                       std::to_string(offset));
        const std::size_t got = r.data.size();
        out.insert(out.end(), r.data.begin(), r.data.end());
        OPENSSL_cleanse(r.data.data(), r.data.size());
        offset += got;
        if (r.sw == sw::kEndOfFile || got == 0) break;
        if (limit_seen) caps_.max_read = limit_seen;
        limit_seen = limited && got < n ? got : 0;
        // Fewer bytes than asked with 9000 and no 6Cxx: the end, or a card that shortens
        // reads silently; the next READ BINARY tells (6B00 at the end).
    }
    return out;
}

Bytes Iso7816::read_file(std::optional<std::size_t> size) {
    if (size) return read_binary(0, *size);
    Bytes out;
    std::size_t offset = 0;
    std::size_t limit_seen = 0;
    while (offset <= kMaxOffset) {  // nothing beyond is addressable
        const std::size_t n = read_chunk();
        bool limited = false;
        ResponseApdu r = read_once(offset, n, &limited);
        if (is_end_of_file(r.sw)) break;
        if (!r.ok() && r.sw != sw::kEndOfFile)
            throw card_error(r.sw, "reading at offset " + std::to_string(offset));
        const std::size_t got = r.data.size();
        out.insert(out.end(), r.data.begin(), r.data.end());
        OPENSSL_cleanse(r.data.data(), r.data.size());
        offset += got;
        if (r.sw == sw::kEndOfFile || got == 0) break;
        if (limit_seen) caps_.max_read = limit_seen;
        limit_seen = 0;
        if (got < n) {
            if (!limited) break;  // a short read: the end of the file
            limit_seen = got;
        }
    }
    return out;
}

bool Iso7816::update_binary_once(std::size_t offset, ByteView data) {
    if (offset > kMaxOffset)
        throw Error(ErrorKind::TooBig, "the file is larger than UPDATE BINARY can reach (" +
                                           std::to_string(kMaxOffset + 1) + " bytes)");
    const bool ext = data.size() > kShortMax;
    if (ext && caps_.extended == false) return false;
    CommandApdu c(0x00, ins::kUpdateBinary, hi(offset), lo(offset),
                  Bytes(data.begin(), data.end()));
    WipeOnExit wipe{c.data};
    ResponseApdu r = send(c, ext);
    if (ext && r.sw == sw::kWrongLength) {  // refused as a whole: nothing was written
        const bool known = caps_.extended == true;
        caps_.max_write = known ? step_below(data.size()) : kShortMax;
        if (!known) caps_.extended = false;
        return false;
    }
    if (!r.ok())
        throw card_error(r.sw, "writing " + std::to_string(data.size()) + " bytes at offset " +
                                   std::to_string(offset));
    if (ext) caps_.extended = true;
    return true;
}

void Iso7816::update_binary(std::size_t offset, ByteView data) {
    std::size_t done = 0;
    while (done < data.size()) {
        const std::size_t n = std::min(write_chunk(), data.size() - done);
        if (update_binary_once(offset + done, data.subspan(done, n))) done += n;
    }
}

void Iso7816::create_file(const FileSpec& spec) {
    Bytes fid{hi(spec.fid), lo(spec.fid)};
    transmit_ok(CommandApdu(0x00, ins::kCreateFile, 0x00, 0x00, create_file_fcp(spec)),
                "creating " + std::string(spec.df ? "DF " : "file ") + to_hex(fid, ""));
}

void Iso7816::delete_file(std::optional<std::uint16_t> fid) {
    Bytes data;
    if (fid) data = {hi(*fid), lo(*fid)};
    transmit_ok(CommandApdu(0x00, ins::kDeleteFile, 0x00, 0x00, data),
                fid ? "deleting file " + to_hex(data, "") : std::string("deleting a file"));
}

PinStatus Iso7816::pin_status(std::uint8_t reference) {
    ResponseApdu r = transmit(CommandApdu(0x00, ins::kVerify, 0x00, reference));
    PinStatus s;
    if (r.ok()) {
        s.verified = true;
    } else if (r.tries_left()) {
        s.tries_left = r.tries_left();
    } else if (r.sw == sw::kReferenceNotFound) {
        throw card_error(r.sw, "asking the state of PIN " + sw_hex(reference).substr(2));
    }
    return s;  // other answers: the card does not tell
}

void Iso7816::pin_failure(const ResponseApdu& r, std::string_view what) {
    if (auto left = r.tries_left()) {
        if (*left == 0)
            throw PinError(ErrorKind::Locked,
                           std::string(what) +
                               ": the PIN is blocked (no tries left); it must be unblocked "
                               "with the PUK",
                           0);
        throw PinError(ErrorKind::WrongPassword,
                       std::string(what) + ": wrong PIN, " + std::to_string(*left) +
                           (*left == 1 ? " try" : " tries") + " left before the card blocks it",
                       *left);
    }
    throw card_error(r.sw, what);
}

void Iso7816::verify(std::uint8_t reference, ByteView pin) {
    if (pin.empty()) throw Error(ErrorKind::Invalid, "an empty PIN cannot be verified");
    CommandApdu c(0x00, ins::kVerify, 0x00, reference, Bytes(pin.begin(), pin.end()));
    WipeOnExit wipe{c.data};
    ResponseApdu r = transmit(c);
    if (!r.ok()) pin_failure(r, "verifying the PIN");
}

void Iso7816::logout(std::uint8_t reference) {
    transmit(CommandApdu(0x00, ins::kVerify, 0xFF, reference));
}

void Iso7816::change_reference_data(std::uint8_t reference, ByteView old_pin, ByteView new_pin) {
    CommandApdu c(0x00, ins::kChangeReferenceData, 0x00, reference,
                  Bytes(old_pin.begin(), old_pin.end()));
    c.data.insert(c.data.end(), new_pin.begin(), new_pin.end());
    WipeOnExit wipe{c.data};
    ResponseApdu r = transmit(c);
    if (!r.ok()) pin_failure(r, "changing the PIN");
}

void Iso7816::set_security_environment(SecurityTemplate tmpl, ByteView key_path,
                                       std::uint8_t algorithm) {
    if (key_path.empty() || key_path.size() % 2)
        throw Error(ErrorKind::Invalid, "a key path is FIDs of 2 bytes each, not " +
                                            std::to_string(key_path.size()) + " bytes");
    Bytes data;
    tlv::append(data, 0x81, key_path);
    tlv::append(data, 0x80, Bytes{algorithm});
    const std::string what =
        std::string(tmpl == SecurityTemplate::Signature ? "choosing the signing key "
                                                        : "choosing the deciphering key ") +
        path_text(key_path);
    ResponseApdu r = transmit(CommandApdu(0x00, ins::kManageSecurityEnvironment, 0x41,
                                          static_cast<std::uint8_t>(tmpl), std::move(data)));
    if (r.sw == sw::kReferenceNotFound)
        throw Error(ErrorKind::NotFound,
                    what + ": no key file there on the card (SW " + sw_hex(r.sw) + ")");
    if (!r.ok()) throw card_error(r.sw, what);
}

Bytes Iso7816::compute_signature(ByteView data) {
    CommandApdu c(0x00, ins::kPerformSecurityOperation, 0x9E, 0x9A, Bytes(data.begin(), data.end()),
                  65536);
    return transmit_ok(c, "signing with the card's key").data;
}

WipedBytes Iso7816::decipher(ByteView cryptogram) {
    KeyMaterial plaintext(*this);
    Bytes data{0x00};  // padding indicator: no further indication
    data.insert(data.end(), cryptogram.begin(), cryptogram.end());
    ResponseApdu r = transmit_ok(
        CommandApdu(0x00, ins::kPerformSecurityOperation, 0x80, 0x86, std::move(data), 65536),
        "deciphering with the card's key");
    WipeOnExit wipe{r.data};
    return WipedBytes(r.data.begin(), r.data.end());
}

Bytes Iso7816::generate_key_pair(GeneratedKeyType type, unsigned rsa_bits) {
    Bytes data;
    tlv::append(data, 0x80, Bytes{static_cast<std::uint8_t>(type)});
    if (type == GeneratedKeyType::Rsa) tlv::append(data, 0x81, Bytes{hi(rsa_bits), lo(rsa_bits)});
    const std::string what = "generating a key pair on the card";
    ResponseApdu r = transmit(
        CommandApdu(0x00, ins::kGenerateAsymmetricKeyPair, 0x00, 0x00, std::move(data), 65536));
    if (r.sw == sw::kNotEnoughMemory)
        throw Error(ErrorKind::NoSpace,
                    what + ": the key file is too small for the key (SW " + sw_hex(r.sw) + ")");
    if (!r.ok()) throw card_error(r.sw, what);
    if (r.data.empty()) throw Error(ErrorKind::Io, what + ": the card returned no public key");
    return std::move(r.data);
}

}  // namespace vscard::card
