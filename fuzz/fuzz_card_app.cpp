// A hostile or broken card: the PKCS#15 application (open, PIN, listing and reading every
// area, one write) against a formatted emulated card whose answers the input corrupts. Each
// 4-byte record of the input picks an answer (by number), a byte in it and a value to XOR in.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string_view>

#include "card/emu_image.hpp"
#include "card/emulator.hpp"
#include "card/iso7816.hpp"
#include "card/personalize.hpp"
#include "error.hpp"
#include "fuzz_util.hpp"
#include "pkcs15/card_app.hpp"

namespace {

using namespace vscard;
using namespace vscard::card;

constexpr std::string_view kPin = "1234";

class Link : public Transmitter {
public:
    explicit Link(Emulator& e) : emu_(e) {}
    Bytes transmit(ByteView command) override {
        Bytes answer = emu_.process(command);
        auto [first, last] = corruptions_.equal_range(sent_++);
        for (auto it = first; it != last; ++it) {
            const auto [at, value] = it->second;
            if (at < answer.size())
                answer[at] ^= value;
            else if (value & 0x80)
                answer.resize(value & 0x7F);  // a truncated answer
        }
        return answer;
    }
    // Answer N gets byte AT xor VALUE.
    void corrupt(std::size_t n, std::size_t at, std::uint8_t value) {
        corruptions_.emplace(n, std::pair{at, value});
    }

private:
    Emulator& emu_;
    std::size_t sent_ = 0;
    std::multimap<std::size_t, std::pair<std::size_t, std::uint8_t>> corruptions_;
};

const emu::CardImage& formatted() {
    static const emu::CardImage image = [] {
        Emulator e(emu::CardImage::blank(16 * 1024));
        Link link(e);
        EmulatorPersonalizer p;
        pkcs15::FormatOptions options;
        options.caps = caps_from_atr(e.atr());
        pkcs15::CardApp app = pkcs15::format(link, p, "Fuzz card", view_of(kPin), options);
        app.verify_pin(view_of(kPin));
        app.write(pkcs15::Area::Public, "dir/public", view_of(std::string_view("public")));
        app.write(pkcs15::Area::Private, "private", view_of(std::string_view("private")));
        return e.image().clone();
    }();
    return image;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    Emulator emu(formatted().clone());
    Link link(emu);
    while (!in.empty()) {
        const std::size_t n = in.byte();
        const std::size_t at = in.u16();
        link.corrupt(n, at, in.byte());
    }
    try {
        pkcs15::OpenOptions options;
        options.caps = caps_from_atr(emu.atr());
        pkcs15::CardApp app = pkcs15::CardApp::open(link, options);
        app.serial();
        app.pin_status();
        app.verify_pin(view_of(kPin));
        for (auto area : {pkcs15::Area::Public, pkcs15::Area::Private, pkcs15::Area::Vscard})
            for (const auto& f : app.list(area))
                if (!f.is_folder()) app.read(area, f.label);
        app.write(pkcs15::Area::Private, "new", view_of(std::string_view("new content")));
    } catch (const Error&) {
    }
    return 0;
}
