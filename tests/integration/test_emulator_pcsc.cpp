// vscard-emu behind a private pcscd + vpcd, checked with a third-party client (OpenSC's
// opensc-tool): readers, ATR, APDUs, persistence, insertion and removal on command.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

#include "card/apdu.hpp"
#include "card/emu_image.hpp"
#include "card/emulator.hpp"
#include "harness.hpp"
#include "pcsc_rig.hpp"

namespace vscard::test {
namespace {

using card::ResponseApdu;

#define SKIP_WITHOUT_PCSC()                                          \
    do {                                                             \
        if (auto why = pcsc_rig_unavailable()) GTEST_SKIP() << *why; \
    } while (0)

// The responses opensc-tool printed for its -s commands, in order.
std::vector<ResponseApdu> responses(const std::string& out) {
    std::vector<ResponseApdu> list;
    static const std::regex received(
        R"(Received \(SW1=0x([0-9A-Fa-f]{2}), SW2=0x([0-9A-Fa-f]{2})\))");
    std::istringstream lines(out);
    std::string line;
    bool in_data = false;
    while (std::getline(lines, line)) {
        std::smatch m;
        if (std::regex_search(line, m, received)) {
            ResponseApdu r;
            r.sw = static_cast<std::uint16_t>(std::stoi(m[1], nullptr, 16) << 8 |
                                              std::stoi(m[2], nullptr, 16));
            list.push_back(r);
            in_data = line.back() == ':';
            continue;
        }
        if (line.rfind("Sending:", 0) == 0 || line.rfind("Using reader", 0) == 0) {
            in_data = false;
            continue;
        }
        if (!in_data || list.empty()) continue;
        // Hex dump: 16 "XX " columns, then the ASCII rendering.
        std::istringstream words(line.substr(0, std::min<std::size_t>(line.size(), 48)));
        std::string w;
        while (words >> w)
            if (w.size() == 2 && std::isxdigit(w[0]) && std::isxdigit(w[1]))
                list.back().data.push_back(static_cast<std::uint8_t>(std::stoi(w, nullptr, 16)));
    }
    return list;
}

// Sends APDUS (hex) in one opensc-tool session on reader SLOT.
std::vector<ResponseApdu> send(const PcscRig& rig, std::vector<std::string> apdus, int slot = 0) {
    std::vector<std::string> args{"--reader", std::to_string(slot)};
    for (auto& a : apdus) {
        args.push_back("-s");
        args.push_back(a);
    }
    RunResult r = rig.run_in_rig("opensc-tool", args);
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    auto list = responses(r.out);
    EXPECT_EQ(list.size(), apdus.size()) << r.out << r.err;
    list.resize(apdus.size());
    return list;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

TEST(EmulatorPcsc, PrivatePcscdListsItsReaders) {
    SKIP_WITHOUT_PCSC();
    PcscRig rig;
    EXPECT_EQ(rig.card_present(0), false);
    EXPECT_EQ(rig.card_present(1), false);
    EXPECT_TRUE(std::filesystem::exists(rig.socket()));
    // The system's pcscd socket (if any) is not ours.
    std::error_code ec;
    if (std::filesystem::exists("/run/pcscd/pcscd.comm", ec)) {
        EXPECT_FALSE(std::filesystem::equivalent("/run/pcscd/pcscd.comm", rig.socket(), ec));
    }
    // Inside pcscd's namespace, /run/pcscd is the rig's directory.
    RunResult r = rig.run_in_namespace("opensc-tool", {"--list-readers"});
    EXPECT_NE(r.out.find(rig.reader(0)), std::string::npos) << r.out << r.err;
}

TEST(EmulatorPcsc, AtrAndSelectOfTheMf) {
    SKIP_WITHOUT_PCSC();
    PcscRig rig;
    rig.start_card(0, rig.dir() / "card.img");
    RunResult atr = rig.run_in_rig("opensc-tool", {"--reader", "0", "--atr"});
    EXPECT_NE(atr.out.find(lower(card::to_hex(card::emulator_atr({}), ":"))), std::string::npos)
        << atr.out << atr.err;
    auto r = send(rig, {"00A40000023F00", "00A4000C023F00"});
    EXPECT_EQ(r[0].sw, 0x9000);
    EXPECT_EQ(r[1].sw, 0x9000);
    EXPECT_NE(read_text(rig.card_log(0)).find("card inserted"), std::string::npos);
}

TEST(EmulatorPcsc, FilesPersistAcrossEmulatorRuns) {
    SKIP_WITHOUT_PCSC();
    PcscRig rig;
    auto image = rig.dir() / "card.img";
    rig.start_card(0, image);
    auto r = send(rig, {"00A4000C023F00",
                        "00E000000D620B830210018201018002 0010",  // EF 1001, 16 bytes
                        "00D6000008DEADBEEF01020304", "00B0000008"});
    EXPECT_EQ(r[1].sw, 0x9000);
    EXPECT_EQ(r[2].sw, 0x9000);
    EXPECT_EQ(r[3].data, card::from_hex("DEADBEEF01020304"));
    EXPECT_EQ(rig.stop_card(0), 0);
    EXPECT_TRUE(rig.wait_card(0, false));

    rig.start_card(0, image);
    r = send(rig, {"00A4000C023F00", "00A4020C021001", "00B0000004", "00B0001000"});
    EXPECT_EQ(r[1].sw, 0x9000);
    EXPECT_EQ(r[2].data, card::from_hex("DEADBEEF"));
    EXPECT_EQ(r[3].sw, 0x6B00);  // past the end
    EXPECT_EQ(card::emu::load_image(image).mf->child(0x1001)->data.size(), 16u);
}

TEST(EmulatorPcsc, OpenscExplorerSeesTheStructure) {
    SKIP_WITHOUT_PCSC();
    PcscRig rig;
    rig.start_card(0, rig.dir() / "card.img");
    auto r = send(rig, {"00A4000C023F00",
                        // DF 5015 named as the PKCS#15 application, EF 4401 of 16 bytes inside
                        "00E0000017621583025015820138840CA000000063504B43532D3135",
                        "00E000000D620B8302440182010180020010", "00D6000004CAFEBABE"});
    for (const auto& x : r) EXPECT_EQ(x.sw, 0x9000);
    ProcessOptions in;
    in.stdin_data =
        "cd 5015\ninfo 4401\ncat 4401\ncd ..\ncd aid:A000000063504B43532D3135\n"
        "info\n";
    RunResult x = rig.run_in_rig("opensc-explorer", {"--reader", "0"}, 20s, in);
    EXPECT_NE(x.out.find("File size:               16 bytes"), std::string::npos) << x.out;
    EXPECT_NE(x.out.find("00000000: CA FE BA BE 00 00"), std::string::npos) << x.out;
    EXPECT_NE(x.out.find("Dedicated File  ID 5015"), std::string::npos) << x.out;
    EXPECT_NE(x.out.find("cPKCS-15"), std::string::npos) << x.out;
}

TEST(EmulatorPcsc, RemovalAndInsertionOnCommand) {
    SKIP_WITHOUT_PCSC();
    PcscRig rig;
    rig.start_card(0, rig.dir() / "card.img");
    EXPECT_EQ(rig.control(0, "status"), "inserted");
    EXPECT_EQ(rig.control(0, "remove"), "ok removed");
    EXPECT_TRUE(rig.wait_card(0, false));
    EXPECT_EQ(rig.control(0, "status"), "removed");
    EXPECT_EQ(rig.control(0, "insert"), "ok inserted");
    EXPECT_TRUE(rig.wait_card(0, true));
    EXPECT_EQ(send(rig, {"00A4000C023F00"})[0].sw, 0x9000);
    EXPECT_NE(rig.control(0, "jump").find("error"), std::string::npos);

    // SIGUSR1 toggles.
    rig.card(0)->kill(SIGUSR1);
    EXPECT_TRUE(rig.wait_card(0, false));
    rig.card(0)->kill(SIGUSR1);
    EXPECT_TRUE(rig.wait_card(0, true));
    EXPECT_TRUE(rig.card(0)->running());
}

TEST(EmulatorPcsc, SigtermRemovesTheCardAndExitsZero) {
    SKIP_WITHOUT_PCSC();
    PcscRig rig;
    rig.start_card(0, rig.dir() / "card.img");
    EXPECT_EQ(rig.stop_card(0), 0);
    EXPECT_TRUE(rig.wait_card(0, false));
    EXPECT_FALSE(std::filesystem::exists(rig.control_socket(0)));
}

TEST(EmulatorPcsc, TwoCardsInTwoReaders) {
    SKIP_WITHOUT_PCSC();
    PcscRig rig;
    rig.start_card(0, rig.dir() / "a.img");
    rig.start_card(1, rig.dir() / "b.img", {"--no-extended"});
    auto a = send(rig, {"00CA010100"}, 0);
    auto b = send(rig, {"00CA010100"}, 1);
    EXPECT_EQ(a[0].data, card::emu::load_image(rig.dir() / "a.img").serial);
    EXPECT_EQ(b[0].data, card::emu::load_image(rig.dir() / "b.img").serial);
    EXPECT_NE(a[0].data, b[0].data);
    EXPECT_EQ(rig.stop_card(1), 0);
    EXPECT_TRUE(rig.wait_card(1, false));
    EXPECT_EQ(rig.card_present(0), true);
}

TEST(EmulatorPcsc, PinFlow) {
    SKIP_WITHOUT_PCSC();
    PcscRig rig;
    rig.start_card(0, rig.dir() / "card.img");
    auto r = send(
        rig, {
                 "80240081 0D 8108 31323334FFFFFFFF 830103",  // SET PIN 81: "1234" padded, 3 tries
                 "0020008108 3132333500000000",               // wrong
                 "00200081",                                  // tries left, spends none
                 "0020008108 31323334FFFFFFFF",               // right
                 "00200081",
             });
    EXPECT_EQ(r[0].sw, 0x9000);
    EXPECT_EQ(r[1].sw, 0x63C2);
    EXPECT_EQ(r[2].sw, 0x63C2);
    EXPECT_EQ(r[3].sw, 0x9000);
    EXPECT_EQ(r[4].sw, 0x9000);
    EXPECT_EQ(card::emu::load_image(rig.dir() / "card.img").pins.at(0x81).tries_left, 3);
}

TEST(EmulatorPcsc, CardComesBackAfterPcscdRestarts) {
    SKIP_WITHOUT_PCSC();
    PcscRig rig;
    rig.start_card(0, rig.dir() / "card.img");
    rig.restart_pcscd();
    EXPECT_TRUE(rig.wait_card(0, true)) << read_text(rig.card_log(0));
    EXPECT_EQ(send(rig, {"00A4000C023F00"})[0].sw, 0x9000);
    EXPECT_TRUE(rig.card(0)->running());
}

TEST(EmulatorCli, FailsClearlyWhenVpcdIsUnreachable) {
    TempDir dir;
    auto start = std::chrono::steady_clock::now();
    // Port 1 on the loopback: nothing listens there.
    RunResult r =
        run(bin("vscard-emu").string(),
            {"--vpcd", "127.0.0.1:1", "--wait", "0.5", (dir / "card.img").string()}, {}, 10s);
    EXPECT_EQ(r.exit_code, 4) << r.err;
    EXPECT_NE(r.err.find("cannot reach vpcd at 127.0.0.1:1"), std::string::npos) << r.err;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    EXPECT_TRUE(std::filesystem::exists(dir / "card.img"));  // the blank card was made
}

TEST(EmulatorCli, DamagedImageIsRefused) {
    TempDir dir;
    auto image = dir / "card.img";
    std::ofstream(image) << "not a card image at all";
    RunResult r =
        run(bin("vscard-emu").string(), {"--vpcd", "127.0.0.1:1", image.string()}, {}, 10s);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find(image.string()), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("damaged"), std::string::npos) << r.err;
}

TEST(EmulatorCli, UsageErrorsAndHelp) {
    TempDir dir;
    auto image = (dir / "card.img").string();
    EXPECT_EQ(run(bin("vscard-emu").string(), {"--vpcd", "nowhere", image}).exit_code, 2);
    EXPECT_EQ(run(bin("vscard-emu").string(), {"--size", "12", image}).exit_code, 2);
    EXPECT_EQ(run(bin("vscard-emu").string(), {}).exit_code, 2);
    RunResult help = run(bin("vscard-emu").string(), {"--help"});
    EXPECT_EQ(help.exit_code, 0);
    for (const char* word : {"--control", "SIGUSR1", "--no-fci", "--max-le", "--no-aid-select",
                             "--no-extended", "--size", "--vpcd"})
        EXPECT_NE(help.out.find(word), std::string::npos) << word;
}

}  // namespace
}  // namespace vscard::test
