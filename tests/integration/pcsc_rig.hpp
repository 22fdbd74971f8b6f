#pragma once
// A private PC/SC stack for one test (DESIGN §9): pcscd with the vsmartcard-vpcd driver on a
// free port pair, isolated from the system's pcscd, and vscard-emu cards in its readers.
//
// Isolation: pcscd runs inside `unshare -m --propagation private` with a private directory
// bind-mounted over /run/pcscd, so its socket and pid file never touch the system's. The
// socket shows up in that directory (socket()); PC/SC clients outside the namespace reach it
// through pcsc-lite's PCSCLITE_CSOCK_NAME variable, which client_options() sets (with a
// private OPENSC_CONF for the OpenSC tools). run_in_namespace() runs a command inside pcscd's
// namespace instead, for a client that insists on /run/pcscd.
//
// Readers: "Test PCD 00 00" on port(0) and "Test PCD 00 01" on port(1) (vpcd's two slots).
// Everything (cards, pcscd) is stopped when the rig goes away, also when a test fails.
#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness.hpp"

namespace vscard::test {

// Why a private pcscd cannot run here (pcscd, the vpcd driver, unshare or opensc-tool
// missing), or nullopt when it can. Tests skip with this reason.
std::optional<std::string> pcsc_rig_unavailable();

class PcscRig {
public:
    static constexpr int kSlots = 2;

    // Starts pcscd and waits (at most 5 s) until its readers are listed; throws with pcscd's
    // log when it does not come up.
    PcscRig();
    ~PcscRig();
    PcscRig(const PcscRig&) = delete;
    PcscRig& operator=(const PcscRig&) = delete;

    const std::filesystem::path& dir() const { return dir_.path(); }
    std::uint16_t port(int slot = 0) const { return static_cast<std::uint16_t>(port_ + slot); }
    std::string vpcd(int slot = 0) const { return "127.0.0.1:" + std::to_string(port(slot)); }
    std::string reader(int slot = 0) const { return "Test PCD 00 0" + std::to_string(slot); }
    std::filesystem::path socket() const { return dir() / "run" / "pcscd.comm"; }
    std::filesystem::path opensc_conf() const { return dir() / "opensc.conf"; }
    std::filesystem::path pcscd_log() const { return dir() / "pcscd.log"; }
    pid_t pcscd_pid() const;

    // BASE plus the environment of a PC/SC client of this rig (PCSCLITE_CSOCK_NAME,
    // OPENSC_CONF).
    ProcessOptions client_options(ProcessOptions base = {}) const;
    // Runs a PC/SC client (e.g. opensc-tool) against this rig's pcscd.
    RunResult run_in_rig(const std::string& program, std::vector<std::string> args,
                         std::chrono::milliseconds timeout = 20s, ProcessOptions base = {}) const;
    // Runs a command inside pcscd's mount namespace (nsenter), where /run/pcscd is the rig's.
    RunResult run_in_namespace(const std::string& program, std::vector<std::string> args,
                               std::chrono::milliseconds timeout = 20s,
                               ProcessOptions base = {}) const;

    // vscard-emu in reader SLOT with IMAGE (created when missing) and a control socket; waits
    // (at most 5 s) until the reader shows the card unless WAIT is false.
    Process& start_card(int slot, const std::filesystem::path& image,
                        std::vector<std::string> extra = {}, bool wait = true);
    Process* card(int slot) { return cards_.at(static_cast<std::size_t>(slot)).get(); }
    // SIGTERM to the card's emulator; returns its exit code (-1 if it had to be killed).
    int stop_card(int slot);
    std::filesystem::path control_socket(int slot) const {
        return dir() / ("emu" + std::to_string(slot) + ".ctl");
    }
    std::filesystem::path card_log(int slot) const {
        return dir() / ("emu" + std::to_string(slot) + ".log");
    }
    // Sends one line to the emulator's control socket and returns its one-line answer.
    std::string control(int slot, const std::string& command) const;

    // Whether reader SLOT holds a card, as `opensc-tool --list-readers` shows it; nullopt when
    // the reader is not listed.
    std::optional<bool> card_present(int slot) const;
    bool wait_card(int slot, bool present, std::chrono::milliseconds timeout = 5s) const;

    // Stops pcscd and starts it again on the same ports (cards keep running).
    void restart_pcscd();

private:
    void start_pcscd();
    void stop_pcscd();
    TempDir dir_;
    std::uint16_t port_ = 0;
    std::unique_ptr<Process> pcscd_;
    std::array<std::unique_ptr<Process>, kSlots> cards_;
};

}  // namespace vscard::test
