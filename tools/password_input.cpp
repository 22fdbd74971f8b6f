#include "password_input.hpp"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include "error.hpp"

namespace vscard::tools {
namespace {

constexpr std::size_t kMaxPassword = 1024;

// Reads up to a newline one byte at a time so nothing beyond the line is consumed (the
// next line may be the next password) and no copy lands in a stdio buffer.
bool read_line(int fd, SecureBytes& out) {
    out.clear();
    out.reserve(kMaxPassword);
    while (true) {
        unsigned char c;
        ssize_t n = ::read(fd, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return !out.empty();
        if (c == '\n') return true;
        if (out.size() >= kMaxPassword)
            throw Error(ErrorKind::Invalid, "password longer than 1024 bytes");
        out.push_back(c);
    }
}

}  // namespace

SecureBytes password_from_stdin(const std::string& what) {
    SecureBytes pw;
    if (!read_line(STDIN_FILENO, pw) || pw.empty())
        throw Error(ErrorKind::Usage, "no " + what + " on standard input");
    if (pw.back() == '\r') pw.pop_back();
    return pw;
}

SecureBytes password_from_terminal(const std::string& prompt, bool confirm) {
    int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (tty < 0)
        throw Error(ErrorKind::Usage,
                    "no terminal to ask for the password; pipe it in with --password-stdin");
    termios old{};
    bool restore = ::tcgetattr(tty, &old) == 0;
    auto ask = [&](const std::string& p) {
        (void)!::write(tty, p.data(), p.size());
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        if (restore) ::tcsetattr(tty, TCSAFLUSH, &quiet);
        SecureBytes pw;
        bool ok = read_line(tty, pw);
        if (restore) ::tcsetattr(tty, TCSAFLUSH, &old);
        (void)!::write(tty, "\n", 1);
        if (!ok || pw.empty()) {
            ::close(tty);
            throw Error(ErrorKind::Usage, "no password given");
        }
        return pw;
    };
    SecureBytes first = ask(prompt);
    if (confirm) {
        SecureBytes second = ask("Repeat to confirm: ");
        if (first != second) {
            ::close(tty);
            throw Error(ErrorKind::Usage, "the two passwords differ; nothing was changed");
        }
    }
    ::close(tty);
    return first;
}

}  // namespace vscard::tools
