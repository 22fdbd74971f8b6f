// vscard-agent as a real process on a private socket: requests, expiry, events, the command
// line, socket activation, and who may talk to it.
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <fstream>
#include <mutex>
#include <vscard/version.hpp>

#include "agent_client.hpp"
#include "agent_protocol.hpp"
#include "error.hpp"
#include "harness.hpp"

namespace vscard {
namespace {

using namespace std::chrono_literals;
using test::Process;
using test::ProcessOptions;
using test::TempDir;

constexpr uid_t kNobody = 65534;

std::string text_of(const SecureBytes& b) {
    return std::string(b.begin(), b.end());
}

bool has_entry(const std::vector<AgentEntry>& entries, const std::string& target) {
    return std::any_of(entries.begin(), entries.end(),
                       [&](const AgentEntry& e) { return e.target == target; });
}

std::size_t count_lines(const std::string& s) {
    return std::count(s.begin(), s.end(), '\n');
}

sockaddr_un address(const std::filesystem::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    return addr;
}

// A raw connection (errno is kept for the caller when it fails).
int raw_connect(const std::filesystem::path& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = address(path);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        int err = errno;
        ::close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

// Reads whatever arrives until end of stream or TIMEOUT; sets EOF when the agent closed.
std::string read_some(int fd, std::chrono::milliseconds timeout, bool& eof) {
    std::string got;
    eof = false;
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        char buf[512];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) {
            eof = true;
            break;
        }
        got.append(buf, static_cast<std::size_t>(n));
    }
    return got;
}

int listening_socket(const std::filesystem::path& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = address(path);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd, 8) != 0)
        return -1;
    return fd;
}

// Runs FN in a child process whose uid and gid are 65534 and returns its exit status.
int as_nobody(const std::function<int()>& fn) {
    pid_t pid = ::fork();
    if (pid == 0) {
        if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
            ::setresuid(kNobody, kNobody, kNobody) != 0)
            ::_exit(99);
        ::_exit(fn());
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 98;
}

#if defined(__x86_64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
constexpr std::uint32_t kAuditArch = 0;
#endif

// Makes keyctl() and add_key() fail with ENOSYS, as container runtimes commonly do.
// Runs in a forked child before exec: system calls only.
void forbid_keyrings() {
    static sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_keyctl, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_add_key, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
    };
    static sock_fprog program = {sizeof filter / sizeof filter[0], filter};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0)
        ::_exit(126);
}

// Records the watcher's callbacks for the test thread.
class EventLog {
public:
    void add(const std::string& target, bool unlocked) {
        std::lock_guard lock(mutex_);
        events_.emplace_back(target, unlocked);
        cv_.notify_all();
    }
    bool wait_for(const std::string& target, bool unlocked, std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, timeout, [&] {
            auto e = std::make_pair(target, unlocked);
            auto it = std::find(events_.begin() + consumed_, events_.end(), e);
            if (it == events_.end()) return false;
            consumed_ = static_cast<std::size_t>(it - events_.begin()) + 1;
            return true;
        });
    }
    std::string dump() {
        std::lock_guard lock(mutex_);
        std::string s;
        for (auto& [t, u] : events_) s += t + (u ? "+ " : "- ");
        return s;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::pair<std::string, bool>> events_;
    std::size_t consumed_ = 0;
};

class AgentFixture {
public:
    AgentFixture() : socket_(dir_ / "run" / "agent.sock") {}

    // Starts the agent and waits until it answers; empty STORE leaves the choice to it.
    std::unique_ptr<Process> start(std::vector<std::string> extra = {}, std::string store = "",
                                   ProcessOptions options = {}) {
        std::vector<std::string> args = {"--socket", socket_.string()};
        for (auto& a : extra) args.push_back(std::move(a));
        if (!store.empty()) options.env["VSCARD_AGENT_STORE"] = store;
        auto p = std::make_unique<Process>("vscard-agent", args, options);
        AgentClient client(socket_);
        test::wait_until([&] { return client.reachable() || !p->running(); }, 10s);
        return p;
    }

    const TempDir& dir() const { return dir_; }
    const std::filesystem::path& socket() const { return socket_; }
    AgentClient client() const { return AgentClient(socket_); }

protected:
    TempDir dir_{"vscard-agent-test"};
    std::filesystem::path socket_;
};

// ---- The two secret stores behave alike -------------------------------------------------

