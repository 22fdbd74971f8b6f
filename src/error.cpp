#include "error.hpp"

#include <cstring>

namespace vscard {

int errno_of(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::NotFound:
            return ENOENT;
        case ErrorKind::Exists:
            return EEXIST;
        case ErrorKind::Locked:
            return EACCES;
        case ErrorKind::ReadOnly:
            return EROFS;
        case ErrorKind::NoSpace:
            return ENOSPC;
        case ErrorKind::TooBig:
            return EFBIG;
        case ErrorKind::Busy:
            return EBUSY;
        case ErrorKind::CrossDevice:
            return EXDEV;
        case ErrorKind::Io:
            return EIO;
        case ErrorKind::NameTooLong:
            return ENAMETOOLONG;
        case ErrorKind::Invalid:
            return EINVAL;
        case ErrorKind::NotDirectory:
            return ENOTDIR;
        case ErrorKind::IsDirectory:
            return EISDIR;
        case ErrorKind::NotEmpty:
            return ENOTEMPTY;
        case ErrorKind::NoAttribute:
            return ENODATA;
        case ErrorKind::NotSupported:
            return ENOTSUP;
        case ErrorKind::WrongPassword:
            return EACCES;
        case ErrorKind::Corrupt:
            return EIO;
        case ErrorKind::Unavailable:
            return EHOSTUNREACH;
        case ErrorKind::Usage:
            return EINVAL;
    }
    return EIO;
}

Error system_error(const std::string& what, int err) {
    ErrorKind kind = ErrorKind::Io;
    switch (err) {
        case ENOENT:
            kind = ErrorKind::NotFound;
            break;
        case EEXIST:
            kind = ErrorKind::Exists;
            break;
        case EACCES:
        case EPERM:
            kind = ErrorKind::Locked;
            break;
        case ENOSPC:
        case EDQUOT:
            kind = ErrorKind::NoSpace;
            break;
        case EROFS:
            kind = ErrorKind::ReadOnly;
            break;
        case ENOTSUP:
            kind = ErrorKind::NotSupported;
            break;
        case ECONNREFUSED:
        case ENOTCONN:
            kind = ErrorKind::Unavailable;
            break;
        default:
            break;
    }
    return Error(kind, what + ": " + std::strerror(err));
}

int exit_code_of(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::Usage:
            return 2;
        case ErrorKind::WrongPassword:
            return 3;
        case ErrorKind::Unavailable:
            return 4;
        default:
            return 1;
    }
}

}  // namespace vscard
