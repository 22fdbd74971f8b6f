// vscard-emu: an ISO 7816-4 file-system card behind vsmartcard's virtual reader (DESIGN §9).
// It connects to the vpcd driver that pcscd loaded, as the card in that reader: connecting
// inserts the card, disconnecting removes it. The card logic lives in src/card/emulator.*.
//
// vpcd protocol (TCP, vpcd listens, the card connects): every message in either direction is
// a 2-byte big-endian length followed by that many bytes. From vpcd, a 1-byte message is a
// control command (00 power off, 01 power on, 02 reset: no answer; 04 get ATR: answered with
// the ATR); anything longer is a command APDU, answered with the response APDU.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <list>
#include <optional>
#include <string>

#include "card/emulator.hpp"
#include "error.hpp"
#include "log.hpp"
#include "vscard/version.hpp"

using namespace vscard;
using namespace vscard::card;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct Config {
    std::string host = "localhost";
    std::uint16_t port = 35963;
    std::string image;
    std::optional<std::size_t> size;
    double wait_seconds = 10;
    std::string control;
    bool verbose = false;
    EmulatorOptions card;
};

std::size_t parse_size(const std::string& text) {
    std::size_t pos = 0;
    unsigned long long v = 0;
    try {
        v = std::stoull(text, &pos);
    } catch (const std::exception&) {
        pos = 0;
    }
    std::string unit = text.substr(pos);
    unsigned long long mult = 0;
    if (unit.empty())
        mult = 1;
    else if (unit == "K" || unit == "k" || unit == "KiB")
        mult = 1024;
    else if (unit == "M" || unit == "MiB")
        mult = 1024 * 1024;
    if (pos == 0 || mult == 0)
        throw Error(ErrorKind::Usage, "--size '" + text + "': give bytes, e.g. 65536 or 64K");
    v *= mult;
    if (v < emu::kMinCapacity || v > emu::kMaxCapacity)
        throw Error(ErrorKind::Usage, "--size " + text + " is outside 1K..64M");
    return static_cast<std::size_t>(v);
}

void parse_endpoint(const std::string& text, Config& c) {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
        throw Error(ErrorKind::Usage, "--vpcd '" + text + "': expected HOST:PORT");
    c.host = text.substr(0, colon);
    std::string port = text.substr(colon + 1);
    unsigned long p = 0;
    try {
        std::size_t used = 0;
        p = std::stoul(port, &used, 0);  // decimal or 0x9C40 as in reader.conf
        if (used != port.size()) p = 0;
    } catch (const std::exception&) {
        p = 0;
    }
    if (p == 0 || p > 65535) throw Error(ErrorKind::Usage, "--vpcd '" + text + "': bad port");
    c.port = static_cast<std::uint16_t>(p);
}

// vpcd writes the length and the payload of a message in two sends; with Nagle on its side
// and delayed ACKs on ours, each APDU would wait about 40 ms for our ACK. Quick ACKs avoid
// that; the kernel drops the mode again after a while, so it is renewed after every read.
void quick_ack(int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

// Connects to HOST:PORT within TIMEOUT; -1 (errno set) when it cannot.
int connect_to(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    if (::getaddrinfo(host.c_str(), service.c_str(), &hints, &res) != 0) {
        errno = EHOSTUNREACH;
        return -1;
    }
    int fd = -1;
    int err = ECONNREFUSED;
    for (addrinfo* a = res; a; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) continue;
        int r = ::connect(fd, a->ai_addr, a->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS) {
            pollfd p{fd, POLLOUT, 0};
            if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1) {
                socklen_t len = sizeof err;
                ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                r = err == 0 ? 0 : -1;
            } else {
                err = ETIMEDOUT;
            }
        } else if (r != 0) {
            err = errno;
        }
        if (r == 0) {
            int flags = ::fcntl(fd, F_GETFL);
            ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);  // messages are read whole, blocking
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            quick_ack(fd);
            break;
        }
        ::close(fd);
        fd = -1;
    }
    ::freeaddrinfo(res);
    if (fd < 0) errno = err;
    return fd;
}

