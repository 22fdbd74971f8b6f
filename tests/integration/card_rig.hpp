#pragma once
// A fixture for tests of cards in the mount: a private pcscd with emulated cards (PcscRig)
// and a vscard rig (agent, store, mounts) that follows its readers. Skips when the PC/SC rig
// cannot run here.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "pcsc_rig.hpp"
#include "rig.hpp"

namespace vscard::test {

class CardRigTest : public ::testing::Test {
protected:
    static constexpr const char* kPin = "123456";

    void SetUp() override;

    // A blank emulated card in SLOT, formatted with kPin; returns its serial.
    std::string formatted_card(int slot, std::vector<std::string> emu_args = {});

    // A formatted card in slot 0 and the mount showing it; returns the card's serial.
    std::string mounted_card();

    // vsc/SERIAL made for the card SERIAL (its PIN the password), unlocked unless UNLOCK_IT is
    // false, shown in the mount.
    void create_vsc_for(const std::string& serial, bool unlock_it = true);

    // Waits until PATH exists (or not); returns how long that took.
    std::chrono::milliseconds wait_path(const std::filesystem::path& path, bool present,
                                        std::chrono::milliseconds timeout = 10s);

    // `vscardctl unlock TARGET` with kPin.
    RunResult unlock(const std::string& target);

    RunResult sh(const std::string& script) { return rig->sh(script, mnt); }

    std::unique_ptr<PcscRig> pcsc;
    std::unique_ptr<Rig> rig;
    std::filesystem::path mnt;
};

}  // namespace vscard::test
