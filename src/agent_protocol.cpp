#include "agent_protocol.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vscard::agent {
namespace {

constexpr std::size_t kPrefix = 4;
constexpr std::uint8_t kMaxErrorKind = static_cast<std::uint8_t>(ErrorKind::Usage);

std::uint32_t load_be32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

class Writer {
public:
    explicit Writer(SecureBytes& out) : out_(out) {}
    void u8(std::uint8_t v) { out_.push_back(v); }
    void u32(std::uint32_t v) {
        for (int shift = 24; shift >= 0; shift -= 8)
            out_.push_back(static_cast<std::uint8_t>(v >> shift));
    }
    void bytes(ByteView v) {
        u32(static_cast<std::uint32_t>(v.size()));
        out_.insert(out_.end(), v.begin(), v.end());
    }
    void str(const std::string& s) { bytes(view_of(s)); }

private:
    SecureBytes& out_;
};

class Reader {
public:
    explicit Reader(ByteView in) : in_(in) {}
    std::uint8_t u8() {
        need(1, "byte");
        return in_[pos_++];
    }
    std::uint32_t u32() {
        need(4, "number");
        std::uint32_t v = load_be32(in_.data() + pos_);
        pos_ += 4;
        return v;
    }
    ByteView bytes(std::size_t max, const char* what) {
        std::uint32_t n = u32();
        if (n > max)
            throw Error(ErrorKind::Invalid, std::string("agent message: ") + what + " too long");
        need(n, what);
        ByteView v = in_.subspan(pos_, n);
        pos_ += n;
        return v;
    }
    std::string str(std::size_t max, const char* what) {
        ByteView v = bytes(max, what);
        return std::string(reinterpret_cast<const char*>(v.data()), v.size());
    }
    std::size_t remaining() const { return in_.size() - pos_; }
    void finish() const {
        if (remaining() != 0)
            throw Error(ErrorKind::Invalid, "agent message: trailing bytes after the fields");
    }

private:
    void need(std::size_t n, const char* what) const {
        if (remaining() < n)
            throw Error(ErrorKind::Invalid, std::string("agent message: truncated ") + what);
    }
    ByteView in_;
    std::size_t pos_ = 0;
};

bool known_op(std::uint8_t v) {
    return (v >= static_cast<std::uint8_t>(Op::Put) && v <= static_cast<std::uint8_t>(Op::Watch)) ||
           (v >= static_cast<std::uint8_t>(Op::Ok) && v <= static_cast<std::uint8_t>(Op::Fail));
}

}  // namespace

const char* op_name(Op op) {
    switch (op) {
        case Op::Put:
            return "PUT";
        case Op::Get:
            return "GET";
        case Op::Forget:
            return "FORGET";
        case Op::Lock:
            return "LOCK";
        case Op::LockAll:
            return "LOCK_ALL";
        case Op::Touch:
            return "TOUCH";
        case Op::Status:
            return "STATUS";
        case Op::Watch:
            return "WATCH";
        case Op::Ok:
            return "OK";
        case Op::Secret:
            return "SECRET";
        case Op::NotFound:
            return "NOT_FOUND";
        case Op::Entries:
            return "ENTRIES";
        case Op::Event:
            return "EVENT";
        case Op::Fail:
            return "ERROR";
    }
    return "?";
}

bool is_request(Op op) {
    return static_cast<std::uint8_t>(op) < 0x80;
}

Message request(Op op, std::string target) {
    Message m;
    m.op = op;
    m.target = std::move(target);
    return m;
}

Message error_reply(ErrorKind kind, std::string message) {
    Message m;
    m.op = Op::Fail;
    m.error_kind = kind;
    if (message.size() > kMaxMessage) message.resize(kMaxMessage);
    m.message = std::move(message);
    return m;
}

Message event(const std::string& target, bool unlocked) {
    Message m;
    m.op = Op::Event;
    m.target = target;
    m.unlocked = unlocked;
    return m;
}

