#include "server.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "error.hpp"
#include "log.hpp"

namespace vscard::agent {
namespace {

constexpr std::size_t kMaxClients = 128;
constexpr std::int64_t kClientIdleMs = 30'000;        // a request/reply client that stalls
constexpr std::size_t kMaxPendingReply = 256 * 1024;  // stop reading until the client reads
constexpr std::size_t kMaxWatcherBacklog = 1024 * 1024;
constexpr std::int64_t kMaxPollMs = 60'000;

std::int64_t now_ms() {
    timespec ts{};
    ::clock_gettime(CLOCK_BOOTTIME, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

std::string seconds_text(std::chrono::seconds s) {
    return std::to_string(s.count()) + " s";
}

}  // namespace

Server::Server(int listen_fd, int signal_fd, std::unique_ptr<SecretStore> store,
               std::chrono::seconds idle_timeout)
    : listen_fd_(listen_fd),
      signal_fd_(signal_fd),
      store_(std::move(store)),
      idle_timeout_(idle_timeout) {}

Server::~Server() {
    for (auto& c : conns_) ::close(c->fd);
    store_->clear();
}

void Server::run() {
    std::vector<pollfd> fds;
    while (!stop_) {
        std::int64_t now = now_ms();
        fds.clear();
        fds.push_back({signal_fd_, POLLIN, 0});
        bool accepting = now >= accept_paused_until_;
        fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});
        for (auto& c : conns_) {
            short events = 0;
            std::size_t pending = c->out.size() - c->out_pos;
            if (!c->closing && (c->watching || pending < kMaxPendingReply)) events |= POLLIN;
            if (pending > 0) events |= POLLOUT;
            fds.push_back({c->fd, events, 0});
        }

        int rc = ::poll(fds.data(), fds.size(), poll_timeout(now));
        if (rc < 0) {
            if (errno == EINTR) continue;
            throw system_error("poll");
        }
        now = now_ms();

        if (fds[0].revents & POLLIN) {
            signalfd_siginfo info{};
            if (::read(signal_fd_, &info, sizeof info) == sizeof info) {
                log_line(std::string("received SIG") +
                         sigabbrev_np(static_cast<int>(info.ssi_signo)) +
                         ": wiping secrets and exiting");
                stop_ = true;
                break;
            }
        }

        // Connections accepted below are not in FDS yet: walk only the polled ones.
        std::size_t polled = conns_.size();
        for (std::size_t i = 0; i < polled; ++i) {
            Connection& c = *conns_[i];
            short re = fds[i + 2].revents;
            if (re & (POLLERR | POLLNVAL)) {
                c.dead = true;
                continue;
            }
            if (re & (POLLIN | POLLHUP)) read_client(c, now);
            if (!c.dead && (re & POLLOUT)) write_client(c);
        }
        if (accepting && (fds[1].revents & POLLIN)) accept_clients(now);

        expire(now);
        for (auto& c : conns_) {
            if (c->dead) continue;
            bool flushed = c->out_pos == c->out.size();
            if (c->closing && flushed) c->dead = true;
            if (!c->watching && now - c->last_active_ms > kClientIdleMs) c->dead = true;
        }
        std::erase_if(conns_, [](const std::unique_ptr<Connection>& c) {
            if (c->dead) ::close(c->fd);
            return c->dead;
        });
    }
    // Watchers see the connection drop, which counts as "everything locked".
    std::size_t count = entries_.size();
    entries_.clear();
    store_->clear();
    log_line("wiped " + std::to_string(count) + " secret(s)");
}

int Server::poll_timeout(std::int64_t now) const {
    std::int64_t next = now + kMaxPollMs;
    for (const auto& [target, e] : entries_) next = std::min(next, e.deadline_ms);
    for (const auto& c : conns_)
        if (!c->watching) next = std::min(next, c->last_active_ms + kClientIdleMs + 1);
    if (now < accept_paused_until_) next = std::min(next, accept_paused_until_);
    return static_cast<int>(std::clamp<std::int64_t>(next - now, 0, kMaxPollMs));
}

void Server::accept_clients(std::int64_t now) {
    for (;;) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_line(std::string("cannot accept more clients: ") + std::strerror(errno));
                accept_paused_until_ = now + 200;  // poll would spin on the pending client
            }
            return;
        }
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
            log_line(std::string("refused a client: SO_PEERCRED failed: ") + std::strerror(errno));
            ::close(fd);
            continue;
        }
        if (cred.uid != ::geteuid()) {
            log_line("refused a client of uid " + std::to_string(cred.uid) + " (pid " +
                     std::to_string(cred.pid) + "): only uid " + std::to_string(::geteuid()) +
                     " may use this agent");
            ::close(fd);
            continue;
        }
        if (conns_.size() >= kMaxClients) {
            log_line("refused a client (pid " + std::to_string(cred.pid) + "): too many clients");
            ::close(fd);
            continue;
        }
        auto c = std::make_unique<Connection>();
        c->fd = fd;
        c->pid = cred.pid;
        c->last_active_ms = now;
        conns_.push_back(std::move(c));
    }
}