class AgentStoreTest : public ::testing::TestWithParam<std::string>, public AgentFixture {
protected:
    // The agent with the store under test; skips the keyring case where the kernel refuses.
    std::unique_ptr<Process> start_agent(std::vector<std::string> extra = {}) {
        auto p = start(std::move(extra), GetParam());
        if (!p->running()) {
            std::string err = p->err();
            if (GetParam() == "keyring" && err.find("refuses keyrings") != std::string::npos) {
                skipped_ = true;
                return p;
            }
            ADD_FAILURE() << "vscard-agent did not start: " << err;
        }
        return p;
    }
    bool skipped_ = false;
};

#define START_AGENT(var, ...)                                         \
    auto var = start_agent(__VA_ARGS__);                              \
    if (skipped_) GTEST_SKIP() << "the kernel refuses keyrings here"; \
    ASSERT_TRUE(var->running())

TEST_P(AgentStoreTest, PutGetForgetLockAndStatus) {
    START_AGENT(agent);
    AgentClient c = client();
    EXPECT_FALSE(c.get("vsc/work").has_value());

    c.put("vsc/work", view_of(std::string("hunter2")), 0s);
    const std::string binary("\0pin\xff\0", 6);
    c.put("card/00AB", view_of(binary), 0s);
    auto got = c.get("vsc/work");
    ASSERT_TRUE(got);
    EXPECT_EQ(text_of(*got), "hunter2");
    EXPECT_EQ(text_of(*c.get("card/00AB")), binary);

    auto st = c.status();
    ASSERT_EQ(st.size(), 2u);
    for (const auto& e : st) {
        EXPECT_GT(e.expires_in, 890s) << e.target;  // default idle timeout: 15 min
        EXPECT_LE(e.expires_in, 900s) << e.target;
    }

    c.put("vsc/work", view_of(std::string("changed")), 0s);
    EXPECT_EQ(text_of(*c.get("vsc/work")), "changed");

    c.forget("vsc/work");
    EXPECT_FALSE(c.get("vsc/work").has_value());
    EXPECT_NO_THROW(c.forget("vsc/work"));  // forgetting twice is fine
    c.lock("card/00AB");
    EXPECT_FALSE(c.get("card/00AB").has_value());
    EXPECT_TRUE(c.status().empty());

    c.put("vsc/a", view_of(std::string("1")), 0s);
    c.put("vsc/b", view_of(std::string("2")), 60s);
    c.put("card/C", view_of(std::string("3")), 0s);
    auto st2 = c.status();
    ASSERT_EQ(st2.size(), 3u);
    for (const auto& e : st2) {
        if (e.target == "vsc/b") {
            EXPECT_LE(e.expires_in, 60s);
        }
    }
    EXPECT_NO_THROW(c.touch("vsc/a"));
    EXPECT_NO_THROW(c.touch("vsc/none"));
    c.lock_all();
    EXPECT_TRUE(c.status().empty());
    EXPECT_FALSE(c.get("vsc/a").has_value());
    EXPECT_TRUE(c.reachable());
}

TEST_P(AgentStoreTest, LogsWhichStoreIsUsed) {
    START_AGENT(agent);
    std::string expected =
        GetParam() == "memory" ? "secret store: locked memory" : "secret store: kernel keyring";
    EXPECT_NE(agent->err().find(expected), std::string::npos) << agent->err();
}

TEST_P(AgentStoreTest, RejectsBadRequestsWithAMessage) {
    START_AGENT(agent);
    // Bypass the client's own checks to see the agent's.
    int fd = raw_connect(socket());
    ASSERT_GE(fd, 0);
    agent::Message put = agent::request(agent::Op::Put, "home/me");
    put.secret = secure_from("x");
    agent::write_all(fd, agent::encode(put));
    auto reply = agent::read_frame(fd);
    ASSERT_TRUE(reply);
    agent::Message m = agent::decode(*reply);
    EXPECT_EQ(m.op, agent::Op::Fail);
    EXPECT_NE(m.message.find("vsc/NAME or card/SERIAL"), std::string::npos) << m.message;

    // The connection stays usable after a well-formed but refused request.
    agent::write_all(fd, agent::encode(agent::request(agent::Op::Put, "vsc/empty")));
    m = agent::decode(*agent::read_frame(fd));
    EXPECT_EQ(m.op, agent::Op::Fail);
    EXPECT_NE(m.message.find("empty"), std::string::npos) << m.message;
    ::close(fd);
    EXPECT_TRUE(client().status().empty());
}

