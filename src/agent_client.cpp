#include "agent_client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "agent_protocol.hpp"
#include "error.hpp"

namespace vscard {
namespace {

// A hung agent must not hang the mount or the command line forever.
constexpr int kReplyTimeoutSeconds = 5;
constexpr int kReconnectMillis = 1000;

class Fd {
public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

std::string start_hint() {
    return "start it with 'vscard-agent &' or 'systemctl --user start vscard-agent.socket'";
}

// Connects to the agent; returns -1 and sets ERR (an errno) on failure.
int try_connect(const std::filesystem::path& socket, bool with_timeouts, int& err) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string& p = socket.native();
    if (p.empty() || p.size() >= sizeof(addr.sun_path)) {
        err = ENAMETOOLONG;
        return -1;
    }
    std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = errno;
        return -1;
    }
    if (with_timeouts) {
        timeval tv{kReplyTimeoutSeconds, 0};
        // SO_SNDTIMEO also bounds connect() on a Unix socket whose backlog is full.
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    int rc;
    do {
        rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        err = errno;
        ::close(fd);
        return -1;
    }
    return fd;
}

int connect_or_throw(const std::filesystem::path& socket) {
    int err = 0;
    int fd = try_connect(socket, true, err);
    if (fd < 0) {
        if (err == ENAMETOOLONG)
            throw Error(ErrorKind::Invalid, "agent socket path too long: " + socket.string());
        throw Error(ErrorKind::Unavailable, "cannot reach vscard-agent at " + socket.string() +
                                                " (connect: " + std::strerror(err) + "); " +
                                                start_hint());
    }
    return fd;
}

agent::Message roundtrip(const std::filesystem::path& socket, const agent::Message& req) {
    Fd fd(connect_or_throw(socket));
    agent::write_all(fd.get(), agent::encode(req));
    auto payload = agent::read_frame(fd.get());
    if (!payload)
        throw Error(ErrorKind::Unavailable,
                    "vscard-agent at " + socket.string() +
                        " closed the connection without answering (is it running as another "
                        "user?)");
    agent::Message reply = agent::decode(*payload);
    if (reply.op == agent::Op::Fail) throw Error(reply.error_kind, reply.message);
    return reply;
}

void expect(const agent::Message& reply, agent::Op op) {
    if (reply.op != op)
        throw Error(ErrorKind::Invalid, std::string("unexpected reply from vscard-agent: ") +
                                            agent::op_name(reply.op) + " instead of " +
                                            agent::op_name(op));
}

}  // namespace

AgentClient::AgentClient(std::filesystem::path socket) : socket_(std::move(socket)) {}

void AgentClient::put(const std::string& target, ByteView secret, std::chrono::seconds timeout) {
    agent::validate_target(target);
    if (secret.empty()) throw Error(ErrorKind::Invalid, "refusing to store an empty secret");
    if (secret.size() > agent::kMaxSecret)
        throw Error(ErrorKind::Invalid,
                    "secret too long (at most " + std::to_string(agent::kMaxSecret) + " bytes)");
    if (timeout.count() < 0 || timeout.count() > 0xffffffffLL)
        throw Error(ErrorKind::Invalid, "timeout out of range");
    agent::Message req = agent::request(agent::Op::Put, target);
    req.secret = secure_copy(secret);
    req.seconds = static_cast<std::uint32_t>(timeout.count());
    expect(roundtrip(socket_, req), agent::Op::Ok);
}

std::optional<SecureBytes> AgentClient::get(const std::string& target) {
    agent::validate_target(target);
    agent::Message reply = roundtrip(socket_, agent::request(agent::Op::Get, target));
    if (reply.op == agent::Op::NotFound) return std::nullopt;
    expect(reply, agent::Op::Secret);
    return std::move(reply.secret);
}

void AgentClient::forget(const std::string& target) {
    agent::validate_target(target);
    expect(roundtrip(socket_, agent::request(agent::Op::Forget, target)), agent::Op::Ok);
}

void AgentClient::lock(const std::string& target) {
    agent::validate_target(target);
    expect(roundtrip(socket_, agent::request(agent::Op::Lock, target)), agent::Op::Ok);
}

void AgentClient::lock_all() {
    expect(roundtrip(socket_, agent::request(agent::Op::LockAll)), agent::Op::Ok);
}

void AgentClient::touch(const std::string& target) {
    agent::validate_target(target);
    // Touching a target that is not unlocked (any more) is not an error for the caller.
    agent::Message reply = roundtrip(socket_, agent::request(agent::Op::Touch, target));
    if (reply.op != agent::Op::NotFound) expect(reply, agent::Op::Ok);
}

std::vector<AgentEntry> AgentClient::status() {
    agent::Message reply = roundtrip(socket_, agent::request(agent::Op::Status));
    expect(reply, agent::Op::Entries);
    return std::move(reply.entries);
}

bool AgentClient::reachable() {
    try {
        status();
        return true;
    } catch (const Error&) {
        return false;
    }
}

AgentWatcher::AgentWatcher(std::filesystem::path socket, Callback on_change)
    : socket_(std::move(socket)), on_change_(std::move(on_change)) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) throw system_error("cannot create eventfd for the agent watcher");
    thread_ = std::thread([this] { run(); });
}

