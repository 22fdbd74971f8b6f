#pragma once
// Wire format between vscard-agent and its clients, shared by both sides.
//
// The protocol is hand-written rather than built on a serialisation library because secrets
// must only ever land in buffers that are locked and wiped (SecureBytes): a generic decoder
// would copy them through its own std::string/heap buffers that nobody wipes. Here a frame is
// read straight from the socket into a SecureBytes buffer and the secret field is copied from
// there into another SecureBytes, nowhere else.
//
//   frame    := u32be length || payload           1 <= length <= kMaxFrame
//   payload  := u8 version (kVersion) || u8 opcode || fields of that opcode
//   bytes    := u32be n || n bytes                 (targets, secrets, messages)
//   u32      := 4 bytes big endian
//
// Requests (client -> agent), each answered by one reply except WATCH:
//   0x01 PUT       bytes target, bytes secret, u32 timeout_s (0: the agent's idle timeout)
//   0x02 GET       bytes target                    -> SECRET or NOT_FOUND
//   0x03 FORGET    bytes target                    -> OK
//   0x04 LOCK      bytes target                    -> OK
//   0x05 LOCK_ALL                                  -> OK
//   0x06 TOUCH     bytes target                    -> OK or NOT_FOUND
//   0x07 STATUS                                    -> ENTRIES
//   0x08 WATCH                                     -> ENTRIES, then one EVENT per change
// Replies (agent -> client):
//   0x80 OK
//   0x81 SECRET    bytes secret
//   0x82 NOT_FOUND
//   0x83 ENTRIES   u32 count, count x (bytes target, u32 seconds_left)
//   0x84 EVENT     u8 state (1 unlocked, 0 locked), bytes target
//   0x85 ERROR     u8 kind (vscard::ErrorKind), bytes message
// Any request that does not parse is answered with ERROR and the connection is closed.
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "agent_client.hpp"
#include "error.hpp"
#include "secure_bytes.hpp"

namespace vscard::agent {

inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kMaxFrame = 64 * 1024;  // payload bytes, without the prefix
inline constexpr std::size_t kMaxTarget = 255;       // "vsc/NAME" or "card/SERIAL"
inline constexpr std::size_t kMaxSecret = 4096;      // passwords and PINs are far smaller
inline constexpr std::size_t kMaxMessage = 1024;     // error messages

enum class Op : std::uint8_t {
    Put = 0x01,
    Get = 0x02,
    Forget = 0x03,
    Lock = 0x04,
    LockAll = 0x05,
    Touch = 0x06,
    Status = 0x07,
    Watch = 0x08,
    Ok = 0x80,
    Secret = 0x81,
    NotFound = 0x82,
    Entries = 0x83,
    Event = 0x84,
    Fail = 0x85,
};

const char* op_name(Op op);
bool is_request(Op op);

// One decoded frame; only the fields of its opcode are meaningful.
struct Message {
    Op op = Op::Ok;
    std::string target;
    SecureBytes secret;
    std::uint32_t seconds = 0;  // PUT: timeout
    std::vector<AgentEntry> entries;
    bool unlocked = false;  // EVENT
    ErrorKind error_kind = ErrorKind::Io;
    std::string message;  // ERROR
};

Message request(Op op, std::string target = {});
Message error_reply(ErrorKind kind, std::string message);
Message event(const std::string& target, bool unlocked);

// Throws Error(Invalid) unless TARGET is "vsc/NAME" or "card/SERIAL" with a NAME/SERIAL of
// printable characters without '/', at most kMaxTarget bytes in all.
void validate_target(const std::string& target);

// The complete frame, length prefix included. A SecureBytes because it may carry a secret.
SecureBytes encode(const Message& message);

// Parses one payload (without its length prefix). Throws Error(Invalid) on anything malformed:
// truncated fields, trailing bytes, unknown opcode or version, oversize fields.
Message decode(ByteView payload);

// Collects bytes from a stream and cuts them into frame payloads. Reads go straight into the
// locked buffer (space/commit), so a secret never passes through an ordinary buffer.
class FrameDecoder {
public:
    // Room for the next read; never empty. Call commit(n) with the number of bytes read.
    std::span<std::uint8_t> space();
    void commit(std::size_t n);
    void append(ByteView data);
    // The next complete payload, if one is buffered. Throws Error(Invalid) when the length
    // prefix is 0 or above kMaxFrame; the stream cannot be resynchronised after that.
    std::optional<SecureBytes> next();
    std::size_t buffered() const { return used_; }

private:
    std::size_t wanted() const;
    SecureBytes buf_;
    std::size_t used_ = 0;
};

// Blocking helpers for clients (the socket carries SO_RCVTIMEO/SO_SNDTIMEO).
// write_all throws Error(Unavailable) when the peer is gone or the write times out.
void write_all(int fd, ByteView data);
// Reads one frame payload. Returns nullopt on a clean end of stream before the first byte;
// throws Error(Unavailable) on a timeout or error, Error(Invalid) on a malformed frame.
std::optional<SecureBytes> read_frame(int fd);

}  // namespace vscard::agent
