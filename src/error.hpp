#pragma once
// Typed errors of the core. Each carries the errno it becomes at the FUSE boundary and a
// message a person can act on; exit codes of the command-line tools are derived here too.
#include <cerrno>
#include <stdexcept>
#include <string>

namespace vscard {

enum class ErrorKind {
    NotFound,       // ENOENT
    Exists,         // EEXIST
    Locked,         // EACCES: private area locked, or no access
    ReadOnly,       // EROFS
    NoSpace,        // ENOSPC
    TooBig,         // EFBIG
    Busy,           // EBUSY
    CrossDevice,    // EXDEV
    Io,             // EIO: medium failed mid-operation
    NameTooLong,    // ENAMETOOLONG
    Invalid,        // EINVAL: bad argument or content
    NotDirectory,   // ENOTDIR
    IsDirectory,    // EISDIR
    NotEmpty,       // ENOTEMPTY
    NoAttribute,    // ENODATA
    NotSupported,   // ENOTSUP
    WrongPassword,  // EACCES, but reported as such to the user
    Corrupt,        // EIO: a store file that fails validation
    Unavailable,    // a service (agent, pcscd) cannot be reached
    Usage,          // bad command line
};

int errno_of(ErrorKind kind);

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const { return kind_; }
    int errno_value() const { return errno_of(kind_); }

private:
    ErrorKind kind_;
};

// Builds an Error from the current errno of a failed system call: "WHAT: strerror".
Error system_error(const std::string& what, int err = errno);

// Exit status of a command-line tool for an error (0 is success, 2 usage, 1 everything else
// except a few kinds scripts may want to tell apart).
int exit_code_of(ErrorKind kind);

}  // namespace vscard