bool read_all(int fd, std::uint8_t* buf, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::recv(fd, buf + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        quick_ack(fd);
        got += static_cast<std::size_t>(r);
    }
    return true;
}

bool write_all(int fd, const std::uint8_t* buf, std::size_t n) {
    std::size_t sent = 0;
    while (sent < n) {
        ssize_t r = ::send(fd, buf + sent, n - sent, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        sent += static_cast<std::size_t>(r);
    }
    return true;
}

class Daemon {
public:
    Daemon(Config config, emu::CardImage image)
        : config_(std::move(config)), emulator_(std::move(image), config_.card) {
        apdu_log_.enable(config_.verbose);
        apdu_log_.set_sink([](const std::string& line) { log_line(line); });
    }
    ~Daemon();
    int run();

private:
    std::string endpoint() const { return config_.host + ":" + std::to_string(config_.port); }
    void try_connect();
    void disconnect(const std::string& why);
    bool handle_vpcd();
    Bytes answer_apdu(ByteView command);
    Bytes hostile_answer();
    void open_control();
    void handle_control_client(int fd, std::string& buffer, bool& close_it);
    std::string control_command(const std::string& line);
    void remove_card();
    void insert_card();

    Config config_;
    Emulator emulator_;
    enum class Hostile { Off, Endless61xx, Oversized, BadStatus };
    Hostile hostile_ = Hostile::Off;  // set through the control socket
    unsigned hostile_count_ = 0;
    ApduLog apdu_log_;
    int sock_ = -1;
    int signal_fd_ = -1;
    int control_fd_ = -1;
    struct Client {
        int fd;
        std::string buffer;
    };
    std::list<Client> clients_;
    bool inserted_ = true;
    bool ever_connected_ = false;
    bool reported_unreachable_ = false;
    Clock::time_point next_attempt_ = Clock::now();
    Clock::time_point give_up_ = Clock::now();
};

Daemon::~Daemon() {
    if (sock_ >= 0) ::close(sock_);
    for (auto& c : clients_) ::close(c.fd);
    if (control_fd_ >= 0) {
        ::close(control_fd_);
        ::unlink(config_.control.c_str());
    }
    if (signal_fd_ >= 0) ::close(signal_fd_);
}

void Daemon::try_connect() {
    int fd = connect_to(config_.host, config_.port, 1000ms);
    if (fd < 0) {
        int err = errno;
        if (!ever_connected_ && Clock::now() >= give_up_)
            throw Error(ErrorKind::Unavailable,
                        "cannot reach vpcd at " + endpoint() + ": " + std::strerror(err) +
                            "; is pcscd running with vsmartcard-vpcd configured for that port?");
        if (ever_connected_ && !reported_unreachable_) {
            log_line("vpcd at " + endpoint() + " is unreachable (" + std::strerror(err) +
                     "); retrying");
            reported_unreachable_ = true;
        }
        next_attempt_ = Clock::now() + 200ms;
        return;
    }
    sock_ = fd;
    ever_connected_ = true;
    reported_unreachable_ = false;
    emulator_.power_off();  // a fresh session, as after a real insertion
    log_line("card inserted into vpcd at " + endpoint() + " (" +
             std::to_string(emulator_.image().available()) + " of " +
             std::to_string(emulator_.image().capacity) + " bytes free)");
}

void Daemon::disconnect(const std::string& why) {
    if (sock_ >= 0) {
        ::close(sock_);
        sock_ = -1;
        log_line(why);
    }
    emulator_.power_off();
    next_attempt_ = Clock::now() + 200ms;
}

Bytes Daemon::answer_apdu(ByteView command) {
    const bool secret = emulator_.is_secret(command);  // key material stays out of the log
    apdu_log_.command(command, secret);
    if (hostile_ != Hostile::Off) {
        Bytes response = hostile_answer();
        apdu_log_.response(response);
        return response;
    }
    Bytes response = emulator_.process(command);
    if (emulator_.take_changed()) {
        try {
            emu::save_image(config_.image, emulator_.image());
        } catch (const Error& e) {
            // The card must not claim a change it could not keep: back to the saved state.
            log_line(std::string("cannot save the card image: ") + e.what());
            try {
                emulator_.replace_image(emu::load_image(config_.image));
            } catch (const Error& reload) {
                log_line(std::string("cannot reload the card image: ") + reload.what());
            }
            response = {0x65, 0x81};  // memory failure
        }
    }
    if (response.size() > 0xFFFF) response = {0x6F, 0x00};
    apdu_log_.response(response, secret);
    return response;
}

// Reads and answers one message; false when the connection is gone.
bool Daemon::handle_vpcd() {
    std::uint8_t head[2];
    if (!read_all(sock_, head, 2)) return false;
    std::size_t len = static_cast<std::size_t>(head[0] << 8 | head[1]);
    Bytes msg(len);
    if (len && !read_all(sock_, msg.data(), len)) return false;
    Bytes reply;
    bool answer = false;
    if (len == 1) {
        switch (msg[0]) {
            case 0x00:
                emulator_.power_off();
                break;
            case 0x01:
                emulator_.power_on();
                break;
            case 0x02:
                emulator_.reset();
                break;
            case 0x04:
                reply = emulator_.atr();
                answer = true;
                break;
            default:
                log_line("unknown vpcd control byte " + std::to_string(msg[0]));
        }
    } else if (len > 1) {
        reply = answer_apdu(msg);
        answer = true;
    }
    if (!answer) return true;
    Bytes out(2 + reply.size());
    out[0] = static_cast<std::uint8_t>(reply.size() >> 8);
    out[1] = static_cast<std::uint8_t>(reply.size() & 0xFF);
    std::copy(reply.begin(), reply.end(), out.begin() + 2);
    return write_all(sock_, out.data(), out.size());
}

void Daemon::remove_card() {
    inserted_ = false;
    if (sock_ >= 0) disconnect("card removed");
}

void Daemon::insert_card() {
    if (inserted_) return;
    inserted_ = true;
    next_attempt_ = Clock::now();
}

void Daemon::open_control() {
    if (config_.control.empty()) return;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (config_.control.size() >= sizeof addr.sun_path)
        throw Error(ErrorKind::Usage, "--control path is too long: " + config_.control);
    std::strcpy(addr.sun_path, config_.control.c_str());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw system_error("cannot create the control socket");
    struct stat st {};
    if (::lstat(config_.control.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
        ::unlink(config_.control.c_str());  // left over from an earlier run
    mode_t old = ::umask(0077);
    int r = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::umask(old);
    if (r != 0 || ::listen(fd, 8) != 0) {
        int err = errno;
        ::close(fd);
        throw system_error("cannot listen on control socket " + config_.control, err);
    }
    control_fd_ = fd;
}

// What a hostile card answers to anything (tests of the host's defences): an endless chain
// of 61xx, far more data than asked for, or status words that mean nothing.
Bytes Daemon::hostile_answer() {
    switch (hostile_) {
        case Hostile::Endless61xx: {
            Bytes r(257, 0x55);
            r[255] = 0x61;
            r[256] = 0xFF;
            return r;
        }
        case Hostile::Oversized: {
            Bytes r(4098, 0xA5);
            r[4096] = 0x90;
            r[4097] = 0x00;
            return r;
        }
        case Hostile::BadStatus:
            return {static_cast<std::uint8_t>(0x6F + (++hostile_count_ % 3)),
                    static_cast<std::uint8_t>(hostile_count_ * 37)};
        case Hostile::Off:
            break;
    }
    return {0x6F, 0x00};
}

std::string Daemon::control_command(const std::string& line) {
    if (line.rfind("hostile ", 0) == 0) {
        const std::string mode = line.substr(8);
        if (mode == "off")
            hostile_ = Hostile::Off;
        else if (mode == "endless-61xx")
            hostile_ = Hostile::Endless61xx;
        else if (mode == "oversized")
            hostile_ = Hostile::Oversized;
        else if (mode == "bad-status")
            hostile_ = Hostile::BadStatus;
        else
            return "error: hostile takes off, endless-61xx, oversized or bad-status";
        return "ok hostile " + mode;
    }
    if (line == "remove") {
        remove_card();
        return "ok removed";
    }
    if (line == "insert") {
        insert_card();
        return "ok inserted";
    }
    if (line == "status")
        return !inserted_ ? "removed" : sock_ >= 0 ? "inserted" : "inserted, waiting for vpcd";
    return "error: unknown command '" + line + "' (remove, insert, status, hostile MODE)";
}

void Daemon::handle_control_client(int fd, std::string& buffer, bool& close_it) {
    char buf[256];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0 || buffer.size() > 4096) {
        close_it = true;
        return;
    }
    buffer.append(buf, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
        std::string line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        std::string reply = control_command(line) + "\n";
        if (!write_all(fd, reinterpret_cast<const std::uint8_t*>(reply.data()), reply.size())) {
            close_it = true;
            return;
        }
    }
}

int Daemon::run() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGHUP}) sigaddset(&set, s);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    signal_fd_ = ::signalfd(-1, &set, SFD_CLOEXEC);
    if (signal_fd_ < 0) throw system_error("signalfd");
    open_control();

    give_up_ = Clock::now() +
               std::chrono::milliseconds(static_cast<long long>(config_.wait_seconds * 1000));
    for (;;) {
        if (inserted_ && sock_ < 0 && Clock::now() >= next_attempt_) try_connect();

        std::vector<pollfd> fds;
        fds.push_back({signal_fd_, POLLIN, 0});
        if (sock_ >= 0) fds.push_back({sock_, POLLIN, 0});
        if (control_fd_ >= 0) fds.push_back({control_fd_, POLLIN, 0});
        for (auto& c : clients_) fds.push_back({c.fd, POLLIN, 0});
        int timeout = -1;
        if (inserted_ && sock_ < 0) {
            auto wait =
                std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt_ - Clock::now());
            timeout = static_cast<int>(std::max<long long>(0, wait.count()));
        }
        if (::poll(fds.data(), fds.size(), timeout) < 0) {
            if (errno == EINTR) continue;
            throw system_error("poll");
        }
        std::size_t i = 0;
        if (fds[i++].revents & POLLIN) {
            signalfd_siginfo si{};
            if (::read(signal_fd_, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGUSR1) {
                    if (inserted_)
                        remove_card();
                    else
                        insert_card();
                    log_line(inserted_ ? "SIGUSR1: inserting the card" : "SIGUSR1: card removed");
                } else if (si.ssi_signo != SIGHUP) {
                    remove_card();
                    log_line("stopped");
                    return 0;
                }
            }
        }
        if (sock_ >= 0 && i < fds.size() && fds[i].fd == sock_) {
            if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (!handle_vpcd()) disconnect("vpcd closed the connection; reconnecting");
            }
            ++i;
        }
        if (control_fd_ >= 0 && i < fds.size() && fds[i].fd == control_fd_) {
            if (fds[i].revents & POLLIN) {
                int c = ::accept4(control_fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (c >= 0) clients_.push_back({c, {}});
            }
            ++i;
        }
        for (; i < fds.size(); ++i) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            for (auto it = clients_.begin(); it != clients_.end(); ++it) {
                if (it->fd != fds[i].fd) continue;
                bool close_it = false;
                handle_control_client(it->fd, it->buffer, close_it);
                if (close_it) {
                    ::close(it->fd);
                    clients_.erase(it);
                }
                break;
            }
        }
    }
}