void Server::read_client(Connection& c, std::int64_t now) {
    if (c.closing) {
        c.dead = true;  // only POLLHUP gets here: the peer cannot read our last reply anyway
        return;
    }
    auto room = c.in.space();
    ssize_t n = ::read(c.fd, room.data(), room.size());
    if (n < 0) {
        if (errno != EINTR && errno != EAGAIN) c.dead = true;
        return;
    }
    if (n == 0) {
        // The client is done sending: flush what it is still owed, then close.
        c.closing = true;
        return;
    }
    c.in.commit(static_cast<std::size_t>(n));
    c.last_active_ms = now;
    try {
        while (!c.closing && !c.dead) {
            auto payload = c.in.next();
            if (!payload) break;
            Message req = decode(*payload);
            if (c.watching || !is_request(req.op))
                throw Error(ErrorKind::Invalid,
                            std::string("unexpected ") + op_name(req.op) +
                                (c.watching ? " on a watch connection" : " sent to the agent"));
            handle(c, req, now);
        }
    } catch (const Error& e) {
        log_line("dropping client pid " + std::to_string(c.pid) + ": " + e.what());
        send(c, error_reply(ErrorKind::Invalid, e.what()));
        c.closing = true;
    }
}

void Server::write_client(Connection& c) {
    while (c.out_pos < c.out.size()) {
        ssize_t n = ::send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN) c.dead = true;
            return;
        }
        c.out_pos += static_cast<std::size_t>(n);
    }
    if (c.out.capacity() > 64 * 1024) SecureBytes().swap(c.out);  // give locked pages back
    c.out.clear();
    c.out_pos = 0;
}

void Server::send(Connection& c, const Message& reply) {
    SecureBytes frame = encode(reply);
    c.out.insert(c.out.end(), frame.begin(), frame.end());
    write_client(c);  // most replies fit the socket buffer: no poll round trip
}

void Server::broadcast(const std::string& target, bool unlocked) {
    Message ev = event(target, unlocked);
    for (auto& c : conns_) {
        if (!c->watching || c->dead) continue;
        send(*c, ev);
        if (c->out.size() - c->out_pos > kMaxWatcherBacklog) {
            log_line("dropping watcher pid " + std::to_string(c->pid) +
                     ": it does not read events");
            c->dead = true;
        }
    }
}

void Server::drop(const std::string& target, const char* why) {
    if (entries_.erase(target) == 0) return;
    store_->erase(target);
    log_line("locked " + target + " (" + why + ")");
    broadcast(target, false);
}

void Server::expire(std::int64_t now) {
    std::vector<std::string> due;
    for (const auto& [target, e] : entries_)
        if (e.deadline_ms <= now) due.push_back(target);
    for (const auto& t : due) drop(t, "timeout");
}

std::vector<AgentEntry> Server::snapshot(std::int64_t now) const {
    std::vector<AgentEntry> out;
    for (const auto& [target, e] : entries_) {
        std::int64_t left_ms = std::max<std::int64_t>(e.deadline_ms - now, 0);
        out.push_back({target, std::chrono::seconds((left_ms + 999) / 1000)});
    }
    return out;
}

void Server::handle(Connection& c, const Message& req, std::int64_t now) {
    try {
        switch (req.op) {
            case Op::Put: {
                validate_target(req.target);
                if (req.secret.empty())
                    throw Error(ErrorKind::Invalid, "refusing to store an empty secret");
                std::chrono::seconds period =
                    req.seconds ? std::chrono::seconds(req.seconds) : idle_timeout_;
                // The kernel's timer is a backstop one second behind ours, so our own expiry
                // (which tells the watchers) normally comes first.
                store_->put(req.target, req.secret, period + std::chrono::seconds(1));
                bool fresh = !entries_.count(req.target);
                bool fixed = req.seconds != 0;
                entries_[req.target] = Entry{period, now + period.count() * 1000, fixed};
                log_line((fresh ? "unlocked " : "renewed ") + req.target + " (locks " +
                         (fixed ? "in " + seconds_text(period)
                                : "after " + seconds_text(period) + " unused") +
                         ")");
                send(c, request(Op::Ok));
                if (fresh) broadcast(req.target, true);
                return;
            }
            case Op::Get:
            case Op::Touch: {
                validate_target(req.target);
                auto it = entries_.find(req.target);
                if (it == entries_.end()) {
                    send(c, request(Op::NotFound));
                    return;
                }
                if (!it->second.fixed) {
                    it->second.deadline_ms = now + it->second.period.count() * 1000;
                    store_->refresh(req.target, it->second.period + std::chrono::seconds(1));
                }
                if (req.op == Op::Touch) {
                    send(c, request(Op::Ok));
                    return;
                }
                auto secret = store_->get(req.target);
                if (!secret) {
                    drop(req.target, "the kernel expired the key");
                    send(c, request(Op::NotFound));
                    return;
                }
                Message reply = request(Op::Secret);
                reply.secret = std::move(*secret);
                send(c, reply);
                return;
            }
            case Op::Forget:
                validate_target(req.target);
                drop(req.target, "forgotten on request");
                send(c, request(Op::Ok));
                return;
            case Op::Lock:
                validate_target(req.target);
                drop(req.target, "on request");
                send(c, request(Op::Ok));
                return;
            case Op::LockAll: {
                std::vector<std::string> all;
                for (const auto& [target, e] : entries_) all.push_back(target);
                for (const auto& t : all) drop(t, "lock all");
                send(c, request(Op::Ok));
                return;
            }
            case Op::Status: {
                Message reply = request(Op::Entries);
                reply.entries = snapshot(now);
                send(c, reply);
                return;
            }
            case Op::Watch: {
                c.watching = true;
                Message reply = request(Op::Entries);
                reply.entries = snapshot(now);
                send(c, reply);
                return;
            }
            default:
                throw Error(ErrorKind::Invalid,
                            std::string("unexpected ") + op_name(req.op) + " sent to the agent");
        }
    } catch (const Error& e) {
        send(c, error_reply(e.kind(), e.what()));
    }
}

}  // namespace vscard::agent