TEST_P(AgentStoreTest, PerEntryTimeoutExpires) {
    START_AGENT(agent);
    AgentClient c = client();
    auto start = std::chrono::steady_clock::now();
    c.put("vsc/short", view_of(std::string("pw")), 1s);
    c.put("vsc/long", view_of(std::string("pw")), 0s);
    // Polled with STATUS: a GET would count as use and push the expiry back.
    ASSERT_TRUE(test::wait_until([&] { return !has_entry(c.status(), "vsc/short"); }, 5s));
    EXPECT_GE(std::chrono::steady_clock::now() - start, 900ms);
    EXPECT_FALSE(c.get("vsc/short").has_value());
    EXPECT_TRUE(c.get("vsc/long").has_value());
    EXPECT_NE(agent->err().find("locked vsc/short (timeout)"), std::string::npos);
}

TEST_P(AgentStoreTest, IdleTimeoutExpiresAndUseResetsIt) {
    START_AGENT(agent, {"--idle-timeout", "2s"});
    AgentClient c = client();
    c.put("vsc/used", view_of(std::string("a")), 0s);
    c.put("vsc/touched", view_of(std::string("b")), 0s);
    c.put("vsc/idle", view_of(std::string("c")), 0s);
    auto st = c.status();
    ASSERT_EQ(st.size(), 3u);
    EXPECT_LE(st[0].expires_in, 2s);

    auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < 3500ms) {
        EXPECT_TRUE(c.get("vsc/used").has_value());
        c.touch("vsc/touched");
        std::this_thread::sleep_for(400ms);
    }
    st = c.status();
    EXPECT_TRUE(has_entry(st, "vsc/used"));
    EXPECT_TRUE(has_entry(st, "vsc/touched"));
    EXPECT_FALSE(has_entry(st, "vsc/idle"));

    // Left alone, the rest goes too.
    EXPECT_TRUE(test::wait_until([&] { return c.status().empty(); }, 4s));
}

TEST_P(AgentStoreTest, WatcherSeesUnlocksLocksExpiryAndAgentExit) {
    START_AGENT(agent);
    AgentClient c = client();
    c.put("vsc/before", view_of(std::string("x")), 0s);

    EventLog events;
    AgentWatcher watcher(socket(), [&](const std::string& t, bool u) { events.add(t, u); });
    ASSERT_TRUE(events.wait_for("vsc/before", true, 5s)) << events.dump();

    c.put("vsc/brief", view_of(std::string("y")), 1s);
    EXPECT_TRUE(events.wait_for("vsc/brief", true, 5s)) << events.dump();
    EXPECT_TRUE(events.wait_for("vsc/brief", false, 5s)) << events.dump();

    c.lock("vsc/before");
    EXPECT_TRUE(events.wait_for("vsc/before", false, 5s)) << events.dump();

    c.put("card/K", view_of(std::string("z")), 0s);
    EXPECT_TRUE(events.wait_for("card/K", true, 5s)) << events.dump();
    agent->kill(SIGTERM);
    ASSERT_TRUE(agent->wait(10s));
    EXPECT_TRUE(events.wait_for("card/K", false, 5s)) << events.dump();

    // The watcher reconnects to a new agent on the same socket.
    auto again = start_agent();
    ASSERT_TRUE(again->running());
    c.put("vsc/after", view_of(std::string("w")), 0s);
    EXPECT_TRUE(events.wait_for("vsc/after", true, 5s)) << events.dump();
}

TEST_P(AgentStoreTest, SecretNeverInEnvironmentArgumentsOrLog) {
    START_AGENT(agent);
    const std::string secret = "Zq8-marker-secret-77";
    AgentClient c = client();
    c.put("vsc/marked", view_of(secret), 0s);
    EXPECT_EQ(text_of(*c.get("vsc/marked")), secret);
    std::string proc = "/proc/" + std::to_string(agent->pid());
    EXPECT_EQ(test::read_text(proc + "/environ").find(secret), std::string::npos);
    EXPECT_EQ(test::read_text(proc + "/cmdline").find(secret), std::string::npos);
    agent->kill(SIGTERM);
    ASSERT_TRUE(agent->wait(10s));
    EXPECT_EQ(agent->exit_code(), 0);
    std::string log = agent->err();
    EXPECT_NE(log.find("vsc/marked"), std::string::npos) << log;  // targets are logged...
    EXPECT_EQ(log.find(secret), std::string::npos) << log;        // ...secrets never
}

