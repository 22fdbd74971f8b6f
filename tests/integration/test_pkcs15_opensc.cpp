// The PKCS#15 structure vscard writes, checked by a third party: a card image formatted and
// filled in-process (pkcs15::format and CardApp over the emulator), then served by vscard-emu
// behind a private pcscd, and read with OpenSC's pkcs15-tool and opensc-explorer.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <regex>
#include <sstream>

#include "card/apdu.hpp"
#include "card/emu_image.hpp"
#include "card/emulator.hpp"
#include "card/iso7816.hpp"
#include "card/personalize.hpp"
#include "harness.hpp"
#include "pcsc_rig.hpp"
#include "pkcs15/card_app.hpp"

namespace vscard::test {
namespace {

using pkcs15::Area;

#define SKIP_WITHOUT_PCSC()                                          \
    do {                                                             \
        if (auto why = pcsc_rig_unavailable()) GTEST_SKIP() << *why; \
    } while (0)

constexpr std::string_view kPin = "4711";

ByteView bv(std::string_view s) {
    return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

class Link : public card::Transmitter {
public:
    explicit Link(card::Emulator& e) : e_(e) {}
    Bytes transmit(ByteView c) override { return e_.process(c); }

private:
    card::Emulator& e_;
};

struct Object {
    Area area;
    std::string label;
    std::string content;
};

const std::vector<Object>& objects() {
    static const std::vector<Object> list{
        {Area::Public, "hello.txt", "Hello from vscard\n"},
        {Area::Public, "docs/readme.md", std::string(700, 'r') + "\nend\n"},
        {Area::Public, "big.bin", std::string(3000, 'b')},
        {Area::Private, "secret/diary.txt", "Dear diary, the PIN is not here.\n"},
    };
    return list;
}

// An emulator card image formatted by vscard and holding objects(); returns its serial.
std::string write_image(const std::filesystem::path& path) {
    card::Emulator e(card::emu::CardImage::blank());
    Link link(e);
    card::EmulatorPersonalizer p;
    pkcs15::FormatOptions o;
    o.caps = card::caps_from_atr(e.atr());
    pkcs15::CardApp app = pkcs15::format(link, p, "OpenSC check", bv(kPin), o);
    app.verify_pin(bv(kPin));
    for (const auto& obj : objects()) app.write(obj.area, obj.label, bv(obj.content));
    app.mkdir(Area::Public, "empty-folder");
    app.write(Area::Vscard, "family-key", bv("not a user file"));
    card::emu::save_image(path, e.image());
    return app.serial();
}

// Data objects as `pkcs15-tool --list-data-objects` prints them: label -> private flag.
std::map<std::string, bool> listed(const std::string& out) {
    std::map<std::string, bool> m;
    std::istringstream in(out);
    std::string line, label;
    static const std::regex label_re(R"re(^Data object '(.*)'\s*$)re");
    while (std::getline(in, line)) {
        std::smatch mt;
        if (std::regex_match(line, mt, label_re)) {
            label = mt[1];
            m[label] = false;
        } else if (!label.empty() && line.find("Auth ID") != std::string::npos) {
            m[label] = true;
        }
    }
    return m;
}

TEST(Pkcs15OpenSc, ListsAndReadsExactlyOurObjects) {
    SKIP_WITHOUT_PCSC();
    PcscRig rig;
    const auto image = rig.dir() / "card.img";
    const std::string serial = write_image(image);
    rig.start_card(0, image);

    RunResult info = rig.run_in_rig("pkcs15-tool", {"--reader", "0", "--list-info"});
    EXPECT_EQ(info.exit_code, 0) << info.out << info.err;
    EXPECT_NE(info.out.find(serial), std::string::npos) << info.out;
    EXPECT_NE(info.out.find("OpenSC check"), std::string::npos) << info.out;

    RunResult list = rig.run_in_rig("pkcs15-tool", {"--reader", "0", "--list-data-objects"});
    ASSERT_EQ(list.exit_code, 0) << list.out << list.err;
    std::map<std::string, bool> expect;
    for (const auto& o : objects()) expect[o.label] = o.area == Area::Private;
    expect["empty-folder/"] = false;
    expect["family-key"] = true;  // vscard's own object: listed by OpenSC as any other
    EXPECT_EQ(listed(list.out), expect) << list.out;
    EXPECT_NE(list.out.find("vscard"), std::string::npos) << list.out;  // its application

    for (const auto& o : objects()) {
        const auto out = rig.dir() / "out.bin";
        std::filesystem::remove(out);
        std::vector<std::string> args{"--reader", "0",        "--read-data-object",
                                      o.label,    "--output", out.string()};
        if (o.area == Area::Private) {
            // Without the PIN OpenSC gets nothing.
            ProcessOptions no_tty;
            no_tty.stdin_data = "";
            RunResult denied = rig.run_in_rig("pkcs15-tool", args, 20s, no_tty);
            EXPECT_FALSE(std::filesystem::exists(out) && read_text(out) == o.content)
                << denied.out << denied.err;
            args.insert(args.end(), {"--verify-pin", "--pin", std::string(kPin)});
        }
        RunResult r = rig.run_in_rig("pkcs15-tool", args);
        EXPECT_EQ(r.exit_code, 0) << o.label << "\n" << r.out << r.err;
        EXPECT_EQ(read_text(out), o.content) << o.label << "\n" << r.out << r.err;
    }
}

TEST(Pkcs15OpenSc, OpenscExplorerSeesTheStructure) {
    SKIP_WITHOUT_PCSC();
    PcscRig rig;
    const auto image = rig.dir() / "card.img";
    write_image(image);
    rig.start_card(0, image);
    ProcessOptions in;
    in.stdin_data =
        "info 2F00\ncat 2F00\ncd 5015\ninfo 5031\ninfo 4405\ncat 5032\ninfo 6000\ncat 6000\n"
        "cd ..\ncd aid:A000000063504B43532D3135\ninfo\n";
    RunResult x = rig.run_in_rig("opensc-explorer", {"--reader", "0"}, 20s, in);
    EXPECT_EQ(x.exit_code, 0) << x.out << x.err;
    for (const char* path : {"3F00/2F00", "3F00/5015/5031", "3F00/5015/4405", "3F00/5015/6000"})
        EXPECT_NE(x.out.find(std::string("File path:               ") + path), std::string::npos)
            << path << "\n"
            << x.out;
    EXPECT_NE(x.out.find("Dedicated File  ID 5015"), std::string::npos) << x.out;
    EXPECT_NE(x.out.find("80 0C 4F 70 65 6E 53 43"), std::string::npos) << x.out;  // the label
    EXPECT_NE(x.out.find("Hello from vscar"), std::string::npos) << x.out;  // 6000, 16 a line
    EXPECT_NE(x.out.find(".vscard"), std::string::npos) << x.out;           // EF.DIR's application
}

TEST(Pkcs15OpenSc, PinTriesAndVerifyThroughOpenSc) {
    SKIP_WITHOUT_PCSC();
    PcscRig rig;
    const auto image = rig.dir() / "card.img";
    write_image(image);
    rig.start_card(0, image);
    auto tries = [&] { return card::emu::load_image(image).pins.at(0x81).tries_left; };
    RunResult bad =
        rig.run_in_rig("pkcs15-tool", {"--reader", "0", "--verify-pin", "--pin", "9999"});
    EXPECT_NE(bad.exit_code, 0) << bad.out << bad.err;
    EXPECT_EQ(tries(), 2);  // the image is saved after every change
    RunResult pins = rig.run_in_rig("pkcs15-tool", {"--reader", "0", "--list-pins"});
    EXPECT_EQ(pins.exit_code, 0) << pins.out << pins.err;
    EXPECT_NE(pins.out.find("User PIN"), std::string::npos) << pins.out;
    EXPECT_NE(pins.out.find("Path           : 3f005015"), std::string::npos) << pins.out;
    RunResult good = rig.run_in_rig("pkcs15-tool",
                                    {"--reader", "0", "--verify-pin", "--pin", std::string(kPin)});
    EXPECT_EQ(good.exit_code, 0) << good.out << good.err;
    EXPECT_EQ(tries(), 3);
    // Our reader sees the card as before OpenSC's sessions.
    EXPECT_EQ(rig.stop_card(0), 0);
    card::Emulator e(card::emu::load_image(image));
    Link link(e);
    pkcs15::OpenOptions o;
    o.caps = card::caps_from_atr(e.atr());
    pkcs15::CardApp app = pkcs15::CardApp::open(link, o);
    EXPECT_EQ(app.pin_status().tries_left, 3);
    EXPECT_EQ(app.list(Area::Public).size(), 4u);
}

}  // namespace
}  // namespace vscard::test
