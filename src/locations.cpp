#include "locations.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "error.hpp"

namespace vscard {
namespace {

std::optional<std::string> env(const char* name) {
    const char* v = std::getenv(name);
    if (v && *v) return std::string(v);
    return std::nullopt;
}

std::filesystem::path home_dir() {
    if (auto h = env("HOME")) return *h;
    if (const passwd* pw = getpwuid(getuid())) return pw->pw_dir;
    throw Error(ErrorKind::Invalid, "cannot find the home directory: set HOME");
}

}  // namespace

std::filesystem::path store_dir(const std::optional<std::string>& option) {
    if (option && !option->empty()) return *option;
    if (auto s = env("VSCARD_STORE")) return *s;
    if (auto d = env("XDG_DATA_HOME")) return std::filesystem::path(*d) / "vscard";
    return home_dir() / ".local" / "share" / "vscard";
}

std::filesystem::path agent_socket(const std::optional<std::string>& option) {
    if (option && !option->empty()) return *option;
    if (auto s = env("VSCARD_AGENT")) return *s;
    std::filesystem::path runtime =
        env("XDG_RUNTIME_DIR").value_or("/run/user/" + std::to_string(getuid()));
    return runtime / "vscard" / "agent.sock";
}

std::filesystem::path mount_dir(const std::optional<std::string>& option) {
    if (option && !option->empty()) return *option;
    if (auto m = env("VSCARD_MOUNT")) return *m;
    return home_dir() / "Cards";
}

std::chrono::milliseconds parse_duration_ms(const std::string& text) {
    const std::string forms =
        "use a number of seconds or a suffix ms, s, m, h or d (e.g. 90s, 15m, 2h)";
    if (text.empty()) throw Error(ErrorKind::Usage, "empty duration: " + forms);
    std::size_t used = 0;
    unsigned long long value = 0;
    try {
        value = std::stoull(text, &used);
    } catch (const std::exception&) {
        throw Error(ErrorKind::Usage, "bad duration '" + text + "': " + forms);
    }
    std::string unit = text.substr(used);
    unsigned long long factor = 0;  // milliseconds per unit
    if (unit == "ms")
        factor = 1;
    else if (unit.empty() || unit == "s")
        factor = 1000;
    else if (unit == "m" || unit == "min")
        factor = 60'000;
    else if (unit == "h")
        factor = 3'600'000;
    else if (unit == "d")
        factor = 86'400'000;
    else
        throw Error(ErrorKind::Usage, "bad duration '" + text + "': " + forms);
    if (value > 100ull * 365 * 86'400'000 / factor)
        throw Error(ErrorKind::Usage, "duration '" + text + "' is too long");
    return std::chrono::milliseconds(value * factor);
}

std::chrono::seconds parse_duration(const std::string& text) {
    return std::chrono::duration_cast<std::chrono::seconds>(parse_duration_ms(text));
}

void ensure_private_dir(const std::filesystem::path& dir) {
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
        if (!dir.parent_path().empty() && !std::filesystem::exists(dir.parent_path(), ec))
            std::filesystem::create_directories(dir.parent_path(), ec);
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
            throw system_error("cannot create directory " + dir.string());
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) throw system_error("cannot access " + dir.string());
    if (!S_ISDIR(st.st_mode)) throw Error(ErrorKind::Invalid, dir.string() + " is not a directory");
    if (st.st_uid != getuid())
        throw Error(ErrorKind::Locked,
                    dir.string() + " belongs to another user; use a directory of your own");
    if ((st.st_mode & 077) != 0 && ::chmod(dir.c_str(), st.st_mode & 0700) != 0)
        throw system_error("cannot make " + dir.string() + " private (chmod 700)");
}

}  // namespace vscard
