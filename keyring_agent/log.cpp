#include "log.hpp"

#include <unistd.h>

namespace vscard::agent {

void log(const std::string& line) {
    // One write per line so that lines from a crash handler or a pipe reader never interleave.
    std::string out = "vscard-agent: " + line + "\n";
    const char* p = out.data();
    std::size_t left = out.size();
    while (left > 0) {
        ssize_t n = ::write(STDERR_FILENO, p, left);
        if (n <= 0) break;
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

}  // namespace vscard::agent
