#include "pcsc_rig.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>

namespace vscard::test {
namespace {

const char* const kVpcdDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";

// pcscd lives in sbin, which a normal user's PATH may lack.
std::string find_tool(const std::string& name) {
    std::vector<std::string> dirs;
    if (const char* path = std::getenv("PATH")) {
        std::stringstream ss(path);
        std::string d;
        while (std::getline(ss, d, ':'))
            if (!d.empty()) dirs.push_back(d);
    }
    for (const char* d : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) dirs.push_back(d);
    for (const auto& d : dirs) {
        std::string candidate = d + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

bool root() {
    return ::geteuid() == 0;
}

// unshare arguments for a private mount namespace (a user namespace too when not root).
std::vector<std::string> unshare_args() {
    std::vector<std::string> a{"-m", "--propagation", "private"};
    if (!root()) a.insert(a.begin(), "-r");
    return a;
}

bool port_free(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

// A port pair (vpcd's two slots) below the ephemeral range, different for parallel tests.
std::uint16_t pick_ports() {
    static std::mt19937 rng(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
    for (int attempt = 0; attempt < 200; ++attempt) {
        auto p = static_cast<std::uint16_t>(20000 + rng() % 12000);
        if (port_free(p) && port_free(static_cast<std::uint16_t>(p + 1))) return p;
    }
    throw std::runtime_error("no free TCP port pair for vpcd");
}

}  // namespace

std::optional<std::string> pcsc_rig_unavailable() {
    static std::once_flag once;
    static std::optional<std::string> reason;
    std::call_once(once, [] {
        if (find_tool("pcscd").empty()) {
            reason = "pcscd is not installed (Debian package pcscd)";
        } else if (::access(kVpcdDriver, R_OK) != 0) {
            reason = "the vpcd driver is missing (Debian package vsmartcard-vpcd)";
        } else if (find_tool("opensc-tool").empty()) {
            reason = "opensc-tool is not installed (Debian package opensc)";
        } else if (find_tool("unshare").empty() || find_tool("nsenter").empty()) {
            reason = "unshare/nsenter are missing (Debian package util-linux)";
        } else {
            std::vector<std::string> args = unshare_args();
            args.push_back("true");
            RunResult r = run(find_tool("unshare"), args, {}, 10s);
            if (r.exit_code != 0)
                reason = "cannot create a private mount namespace here (" + r.err + ")";
        }
        if (reason == std::nullopt && !bin("vscard-emu").empty() &&
            ::access(bin("vscard-emu").c_str(), X_OK) != 0)
            reason = "vscard-emu is not built (cmake --build ... --target vscard-emu)";
    });
    return reason;
}

PcscRig::PcscRig() : dir_("vscard-pcsc") {
    std::filesystem::create_directories(dir() / "conf");
    std::filesystem::create_directories(dir() / "run");
    std::ofstream(opensc_conf()) << "app default {\n"
                                    "    enable_default_driver = true;\n"
                                    "    framework pkcs15 {\n"
                                    "        use_file_caching = no;\n"
                                    "    }\n"
                                    "}\n";
    std::string last_log;
    for (int attempt = 0; attempt < 3; ++attempt) {
        port_ = pick_ports();
        start_pcscd();
        // The reader is listed only once vpcd holds its port: a lost race on the port shows.
        if (wait_until([&] { return card_present(0).has_value(); }, 5s, 50ms)) return;
        last_log = read_text(pcscd_log());
        stop_pcscd();
    }
    throw std::runtime_error("the private pcscd did not come up; its log:\n" + last_log);
}

PcscRig::~PcscRig() {
    for (int slot = 0; slot < kSlots; ++slot)
        if (cards_[static_cast<std::size_t>(slot)]) stop_card(slot);
    stop_pcscd();
}

void PcscRig::start_pcscd() {
    char port_hex[16];
    std::snprintf(port_hex, sizeof port_hex, "0x%04X", port_);
    std::ofstream(dir() / "conf" / "vpcd") << "FRIENDLYNAME \"Test PCD\"\n"
                                           << "DEVICENAME   /dev/null:" << port_hex << "\n"
                                           << "LIBPATH      " << kVpcdDriver << "\n"
                                           << "CHANNELID    " << port_hex << "\n";
    std::filesystem::remove(socket());
    // Inside the namespace: the rig's directory over /run/pcscd (or, where /run/pcscd does
    // not exist, over a private /run), then pcscd in the foreground.
    const std::string script =
        "if [ -d /run/pcscd ] && mount --bind \"$0\" /run/pcscd 2>/dev/null; then :; "
        "else mount -t tmpfs -o mode=0755 rig /run && mkdir -p /run/pcscd && "
        "mount --bind \"$0\" /run/pcscd; fi && exec \"$2\" -f -c \"$1\"";
    std::vector<std::string> args = unshare_args();
    for (std::string a : {std::string("sh"), std::string("-c"), script, (dir() / "run").string(),
                          (dir() / "conf").string(), find_tool("pcscd")})
        args.push_back(a);
    ProcessOptions o;
    o.stdout_file = pcscd_log();
    o.stderr_file = dir() / "pcscd.err";
    pcscd_ = std::make_unique<Process>(find_tool("unshare"), args, o);
}

void PcscRig::stop_pcscd() {
    if (!pcscd_) return;
    pcscd_->kill(SIGTERM);
    if (!pcscd_->wait(5s)) {
        pcscd_->kill(SIGKILL);
        pcscd_->wait(5s);
    }
    pcscd_.reset();  // the namespace, and with it the bind mount, is gone with pcscd
}

void PcscRig::restart_pcscd() {
    stop_pcscd();
    start_pcscd();
    if (!wait_until([&] { return card_present(0).has_value(); }, 5s, 50ms))
        throw std::runtime_error("pcscd did not come back; its log:\n" + read_text(pcscd_log()));
}

pid_t PcscRig::pcscd_pid() const {
    return pcscd_ ? pcscd_->pid() : -1;  // unshare execs sh, which execs pcscd: one pid
}

ProcessOptions PcscRig::client_options(ProcessOptions base) const {
    base.env["PCSCLITE_CSOCK_NAME"] = socket().string();
    base.env["OPENSC_CONF"] = opensc_conf().string();
    return base;
}

RunResult PcscRig::run_in_rig(const std::string& program, std::vector<std::string> args,
                              std::chrono::milliseconds timeout, ProcessOptions base) const {
    return run(program, std::move(args), client_options(std::move(base)), timeout);
}

RunResult PcscRig::run_in_namespace(const std::string& program, std::vector<std::string> args,
                                    std::chrono::milliseconds timeout, ProcessOptions base) const {
    std::string ns = "/proc/" + std::to_string(pcscd_pid()) + "/ns/";
    std::vector<std::string> a;
    if (!root()) {
        a.push_back("--user=" + ns + "user");
        a.push_back("--preserve-credentials");
    }
    a.push_back("--mount=" + ns + "mnt");
    a.push_back("--");
    a.push_back(program);
    for (auto& x : args) a.push_back(std::move(x));
    base.env["OPENSC_CONF"] = opensc_conf().string();
    return run(find_tool("nsenter"), a, base, timeout);
}

Process& PcscRig::start_card(int slot, const std::filesystem::path& image,
                             std::vector<std::string> extra, bool wait) {
    auto& card = cards_.at(static_cast<std::size_t>(slot));
    if (card) stop_card(slot);
    std::vector<std::string> args{"--vpcd", vpcd(slot), "--control", control_socket(slot).string(),
                                  "--wait", "5"};
    for (auto& e : extra) args.push_back(std::move(e));
    args.push_back(image.string());
    ProcessOptions o;
    o.stderr_file = card_log(slot);
    card = std::make_unique<Process>(bin("vscard-emu").string(), args, o);
    if (wait && !wait_card(slot, true))
        throw std::runtime_error("the card in " + reader(slot) + " did not appear; vscard-emu:\n" +
                                 read_text(card_log(slot)));
    return *card;
}

int PcscRig::stop_card(int slot) {
    auto& card = cards_.at(static_cast<std::size_t>(slot));
    if (!card) return -1;
    card->kill(SIGTERM);
    if (!card->wait(5s)) {
        card->kill(SIGKILL);
        card->wait(5s);
    }
    int code = card->exit_code();
    card.reset();
    return code;
}

std::string PcscRig::control(int slot, const std::string& command) const {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = control_socket(slot).string();
    if (path.size() >= sizeof addr.sun_path) throw std::runtime_error("socket path too long");
    std::strcpy(addr.sun_path, path.c_str());
    int fd = -1;
    wait_until(
        [&] {
            fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return true;
            ::close(fd);
            fd = -1;
            return false;
        },
        3s);
    if (fd < 0) throw std::runtime_error("cannot reach the control socket " + path);
    timeval tv{3, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string line = command + "\n";
    std::string reply;
    if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size())) {
        char c;
        while (::recv(fd, &c, 1, 0) == 1 && c != '\n') reply.push_back(c);
    }
    ::close(fd);
    return reply;
}

std::optional<bool> PcscRig::card_present(int slot) const {
    RunResult r = run_in_rig("opensc-tool", {"--list-readers"}, 10s);
    std::istringstream lines(r.out);
    std::string line;
    const std::string name = reader(slot);
    while (std::getline(lines, line)) {
        if (line.size() < name.size() || line.compare(line.size() - name.size(), name.size(), name))
            continue;
        std::istringstream words(line);
        std::string index, present;
        words >> index >> present;
        return present == "Yes";
    }
    return std::nullopt;
}

bool PcscRig::wait_card(int slot, bool present, std::chrono::milliseconds timeout) const {
    return wait_until([&] { return card_present(slot) == present; }, timeout, 100ms);
}

}  // namespace vscard::test
