#pragma once
// A private vscard installation for one test: store, agent and mounts in a temp dir, all
// stopped and unmounted when the rig goes away (also when the test fails half-way).
#include <filesystem>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "harness.hpp"

namespace vscard::test {

class Rig {
public:
    Rig();
    ~Rig();
    Rig(const Rig&) = delete;
    Rig& operator=(const Rig&) = delete;

    const std::filesystem::path& dir() const { return dir_.path(); }
    std::filesystem::path store() const { return dir_ / "store"; }
    std::filesystem::path agent_socket() const { return dir_ / "agent.sock"; }
    std::filesystem::path log(const std::string& name) const { return dir_ / (name + ".log"); }

    // The environment every vscard command of this rig runs with.
    ProcessOptions options(const std::filesystem::path& store = {}) const;
    // From now on commands reach the PC/SC stack of CLIENT (PcscRig::client_options()) and
    // new mounts follow its readers (without this they run with --no-pcsc).
    void use_pcsc(const ProcessOptions& client);

    RunResult ctl(std::vector<std::string> args, std::optional<std::string> input = std::nullopt,
                  const std::filesystem::path& store = {});
    void create_vsc(const std::string& name, const std::string& password,
                    const std::filesystem::path& store = {});
    void unlock(const std::string& name, const std::string& password);
    void lock(const std::string& name);

    // Mounts STORE (default: the rig's) on a fresh directory and returns it; EXTRA_ARGS go
    // to vscard-mountd (e.g. --debug).
    std::filesystem::path mount(const std::filesystem::path& store = {},
                                const std::string& name = "mnt",
                                std::vector<std::string> extra_args = {});
    void unmount(const std::filesystem::path& mountpoint);
    // The daemon of a mount, e.g. to kill it.
    Process& daemon(const std::filesystem::path& mountpoint);
    Process& agent() { return *agent_; }

    // Runs a bash script with `set -euo pipefail`, the rig's environment and $M = MOUNTPOINT.
    RunResult sh(const std::string& script, const std::filesystem::path& mountpoint = {});

private:
    TempDir dir_;
    std::unique_ptr<Process> agent_;
    std::optional<ProcessOptions> pcsc_;
    struct Mount {
        std::filesystem::path point;
        std::unique_ptr<Process> daemon;
    };
    std::list<Mount> mounts_;
};

bool is_mounted(const std::filesystem::path& mountpoint);

}  // namespace vscard::test
