#include "log.hpp"

#include <syslog.h>
#include <unistd.h>

#include <atomic>

namespace vscard {
namespace {
const char* g_program = "vscard";
std::atomic<bool> g_syslog{false};
}  // namespace

void init_log(const char* program, bool use_syslog) {
    g_program = program;
    if (use_syslog) openlog(program, LOG_PID, LOG_USER);
    g_syslog = use_syslog;
}

void log_line(const std::string& line) {
    if (g_syslog) {
        syslog(LOG_NOTICE, "%s", line.c_str());
        return;
    }
    // One write per line so that lines from several threads never interleave.
    std::string out = std::string(g_program) + ": " + line + "\n";
    const char* p = out.data();
    std::size_t left = out.size();
    while (left > 0) {
        ssize_t n = ::write(STDERR_FILENO, p, left);
        if (n <= 0) break;
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

}  // namespace vscard