void validate_target(const std::string& target) {
    std::size_t prefix = 0;
    if (target.starts_with("vsc/"))
        prefix = 4;
    else if (target.starts_with("card/"))
        prefix = 5;
    else
        throw Error(ErrorKind::Invalid,
                    "bad target '" + target.substr(0, 64) + "': use vsc/NAME or card/SERIAL");
    if (target.size() == prefix)
        throw Error(ErrorKind::Invalid, "bad target '" + target + "': the name is missing");
    if (target.size() > kMaxTarget)
        throw Error(ErrorKind::NameTooLong,
                    "target name too long (at most " + std::to_string(kMaxTarget) + " bytes)");
    for (std::size_t i = prefix; i < target.size(); ++i) {
        auto c = static_cast<unsigned char>(target[i]);
        if (c < 0x20 || c == 0x7f || c == '/')
            throw Error(ErrorKind::Invalid,
                        "bad target: the name after vsc/ or card/ must not contain '/' or "
                        "control characters");
    }
}

SecureBytes encode(const Message& m) {
    SecureBytes out;
    std::size_t estimate = kPrefix + 2 + 12 + m.target.size() + m.secret.size() + m.message.size();
    for (const auto& e : m.entries) estimate += 8 + e.target.size();
    out.reserve(estimate);  // one allocation: growing would leave (wiped) copies behind
    Writer w(out);
    w.u32(0);  // length, patched below
    w.u8(kVersion);
    w.u8(static_cast<std::uint8_t>(m.op));
    switch (m.op) {
        case Op::Put:
            w.str(m.target);
            w.bytes(m.secret);
            w.u32(m.seconds);
            break;
        case Op::Get:
        case Op::Forget:
        case Op::Lock:
        case Op::Touch:
            w.str(m.target);
            break;
        case Op::LockAll:
        case Op::Status:
        case Op::Watch:
        case Op::Ok:
        case Op::NotFound:
            break;
        case Op::Secret:
            w.bytes(m.secret);
            break;
        case Op::Entries:
            w.u32(static_cast<std::uint32_t>(m.entries.size()));
            for (const auto& e : m.entries) {
                w.str(e.target);
                auto s =
                    std::clamp<std::chrono::seconds::rep>(e.expires_in.count(), 0, 0xffffffffLL);
                w.u32(static_cast<std::uint32_t>(s));
            }
            break;
        case Op::Event:
            w.u8(m.unlocked ? 1 : 0);
            w.str(m.target);
            break;
        case Op::Fail:
            w.u8(static_cast<std::uint8_t>(m.error_kind));
            w.str(m.message);
            break;
    }
    std::size_t length = out.size() - kPrefix;
    if (length > kMaxFrame) throw Error(ErrorKind::Invalid, "agent message too large");
    for (int i = 0; i < 4; ++i) out[i] = static_cast<std::uint8_t>(length >> (24 - 8 * i));
    return out;
}

Message decode(ByteView payload) {
    if (payload.size() > kMaxFrame) throw Error(ErrorKind::Invalid, "agent message too large");
    Reader r(payload);
    std::uint8_t version = r.u8();
    if (version != kVersion)
        throw Error(ErrorKind::Invalid, "agent protocol version " + std::to_string(version) +
                                            " is not supported (expected " +
                                            std::to_string(kVersion) + ")");
    std::uint8_t op = r.u8();
    if (!known_op(op))
        throw Error(ErrorKind::Invalid, "agent message: unknown opcode " + std::to_string(op));
    Message m;
    m.op = static_cast<Op>(op);
    switch (m.op) {
        case Op::Put: {
            m.target = r.str(kMaxTarget, "target");
            ByteView s = r.bytes(kMaxSecret, "secret");
            m.secret.assign(s.begin(), s.end());
            m.seconds = r.u32();
            break;
        }
        case Op::Get:
        case Op::Forget:
        case Op::Lock:
        case Op::Touch:
            m.target = r.str(kMaxTarget, "target");
            break;
        case Op::LockAll:
        case Op::Status:
        case Op::Watch:
        case Op::Ok:
        case Op::NotFound:
            break;
        case Op::Secret: {
            ByteView s = r.bytes(kMaxSecret, "secret");
            m.secret.assign(s.begin(), s.end());
            break;
        }
        case Op::Entries: {
            std::uint32_t count = r.u32();
            // Each entry takes at least 9 bytes: refuse a count the payload cannot hold
            // before reserving anything.
            if (count > r.remaining() / 9)
                throw Error(ErrorKind::Invalid, "agent message: truncated entry list");
            m.entries.reserve(count);
            for (std::uint32_t i = 0; i < count; ++i) {
                AgentEntry e;
                e.target = r.str(kMaxTarget, "target");
                e.expires_in = std::chrono::seconds(r.u32());
                m.entries.push_back(std::move(e));
            }
            break;
        }
        case Op::Event: {
            std::uint8_t state = r.u8();
            if (state > 1) throw Error(ErrorKind::Invalid, "agent message: bad event state");
            m.unlocked = state == 1;
            m.target = r.str(kMaxTarget, "target");
            break;
        }
        case Op::Fail: {
            std::uint8_t kind = r.u8();
            m.error_kind = kind <= kMaxErrorKind ? static_cast<ErrorKind>(kind) : ErrorKind::Io;
            m.message = r.str(kMaxMessage, "message");
            break;
        }
    }
    r.finish();
    return m;
}

