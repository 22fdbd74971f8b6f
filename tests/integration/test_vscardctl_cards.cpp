// vscardctl against cards in readers: a private pcscd with emulated cards (DESIGN §9).
#include <gtest/gtest.h>

#include "pcsc_rig.hpp"

namespace vscard::test {
namespace {

class VscardctlCards : public ::testing::Test {
protected:
    void SetUp() override {
        if (auto why = pcsc_rig_unavailable()) GTEST_SKIP() << *why;
        rig = std::make_unique<PcscRig>();
    }
    RunResult ctl(std::vector<std::string> args, std::optional<std::string> input = {}) {
        ProcessOptions o;
        o.stdin_data = std::move(input);
        return run("vscardctl", std::move(args), rig->client_options(o));
    }
    std::unique_ptr<PcscRig> rig;
};

TEST_F(VscardctlCards, FormatABlankCardThatOpenScThenReads) {
    rig->start_card(0, rig->dir() / "card.img");
    auto before = ctl({"readers"});
    ASSERT_EQ(before.exit_code, 0) << before.err;
    EXPECT_NE(before.out.find("0\tTest PCD 00 00\tcard "), std::string::npos) << before.out;
    EXPECT_NE(before.out.find("blank or not PKCS#15"), std::string::npos) << before.out;

    auto format = ctl({"format", "0", "--label", "Backup test", "--pin-stdin"}, "123456\n");
    ASSERT_EQ(format.exit_code, 0) << format.err;
    EXPECT_NE(format.out.find("serial "), std::string::npos) << format.out;

    auto after = ctl({"readers"});
    ASSERT_EQ(after.exit_code, 0) << after.err;
    EXPECT_NE(after.out.find("label Backup test"), std::string::npos) << after.out;

    auto info = rig->run_in_rig("pkcs15-tool", {"--list-info"});
    EXPECT_NE(info.out.find("Backup test"), std::string::npos) << info.out << info.err;

    // A card that is not blank is refused, and says so in one line.
    auto again = ctl({"format", "Test PCD 00 00", "--pin-stdin"}, "123456\n");
    EXPECT_NE(again.exit_code, 0);
    EXPECT_EQ(std::count(again.err.begin(), again.err.end(), '\n'), 1) << again.err;
}

TEST_F(VscardctlCards, UnknownReaderIsNamedInTheError) {
    auto r = ctl({"format", "7", "--pin-stdin"}, "123456\n");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("vscardctl readers"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace vscard::test
