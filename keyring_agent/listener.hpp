#pragma once
// The agent's listening socket: taken over from systemd (socket activation) or bound here.
#include <sys/types.h>

#include <filesystem>

namespace vscard::agent {

struct Listener {
    int fd = -1;
    std::filesystem::path path;
    bool activated = false;  // systemd owns the socket file then: never unlink it
    ino_t inode = 0;
};

// Uses fd 3 when LISTEN_PID is our pid and LISTEN_FDS is 1 (and unsets those variables);
// otherwise binds PATH (mode 0600, directory 0700), removing a stale socket file first.
// Throws Error(Exists) when another agent already listens on PATH.
Listener open_listener(const std::filesystem::path& path);

// Closes the socket and removes its file if it is still the one we bound.
void close_listener(Listener& listener);

}  // namespace vscard::agent
