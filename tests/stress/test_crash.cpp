// Crash safety under repetition: SIGKILL of the mount at random points of an rsync, and power
// cuts simulated on copies of the store file and its WAL. Every time the store opens,
// `vscardctl check` passes and every file holds its old or its new content.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <random>

#include "crash.hpp"
#include "rig.hpp"
#include "stress_env.hpp"

namespace vscard::test {
namespace {

using Clock = std::chrono::steady_clock;

void expect_ok(const RunResult& r) {
    EXPECT_EQ(r.exit_code, 0) << "stdout:\n" << r.out << "stderr:\n" << r.err;
}

class CrashTest : public ::testing::Test {
protected:
    void SetUp() override {
        rig.create_vsc("crash", "pw-crash");
        mnt = rig.mount();
        rig.unlock("crash", "pw-crash");
        make_versioned_tree(rig, "tree");
        std::cout << "seed " << seed << " (VSCARD_STRESS_SEED replays the kill points)\n";
    }
    // rsync of version V into AREA/tree, to completion; returns how long it took.
    std::chrono::milliseconds full_copy(const std::string& area, int v) {
        auto start = Clock::now();
        expect_ok(rig.sh("rsync -a --delete \"$T/tree/v" + std::to_string(v) +
                             "/\" \"$M/vsc/crash/" + area + "/tree/\"",
                         mnt));
        return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    }
    RunResult old_or_new(const std::string& area, const std::filesystem::path& mountpoint,
                         bool missing_ok = false) {
        return rig.sh(std::string(kOldOrNew) + "old_or_new \"$M/vsc/crash/" + area +
                          "/tree\" \"$T/tree/v1\" \"$T/tree/v2\"" + (missing_ok ? " ok" : ""),
                      mountpoint);
    }
    Rig rig;
    std::filesystem::path mnt;
    unsigned long seed = stress_seed();
    std::mt19937_64 rng{seed};
};

// VSCARD_CRASH_KILLS kills (default 10), alternating between public/ and private/, each
// while rsync replaces every file of a 1,000-file tree by its other version.
TEST_F(CrashTest, RepeatedKillsDuringRsync) {
    const long kills = env_number("VSCARD_CRASH_KILLS", 10);
    std::map<std::string, int> version;  // what each area's tree was last copied from
    std::chrono::milliseconds longest{0};
    long mid_copy = 0;  // kills that interrupted rsync
    for (std::string area : {"public", "private"}) {
        longest = std::max(longest, full_copy(area, 1));
        version[area] = 1;
    }
    std::cout << "a full copy takes up to " << longest.count() << " ms\n";
    for (long i = 0; i < kills; ++i) {
        std::string area = i % 2 ? "private" : "public";
        int next = version[area] == 1 ? 2 : 1;
        auto delay = std::chrono::milliseconds(20 + rng() % (longest.count() + 1));
        SCOPED_TRACE("kill " + std::to_string(i + 1) + " after " + std::to_string(delay.count()) +
                     " ms, " + area + ", seed " + std::to_string(seed));
        mid_copy +=
            kill_daemon_during_rsync(rig, mnt, rig.dir() / "tree" / ("v" + std::to_string(next)),
                                     mnt / "vsc/crash" / area / "tree", delay);
        mnt = remount_and_check(rig, mnt, "crash", "pw-crash");
        for (std::string a : {"public", "private"}) expect_ok(old_or_new(a, mnt));
        version[area] = next;
        if (HasFailure()) break;
    }
    std::cout << "kills done: " << kills << " (" << mid_copy << " in the middle of a copy)\n";
    if (kills > 0) {
        EXPECT_GT(mid_copy, 0) << "no kill hit rsync at work: it proves nothing";
    }
    // The survivors take a last complete copy.
    full_copy("private", 2);
    expect_ok(rig.sh("diff -r \"$T/tree/v2\" \"$M/vsc/crash/private/tree\"", mnt));
}

// Copies NAME.vsc and NAME.vsc-wal (what reached the disk; the -shm index is memory) of the
// rig's store into a fresh store folder.
std::filesystem::path snapshot(Rig& rig, const std::string& name) {
    auto dir = rig.dir() / name;
    std::filesystem::create_directory(dir);
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
    for (const char* f : {"crash.vsc", "crash.vsc-wal"})
        if (std::filesystem::exists(rig.store() / f))
            std::filesystem::copy_file(rig.store() / f, dir / f);
    return dir;
}

// Power cuts: the daemon is frozen (SIGSTOP) at random points while rsync writes, and the
// store file with its WAL is copied as a power cut would leave it. Each copy, intact and
// with its WAL cut at random offsets or its last bytes garbled (a torn last write), must
// pass `vscardctl check` and mount, with every file old or new (or, for a store set back to
// an older state, absent).
TEST_F(CrashTest, PowerCutCopiesOfStoreAndWal) {
    const long cuts = env_number("VSCARD_POWERCUT_SNAPSHOTS", 3);
    // The copies spread over about the time a whole copy takes.
    const auto gap = full_copy("private", 1).count() / std::max(1L, cuts) + 1;
    std::vector<std::filesystem::path> stores;
    {
        Process rsync("rsync",
                      {"-a", (rig.dir() / "tree/v2").string() + "/",
                       (mnt / "vsc/crash/private/tree").string() + "/"},
                      rig.options());
        for (long i = 0; i < cuts && rsync.running(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10 + rng() % gap));
            pid_t daemon = rig.daemon(mnt).pid();
            ASSERT_EQ(::kill(daemon, SIGSTOP), 0);
            stores.push_back(snapshot(rig, "cut" + std::to_string(i)));
            ::kill(daemon, SIGCONT);
        }
        ASSERT_TRUE(rsync.wait(120s));
        EXPECT_EQ(rsync.exit_code(), 0) << rsync.err();
    }
    ASSERT_FALSE(stores.empty());
    // Torn variants of each copy.
    struct Variant {
        std::filesystem::path store;
        bool older;  // may be set back to an older state
        std::string what;
    };
    std::vector<Variant> variants;
    for (std::size_t i = 0; i < stores.size(); ++i) {
        variants.push_back({stores[i], false, "intact"});
        auto wal = stores[i] / "crash.vsc-wal";
        auto size = std::filesystem::exists(wal) ? std::filesystem::file_size(wal) : 0;
        if (size == 0) continue;
        for (int k = 0; k < 2; ++k) {
            auto dir = rig.dir() / ("cut" + std::to_string(i) + "-torn" + std::to_string(k));
            std::filesystem::copy(stores[i], dir);
            auto at = rng() % size;
            if (k == 0) {
                std::filesystem::resize_file(dir / "crash.vsc-wal", at);  // cut
            } else {
                std::fstream f(dir / "crash.vsc-wal", std::ios::in | std::ios::out);
                f.seekp(static_cast<std::streamoff>(size - std::min<std::uintmax_t>(size, 3000)));
                for (int b = 0; b < 3000; ++b) f.put(static_cast<char>(rng()));  // torn tail
            }
            variants.push_back({dir, true,
                                (k == 0 ? "WAL cut at " + std::to_string(at)
                                        : std::string("last 3000 bytes of the WAL garbled")) +
                                    " (WAL of " + std::to_string(size) + " bytes)"});
        }
    }
    for (const auto& [store, older, what] : variants) {
        SCOPED_TRACE("store copy " + store.filename().string() + ": " + what + ", seed " +
                     std::to_string(seed));
        auto check = rig.ctl({"check", "vsc/crash", "--password-stdin"}, "pw-crash\n", store);
        EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
        auto m = rig.mount(store, store.filename().string() + "-mnt");
        expect_ok(old_or_new("private", m, older));
        rig.unmount(m);
    }
    std::cout << variants.size() << " store copies checked\n";
}

}  // namespace
}  // namespace vscard::test
