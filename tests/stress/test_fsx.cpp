// vscard-fsx on a real mount: seeded random operations on public/ and private/, mirrored on
// a plain folder and compared after every step.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "rig.hpp"
#include "stress_env.hpp"

namespace vscard::test {
namespace {

class FsxTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        rig.create_vsc("fsx", "pw-fsx");
        mnt = rig.mount();
        rig.unlock("fsx", "pw-fsx");
    }
    Rig rig;
    std::filesystem::path mnt;
};

// VSCARD_FSX_OPS operations (default 1,000) for each of VSCARD_FSX_SEEDS seeds (default 3),
// starting at VSCARD_STRESS_SEED (default: fresh). After a remount every run's folder still
// equals its reference: names, kinds, modes and content.
TEST_P(FsxTest, RandomOperationsMatchAPlainFolder) {
    const long ops = env_number("VSCARD_FSX_OPS", 1000);
    const long seeds = env_number("VSCARD_FSX_SEEDS", 3);
    const unsigned long first = stress_seed();
    std::vector<std::pair<std::string, std::unique_ptr<TempDir>>> runs;  // folder, reference
    for (long i = 0; i < seeds; ++i) {
        std::string seed = std::to_string(first + static_cast<unsigned long>(i));
        SCOPED_TRACE("seed " + seed);
        auto dir = mnt / "vsc/fsx" / GetParam() / ("run" + seed);
        std::filesystem::create_directory(dir);
        runs.emplace_back("run" + seed, std::make_unique<TempDir>("vscard-fsx-ref"));
        const TempDir& ref = *runs.back().second;  // a plain folder ($TMPDIR, often tmpfs)
        auto start = std::chrono::steady_clock::now();
        auto r =
            run("vscard-fsx",
                {"--seed", seed, "--ops", std::to_string(ops), "--max-open", "5", "--max-size",
                 "131072", "--fuse-hidden", "--dir", dir.string(), "--ref", ref.path().string()},
                {}, 600s);
        auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start);
        EXPECT_EQ(r.exit_code, 0) << r.out << r.err << read_text(rig.log("mnt"));
        std::cout << r.out << "  (" << secs.count() << " s on " << GetParam() << ")\n";
        ASSERT_TRUE(rig.daemon(mnt).running()) << read_text(rig.log("mnt"));
    }
    rig.unmount(mnt);
    mnt = rig.mount({}, "again");
    for (const auto& [name, ref] : runs) {
        SCOPED_TRACE(name + " after a remount");
        auto r = rig.sh("A=$M/vsc/fsx/" + GetParam() + "/" + name + " R=" + ref->path().string() +
                            R"SH(
list() { (cd "$1" && find . -mindepth 1 -printf '%P %y %m\n' | sort); }  # name kind mode
diff <(list "$R") <(list "$A")
diff -r "$R" "$A"
)SH",
                        mnt);
        EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    }
    auto check = rig.ctl({"check", "vsc/fsx", "--password-stdin"}, "pw-fsx\n");
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

INSTANTIATE_TEST_SUITE_P(Areas, FsxTest, ::testing::Values("public", "private"));

}  // namespace
}  // namespace vscard::test
