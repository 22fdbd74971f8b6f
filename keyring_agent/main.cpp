// vscard-agent: holds the passwords and PINs of unlocked targets for one user (DESIGN §4, §7).
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vscard/version.hpp>

#include "error.hpp"
#include "listener.hpp"
#include "locations.hpp"
#include "log.hpp"
#include "secret_store.hpp"
#include "server.hpp"

namespace {

using vscard::Error;
using vscard::ErrorKind;
using vscard::log_line;

// Keeps secrets out of core dumps, ptrace by other processes of the user, and swap.
void harden() {
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    rlimit none{0, 0};
    ::setrlimit(RLIMIT_CORE, &none);
#ifndef VSCARD_SANITIZE  // ASan's shadow memory: terabytes of address space not to be pinned
    if (::mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
        log_line(std::string("note: cannot lock all memory (mlockall: ") + std::strerror(errno) +
                 "); secret buffers are still locked one by one");
#endif
}

int exit_signals_fd() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) throw vscard::system_error("sigprocmask");
    int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) throw vscard::system_error("signalfd");
    std::signal(SIGPIPE, SIG_IGN);
    return fd;
}

int serve(const std::optional<std::string>& socket_opt, std::chrono::seconds idle) {
    const char* store_env = std::getenv("VSCARD_AGENT_STORE");
    auto choice = vscard::agent::parse_store_choice(store_env ? store_env : "");

    int signal_fd = exit_signals_fd();
    // The socket comes first so that a second agent gets exactly one line: the refusal.
    auto listener = vscard::agent::open_listener(vscard::agent_socket(socket_opt));
    try {
        harden();
        auto store = vscard::agent::make_store(choice);
        log_line(std::string("version ") + vscard::kVersion + " listening on " +
                 listener.path.string() + (listener.activated ? " (socket activation)" : "") +
                 ", idle timeout " + std::to_string(idle.count()) + " s");
        vscard::agent::Server server(listener.fd, signal_fd, std::move(store), idle);
        server.run();
    } catch (...) {
        close_listener(listener);
        throw;
    }
    close_listener(listener);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    vscard::init_log("vscard-agent");
    vscard::init_secure_heap();
    CLI::App app{
        "Keeps the passwords and PINs of unlocked vscard targets (vsc/NAME, card/SERIAL) for "
        "this user, in the kernel keyring or in locked memory, until they are locked or unused "
        "for too long. Runs in the foreground.",
        "vscard-agent"};
    std::string socket;
    std::string idle_text = "15m";
    app.add_option("--socket", socket,
                   "Unix socket to listen on (default: $VSCARD_AGENT, else "
                   "$XDG_RUNTIME_DIR/vscard/agent.sock)");
    app.add_option("--idle-timeout", idle_text,
                   "lock a target unused for this long unless it was unlocked with its own "
                   "timeout (90s, 15m, 2h, 1d)")
        ->capture_default_str();
    app.set_version_flag("--version", std::string("vscard-agent ") + vscard::kVersion);
    app.footer(
        "Socket activation: with LISTEN_PID/LISTEN_FDS from systemd the socket on fd 3 is "
        "used.\nDebugging: VSCARD_AGENT_STORE=memory keeps secrets in the agent's locked memory "
        "instead of the kernel keyring; VSCARD_AGENT_STORE=keyring refuses to start without "
        "the kernel keyring.");
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        log_line(std::string(e.what()) + " (see --help)");
        return 2;
    }

    try {
        std::chrono::seconds idle;
        try {
            idle = vscard::parse_duration(idle_text);
        } catch (const Error& e) {
            throw Error(ErrorKind::Usage, std::string("--idle-timeout: ") + e.what());
        }
        if (idle.count() < 1) throw Error(ErrorKind::Usage, "--idle-timeout must be at least 1 s");
        return serve(socket.empty() ? std::nullopt : std::optional<std::string>(socket), idle);
    } catch (const Error& e) {
        log_line(e.what());
        return vscard::exit_code_of(e.kind());
    } catch (const std::exception& e) {
        log_line(e.what());
        return 1;
    }
}
