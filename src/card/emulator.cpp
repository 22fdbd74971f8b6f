#include "card/emulator.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <string>

#include "card/iso7816.hpp"
#include "crypto.hpp"
#include "error.hpp"
#include "keys.hpp"

namespace vscard::card {
namespace {

constexpr std::uint8_t kIssuerData[] = {'v', 's', 'c', 'a', 'r', 'd'};
constexpr std::uint16_t kGetDataSerial = 0x0101;
constexpr std::uint16_t kGetDataMemory = 0x0102;

std::uint16_t more_data(std::size_t left) {
    return static_cast<std::uint16_t>(0x6100 | (left >= 256 ? 0 : left));
}

std::uint16_t p1p2(const CommandApdu& c) {
    return static_cast<std::uint16_t>(c.p1 << 8 | c.p2);
}

std::uint16_t fid_of(ByteView two) {
    return static_cast<std::uint16_t>(two[0] << 8 | two[1]);
}

void put32(Bytes& out, std::size_t v) {
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

}  // namespace

Bytes emulator_atr(const EmulatorOptions& options) {
    // Historical bytes: category 80 (compact-TLV), card capabilities (7x: selection by full
    // DF name, path and FID; 1-byte data units; chaining / extended length), issuer data (5x).
    std::uint8_t caps = (options.chaining ? 0x80 : 0x00) | (options.extended ? 0x40 : 0x00);
    Bytes hist{0x80, 0x73, 0xB0, 0x01, caps, static_cast<std::uint8_t>(0x50 | sizeof kIssuerData)};
    hist.insert(hist.end(), std::begin(kIssuerData), std::end(kIssuerData));
    // TS, T0 (TD1 present, K historical bytes), TD1 (T=0, TD2 present), TD2 (T=1), then TCK.
    Bytes atr;
    atr.reserve(5 + hist.size());
    for (std::uint8_t b : {std::uint8_t{0x3B}, static_cast<std::uint8_t>(0x80 | hist.size()),
                           std::uint8_t{0x80}, std::uint8_t{0x01}})
        atr.push_back(b);
    for (std::uint8_t b : hist) atr.push_back(b);
    std::uint8_t tck = 0;
    for (std::size_t i = 1; i < atr.size(); ++i) tck ^= atr[i];
    atr.push_back(tck);
    return atr;
}

bool is_emulator_atr(ByteView atr) {
    const std::uint8_t marker[] = {0x56, 'v', 's', 'c', 'a', 'r', 'd'};
    return std::search(atr.begin(), atr.end(), std::begin(marker), std::end(marker)) != atr.end();
}

Emulator::Emulator(emu::CardImage image, EmulatorOptions options)
    : image_(std::move(image)), options_(options) {
    reset_session();
}

Bytes Emulator::atr() const {
    return emulator_atr(options_);
}

void Emulator::reset_session() {
    current_df_ = image_.mf.get();
    current_ef_ = nullptr;
    verified_.clear();
    signature_env_.reset();
    decipher_env_.reset();
    wipe(pending_);
    pending_sw_ = sw::kOk;
    chain_.reset();
}

void Emulator::replace_image(emu::CardImage image) {
    image_ = std::move(image);
    reset_session();
}

bool Emulator::take_changed() {
    bool c = changed_;
    changed_ = false;
    return c;
}

ResponseApdu Emulator::process(const CommandApdu& command) {
    Bytes raw;
    try {
        raw = command.encode(options_.extended ? LengthForm::Auto : LengthForm::Short);
    } catch (const Error&) {
        return ResponseApdu{{}, sw::kWrongLength};
    }
    return ResponseApdu::parse(process(ByteView(raw)));
}

Bytes Emulator::process(ByteView raw) {
    Response r;
    std::optional<ParsedCommand> p;
    try {
        p = parse_command(raw);
    } catch (const Error&) {
        p.reset();  // malformed length fields
    }
    if (!p || (p->extended && !options_.extended)) {
        chain_.reset();
        wipe(pending_);
        r = status(sw::kWrongLength);
    } else {
        try {
            last_extended_ = p->extended;
            r = dispatch(p->apdu);
        } catch (const std::exception&) {
            r = status(0x6F00);  // no precise diagnosis; the card stays up
        }
    }
    r.data.push_back(static_cast<std::uint8_t>(r.sw >> 8));
    r.data.push_back(static_cast<std::uint8_t>(r.sw & 0xFF));
    return std::move(r.data);
}

Emulator::Response Emulator::dispatch(const CommandApdu& c) {
    if (c.cla == 0xFF) return status(sw::kClaNotSupported);
    const bool proprietary = (c.cla & 0x80) != 0;
    if (proprietary) {
        if ((c.cla & 0xEF) != 0x80) return status(sw::kClaNotSupported);
    } else {
        if (c.cla & 0x60) return status(sw::kChannelNotSupported);
        if (c.cla & 0x0C) return status(sw::kSmNotSupported);
        if (c.cla & 0x03) return status(sw::kChannelNotSupported);
    }
    if (!proprietary && c.ins == ins::kGetResponse) {
        chain_.reset();
        return get_response(c);
    }
    wipe(pending_);

    auto same_header = [](const CommandApdu& a, const CommandApdu& b) {
        return (a.cla & 0xEF) == (b.cla & 0xEF) && a.ins == b.ins && a.p1 == b.p1 && a.p2 == b.p2;
    };
    if (c.cla & 0x10) {  // part of a chain: collect, answer on the last part
        if (!options_.chaining) {
            chain_.reset();
            return status(sw::kChainingNotSupported);
        }
        if (chain_ && !same_header(*chain_, c)) {
            chain_.reset();
            return status(sw::kLastCommandOfChainExpected);
        }
        if (!chain_) {
            chain_ = c;
            chain_->cla &= 0xEF;
        } else {
            chain_->data.insert(chain_->data.end(), c.data.begin(), c.data.end());
        }
        if (chain_->data.size() > 65535) {
            chain_.reset();
            return status(sw::kWrongLength);
        }
        return status(sw::kOk);
    }
    CommandApdu cmd = c;
    if (chain_) {
        if (!same_header(*chain_, c)) {
            chain_.reset();
            return status(sw::kLastCommandOfChainExpected);
        }
        cmd.data = std::move(chain_->data);
        cmd.data.insert(cmd.data.end(), c.data.begin(), c.data.end());
        chain_.reset();
    }

    if (proprietary) {
        switch (cmd.ins) {
            case ins::kChangeReferenceData:
                return set_pin(cmd);
            case 0xEE:
                return erase_card(cmd);
            default:
                return status(sw::kInsNotSupported);
        }
    }
    switch (cmd.ins) {
        case ins::kSelect:
            return select(cmd);
        case ins::kReadBinary:
            return read_binary(cmd);
        case ins::kUpdateBinary:
            return update_binary(cmd);
        case ins::kCreateFile:
            return create_file(cmd);
        case ins::kDeleteFile:
            return delete_file(cmd);
        case ins::kActivateFile:
            return status(sw::kOk);
        case ins::kVerify:
            return verify(cmd);
        case ins::kChangeReferenceData:
            return change_reference_data(cmd);
        case ins::kResetRetryCounter:
            return reset_retry_counter(cmd);
        case ins::kGetData:
            return get_data(cmd);
        case ins::kGetChallenge:
            return get_challenge(cmd);
        case ins::kManageSecurityEnvironment:
            return manage_security_environment(cmd);
        case ins::kPerformSecurityOperation:
            return perform_security_operation(cmd);
        case ins::kGenerateAsymmetricKeyPair:
            return generate_key_pair(cmd);
        default:
            return status(sw::kInsNotSupported);
    }
}

Emulator::Response Emulator::deliver(Bytes data, std::uint16_t final_sw, std::size_t ne) {
    if (data.empty()) return {{}, final_sw};
    std::size_t limit = options_.t0_responses ? 0 : ne;
    if (data.size() <= limit) return {std::move(data), final_sw};
    Bytes first(data.begin(), data.begin() + static_cast<long>(limit));
    pending_.assign(data.begin() + static_cast<long>(limit), data.end());
    pending_sw_ = final_sw;
    return {std::move(first), more_data(pending_.size())};
}

Emulator::Response Emulator::get_response(const CommandApdu& c) {
    if (pending_.empty()) return status(sw::kConditionsNotSatisfied);
    if (c.p1 || c.p2) return status(sw::kWrongP1P2);
    if (c.ne == 0) return status(sw::kWrongLength);
    std::size_t n = std::min(c.ne, pending_.size());
    Bytes out(pending_.begin(), pending_.begin() + static_cast<long>(n));
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(n));
    if (pending_.empty()) return {std::move(out), pending_sw_};
    return {std::move(out), more_data(pending_.size())};
}

bool Emulator::allowed(Access a) const {
    if (a.is_always()) return true;
    if (a.is_never()) return false;
    return verified_.count(a.byte()) != 0;
}

emu::File* Emulator::find_by_fid(std::uint16_t fid) const {
    if (fid == kMfFid) return image_.mf.get();
    if (current_df_->fid == fid) return current_df_;
    if (emu::File* f = current_df_->child(fid)) return f;
    if (emu::File* parent = current_df_->parent) {
        if (parent->fid == fid) return parent;
        if (emu::File* f = parent->child(fid)) return f;
    }
    return nullptr;
}

emu::File* Emulator::find_by_name(emu::File* dir, ByteView name) const {
    if (dir->df && !dir->df_name.empty() &&
        std::equal(dir->df_name.begin(), dir->df_name.end(), name.begin(), name.end()))
        return dir;
    for (const auto& c : dir->children)
        if (c->df)
            if (emu::File* f = find_by_name(c.get(), name)) return f;
    return nullptr;
}

emu::File* Emulator::walk_path(emu::File* from, ByteView path) const {
    emu::File* cur = from;
    for (std::size_t i = 0; i + 1 < path.size(); i += 2) {
        if (!cur || !cur->df) return nullptr;
        cur = cur->child(fid_of(path.subspan(i, 2)));
    }
    return cur;
}

emu::File* Emulator::key_file(ByteView path) const {
    if (path.size() >= 2 && fid_of(path) == kMfFid) path = path.subspan(2);
    emu::File* f = walk_path(image_.mf.get(), path);
    return f && !f->df ? f : nullptr;
}

void Emulator::make_current(emu::File* f) {
    if (f->df) {
        current_df_ = f;
        current_ef_ = nullptr;
    } else {
        current_df_ = f->parent;
        current_ef_ = f;
    }
}

Bytes Emulator::fcp_of(const emu::File& f, tlv::Tag tag) const {
    Fcp fcp;
    fcp.fid = f.fid;
    fcp.descriptor = f.df ? kDescriptorDf : kDescriptorTransparentEf;
    if (!f.df) fcp.size = f.data.size();
    if (!f.df_name.empty()) fcp.df_name = f.df_name;
    fcp.life_cycle = f.life_cycle;
    fcp.security = f.security;
    return fcp.encode(tag);
}

Emulator::Response Emulator::select(const CommandApdu& c) {
    if (c.p2 & 0xF3) return status(sw::kWrongP1P2);  // first occurrence only
    const std::uint8_t answer = c.p2 & 0x0C;
    emu::File* target = nullptr;
    switch (c.p1) {
        case 0x00:
            if (c.data.empty()) {
                target = image_.mf.get();
            } else if (c.data.size() != 2) {
                return status(sw::kLcInconsistent);
            } else {
                target = find_by_fid(fid_of(c.data));
            }
            break;
        case 0x01:
        case 0x02: {
            if (c.data.size() != 2) return status(sw::kLcInconsistent);
            emu::File* f = current_df_->child(fid_of(c.data));
            if (f && f->df == (c.p1 == 0x01)) target = f;
            break;
        }
        case 0x03:
            if (!c.data.empty()) return status(sw::kLcInconsistent);
            target = current_df_->parent;
            break;
        case 0x04:
            if (!options_.aid_select) return status(sw::kFileNotFound);
            if (c.data.size() > 16) return status(sw::kLcInconsistent);
            target = c.data.empty() ? image_.mf.get() : find_by_name(image_.mf.get(), c.data);
            break;
        case 0x08:
        case 0x09: {
            if (c.data.empty() || c.data.size() % 2) return status(sw::kLcInconsistent);
            ByteView path(c.data);
            emu::File* from = current_df_;
            if (c.p1 == 0x08) {
                from = image_.mf.get();
                // ISO leaves the MF out of the path; clients that include it are accepted.
                if (fid_of(path) == kMfFid) path = path.subspan(2);
            }
            target = path.empty() ? from : walk_path(from, path);
            break;
        }
        default:
            return status(sw::kWrongP1P2);
    }
    if (!target) return status(sw::kFileNotFound);
    make_current(target);
    if (!options_.fci || answer == 0x08 || answer == 0x0C) return status(sw::kOk);
    return deliver(fcp_of(*target, answer == 0x04 ? 0x62 : 0x6F), sw::kOk, c.ne);
}

Emulator::Response Emulator::read_binary(const CommandApdu& c) {
    if (c.p1 & 0x80) return status(sw::kFunctionNotSupported);  // short EF identifier
    if (!current_ef_) return status(sw::kNoCurrentEf);
    if (!allowed(current_ef_->security.read)) return status(sw::kSecurityNotSatisfied);
    if (c.ne == 0) return status(sw::kWrongLength);
    const Bytes& d = current_ef_->data;
    std::size_t offset = p1p2(c);
    if (offset > d.size() || (offset == d.size() && !d.empty())) return status(sw::kWrongOffset);
    std::size_t left = d.size() - offset;
    if (options_.max_le && c.ne > options_.max_le && left > 0) {
        std::size_t exact = std::min(left, options_.max_le);
        if (options_.wrong_le_6700 || exact > 256) return status(sw::kWrongLength);
        return status(static_cast<std::uint16_t>(0x6C00 | (exact & 0xFF)));
    }
    // Le 00 (short) or 0000 (extended) asks for everything up to the end of the file.
    bool all = (c.ne == 256 && !last_extended_) || c.ne == 65536;
    std::size_t n = std::min(c.ne, left);
    Bytes out(d.begin() + static_cast<long>(offset), d.begin() + static_cast<long>(offset + n));
    return deliver(std::move(out), n < c.ne && !all ? sw::kEndOfFile : sw::kOk, c.ne);
}

Emulator::Response Emulator::update_binary(const CommandApdu& c) {
    if (c.p1 & 0x80) return status(sw::kFunctionNotSupported);
    if (!current_ef_) return status(sw::kNoCurrentEf);
    if (!allowed(current_ef_->security.update)) return status(sw::kSecurityNotSatisfied);
    if (c.data.empty()) return status(sw::kWrongLength);
    Bytes& d = current_ef_->data;
    std::size_t offset = p1p2(c);
    if (offset > d.size()) return status(sw::kWrongOffset);
    if (c.data.size() > d.size() - offset) return status(sw::kNotEnoughMemory);
    std::copy(c.data.begin(), c.data.end(), d.begin() + static_cast<long>(offset));
    changed_ = true;
    return status(sw::kOk);
}

Emulator::Response Emulator::create_file(const CommandApdu& c) {
    if (c.p1 || c.p2) return status(sw::kWrongP1P2);
    Fcp fcp;
    try {
        fcp = Fcp::parse(c.data);
    } catch (const Error&) {
        return status(sw::kWrongData);
    }
    if (!fcp.fid || !fcp.descriptor) return status(sw::kWrongData);
    if (*fcp.fid == kMfFid) return status(sw::kFileExists);
    if (*fcp.fid == 0x3FFF || *fcp.fid == 0xFFFF) return status(sw::kWrongData);
    const bool df = fcp.is_df();
    if (!df && !fcp.is_transparent_ef()) return status(sw::kWrongData);
    std::size_t size = 0;
    if (!df) {
        if (!fcp.size && !fcp.total_size) return status(sw::kWrongData);
        size = fcp.size ? *fcp.size : *fcp.total_size;
        if (size > emu::kMaxEfSize) return status(sw::kWrongData);
    }
    if (fcp.df_name && !df) return status(sw::kWrongData);
    if (!allowed(current_df_->security.update)) return status(sw::kSecurityNotSatisfied);
    if (current_df_->child(*fcp.fid)) return status(sw::kFileExists);
    if (fcp.df_name && find_by_name(image_.mf.get(), *fcp.df_name))
        return status(sw::kDfNameExists);
    if (df && current_df_->depth() + 1 > emu::kMaxDfDepth) return status(sw::kNotEnoughMemory);
    if (emu::kFileOverhead + size > image_.available()) return status(sw::kNotEnoughMemory);

    auto f = std::make_unique<emu::File>();
    f->fid = *fcp.fid;
    f->df = df;
    f->df_name = fcp.df_name.value_or(Bytes{});
    f->security = fcp.security.value_or(SecurityAttributes{});
    f->data.assign(size, 0x00);
    f->parent = current_df_;
    emu::File* created = f.get();
    current_df_->children.push_back(std::move(f));
    changed_ = true;
    make_current(created);  // ISO: the new file becomes the current file
    return status(sw::kOk);
}

Emulator::Response Emulator::delete_file(const CommandApdu& c) {
    if (c.p1 || c.p2) return status(sw::kWrongP1P2);
    emu::File* target = nullptr;
    if (c.data.empty()) {
        target = current_ef_ ? current_ef_ : current_df_;
    } else if (c.data.size() != 2) {
        return status(sw::kLcInconsistent);
    } else {
        target = current_df_->child(fid_of(c.data));
        if (!target) return status(sw::kFileNotFound);
    }
    if (target == image_.mf.get()) return status(sw::kConditionsNotSatisfied);
    if (!allowed(target->security.remove)) return status(sw::kSecurityNotSatisfied);
    emu::File* parent = target->parent;
    make_current(parent);  // the parent DF is current afterwards
    auto& siblings = parent->children;
    siblings.erase(std::find_if(siblings.begin(), siblings.end(),
                                [&](const auto& p) { return p.get() == target; }));
    changed_ = true;
    return status(sw::kOk);
}

std::uint16_t Emulator::check_secret(const SecureBytes& stored, std::uint8_t& left,
                                     std::uint8_t max, ByteView given) {
    if (left == 0) return sw::kAuthBlocked;
    bool match = given.size() == stored.size() &&
                 CRYPTO_memcmp(given.data(), stored.data(), stored.size()) == 0;
    if (match) {
        if (left != max) {
            left = max;
            changed_ = true;
        }
        return sw::kOk;
    }
    --left;
    changed_ = true;  // the counter must survive a restart of the emulator
    return static_cast<std::uint16_t>(0x63C0 | left);
}

Emulator::Response Emulator::verify(const CommandApdu& c) {
    auto it = image_.pins.find(c.p2);
    if (it == image_.pins.end()) return status(sw::kReferenceNotFound);
    emu::Pin& pin = it->second;
    if (c.p1 == 0xFF) {  // ISO 7816-4: reset the verification status
        if (!c.data.empty()) return status(sw::kWrongLength);
        verified_.erase(c.p2);
        return status(sw::kOk);
    }
    if (c.p1 != 0x00) return status(sw::kWrongP1P2);
    if (pin.tries_left == 0) return status(sw::kAuthBlocked);
    if (c.data.empty()) {  // a status query: spends no try
        if (verified_.count(c.p2)) return status(sw::kOk);
        return status(static_cast<std::uint16_t>(0x63C0 | pin.tries_left));
    }
    std::uint16_t s = check_secret(pin.value, pin.tries_left, pin.max_tries, c.data);
    if (s == sw::kOk)
        verified_.insert(c.p2);
    else
        verified_.erase(c.p2);
    return status(s);
}

Emulator::Response Emulator::change_reference_data(const CommandApdu& c) {
    auto it = image_.pins.find(c.p2);
    if (it == image_.pins.end()) return status(sw::kReferenceNotFound);
    emu::Pin& pin = it->second;
    if (pin.tries_left == 0) return status(sw::kAuthBlocked);
    ByteView data(c.data);
    ByteView fresh;
    if (c.p1 == 0x00) {
        if (data.size() <= pin.value.size()) return status(sw::kWrongLength);
        std::uint16_t s =
            check_secret(pin.value, pin.tries_left, pin.max_tries, data.first(pin.value.size()));
        if (s != sw::kOk) {
            verified_.erase(c.p2);
            return status(s);
        }
        fresh = data.subspan(pin.value.size());
    } else if (c.p1 == 0x01) {
        if (!verified_.count(c.p2)) return status(sw::kSecurityNotSatisfied);
        fresh = data;
    } else {
        return status(sw::kWrongP1P2);
    }
    if (fresh.empty() || fresh.size() > emu::kMaxPinSize) return status(sw::kWrongLength);
    pin.value = secure_copy(fresh);
    pin.tries_left = pin.max_tries;
    verified_.insert(c.p2);
    changed_ = true;
    return status(sw::kOk);
}

Emulator::Response Emulator::reset_retry_counter(const CommandApdu& c) {
    auto it = image_.pins.find(c.p2);
    if (it == image_.pins.end()) return status(sw::kReferenceNotFound);
    emu::Pin& pin = it->second;
    if (pin.puk.empty()) return status(sw::kConditionsNotSatisfied);
    if (pin.puk_tries_left == 0) return status(sw::kAuthBlocked);
    ByteView data(c.data);
    ByteView fresh;
    if (c.p1 == 0x00) {
        if (data.size() <= pin.puk.size()) return status(sw::kWrongLength);
        fresh = data.subspan(pin.puk.size());
        if (fresh.size() > emu::kMaxPinSize) return status(sw::kWrongLength);
        data = data.first(pin.puk.size());
    } else if (c.p1 != 0x01) {
        return status(sw::kWrongP1P2);
    }
    std::uint16_t s = check_secret(pin.puk, pin.puk_tries_left, pin.puk_max_tries, data);
    if (s != sw::kOk) return status(s);
    if (!fresh.empty()) pin.value = secure_copy(fresh);
    pin.tries_left = pin.max_tries;
    verified_.erase(c.p2);
    changed_ = true;
    return status(sw::kOk);
}

Emulator::Response Emulator::get_data(const CommandApdu& c) {
    Bytes out;
    switch (p1p2(c)) {
        case kGetDataSerial:
            out = image_.serial;
            break;
        case kGetDataMemory:
            put32(out, image_.capacity);
            put32(out, image_.available());
            break;
        default:
            return status(sw::kReferenceNotFound);
    }
    return deliver(std::move(out), sw::kOk, c.ne);
}

Emulator::Response Emulator::get_challenge(const CommandApdu& c) {
    if (c.p1 || c.p2) return status(sw::kWrongP1P2);
    if (c.ne == 0 || c.ne > 256) return status(sw::kWrongLength);
    return deliver(crypto::random(c.ne), sw::kOk, c.ne);
}

bool Emulator::is_secret(ByteView command) const {
    if (command.size() < 4 || (command[0] & 0x80)) return false;
    switch (command[1]) {
        case ins::kUpdateBinary:
            return current_ef_ && current_ef_->security.read.is_never();
        case ins::kPerformSecurityOperation:
            return command[2] == 0x80 && command[3] == 0x86;
        default:
            return false;
    }
}

Emulator::Response Emulator::manage_security_environment(const CommandApdu& c) {
    const auto tmpl = static_cast<SecurityTemplate>(c.p2);
    if (c.p1 != 0x41 ||
        (tmpl != SecurityTemplate::Signature && tmpl != SecurityTemplate::Confidentiality))
        return status(sw::kWrongP1P2);
    std::optional<SecurityEnvironment>& env =
        tmpl == SecurityTemplate::Signature ? signature_env_ : decipher_env_;
    env.reset();  // a failed SET leaves no key chosen
    std::optional<Bytes> path;
    std::optional<std::uint8_t> algorithm;
    try {
        for (const auto& item : tlv::parse_all(c.data)) {
            if (item.tag == 0x81 && !path) {
                path = Bytes(item.value.begin(), item.value.end());
            } else if (item.tag == 0x80 && !algorithm && item.value.size() == 1) {
                algorithm = item.value[0];
            } else {
                return status(sw::kWrongData);
            }
        }
    } catch (const Error&) {
        return status(sw::kWrongData);
    }
    if (!path || !algorithm || path->empty() || path->size() % 2) return status(sw::kWrongData);
    const bool known = *algorithm == kAlgorithmRsaPkcs1 ||
                       (*algorithm == kAlgorithmEcdsa && tmpl == SecurityTemplate::Signature);
    if (!known) return status(sw::kWrongData);
    if (!key_file(*path)) return status(sw::kReferenceNotFound);
    if (fid_of(*path) == kMfFid) path->erase(path->begin(), path->begin() + 2);
    env = SecurityEnvironment{std::move(*path), *algorithm};
    return status(sw::kOk);
}

Emulator::Response Emulator::perform_security_operation(const CommandApdu& c) {
    const bool sign = p1p2(c) == 0x9E9A;
    if (!sign && p1p2(c) != 0x8086) return status(sw::kWrongP1P2);
    const std::optional<SecurityEnvironment>& env = sign ? signature_env_ : decipher_env_;
    if (!env) return status(sw::kConditionsNotSatisfied);
    const emu::File* f = key_file(env->path);
    if (!f) return status(sw::kReferenceNotFound);
    if (!allowed(f->security.use)) return status(sw::kSecurityNotSatisfied);
    ByteView data(c.data);
    if (!sign) {
        if (data.empty() || data[0] != 0x00) return status(sw::kWrongData);
        data = data.subspan(1);
    }
    std::optional<keys::PrivateKey> key = keys::PrivateKey::from_pkcs8(f->data);
    if (!key || key->is_rsa() != (env->algorithm == kAlgorithmRsaPkcs1))
        return status(sw::kWrongData);
    if (sign) {
        const std::size_t max = key->is_rsa() ? key->size() - 11 : 64;
        if (data.empty() || data.size() > max) return status(sw::kWrongLength);
        Bytes signature = key->is_rsa() ? key->sign_pkcs1(data) : key->sign_ecdsa(data);
        return deliver(std::move(signature), sw::kOk, c.ne);
    }
    if (data.size() != key->size()) return status(sw::kWrongLength);
    std::optional<SecureBytes> plain = key->decrypt_pkcs1(data);
    if (!plain) return status(sw::kWrongData);
    return deliver(Bytes(plain->begin(), plain->end()), sw::kOk, c.ne);
}

Emulator::Response Emulator::generate_key_pair(const CommandApdu& c) {
    if (c.p1 || c.p2) return status(sw::kWrongP1P2);
    if (!current_ef_) return status(sw::kNoCurrentEf);
    std::optional<std::uint8_t> type;
    std::optional<unsigned> bits;
    try {
        for (const auto& item : tlv::parse_all(c.data)) {
            if (item.tag == 0x80 && !type && item.value.size() == 1) {
                type = item.value[0];
            } else if (item.tag == 0x81 && !bits && item.value.size() == 2) {
                bits = static_cast<unsigned>(tlv::decode_uint(item.value, 2));
            } else {
                return status(sw::kWrongData);
            }
        }
    } catch (const Error&) {
        return status(sw::kWrongData);
    }
    if (!type) return status(sw::kWrongData);
    const auto kind = static_cast<GeneratedKeyType>(*type);
    if (kind == GeneratedKeyType::Rsa) {
        if (!bits) bits = 2048;
        if (*bits != 2048 && *bits != 3072 && *bits != 4096) return status(sw::kWrongData);
    } else if (kind != GeneratedKeyType::EcP256 && kind != GeneratedKeyType::EcP384) {
        return status(sw::kWrongData);
    } else if (bits) {
        return status(sw::kWrongData);
    }
    if (!allowed(current_ef_->security.update)) return status(sw::kSecurityNotSatisfied);
    keys::PrivateKey key =
        kind == GeneratedKeyType::Rsa
            ? keys::PrivateKey::generate_rsa(*bits)
            : keys::PrivateKey::generate_ec(kind == GeneratedKeyType::EcP256
                                                ? keys::PrivateKey::Type::EcP256
                                                : keys::PrivateKey::Type::EcP384);
    const SecureBytes der = key.pkcs8();
    Bytes& d = current_ef_->data;
    if (der.size() > d.size()) return status(sw::kNotEnoughMemory);
    std::fill(std::copy(der.begin(), der.end(), d.begin()), d.end(), std::uint8_t{0});
    changed_ = true;
    return deliver(key.public_key(), sw::kOk, c.ne);
}

Emulator::Response Emulator::set_pin(const CommandApdu& c) {
    if (c.p1 != 0x00 || c.p2 == 0x00 || c.p2 == 0xFF) return status(sw::kWrongP1P2);
    emu::Pin pin;
    pin.reference = c.p2;
    try {
        for (const auto& item : tlv::parse_all(c.data)) {
            switch (item.tag) {
                case 0x81:
                    pin.value = secure_copy(item.value);
                    break;
                case 0x82:
                    pin.puk = secure_copy(item.value);
                    break;
                case 0x83:
                    pin.max_tries = static_cast<std::uint8_t>(tlv::decode_uint(item.value, 1));
                    break;
                case 0x84:
                    pin.puk_max_tries = static_cast<std::uint8_t>(tlv::decode_uint(item.value, 1));
                    break;
                default:
                    return status(sw::kWrongData);
            }
        }
    } catch (const Error&) {
        return status(sw::kWrongData);
    }
    if (pin.value.empty() || pin.value.size() > emu::kMaxPinSize ||
        pin.puk.size() > emu::kMaxPinSize || pin.max_tries < 1 || pin.max_tries > 15 ||
        pin.puk_max_tries < 1 || pin.puk_max_tries > 15)
        return status(sw::kWrongData);
    pin.tries_left = pin.max_tries;
    pin.puk_tries_left = pin.puk_max_tries;
    auto it = image_.pins.find(c.p2);
    if (it != image_.pins.end() && !verified_.count(c.p2)) return status(sw::kSecurityNotSatisfied);
    if (it == image_.pins.end() && emu::kPinOverhead > image_.available())
        return status(sw::kNotEnoughMemory);
    image_.pins[c.p2] = std::move(pin);
    verified_.erase(c.p2);
    changed_ = true;
    return status(sw::kOk);
}

Emulator::Response Emulator::erase_card(const CommandApdu& c) {
    if (!options_.allow_erase) return status(sw::kSecurityNotSatisfied);
    if (c.p1 || c.p2 || !c.data.empty()) return status(sw::kWrongP1P2);
    emu::CardImage blank = emu::CardImage::blank(image_.capacity);
    blank.serial = image_.serial;
    replace_image(std::move(blank));
    changed_ = true;
    return status(sw::kOk);
}

}  // namespace vscard::card