AgentWatcher::~AgentWatcher() {
    stop_ = true;
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
    if (thread_.joinable()) thread_.join();
    ::close(wake_fd_);
}

void AgentWatcher::run() {
    std::set<std::string> unlocked;
    auto notify = [this](const std::string& target, bool state) {
        try {
            on_change_(target, state);
        } catch (...) {
            // A failing callback must not end the watch.
        }
    };
    // Waits up to MILLIS for FD (if any) to become readable; false when asked to stop.
    auto wait = [this](int fd, int millis) {
        pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {fd, POLLIN, 0}};
        int rc = ::poll(fds, fd >= 0 ? 2 : 1, millis);
        if (rc < 0 && errno != EINTR) return !stop_;
        return !stop_ && !(fds[0].revents & POLLIN);
    };

    while (!stop_) {
        int err = 0;
        Fd fd(try_connect(socket_, false, err));
        if (fd.get() >= 0) {
            try {
                {
                    // Only the request is sent with a timeout; events may be far apart.
                    timeval tv{kReplyTimeoutSeconds, 0};
                    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
                }
                agent::write_all(fd.get(), agent::encode(agent::request(agent::Op::Watch)));
                // Non-blocking from here: a spurious wake-up must not park the thread in read().
                ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
                agent::FrameDecoder decoder;
                bool open = true;
                while (open && wait(fd.get(), -1)) {
                    auto room = decoder.space();
                    ssize_t n = ::read(fd.get(), room.data(), room.size());
                    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
                    if (n <= 0) break;
                    decoder.commit(static_cast<std::size_t>(n));
                    while (auto payload = decoder.next()) {
                        agent::Message m = agent::decode(*payload);
                        if (m.op == agent::Op::Entries) {
                            std::set<std::string> now;
                            for (const auto& e : m.entries) now.insert(e.target);
                            for (const auto& t : unlocked)
                                if (!now.count(t)) notify(t, false);
                            for (const auto& t : now)
                                if (!unlocked.count(t)) notify(t, true);
                            unlocked = std::move(now);
                        } else if (m.op == agent::Op::Event) {
                            if (m.unlocked)
                                unlocked.insert(m.target);
                            else
                                unlocked.erase(m.target);
                            notify(m.target, m.unlocked);
                        } else {
                            open = false;  // an error reply or garbage: start over
                            break;
                        }
                    }
                }
            } catch (const Error&) {
                // Lost or garbled connection: treated like a disconnect.
            }
        }
        if (stop_) break;
        // Without the agent nothing is unlocked any more.
        for (const auto& t : unlocked) notify(t, false);
        unlocked.clear();
        wait(-1, kReconnectMillis);
    }
}

}  // namespace vscard
