#pragma once
// The agent's event loop: one thread, poll() over the listening socket, a signalfd and every
// client, so a slow or hostile client can only ever stall itself.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent_protocol.hpp"
#include "secret_store.hpp"

namespace vscard::agent {

class Server {
public:
    // LISTEN_FD: non-blocking listening socket; SIGNAL_FD: signalfd for the exit signals.
    Server(int listen_fd, int signal_fd, std::unique_ptr<SecretStore> store,
           std::chrono::seconds idle_timeout);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Serves until a signal arrives on SIGNAL_FD, then wipes every secret.
    void run();

private:
    struct Entry {
        std::chrono::seconds period;  // the PUT timeout, or the agent's idle timeout
        std::int64_t deadline_ms;     // CLOCK_BOOTTIME, so time asleep counts
        bool fixed;                   // a PUT timeout is a lifetime: use does not extend it
    };
    struct Connection {
        int fd = -1;
        pid_t pid = 0;
        FrameDecoder in;
        SecureBytes out;  // replies may carry a secret
        std::size_t out_pos = 0;
        bool watching = false;
        bool closing = false;  // close once OUT is flushed
        bool dead = false;
        std::int64_t last_active_ms = 0;
    };

    void accept_clients(std::int64_t now);
    void read_client(Connection& c, std::int64_t now);
    void write_client(Connection& c);
    void handle(Connection& c, const Message& req, std::int64_t now);
    void send(Connection& c, const Message& reply);
    void broadcast(const std::string& target, bool unlocked);
    void drop(const std::string& target, const char* why);
    void expire(std::int64_t now);
    int poll_timeout(std::int64_t now) const;
    std::vector<AgentEntry> snapshot(std::int64_t now) const;

    int listen_fd_;
    int signal_fd_;
    std::unique_ptr<SecretStore> store_;
    std::chrono::seconds idle_timeout_;
    std::map<std::string, Entry> entries_;
    std::vector<std::unique_ptr<Connection>> conns_;
    std::int64_t accept_paused_until_ = 0;
    bool stop_ = false;
};

}  // namespace vscard::agent
