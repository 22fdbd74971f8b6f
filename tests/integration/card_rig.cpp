#include "card_rig.hpp"

#include <regex>

namespace vscard::test {

void CardRigTest::SetUp() {
    if (auto why = pcsc_rig_unavailable()) GTEST_SKIP() << *why;
    pcsc = std::make_unique<PcscRig>();
    rig = std::make_unique<Rig>();
    rig->use_pcsc(pcsc->client_options());
}

std::string CardRigTest::formatted_card(int slot, std::vector<std::string> emu_args) {
    pcsc->start_card(slot, pcsc->dir() / ("card" + std::to_string(slot) + ".img"),
                     std::move(emu_args));
    auto r = rig->ctl({"format", pcsc->reader(slot), "--pin-stdin"}, std::string(kPin) + "\n");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::smatch m;
    if (!std::regex_search(r.out, m, std::regex("serial ([0-9a-f]+)")))
        throw std::runtime_error("no serial in: " + r.out);
    return m[1];
}

std::string CardRigTest::mounted_card() {
    const std::string serial = formatted_card(0);
    mnt = rig->mount();
    wait_path(mnt / "card" / serial, true);
    return serial;
}

void CardRigTest::create_vsc_for(const std::string& serial, bool unlock_it) {
    auto c = rig->ctl({"create", "--for-card", serial, "--password-stdin", "--kdf-target", "20ms"},
                      std::string(kPin) + "\n");
    if (c.exit_code != 0) throw std::runtime_error("vscardctl create --for-card failed: " + c.err);
    if (unlock_it) rig->unlock(serial, kPin);
    wait_path(mnt / "vsc" / serial / "public", true);
}

std::chrono::milliseconds CardRigTest::wait_path(const std::filesystem::path& path, bool present,
                                                 std::chrono::milliseconds timeout) {
    auto start = std::chrono::steady_clock::now();
    bool ok = wait_until([&] { return std::filesystem::exists(path) == present; }, timeout);
    EXPECT_TRUE(ok) << path << (present ? " did not appear" : " did not vanish");
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
}

RunResult CardRigTest::unlock(const std::string& target) {
    return rig->ctl({"unlock", target, "--password-stdin"}, std::string(kPin) + "\n");
}

}  // namespace vscard::test
