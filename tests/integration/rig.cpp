#include "rig.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

namespace vscard::test {

bool is_mounted(const std::filesystem::path& mountpoint) {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    const std::string needle = " " + mountpoint.string() + " ";
    while (std::getline(in, line))
        if (line.find(needle) != std::string::npos) return true;
    return false;
}

Rig::Rig() : dir_("vscard-rig") {
    ::chmod(dir_.path().c_str(), 0755);  // other-uid tests must reach the mount point itself
    ProcessOptions o;
    o.env = {{"VSCARD_AGENT_STORE", "memory"}};
    o.stderr_file = log("agent");
    agent_ = std::make_unique<Process>(
        "vscard-agent", std::vector<std::string>{"--socket", agent_socket().string()}, o);
    if (!wait_until([&] { return std::filesystem::exists(agent_socket()); }, 10s))
        throw std::runtime_error("vscard-agent did not start: " + read_text(log("agent")));
}

Rig::~Rig() {
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) {
        run("fusermount3", {"-u", "-z", it->point.string()}, {}, 20s);
        if (!it->daemon->wait(10s)) it->daemon->kill(9);
    }
    mounts_.clear();
    agent_.reset();
}

ProcessOptions Rig::options(const std::filesystem::path& store) const {
    ProcessOptions o;
    o.env = {{"VSCARD_STORE", (store.empty() ? this->store() : store).string()},
             {"VSCARD_AGENT", agent_socket().string()},
             {"PATH", bin("vscardctl").parent_path().string() + ":" + std::getenv("PATH")}};
    if (pcsc_)
        for (const auto& [k, v] : pcsc_->env) o.env[k] = v;
    return o;
}

void Rig::use_pcsc(const ProcessOptions& client) {
    pcsc_ = client;
}

RunResult Rig::ctl(std::vector<std::string> args, std::optional<std::string> input,
                   const std::filesystem::path& store) {
    ProcessOptions o = options(store);
    o.stdin_data = std::move(input);
    return run("vscardctl", std::move(args), o);
}

void Rig::create_vsc(const std::string& name, const std::string& password,
                     const std::filesystem::path& store) {
    auto r =
        ctl({"create", name, "--password-stdin", "--kdf-target", "20ms"}, password + "\n", store);
    if (r.exit_code != 0) throw std::runtime_error("vscardctl create failed: " + r.err);
}

void Rig::unlock(const std::string& name, const std::string& password) {
    auto r = ctl({"unlock", "vsc/" + name, "--password-stdin"}, password + "\n");
    if (r.exit_code != 0) throw std::runtime_error("vscardctl unlock failed: " + r.err);
}

void Rig::lock(const std::string& name) {
    auto r = ctl({"lock", "vsc/" + name});
    if (r.exit_code != 0) throw std::runtime_error("vscardctl lock failed: " + r.err);
}

std::filesystem::path Rig::mount(const std::filesystem::path& store, const std::string& name,
                                 std::vector<std::string> extra_args) {
    auto point = dir_ / name;
    std::filesystem::create_directories(point);
    ProcessOptions o = options(store);
    o.stderr_file = log(name);
    std::vector<std::string> args{"-f"};
    if (!pcsc_) args.push_back("--no-pcsc");
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    args.push_back(point.string());
    auto daemon = std::make_unique<Process>("vscard-mountd", std::move(args), o);
    if (!wait_until([&] { return is_mounted(point) || !daemon->running(); }, 10s) ||
        !is_mounted(point))
        throw std::runtime_error("vscard-mountd did not mount: " + read_text(log(name)));
    mounts_.push_back({point, std::move(daemon)});
    return point;
}

void Rig::unmount(const std::filesystem::path& mountpoint) {
    for (auto it = mounts_.begin(); it != mounts_.end(); ++it) {
        if (it->point != mountpoint) continue;
        if (is_mounted(mountpoint)) run("fusermount3", {"-u", mountpoint.string()}, {}, 20s);
        if (!it->daemon->wait(10s)) it->daemon->kill(9);
        if (is_mounted(mountpoint)) run("fusermount3", {"-u", "-z", mountpoint.string()}, {}, 20s);
        mounts_.erase(it);
        return;
    }
}

Process& Rig::daemon(const std::filesystem::path& mountpoint) {
    for (auto& m : mounts_)
        if (m.point == mountpoint) return *m.daemon;
    throw std::runtime_error("no mount at " + mountpoint.string());
}

RunResult Rig::sh(const std::string& script, const std::filesystem::path& mountpoint) {
    ProcessOptions o = options();
    if (!mountpoint.empty()) o.env["M"] = mountpoint.string();
    o.env["T"] = dir_.path().string();
    o.cwd = dir_.path();
    // `fails CMD` asserts that CMD fails; any other failing command names itself.
    static const std::string preamble = R"SH(set -euo pipefail
trap 'echo "line $LINENO: failed: $BASH_COMMAND" >&2' ERR
fails() { if "$@" 2>/dev/null; then echo "unexpectedly succeeded: $*" >&2; return 1; fi; }
)SH";
    return run("bash", {"-c", preamble + script}, o, 300s);
}

}  // namespace vscard::test
