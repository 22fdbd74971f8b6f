#include "card/apdu.hpp"

#include <algorithm>
#include <cstdio>

#include "error.hpp"

namespace vscard::card {
namespace {

constexpr std::size_t kMaxNc = 65535;
constexpr std::size_t kMaxNe = 65536;

void check_sizes(const CommandApdu& c) {
    if (c.data.size() > kMaxNc)
        throw Error(ErrorKind::Invalid,
                    "APDU data of " + std::to_string(c.data.size()) + " bytes exceeds 65535");
    if (c.ne > kMaxNe)
        throw Error(ErrorKind::Invalid,
                    "APDU Le of " + std::to_string(c.ne) + " bytes exceeds 65536");
}

void put16(Bytes& out, std::size_t v) {
    out.push_back(static_cast<std::uint8_t>((v >> 8) & 0xFF));
    out.push_back(static_cast<std::uint8_t>(v & 0xFF));
}

std::size_t ne_of_le(std::size_t le, std::size_t zero_means) {
    return le == 0 ? zero_means : le;
}

}  // namespace

bool carries_pin(std::uint8_t ins_byte) {
    return ins_byte == ins::kVerify || ins_byte == ins::kChangeReferenceData ||
           ins_byte == ins::kResetRetryCounter;
}

int CommandApdu::iso_case() const {
    if (data.empty()) return ne == 0 ? 1 : 2;
    return ne == 0 ? 3 : 4;
}

Bytes CommandApdu::encode(LengthForm form) const {
    check_sizes(*this);
    bool extended = form == LengthForm::Extended || (form == LengthForm::Auto && needs_extended());
    if (form == LengthForm::Short && needs_extended())
        throw Error(ErrorKind::Invalid, "APDU needs extended length (Nc " +
                                            std::to_string(data.size()) + ", Ne " +
                                            std::to_string(ne) + ") but short form was asked");
    Bytes out{cla, ins, p1, p2};
    if (data.empty() && ne == 0) return out;  // case 1: header only
    if (!extended) {
        if (!data.empty()) {
            out.push_back(static_cast<std::uint8_t>(data.size()));
            out.insert(out.end(), data.begin(), data.end());
        }
        if (ne != 0) out.push_back(static_cast<std::uint8_t>(ne == 256 ? 0 : ne));
        return out;
    }
    out.push_back(0x00);  // extended marker
    if (!data.empty()) {
        put16(out, data.size());
        out.insert(out.end(), data.begin(), data.end());
    }
    if (ne != 0) put16(out, ne == kMaxNe ? 0 : ne);
    return out;
}

ParsedCommand parse_command(ByteView raw) {
    auto bad = [&](const char* why) {
        return Error(ErrorKind::Invalid, std::string("malformed command APDU (") +
                                             std::to_string(raw.size()) + " bytes): " + why);
    };
    if (raw.size() < 4) throw bad("shorter than the 4-byte header");
    ParsedCommand p;
    p.apdu = CommandApdu(raw[0], raw[1], raw[2], raw[3]);
    ByteView body = raw.subspan(4);
    if (body.empty()) return p;  // case 1
    if (body.size() == 1) {      // case 2S
        p.apdu.ne = ne_of_le(body[0], 256);
        return p;
    }
    if (body[0] != 0) {  // short Lc
        std::size_t lc = body[0];
        if (body.size() == 1 + lc) {
            p.apdu.data.assign(body.begin() + 1, body.end());
        } else if (body.size() == 2 + lc) {
            p.apdu.data.assign(body.begin() + 1, body.begin() + 1 + static_cast<long>(lc));
            p.apdu.ne = ne_of_le(body.back(), 256);
        } else {
            throw bad("Lc does not match the length");
        }
        return p;
    }
    // Extended: 00 followed by two length bytes.
    p.extended = true;
    if (body.size() < 3) throw bad("truncated extended length");
    std::size_t l = (static_cast<std::size_t>(body[1]) << 8) | body[2];
    if (body.size() == 3) {  // case 2E
        p.apdu.ne = ne_of_le(l, kMaxNe);
        return p;
    }
    if (l == 0) throw bad("extended Lc of zero");
    if (body.size() == 3 + l) {
        p.apdu.data.assign(body.begin() + 3, body.end());
    } else if (body.size() == 5 + l) {
        p.apdu.data.assign(body.begin() + 3, body.begin() + 3 + static_cast<long>(l));
        std::size_t le = (static_cast<std::size_t>(body[3 + l]) << 8) | body[4 + l];
        p.apdu.ne = ne_of_le(le, kMaxNe);
    } else {
        throw bad("extended Lc does not match the length");
    }
    return p;
}

ResponseApdu ResponseApdu::parse(ByteView raw) {
    if (raw.size() < 2)
        throw Error(ErrorKind::Invalid, "malformed response APDU of " + std::to_string(raw.size()) +
                                            " bytes: no status word");
    ResponseApdu r;
    r.data.assign(raw.begin(), raw.end() - 2);
    r.sw = static_cast<std::uint16_t>((raw[raw.size() - 2] << 8) | raw[raw.size() - 1]);
    return r;
}

Bytes ResponseApdu::encode() const {
    Bytes out = data;
    out.push_back(sw1());
    out.push_back(sw2());
    return out;
}

std::optional<int> ResponseApdu::tries_left() const {
    if ((sw & 0xFFF0) == 0x63C0) return sw & 0x0F;
    if (sw == sw::kAuthBlocked) return 0;
    return std::nullopt;
}

std::string sw_hex(std::uint16_t s) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04X", s);
    return buf;
}