TEST_P(AgentStoreTest, ServesManyClientsDespiteStalledAndGarbageClients) {
    START_AGENT(agent);
    // A client that sends half a frame and then nothing must not block anybody.
    int stalled = raw_connect(socket());
    ASSERT_GE(stalled, 0);
    SecureBytes half = agent::encode(agent::request(agent::Op::Status));
    ASSERT_EQ(::write(stalled, half.data(), 3), 3);
    // A client that never reads its events must not block anybody either.
    int deaf = raw_connect(socket());
    ASSERT_GE(deaf, 0);
    agent::write_all(deaf, agent::encode(agent::request(agent::Op::Watch)));

    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            AgentClient c = client();
            for (int i = 0; i < 40; ++i) {
                std::string target = "vsc/t" + std::to_string(t) + "-" + std::to_string(i % 5);
                std::string secret = "s" + std::to_string(t * 1000 + i);
                try {
                    c.put(target, view_of(secret), 0s);
                    auto got = c.get(target);
                    if (!got || text_of(*got) != secret) ++failures;
                    if (i % 3 == 0) c.forget(target);
                } catch (const Error&) {
                    ++failures;
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures, 0);

    // Garbage: an absurd frame length gets an error reply and the connection is closed.
    int junk = raw_connect(socket());
    ASSERT_GE(junk, 0);
    const unsigned char bad[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};
    ASSERT_EQ(::write(junk, bad, sizeof bad), static_cast<ssize_t>(sizeof bad));
    bool eof = false;
    std::string reply = read_some(junk, 5s, eof);
    EXPECT_TRUE(eof);
    ASSERT_GE(reply.size(), 6u);
    EXPECT_EQ(static_cast<unsigned char>(reply[5]), static_cast<unsigned char>(agent::Op::Fail));
    ::close(junk);

    // A frame with an unknown opcode too.
    junk = raw_connect(socket());
    const unsigned char unknown[] = {0, 0, 0, 2, agent::kVersion, 0x42};
    ASSERT_EQ(::write(junk, unknown, sizeof unknown), static_cast<ssize_t>(sizeof unknown));
    reply = read_some(junk, 5s, eof);
    EXPECT_TRUE(eof);
    ::close(junk);

    EXPECT_TRUE(client().reachable());
    ::close(stalled);
    ::close(deaf);
    EXPECT_TRUE(agent->running());
}

TEST_P(AgentStoreTest, KeysAreInvisibleToOtherProcesses) {
    START_AGENT(agent);
    client().put("vsc/invisible-marker", view_of(std::string("pw")), 0s);
    // With the kernel store the key is possessor-only: not even listed for this process of
    // the same user; with the memory store it is not in the kernel at all.
    std::string keys = test::read_text("/proc/keys");
    EXPECT_EQ(keys.find("vsc/invisible-marker"), std::string::npos) << keys;
}

INSTANTIATE_TEST_SUITE_P(Stores, AgentStoreTest, ::testing::Values("memory", "keyring"),
                         [](const auto& info) { return info.param; });

// ---- Command line, socket handling, access control --------------------------------------

class AgentCliTest : public ::testing::Test, public AgentFixture {};

TEST_F(AgentCliTest, HelpAndVersion) {
    auto help = test::run("vscard-agent", {"--help"});
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_NE(help.out.find("--socket"), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("--idle-timeout"), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("VSCARD_AGENT_STORE=memory"), std::string::npos) << help.out;
    auto version = test::run("vscard-agent", {"--version"});
    EXPECT_EQ(version.exit_code, 0);
    EXPECT_EQ(version.out, std::string("vscard-agent ") + kVersion + "\n");
}

TEST_F(AgentCliTest, BadArgumentsFailWithOneLine) {
    for (std::vector<std::string> args : {std::vector<std::string>{"--idle-timeout", "5x"},
                                          {"--idle-timeout", "0"},
                                          {"--idle-timeout", ""},
                                          {"--frobnicate"},
                                          {"extra"}}) {
        args.push_back("--socket");
        args.push_back(socket().string());
        auto r = test::run("vscard-agent", args, {}, 10s);
        EXPECT_NE(r.exit_code, 0) << args[0];
        EXPECT_FALSE(r.timed_out);
        EXPECT_EQ(count_lines(r.err), 1u) << r.err;
        EXPECT_EQ(r.err.rfind("vscard-agent: ", 0), 0u) << r.err;
        EXPECT_FALSE(std::filesystem::exists(socket()));
    }
    auto r = test::run("vscard-agent", {"--idle-timeout", "5x", "--socket", socket().string()});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("--idle-timeout"), std::string::npos) << r.err;

    ProcessOptions bad_store;
    bad_store.env["VSCARD_AGENT_STORE"] = "floppy";
    r = test::run("vscard-agent", {"--socket", socket().string()}, bad_store, 10s);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
}

