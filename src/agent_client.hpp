#pragma once
// Client side of the vscard-agent protocol (see agent_protocol.hpp for the wire format).
// Used by vscardctl (put/lock/status) and vscard-mountd (get/forget/touch/watch).
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "secure_bytes.hpp"

namespace vscard {

struct AgentEntry {
    std::string target;               // "vsc/NAME" or "card/SERIAL"
    std::chrono::seconds expires_in;  // time left before the agent wipes it
};

// One request per connection is fine; the class keeps no secret beyond a call.
// Every method throws Error(Unavailable) with a message that says how to start the agent
// when the socket cannot be reached, and Error(Invalid) on a malformed reply.
class AgentClient {
public:
    explicit AgentClient(std::filesystem::path socket);

    // Stores SECRET for TARGET for at most TIMEOUT (use does not extend it); 0: until the
    // agent's idle timeout passes without use.
    void put(const std::string& target, ByteView secret, std::chrono::seconds timeout);
    std::optional<SecureBytes> get(const std::string& target);
    // Drops TARGET's secret at once (a wrong password/PIN is never retried).
    void forget(const std::string& target);
    void lock(const std::string& target);  // same as forget, reported as a lock
    void lock_all();
    // Marks TARGET as used now (resets its idle timer).
    void touch(const std::string& target);
    std::vector<AgentEntry> status();
    bool reachable();

    const std::filesystem::path& socket() const { return socket_; }

private:
    std::filesystem::path socket_;
};

// Follows the agent's lock/unlock events on a long-lived connection, in its own thread,
// reconnecting when the agent restarts. On connect it receives the current set of unlocked
// targets; when the connection drops, every target counts as locked.
class AgentWatcher {
public:
    using Callback = std::function<void(const std::string& target, bool unlocked)>;
    AgentWatcher(std::filesystem::path socket, Callback on_change);
    ~AgentWatcher();
    AgentWatcher(const AgentWatcher&) = delete;
    AgentWatcher& operator=(const AgentWatcher&) = delete;

private:
    void run();
    std::filesystem::path socket_;
    Callback on_change_;
    std::atomic<bool> stop_{false};
    int wake_fd_ = -1;  // eventfd to interrupt the thread on destruction
    std::thread thread_;
};

}  // namespace vscard
