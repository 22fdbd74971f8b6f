#pragma once
// Small helpers for integration tests: temporary directories and child processes that are
// always cleaned up, also when a test fails half-way.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace vscard::test {

using namespace std::chrono_literals;

// A fresh directory (mode 0700) removed with everything in it when the object goes away.
class TempDir {
public:
    explicit TempDir(const std::string& prefix = "vscard-test");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

// Path of a binary built by this project: VSCARD_BIN_DIR/NAME.
std::filesystem::path bin(const std::string& name);

struct ProcessOptions {
    std::map<std::string, std::string> env;  // added to (or replacing in) the test's environment
    std::vector<std::string> unset_env;      // removed from the child's environment
    std::optional<std::string> stdin_data;   // piped to the child, then EOF; else /dev/null
    // Where stdout/stderr go; by default into private temporary files read by out()/err().
    std::optional<std::filesystem::path> stdout_file;
    std::optional<std::filesystem::path> stderr_file;
    // Descriptors passed to the child: {fd in this process, fd number in the child}.
    std::vector<std::pair<int, int>> fds;
    std::optional<std::filesystem::path> cwd;
    // Runs in the child just before exec (e.g. to drop privileges or install a seccomp
    // filter). Only async-signal-safe calls: the test process may have threads.
    std::function<void()> in_child;
};

// A child process. PROGRAM is a path if it contains '/', else a binary of this project
// (bin(PROGRAM)) when one exists, else looked up in PATH. The child runs in its own process
// group and gets SIGKILL if the thread that started it dies (so a crashed test leaves no
// daemons behind); the destructor kills the group if the child is still running.
class Process {
public:
    Process(const std::string& program, std::vector<std::string> args, ProcessOptions options = {});
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    bool running();
    // Waits up to TIMEOUT; returns false if the process is still running then.
    bool wait(std::chrono::milliseconds timeout = 30s);
    void kill(int signal = 15);
    // Exit code once exited normally; -1 while running or when killed by a signal.
    int exit_code() const;
    // Signal that ended the process, or 0.
    int term_signal() const;
    // Whether the kernel wrote a core dump (to a file or a core_pattern pipe) when it died.
    bool core_dumped() const;
    // What the process wrote so far (also while it runs).
    std::string out() const;
    std::string err() const;

private:
    bool reap(bool block);
    pid_t pid_ = -1;
    int status_ = 0;
    bool exited_ = false;
    std::filesystem::path out_path_, err_path_;
    std::optional<TempDir> capture_dir_;
    std::thread stdin_writer_;
};

struct RunResult {
    int exit_code = -1;  // -1 when killed by a signal or timed out
    int term_signal = 0;
    bool timed_out = false;
    std::string out;
    std::string err;
};

// Runs a command to completion (killing it after TIMEOUT).
RunResult run(const std::string& program, std::vector<std::string> args,
              ProcessOptions options = {}, std::chrono::milliseconds timeout = 60s);

// Polls PREDICATE every INTERVAL until it holds or TIMEOUT passes; returns its last value.
bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout = 10s,
                std::chrono::milliseconds interval = 20ms);

// The whole content of a file ("" when it cannot be read).
std::string read_text(const std::filesystem::path& path);

}  // namespace vscard::test