TEST_F(AgentCliTest, RefusesASecondAgentOnTheSameSocket) {
    auto first = start({}, "memory");
    ASSERT_TRUE(first->running()) << first->err();
    client().put("vsc/kept", view_of(std::string("pw")), 0s);

    auto second = test::run("vscard-agent", {"--socket", socket().string()}, {}, 10s);
    EXPECT_NE(second.exit_code, 0);
    EXPECT_FALSE(second.timed_out);
    EXPECT_NE(second.err.find("another vscard-agent is already listening on " + socket().string()),
              std::string::npos)
        << second.err;
    EXPECT_EQ(count_lines(second.err), 1u) << second.err;
    // The first one is untouched and keeps its secret.
    EXPECT_TRUE(first->running());
    EXPECT_TRUE(client().get("vsc/kept").has_value());
}

TEST_F(AgentCliTest, RemovesAStaleSocketButNotOtherFiles) {
    std::filesystem::create_directories(socket().parent_path());
    ::chmod(socket().parent_path().c_str(), 0700);
    int fd = listening_socket(socket());
    ASSERT_GE(fd, 0);
    ::close(fd);  // the file stays, nobody listens: what a crashed agent leaves behind
    auto agent = start({}, "memory");
    ASSERT_TRUE(agent->running()) << agent->err();
    EXPECT_NE(agent->err().find("removed stale socket"), std::string::npos) << agent->err();
    agent.reset();

    std::filesystem::remove(socket());
    { std::ofstream(socket()) << "not a socket"; }
    auto r = test::run("vscard-agent", {"--socket", socket().string()}, {}, 10s);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("not a socket"), std::string::npos) << r.err;
    EXPECT_EQ(test::read_text(socket()), "not a socket");
}

TEST_F(AgentCliTest, RefusesASharedSocketDirectory) {
    TempDir shared;
    ::chmod(shared.path().c_str(), 01777);
    auto r = test::run("vscard-agent", {"--socket", (shared / "agent.sock").string()}, {}, 10s);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("shared"), std::string::npos) << r.err;
    struct stat st {};
    ASSERT_EQ(::stat(shared.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 01777u) << "the shared directory must be left as it was";
}

