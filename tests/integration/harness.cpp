#include "harness.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace vscard::test {
namespace {

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
}

// Removes PATH recursively without crossing into other file systems (a FUSE mount a test
// forgot to unmount is left alone rather than emptied).
void remove_tree(const std::string& path, dev_t dev) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        if (st.st_dev != dev) return;
        ::chmod(path.c_str(), 0700);  // a test may have made it read-only
        if (DIR* d = ::opendir(path.c_str())) {
            std::vector<std::string> names;
            while (dirent* e = ::readdir(d)) {
                std::string n = e->d_name;
                if (n != "." && n != "..") names.push_back(n);
            }
            ::closedir(d);
            for (const auto& n : names) remove_tree(path + "/" + n, dev);
        }
        ::rmdir(path.c_str());
    } else {
        ::unlink(path.c_str());
    }
}

std::string find_program(const std::string& program) {
    if (program.find('/') != std::string::npos) return program;
    std::filesystem::path own = bin(program);
    if (!own.empty() && ::access(own.c_str(), X_OK) == 0) return own;
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        if (dir.empty()) dir = ".";
        std::string candidate = dir + "/" + program;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    throw std::runtime_error("program not found: " + program);
}

int open_output(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) fail("cannot open " + path.string());
    return fd;
}

}  // namespace

TempDir::TempDir(const std::string& prefix) {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = (tmp && *tmp) ? tmp : "/tmp";
    std::string templ = base + "/" + prefix + ".XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) fail("mkdtemp " + templ);
    path_ = buf.data();
}

TempDir::~TempDir() {
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0) remove_tree(path_, st.st_dev);
}

std::filesystem::path bin(const std::string& name) {
#ifdef VSCARD_BIN_DIR
    return std::filesystem::path(VSCARD_BIN_DIR) / name;
#else
    const char* dir = std::getenv("VSCARD_BIN_DIR");
    return dir ? std::filesystem::path(dir) / name : std::filesystem::path();
#endif
}

std::string read_text(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

Process::Process(const std::string& program, std::vector<std::string> args,
                 ProcessOptions options) {
    // Everything the child needs is prepared here: between fork and exec only
    // async-signal-safe calls are allowed (the test process may have threads).
    std::string exe = find_program(program);
    std::vector<std::string> argv_s;
    argv_s.push_back(program);
    for (auto& a : args) argv_s.push_back(std::move(a));
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);

    std::map<std::string, std::string> env_map;
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        auto eq = kv.find('=');
        if (eq != std::string::npos) env_map[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& name : options.unset_env) env_map.erase(name);
    for (const auto& [k, v] : options.env) env_map[k] = v;
    std::vector<std::string> env_s;
    for (const auto& [k, v] : env_map) env_s.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);

    if (!options.stdout_file || !options.stderr_file) capture_dir_.emplace("vscard-proc");
    out_path_ = options.stdout_file.value_or(capture_dir_ ? capture_dir_->path() / "stdout"
                                                          : std::filesystem::path());
    err_path_ = options.stderr_file.value_or(capture_dir_ ? capture_dir_->path() / "stderr"
                                                          : std::filesystem::path());
    int out_fd = open_output(out_path_);
    int err_fd = open_output(err_path_);
    int in_fd = -1, in_write = -1;
    if (options.stdin_data) {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) fail("pipe");
        in_fd = p[0];
        in_write = p[1];
    } else {
        in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (in_fd < 0) fail("open /dev/null");
    }
    int exec_err[2];
    if (::pipe2(exec_err, O_CLOEXEC) != 0) fail("pipe");
    std::string cwd = options.cwd ? options.cwd->string() : std::string();
    std::vector<int> targets;
    for (const auto& [from, to] : options.fds) targets.push_back(to);
    std::sort(targets.begin(), targets.end());
    std::vector<int> moved(options.fds.size(), -1);
    pid_t parent = ::getpid();

    pid_t pid = ::fork();
    if (pid < 0) fail("fork");
    if (pid == 0) {
        auto die = [&](int err) {
            [[maybe_unused]] ssize_t n = ::write(exec_err[1], &err, sizeof err);
            ::_exit(127);
        };
        ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int s = 1; s < NSIG; ++s) ::signal(s, SIG_DFL);
        // Move the passed descriptors out of the way before stdio and each other land.
        for (std::size_t i = 0; i < options.fds.size(); ++i) {
            moved[i] = ::fcntl(options.fds[i].first, F_DUPFD_CLOEXEC, 100);
            if (moved[i] < 0) die(errno);
        }
        if (::dup2(in_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) die(errno);
        for (std::size_t i = 0; i < options.fds.size(); ++i)
            if (::dup2(moved[i], options.fds[i].second) < 0) die(errno);
        // Everything else is closed at exec; the error pipe stays usable until then.
        unsigned from = 3;
        for (int t : targets) {
            if (t < 3) continue;
            if (static_cast<unsigned>(t) > from) ::close_range(from, t - 1, CLOSE_RANGE_CLOEXEC);
            from = static_cast<unsigned>(t) + 1;
        }
        ::close_range(from, ~0U, CLOSE_RANGE_CLOEXEC);
        if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) die(errno);
        if (options.in_child) options.in_child();
        ::execve(exe.c_str(), argv.data(), envp.data());
        die(errno);
    }

    pid_ = pid;
    ::close(exec_err[1]);
    ::close(in_fd);
    ::close(out_fd);
    ::close(err_fd);
    int child_errno = 0;
    ssize_t n;
    do {
        n = ::read(exec_err[0], &child_errno, sizeof child_errno);
    } while (n < 0 && errno == EINTR);
    ::close(exec_err[0]);
    if (n == sizeof child_errno) {
        if (in_write >= 0) ::close(in_write);
        reap(true);
        errno = child_errno;
        fail("cannot start " + exe);
    }
    if (in_write >= 0) {
        stdin_writer_ = std::thread([fd = in_write, data = *options.stdin_data] {
            // A child that exits without reading must not kill the test with SIGPIPE.
            sigset_t pipe_set;
            sigemptyset(&pipe_set);
            sigaddset(&pipe_set, SIGPIPE);
            ::pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
            std::size_t off = 0;
            while (off < data.size()) {
                ssize_t w = ::write(fd, data.data() + off, data.size() - off);
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) break;
                off += static_cast<std::size_t>(w);
            }
            ::close(fd);
        });
    }
}