std::string to_hex(ByteView bytes, std::string_view sep) {
    static const char* digits = "0123456789ABCDEF";
    std::string out;
    out.reserve(bytes.size() * (2 + sep.size()));
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (i) out.append(sep);
        out.push_back(digits[bytes[i] >> 4]);
        out.push_back(digits[bytes[i] & 0x0F]);
    }
    return out;
}

Bytes from_hex(std::string_view text) {
    Bytes out;
    int high = -1;
    for (char c : text) {
        int v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else if (c == ' ' || c == ':' || c == '\n' || c == '\t')
            continue;
        else
            throw Error(ErrorKind::Invalid, "not a hex digit: '" + std::string(1, c) + "'");
        if (high < 0) {
            high = v;
        } else {
            out.push_back(static_cast<std::uint8_t>(high << 4 | v));
            high = -1;
        }
    }
    if (high >= 0) throw Error(ErrorKind::Invalid, "odd number of hex digits");
    return out;
}

std::vector<CommandApdu> chain(const CommandApdu& command, std::size_t max_chunk) {
    if (max_chunk == 0 || max_chunk > kMaxNc)
        throw Error(ErrorKind::Invalid, "chaining chunk must be 1..65535 bytes");
    check_sizes(command);
    if (command.data.size() <= max_chunk) return {command};
    std::vector<CommandApdu> parts;
    std::size_t off = 0;
    while (off < command.data.size()) {
        std::size_t n = std::min(max_chunk, command.data.size() - off);
        bool last = off + n == command.data.size();
        CommandApdu part(last ? command.cla : static_cast<std::uint8_t>(command.cla | 0x10),
                         command.ins, command.p1, command.p2,
                         Bytes(command.data.begin() + static_cast<long>(off),
                               command.data.begin() + static_cast<long>(off + n)),
                         last ? command.ne : 0);
        parts.push_back(std::move(part));
        off += n;
    }
    return parts;
}

std::string describe_command(ByteView raw, bool secret) {
    const bool pin = raw.size() >= 4 && carries_pin(raw[1]);
    if (!pin && (!secret || raw.size() <= 4)) return to_hex(raw);
    std::string head = to_hex(raw.first(4));
    try {
        ParsedCommand p = parse_command(raw);
        std::string out = head;
        if (!p.apdu.data.empty())
            out += " Lc=" + std::to_string(p.apdu.data.size()) +
                   (pin ? " [PIN data withheld]" : " [key data withheld]");
        if (p.apdu.ne) out += " Le=" + std::to_string(p.apdu.ne);
        return out;
    } catch (const Error&) {
        return head + " (" + std::to_string(raw.size()) + " bytes, malformed) [data withheld]";
    }
}

void ApduLog::enable(bool on) {
    std::lock_guard lock(mutex_);
    enabled_ = on;
}

bool ApduLog::enabled() const {
    std::lock_guard lock(mutex_);
    return enabled_;
}

void ApduLog::set_sink(std::function<void(const std::string&)> sink) {
    std::lock_guard lock(mutex_);
    sink_ = std::move(sink);
}

void ApduLog::add(std::string line) {
    // Called with mutex_ held.
    if (sink_) sink_(line);
    lines_.push_back(std::move(line));
}