TEST_F(AgentCliTest, SocketIs0600InA0700Directory) {
    socket_ = dir() / "deeper" / "vscard" / "agent.sock";
    auto agent = start({}, "memory");
    ASSERT_TRUE(agent->running()) << agent->err();
    struct stat st {};
    ASSERT_EQ(::stat(socket().c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat(socket().parent_path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);

    // An existing directory open to others is tightened.
    agent.reset();
    ::chmod(socket().parent_path().c_str(), 0755);
    agent = start({}, "memory");
    ASSERT_TRUE(agent->running()) << agent->err();
    ASSERT_EQ(::stat(socket().parent_path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(AgentCliTest, DefaultSocketComesFromTheEnvironment) {
    std::filesystem::path runtime = dir() / "xdg";
    std::filesystem::create_directory(runtime);
    ProcessOptions o;
    o.env["XDG_RUNTIME_DIR"] = runtime.string();
    o.env["VSCARD_AGENT_STORE"] = "memory";
    o.unset_env = {"VSCARD_AGENT"};
    {
        Process agent("vscard-agent", {}, o);
        AgentClient c(runtime / "vscard" / "agent.sock");
        ASSERT_TRUE(test::wait_until([&] { return c.reachable(); }, 10s)) << agent.err();
    }
    o.env["VSCARD_AGENT"] = (dir() / "env.sock").string();
    Process agent("vscard-agent", {}, o);
    AgentClient c(dir() / "env.sock");
    ASSERT_TRUE(test::wait_until([&] { return c.reachable(); }, 10s)) << agent.err();
}

TEST_F(AgentCliTest, TerminationSignalsWipeAndRemoveTheSocket) {
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
        auto agent = start({}, "memory");
        ASSERT_TRUE(agent->running()) << agent->err();
        client().put("vsc/x", view_of(std::string("pw")), 0s);
        agent->kill(sig);
        ASSERT_TRUE(agent->wait(10s));
        EXPECT_EQ(agent->exit_code(), 0) << sig;
        EXPECT_FALSE(std::filesystem::exists(socket())) << sig;
        EXPECT_NE(agent->err().find("wiped 1 secret(s)"), std::string::npos) << agent->err();
    }
}

TEST_F(AgentCliTest, SocketActivation) {
    std::filesystem::path activated = dir() / "activated.sock";
    int fd = listening_socket(activated);
    ASSERT_GE(fd, 0);
    ProcessOptions o;
    o.fds = {{fd, 3}};
    o.env["LISTEN_FDS"] = "1";
    o.env["LISTEN_FDNAMES"] = "vscard-agent.socket";
    o.env["VSCARD_AGENT_STORE"] = "memory";
    // LISTEN_PID must be the agent's own pid: the shell passes its pid on through exec.
    Process agent("sh",
                  {"-c", "LISTEN_PID=$$ exec \"$0\" \"$@\"", test::bin("vscard-agent").string(),
                   "--socket", socket().string()},
                  o);
    ::close(fd);
    AgentClient c(activated);
    ASSERT_TRUE(test::wait_until([&] { return c.reachable(); }, 10s)) << agent.err();
    c.put("vsc/act", view_of(std::string("pw")), 0s);
    EXPECT_TRUE(c.get("vsc/act").has_value());
    EXPECT_FALSE(std::filesystem::exists(socket())) << "bound its own socket despite activation";
    EXPECT_NE(agent.err().find("socket activation"), std::string::npos) << agent.err();

    agent.kill(SIGTERM);
    ASSERT_TRUE(agent.wait(10s));
    EXPECT_EQ(agent.exit_code(), 0);
    EXPECT_TRUE(std::filesystem::exists(activated)) << "the socket file belongs to systemd";
}

TEST_F(AgentCliTest, ActivationForAnotherProcessIsIgnored) {
    ProcessOptions o;
    o.env["LISTEN_FDS"] = "1";
    o.env["LISTEN_PID"] = "1";
    auto agent = start({}, "memory", o);
    ASSERT_TRUE(agent->running()) << agent->err();
    EXPECT_TRUE(std::filesystem::exists(socket()));
}

TEST_F(AgentCliTest, FallsBackToMemoryWhereTheKernelRefusesKeyrings) {
    if (kAuditArch == 0) GTEST_SKIP() << "no seccomp filter for this architecture";
    ProcessOptions o;
    o.in_child = forbid_keyrings;
    auto agent = start({}, "", o);
    ASSERT_TRUE(agent->running()) << agent->err();
    EXPECT_NE(agent->err().find("secret store: locked memory of the agent (kernel keyring "
                                "unavailable: keyctl_join_session_keyring: Function not "
                                "implemented)"),
              std::string::npos)
        << agent->err();
    AgentClient c = client();
    c.put("vsc/fallback", view_of(std::string("pw")), 0s);
    EXPECT_EQ(text_of(*c.get("vsc/fallback")), "pw");
    agent.reset();

    // Asking for the kernel store explicitly fails there, with one line and no socket left.
    std::filesystem::remove(socket());
    o.env["VSCARD_AGENT_STORE"] = "keyring";
    auto r = test::run("vscard-agent", {"--socket", socket().string()}, o, 10s);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("the kernel refuses keyrings here"), std::string::npos) << r.err;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_FALSE(std::filesystem::exists(socket()));
}

TEST_F(AgentCliTest, ClientGivesUpOnAHungAgent) {
    std::filesystem::path hung = dir() / "hung.sock";
    int fd = listening_socket(hung);  // accepts connections into the backlog, never answers
    ASSERT_GE(fd, 0);
    AgentClient c(hung);
    auto start = std::chrono::steady_clock::now();
    try {
        c.status();
        FAIL() << "status() returned from a silent agent";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Unavailable) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, 15s);
    ::close(fd);
}

TEST_F(AgentCliTest, ClientExplainsHowToStartTheAgent) {
    try {
        client().status();
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Unavailable);
        EXPECT_NE(std::string(e.what()).find("cannot reach vscard-agent at " + socket().string()),
                  std::string::npos)
            << e.what();
        EXPECT_NE(std::string(e.what()).find("systemctl --user start vscard-agent.socket"),
                  std::string::npos);
    }
}

// Another uid cannot get through the 0700 directory...
TEST_F(AgentCliTest, OtherUidIsBlockedByTheDirectory) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to another uid";
    ::chmod(dir().path().c_str(), 0711);
    auto agent = start({}, "memory");
    ASSERT_TRUE(agent->running()) << agent->err();
    std::filesystem::path sock = socket();
    int rc = as_nobody([&] {
        int fd = raw_connect(sock);
        if (fd >= 0) return 12;
        return errno == EACCES ? 10 : 11;
    });
    EXPECT_EQ(rc, 10) << "expected EACCES on connect";
}