Process::~Process() {
    if (!exited_ && pid_ > 0) {
        ::kill(-pid_, SIGKILL);
        ::kill(pid_, SIGKILL);
        reap(true);
    }
    if (stdin_writer_.joinable()) stdin_writer_.join();
}

bool Process::reap(bool block) {
    if (exited_) return true;
    int status = 0;
    pid_t r;
    do {
        r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == pid_) {
        status_ = status;
        exited_ = true;
    } else if (r < 0) {
        exited_ = true;  // not our child any more: nothing left to wait for
    }
    return exited_;
}

bool Process::running() {
    return !reap(false);
}

bool Process::wait(std::chrono::milliseconds timeout) {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (!reap(false)) {
        if (std::chrono::steady_clock::now() >= end) return false;
        std::this_thread::sleep_for(5ms);
    }
    if (stdin_writer_.joinable()) stdin_writer_.join();
    return true;
}

void Process::kill(int signal) {
    if (!exited_) ::kill(pid_, signal);
}

int Process::exit_code() const {
    return exited_ && WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
}

bool Process::core_dumped() const {
    return exited_ && WIFSIGNALED(status_) && WCOREDUMP(status_);
}

int Process::term_signal() const {
    return exited_ && WIFSIGNALED(status_) ? WTERMSIG(status_) : 0;
}

std::string Process::out() const {
    return read_text(out_path_);
}
std::string Process::err() const {
    return read_text(err_path_);
}

RunResult run(const std::string& program, std::vector<std::string> args, ProcessOptions options,
              std::chrono::milliseconds timeout) {
    Process p(program, std::move(args), std::move(options));
    RunResult r;
    if (!p.wait(timeout)) {
        r.timed_out = true;
        p.kill(SIGKILL);
        p.wait();
    }
    r.exit_code = r.timed_out ? -1 : p.exit_code();
    r.term_signal = p.term_signal();
    r.out = p.out();
    r.err = p.err();
    return r;
}

bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
    auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (predicate()) return true;
        if (std::chrono::steady_clock::now() >= end) return predicate();
        std::this_thread::sleep_for(interval);
    }
}

}  // namespace vscard::test