std::size_t FrameDecoder::wanted() const {
    if (used_ < kPrefix) return kPrefix;
    std::size_t len = load_be32(buf_.data());
    return kPrefix + std::min(len, kMaxFrame);
}

std::span<std::uint8_t> FrameDecoder::space() {
    if (used_ == buf_.size()) {
        std::size_t size = std::max<std::size_t>({512, buf_.size() * 2, wanted()});
        size = std::min(size, std::max(kPrefix + kMaxFrame, used_ + 1));
        SecureBytes bigger(size);  // the old buffer is wiped when it is freed
        std::copy_n(buf_.begin(), used_, bigger.begin());
        buf_.swap(bigger);
    }
    return {buf_.data() + used_, buf_.size() - used_};
}

void FrameDecoder::commit(std::size_t n) {
    used_ += std::min(n, buf_.size() - used_);
}

void FrameDecoder::append(ByteView data) {
    while (!data.empty()) {
        auto room = space();
        std::size_t n = std::min(room.size(), data.size());
        std::memcpy(room.data(), data.data(), n);
        commit(n);
        data = data.subspan(n);
    }
}

std::optional<SecureBytes> FrameDecoder::next() {
    if (used_ < kPrefix) return std::nullopt;
    std::size_t len = load_be32(buf_.data());
    if (len == 0 || len > kMaxFrame)
        throw Error(ErrorKind::Invalid, "agent frame length " + std::to_string(len) +
                                            " out of range (1.." + std::to_string(kMaxFrame) + ")");
    if (used_ < kPrefix + len) return std::nullopt;
    SecureBytes payload(buf_.begin() + kPrefix, buf_.begin() + kPrefix + len);
    std::size_t rest = used_ - kPrefix - len;
    std::memmove(buf_.data(), buf_.data() + kPrefix + len, rest);
    OPENSSL_cleanse(buf_.data() + rest, used_ - rest);
    used_ = rest;
    if (used_ == 0 && buf_.size() > 4096) SecureBytes().swap(buf_);  // give locked pages back
    return payload;
}

void write_all(int fd, ByteView data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                throw Error(ErrorKind::Unavailable,
                            "vscard-agent does not accept the request "
                            "(send timed out)");
            throw Error(ErrorKind::Unavailable,
                        std::string("lost the connection to vscard-agent (send: ") +
                            std::strerror(errno) + ")");
        }
        data = data.subspan(static_cast<std::size_t>(n));
    }
}

namespace {

// Fills BUF completely; returns the number of bytes read before end of stream.
std::size_t read_full(int fd, std::uint8_t* buf, std::size_t len) {
    std::size_t got = 0;
    while (got < len) {
        ssize_t n = ::read(fd, buf + got, len - got);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                throw Error(ErrorKind::Unavailable,
                            "vscard-agent did not answer in time; it may be hung (restart it)");
            throw Error(ErrorKind::Unavailable,
                        std::string("lost the connection to vscard-agent (read: ") +
                            std::strerror(errno) + ")");
        }
        got += static_cast<std::size_t>(n);
    }
    return got;
}

}  // namespace

std::optional<SecureBytes> read_frame(int fd) {
    std::uint8_t prefix[kPrefix];
    std::size_t got = read_full(fd, prefix, kPrefix);
    if (got == 0) return std::nullopt;
    if (got < kPrefix)
        throw Error(ErrorKind::Unavailable, "vscard-agent closed the connection mid-reply");
    std::size_t len = load_be32(prefix);
    if (len == 0 || len > kMaxFrame)
        throw Error(ErrorKind::Invalid,
                    "malformed reply from vscard-agent (frame length " + std::to_string(len) + ")");
    SecureBytes payload(len);
    if (read_full(fd, payload.data(), len) < len)
        throw Error(ErrorKind::Unavailable, "vscard-agent closed the connection mid-reply");
    return payload;
}

}  // namespace vscard::agent