// ...and even with the file system opened up, SO_PEERCRED turns it away without an answer.
TEST_F(AgentCliTest, OtherUidIsRefusedByPeerCredentials) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to another uid";
    ::chmod(dir().path().c_str(), 0711);
    auto agent = start({}, "memory");
    ASSERT_TRUE(agent->running()) << agent->err();
    client().put("vsc/private", view_of(std::string("pw")), 0s);
    ::chmod(socket().parent_path().c_str(), 0711);
    ::chmod(socket().c_str(), 0666);

    std::filesystem::path sock = socket();
    SecureBytes get = agent::encode(agent::request(agent::Op::Get, "vsc/private"));
    int rc = as_nobody([&] {
        int fd = raw_connect(sock);
        if (fd < 0) return 10;
        if (::send(fd, get.data(), get.size(), MSG_NOSIGNAL) < 0 && errno != EPIPE) return 11;
        bool eof = false;
        std::string reply = read_some(fd, 5s, eof);
        if (!reply.empty()) return 12;  // answered: the check failed
        return eof ? 0 : 13;            // 13: kept open without answer
    });
    EXPECT_EQ(rc, 0);
    EXPECT_TRUE(test::wait_until(
        [&] { return agent->err().find("refused a client of uid 65534") != std::string::npos; },
        5s))
        << agent->err();

    // The same through the client library: reported as unavailable, nothing leaks.
    rc = as_nobody([&] {
        try {
            AgentClient(sock).get("vsc/private");
            return 1;
        } catch (const Error& e) {
            return e.kind() == ErrorKind::Unavailable ? 0 : 2;
        }
    });
    EXPECT_EQ(rc, 0);
    EXPECT_TRUE(client().get("vsc/private").has_value());
}

// Running as a normal user, the agent is not dumpable: the kernel then gives its /proc files
// to root, so the user's other processes cannot read its memory or attach to it.
TEST_F(AgentCliTest, AgentIsNotDumpable) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to start the agent as another uid";
    ::chmod(dir().path().c_str(), 0711);
    std::filesystem::path run = dir() / "nobody";
    std::filesystem::create_directory(run);
    ASSERT_EQ(::chown(run.c_str(), kNobody, kNobody), 0);
    ::chmod(run.c_str(), 0700);
    ProcessOptions o;
    o.env["VSCARD_AGENT_STORE"] = "memory";
    o.env["HOME"] = run.string();
    Process agent("setpriv",
                  {"--reuid=65534", "--regid=65534", "--clear-groups", "--",
                   test::bin("vscard-agent").string(), "--socket", (run / "agent.sock").string()},
                  o);
    ASSERT_TRUE(test::wait_until(
        [&] { return std::filesystem::exists(run / "agent.sock") || !agent.running(); }, 10s));
    ASSERT_TRUE(agent.running()) << agent.err();
    std::string status = test::read_text("/proc/" + std::to_string(agent.pid()) + "/status");
    ASSERT_NE(status.find("Uid:\t65534"), std::string::npos) << status;
    struct stat st {};
    ASSERT_EQ(::stat(("/proc/" + std::to_string(agent.pid()) + "/mem").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 0u) << "a dumpable process would own its /proc files";
    agent.kill(SIGTERM);
    ASSERT_TRUE(agent.wait(10s));
    EXPECT_EQ(agent.exit_code(), 0) << agent.err();
}

}  // namespace
}  // namespace vscard
