#include "listener.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "error.hpp"
#include "locations.hpp"
#include "log.hpp"

namespace vscard::agent {
namespace {

constexpr int kActivationFd = 3;  // SD_LISTEN_FDS_START
constexpr int kBacklog = 64;

sockaddr_un address_of(const std::filesystem::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string& p = path.native();
    if (p.size() >= sizeof(addr.sun_path))
        throw Error(ErrorKind::NameTooLong, "socket path too long (at most " +
                                                std::to_string(sizeof(addr.sun_path) - 1) +
                                                " bytes): " + p);
    std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
    return addr;
}

void make_nonblocking(int fd) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        throw system_error("fcntl(O_NONBLOCK)");
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int sockopt(int fd, int name) {
    int value = 0;
    socklen_t len = sizeof value;
    if (::getsockopt(fd, SOL_SOCKET, name, &value, &len) != 0) return -1;
    return value;
}

// Socket activation without libsystemd: the protocol is just these environment variables.
std::optional<Listener> activated_listener() {
    const char* pid = std::getenv("LISTEN_PID");
    const char* fds = std::getenv("LISTEN_FDS");
    if (!pid || !fds) return std::nullopt;
    bool ours = std::strtol(pid, nullptr, 10) == static_cast<long>(::getpid());
    long count = std::strtol(fds, nullptr, 10);
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    if (!ours) return std::nullopt;
    if (count != 1)
        throw Error(ErrorKind::Usage, "socket activation passed " + std::to_string(count) +
                                          " sockets; vscard-agent expects exactly one");
    int fd = kActivationFd;
    if (sockopt(fd, SO_DOMAIN) != AF_UNIX || sockopt(fd, SO_TYPE) != SOCK_STREAM ||
        sockopt(fd, SO_ACCEPTCONN) != 1)
        throw Error(ErrorKind::Invalid,
                    "socket activation: fd 3 is not a listening Unix stream socket; check "
                    "ListenStream= in vscard-agent.socket");
    make_nonblocking(fd);
    Listener l;
    l.fd = fd;
    l.activated = true;
    sockaddr_un addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
        len > offsetof(sockaddr_un, sun_path) && addr.sun_path[0] != '\0')
        l.path = std::string(addr.sun_path, strnlen(addr.sun_path, sizeof addr.sun_path));
    else
        l.path = "(socket from systemd)";
    return l;
}

// ensure_private_dir would tighten a shared directory such as /tmp to 0700: refuse instead.
void check_socket_dir(const std::filesystem::path& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return;  // ensure_private_dir creates it
    if ((st.st_mode & S_ISVTX) || st.st_uid != ::geteuid())
        throw Error(ErrorKind::Locked,
                    "the socket directory " + dir.string() +
                        " is shared with other users; put the socket in a private directory "
                        "(e.g. $XDG_RUNTIME_DIR/vscard/agent.sock)");
}

// Throws when an agent answers on PATH; removes the file when it is a stale socket.
void clear_old_socket(const std::filesystem::path& path, const sockaddr_un& addr) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        throw system_error("cannot access " + path.string());
    }
    if (!S_ISSOCK(st.st_mode))
        throw Error(ErrorKind::Exists, path.string() +
                                           " exists and is not a socket; remove it or choose "
                                           "another --socket");
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw system_error("socket");
    int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    int err = errno;
    ::close(fd);
    if (rc == 0)
        throw Error(ErrorKind::Exists,
                    "another vscard-agent is already listening on " + path.string());
    if (err != ECONNREFUSED) throw system_error("cannot probe " + path.string(), err);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        throw system_error("cannot remove the stale socket " + path.string());
    log_line("removed stale socket " + path.string());
}

}  // namespace

Listener open_listener(const std::filesystem::path& requested) {
    if (auto l = activated_listener()) return *l;

    std::filesystem::path path = std::filesystem::absolute(requested);
    sockaddr_un addr = address_of(path);
    check_socket_dir(path.parent_path());
    ensure_private_dir(path.parent_path());
    clear_old_socket(path, addr);

    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw system_error("socket");
    // The umask makes the socket 0600 from its first instant; chmod below only confirms it.
    mode_t old_mask = ::umask(0177);
    int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    int err = errno;
    ::umask(old_mask);
    if (rc != 0) {
        ::close(fd);
        if (err == EADDRINUSE)
            throw Error(ErrorKind::Exists,
                        "another vscard-agent is already listening on " + path.string());
        throw system_error("cannot bind " + path.string(), err);
    }
    struct stat st {};
    if (::chmod(path.c_str(), 0600) != 0 || ::stat(path.c_str(), &st) != 0 ||
        ::listen(fd, kBacklog) != 0) {
        err = errno;
        ::close(fd);
        ::unlink(path.c_str());
        throw system_error("cannot listen on " + path.string(), err);
    }
    Listener l;
    l.fd = fd;
    l.path = path;
    l.inode = st.st_ino;
    return l;
}

void close_listener(Listener& l) {
    if (l.fd < 0) return;
    ::close(l.fd);
    l.fd = -1;
    if (l.activated) return;
    struct stat st {};
    // Another agent may have replaced a socket we lost; only remove our own.
    if (::lstat(l.path.c_str(), &st) == 0 && st.st_ino == l.inode) ::unlink(l.path.c_str());
}

}  // namespace vscard::agent