emu::CardImage open_or_create(const Config& c) {
    std::error_code ec;
    if (!std::filesystem::exists(c.image, ec)) {
        emu::CardImage img = emu::CardImage::blank(c.size.value_or(emu::kDefaultCapacity));
        emu::save_image(c.image, img);
        log_line("created blank card image " + c.image + " (" + std::to_string(img.capacity) +
                 " bytes)");
        return img;
    }
    emu::CardImage img = emu::load_image(c.image);
    if (c.size && *c.size != img.capacity) {
        if (*c.size < img.used())
            throw Error(ErrorKind::Invalid, "--size " + std::to_string(*c.size) + " is below the " +
                                                std::to_string(img.used()) + " bytes that " +
                                                c.image + " uses");
        img.capacity = *c.size;
        emu::save_image(c.image, img);
    }
    return img;
}

}  // namespace

int main(int argc, char** argv) {
    init_log("vscard-emu");
    Config config;
    std::string vpcd = "localhost:35963";
    std::string size;
    CLI::App app{"vscard-emu: an ISO 7816-4 file-system card in vsmartcard's virtual reader"};
    app.set_version_flag("--version", std::string("vscard-emu ") + kVersion);
    app.add_option("IMAGE", config.image,
                   "card image file; a blank card (MF only) is created when it does not exist, "
                   "and it is saved after every change")
        ->required();
    app.add_option("--vpcd", vpcd, "vpcd's HOST:PORT (default localhost:35963)");
    app.add_option("--size", size,
                   "card memory in bytes (K and M suffixes) for a new image, or a new size for "
                   "an existing one (default 64K)");
    app.add_option("--wait", config.wait_seconds,
                   "seconds to keep trying to reach vpcd at start (default 10)");
    app.add_option(
        "--control", config.control,
        "listen on this Unix socket for lines 'remove', 'insert', 'status', and 'hostile "
        "MODE' (off, endless-61xx, oversized, bad-status: how the card answers from "
        "then on, to test the host's defences)");
    app.add_flag("--verbose", config.verbose,
                 "log every APDU (PIN data and key material are never logged)");
    app.add_flag(
        "--no-fci", [&](std::int64_t) { config.card.fci = false; },
        "SELECT answers 9000 without FCI/FCP (file sizes unknown)");
    app.add_flag(
        "--no-aid-select", [&](std::int64_t) { config.card.aid_select = false; },
        "SELECT by DF name (AID) answers 6A82");
    app.add_flag(
        "--no-extended", [&](std::int64_t) { config.card.extended = false; },
        "no extended length APDUs (6700), not advertised in the ATR");
    app.add_flag(
        "--no-chaining", [&](std::int64_t) { config.card.chaining = false; },
        "refuse command chaining (6884)");
    app.add_option("--max-le", config.card.max_le,
                   "READ BINARY with Le above N answers 6Cxx (e.g. 255: a card refusing Le=00)");
    app.add_flag("--max-le-6700", config.card.wrong_le_6700,
                 "with --max-le: answer 6700 instead of 6Cxx");
    app.add_flag("--t0", config.card.t0_responses,
                 "announce every response with 61xx, fetched by GET RESPONSE (T=0 style)");
    app.add_flag("--allow-erase", config.card.allow_erase,
                 "accept the proprietary ERASE CARD command (80 EE 00 00)");
    app.footer(
        "The card is inserted by connecting to vpcd and removed by disconnecting: SIGTERM and\n"
        "SIGINT remove it and exit 0; SIGUSR1 toggles removal/insertion; --control SOCKET takes\n"
        "the lines 'remove', 'insert' and 'status' and answers each with one line.\n"
        "If vpcd goes away (pcscd restarts), the card is inserted again once it is back.\n"
        "Commands, status words and the proprietary SET PIN (80 24) are described in\n"
        "src/card/emulator.hpp.");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        std::cerr << "vscard-emu: " << e.what() << " (see vscard-emu --help)\n";
        return 2;
    }
    try {
        parse_endpoint(vpcd, config);
        if (!size.empty()) config.size = parse_size(size);
        if (config.wait_seconds < 0) throw Error(ErrorKind::Usage, "--wait must be >= 0");
        emu::CardImage image = open_or_create(config);
        Daemon daemon(config, std::move(image));
        return daemon.run();
    } catch (const Error& e) {
        std::cerr << "vscard-emu: " << e.what() << "\n";
        return exit_code_of(e.kind());
    } catch (const std::exception& e) {
        std::cerr << "vscard-emu: " << e.what() << "\n";
        return 1;
    }
}