std::string describe_response(ByteView raw, bool secret) {
    if (!secret || raw.size() <= 2) return to_hex(raw);
    return "[" + std::to_string(raw.size() - 2) + " bytes withheld] " +
           to_hex(raw.subspan(raw.size() - 2));
}

void ApduLog::command(ByteView raw, bool secret) {
    std::lock_guard lock(mutex_);
    ++count_;
    if (enabled_) add("apdu #" + std::to_string(count_) + " > " + describe_command(raw, secret));
}

void ApduLog::response(ByteView raw, bool secret) {
    std::lock_guard lock(mutex_);
    if (enabled_) add("apdu #" + std::to_string(count_) + " < " + describe_response(raw, secret));
}

std::uint64_t ApduLog::commands() const {
    std::lock_guard lock(mutex_);
    return count_;
}

std::vector<std::string> ApduLog::lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
}

void ApduLog::clear() {
    std::lock_guard lock(mutex_);
    lines_.clear();
    count_ = 0;
}

ResponseApdu exchange(Transmitter& card, const CommandApdu& command,
                      const ExchangeOptions& options) {
    check_sizes(command);
    CommandApdu cmd = command;
    WipeOnExit wipe_cmd{cmd.data, options.secret};
    std::vector<CommandApdu> parts;
    if (options.extended) {
        parts.push_back(cmd);
    } else {
        cmd.ne = std::min<std::size_t>(cmd.ne, 256);
        parts = chain(cmd, std::min<std::size_t>(options.chunk, 255));
    }
    LengthForm form = options.extended ? LengthForm::Auto : LengthForm::Short;
    struct WipeParts {
        std::vector<CommandApdu>& parts;
        bool wipe;
        ~WipeParts() {
            if (wipe)
                for (auto& p : parts) OPENSSL_cleanse(p.data.data(), p.data.size());
        }
    } wipe_parts{parts, options.secret};

    auto send = [&](const CommandApdu& c) {
        Bytes raw = c.encode(form);
        WipeOnExit wipe_raw{raw, options.secret};
        if (options.log) options.log->command(raw, options.secret);
        Bytes answer = card.transmit(raw);
        WipeOnExit wipe_answer{answer, options.secret};
        if (options.log) options.log->response(answer, options.secret);
        if (answer.size() < 2)
            throw Error(ErrorKind::Io, "the card sent a malformed response (" +
                                           std::to_string(answer.size()) + " bytes)");
        if (answer.size() - 2 > options.max_response)
            throw Error(ErrorKind::Io, "the card sent an oversized response");
        return ResponseApdu::parse(answer);
    };

    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
        ResponseApdu r = send(parts[i]);
        if (!r.ok()) return r;  // the card refused part of the chain
    }
    CommandApdu current = parts.back();
    WipeOnExit wipe_current{current.data, options.secret};
    ResponseApdu r = send(current);
    Bytes collected;
    std::size_t rounds = 0;
    auto count_round = [&] {
        if (++rounds > options.max_rounds)
            throw Error(ErrorKind::Io, "the card kept answering " + sw_hex(r.sw) + " after " +
                                           std::to_string(options.max_rounds) +
                                           " rounds; giving up");
    };
    for (;;) {
        if (r.sw1() == 0x6C) {  // wrong Le: resend with the exact length
            count_round();
            current.ne = r.sw2() == 0 ? 256 : r.sw2();
            r = send(current);
            continue;
        }
        if (r.sw1() == 0x61) {  // more data: fetch it with GET RESPONSE
            count_round();
            collected.insert(collected.end(), r.data.begin(), r.data.end());
            if (collected.size() > options.max_response)
                throw Error(ErrorKind::Io, "the card's response exceeds " +
                                               std::to_string(options.max_response) + " bytes");
            std::uint8_t cla = (cmd.cla & 0x80) ? 0x00 : (cmd.cla & 0x03);
            current =
                CommandApdu(cla, ins::kGetResponse, 0x00, 0x00, {}, r.sw2() == 0 ? 256 : r.sw2());
            r = send(current);
            continue;
        }
        break;
    }
    if (!collected.empty()) {
        collected.insert(collected.end(), r.data.begin(), r.data.end());
        if (collected.size() > options.max_response)
            throw Error(ErrorKind::Io, "the card's response exceeds " +
                                           std::to_string(options.max_response) + " bytes");
        r.data = std::move(collected);
    }
    return r;
}

}  // namespace vscard::card
