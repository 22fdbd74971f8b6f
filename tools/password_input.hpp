#pragma once
// Passwords come from the terminal without echo, or from standard input; never from argv.
#include <string>

#include "secure_bytes.hpp"

namespace vscard::tools {

// Reads one line from standard input (--password-stdin); the newline is not part of it.
SecureBytes password_from_stdin(const std::string& what);
// Prompts on /dev/tty with echo off; twice with CONFIRM, and they must match.
SecureBytes password_from_terminal(const std::string& prompt, bool confirm);

}  // namespace vscard::tools
