// vscard-mountd: serves every VSC of the store (and, later, every inserted card) as a
// directory tree at MOUNTPOINT (DESIGN §3).
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "error.hpp"
#include "fuse_adapter.hpp"
#include "locations.hpp"
#include "log.hpp"
#include "vscard/version.hpp"

using namespace vscard;

namespace {

struct Options {
    bool foreground = false;
    std::optional<std::string> store;
    std::optional<std::string> agent;
    bool no_pcsc = false;
    bool debug = false;
    std::string mountpoint;
};

void harden() {
    // Plaintext passes through this process: keep it out of core dumps and ptrace by others.
    ::prctl(PR_SET_DUMPABLE, 0);
    rlimit none{0, 0};
    ::setrlimit(RLIMIT_CORE, &none);
}

void check_mountpoint(const std::string& mountpoint) {
    struct stat st {};
    if (::stat(mountpoint.c_str(), &st) != 0) {
        if (errno == ENOTCONN)
            throw Error(ErrorKind::Busy, mountpoint + " is a stale mount; run 'fusermount3 -u " +
                                             mountpoint + "' first");
        if (errno == ENOENT)
            throw Error(ErrorKind::NotFound,
                        "mount point " + mountpoint + " does not exist; create it with mkdir -p");
        throw system_error("cannot use mount point " + mountpoint);
    }
    if (!S_ISDIR(st.st_mode))
        throw Error(ErrorKind::Invalid, "mount point " + mountpoint + " is not a directory");
}

// Runs the mount; REPORT (if >= 0) gets "ok\n" once the mount is up, or the error text.
int serve(const Options& opt, int report) {
    auto send = [&](const std::string& msg) {
        if (report >= 0) {
            (void)!::write(report, msg.data(), msg.size());
            ::close(report);
            report = -1;
            // Detached: from now on the log goes to syslog only.
            int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
            ::dup2(null, STDOUT_FILENO);
            ::dup2(null, STDERR_FILENO);
            ::close(null);
        }
    };
    std::string store = store_dir(opt.store).string();
    ensure_private_dir(store);
    std::string agent = agent_socket(opt.agent).string();

    // No default_permissions: Vfs checks the permission bits (see Caller in area_fs.hpp).
    std::vector<std::string> argv_store = {"vscard-mountd", "-o", "fsname=vscard,subtype=vscard"};
    if (opt.debug) argv_store.push_back("-d");
    std::vector<char*> argv;
    for (auto& s : argv_store) argv.push_back(s.data());
    fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
    // fuse_new copies the arguments it adds to; they are freed on every way out.
    struct ArgsGuard {
        fuse_args& a;
        ~ArgsGuard() { fuse_opt_free_args(&a); }
    } args_guard{args};

    auto vfs = std::make_unique<Vfs>(VfsOptions{store, agent, nullptr, !opt.no_pcsc});
    struct fuse* fuse = fuse_new(&args, &mountd::fuse_ops(), sizeof(fuse_operations), vfs.get());
    if (!fuse) throw Error(ErrorKind::Invalid, "cannot set up the FUSE session");
    if (fuse_mount(fuse, opt.mountpoint.c_str()) != 0) {
        fuse_destroy(fuse);
        throw Error(ErrorKind::Io, "cannot mount on " + opt.mountpoint +
                                       " (is /dev/fuse available and fusermount3 installed?)");
    }
    fuse_session* session = fuse_get_session(fuse);
    fuse_set_signal_handlers(session);
    int rc;
    {
        mountd::Invalidator invalidator(fuse);
        vfs->set_invalidator(
            [&](const std::vector<std::string>& paths) { invalidator.push(paths); });
        log_line("serving store " + store + " on " + opt.mountpoint);
        send("ok\n");
        fuse_loop_config* config = fuse_loop_cfg_create();
        fuse_loop_cfg_set_max_threads(config, 16);
        rc = fuse_loop_mt(fuse, config);
        fuse_loop_cfg_destroy(config);
        vfs->set_invalidator(nullptr);
    }
    vfs->shutdown();
    fuse_remove_signal_handlers(session);
    fuse_unmount(fuse);
    fuse_destroy(fuse);
    vfs.reset();
    log_line("unmounted " + opt.mountpoint);
    // A positive result is the signal (SIGTERM, SIGINT, SIGHUP) that ended the loop: a clean exit.
    return rc >= 0 ? 0 : 1;
}

// Forks; the parent returns once the child reports the mount up, with its error otherwise.
int daemonize_and_serve(const Options& opt) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw system_error("pipe");
    pid_t pid = ::fork();
    if (pid < 0) throw system_error("fork");
    if (pid > 0) {
        ::close(fds[1]);
        std::string msg;
        char buf[512];
        ssize_t n;
        while ((n = ::read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
        if (msg == "ok\n") return 0;
        std::cerr << "vscard-mountd: " << (msg.empty() ? "the mount failed to start\n" : msg);
        return 1;
    }
    ::close(fds[0]);
    ::setsid();
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, STDIN_FILENO);
    init_log("vscard-mountd", true);
    ::close(null);
    try {
        _exit(serve(opt, fds[1]));
    } catch (const Error& e) {
        std::string msg = std::string(e.what()) + "\n";
        (void)!::write(fds[1], msg.data(), msg.size());
        _exit(exit_code_of(e.kind()));
    }
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    CLI::App app{"vscard-mountd: mounts your virtual smart cards (and inserted cards) as files"};
    app.set_version_flag("--version", std::string("vscard-mountd ") + kVersion);
    app.add_flag("-f,--foreground", opt.foreground, "stay in the foreground (as systemd expects)");
    app.add_option("--store", opt.store,
                   "VSC store folder (default: $VSCARD_STORE, else $XDG_DATA_HOME/vscard, else "
                   "~/.local/share/vscard)");
    app.add_option("--agent", opt.agent,
                   "vscard-agent socket (default: $VSCARD_AGENT, else "
                   "$XDG_RUNTIME_DIR/vscard/agent.sock)");
    app.add_flag("--no-pcsc", opt.no_pcsc, "do not watch smart-card readers");
    app.add_flag("--debug", opt.debug, "log every FUSE request (implies -f)");
    app.add_option("MOUNTPOINT", opt.mountpoint,
                   "where to mount (default: ~/Cards, created if missing)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        std::cerr << "vscard-mountd: " << e.what() << " (see --help)\n";
        return 2;
    }
    init_log("vscard-mountd");
    init_secure_heap();
    harden();
    try {
        if (opt.mountpoint.empty()) {
            const char* home = std::getenv("HOME");
            if (!home || !*home)
                throw Error(ErrorKind::Usage, "no MOUNTPOINT given and HOME is unset");
            opt.mountpoint = std::string(home) + "/Cards";
            std::error_code ec;
            std::filesystem::create_directories(opt.mountpoint, ec);
        }
        check_mountpoint(opt.mountpoint);
        if (opt.foreground || opt.debug) return serve(opt, -1);
        return daemonize_and_serve(opt);
    } catch (const Error& e) {
        std::cerr << "vscard-mountd: " << e.what() << "\n";
        return exit_code_of(e.kind());
    }
}
