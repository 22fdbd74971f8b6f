#pragma once
// Cards for the PKCS#15 application tests: the emulator formatted by pkcs15::format, a link
// that can pull the card out, and a snapshot of every object as a fresh session reads it.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "card/emulator.hpp"
#include "card/personalize.hpp"
#include "card_link.hpp"
#include "pkcs15/card_app.hpp"

namespace vscard::testing {

inline constexpr std::string_view kPin = "1234";

inline ByteView bv(std::string_view s) {
    return ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

inline Bytes byte_pattern(std::size_t n, std::uint8_t seed = 1) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 13 + i / 241);
    return b;
}

inline Bytes bytes_of(const WipedBytes& w) {
    return Bytes(w.begin(), w.end());
}

// A blank emulated card of CAPACITY bytes formatted with PIN kPin (label "Test card").
inline card::emu::CardImage formatted_image(std::size_t capacity = card::emu::kDefaultCapacity,
                                            pkcs15::FormatOptions options = {},
                                            card::EmulatorOptions emu_options = {}) {
    card::Emulator e(card::emu::CardImage::blank(capacity), emu_options);
    EmulatorLink link(e);
    card::EmulatorPersonalizer p;
    options.caps = card::caps_from_atr(e.atr());
    pkcs15::format(link, p, "Test card", bv(kPin), options);
    return e.image().clone();
}

// One emulated card in a reader, with an APDU log.
struct TestCard {
    card::Emulator emu;
    EmulatorLink link{emu};
    card::ApduLog log;

    explicit TestCard(card::emu::CardImage image, card::EmulatorOptions o = {})
        : emu(std::move(image), o) {}

    pkcs15::CardApp open() {
        pkcs15::OpenOptions o;
        o.caps = card::caps_from_atr(emu.atr());
        o.log = &log;
        return pkcs15::CardApp::open(link, o);
    }
    std::uint64_t apdus() const { return log.commands(); }
};

// (area, label) -> content.
using Snapshot = std::map<std::pair<pkcs15::Area, std::string>, Bytes>;

// Everything a fresh session (card reinserted, PIN verified) reads off CARD. Fails the test
// when two entries share a label or an entry's file cannot be read.
inline Snapshot snapshot(TestCard& card) {
    card.link.reinsert();
    pkcs15::CardApp app = card.open();
    app.verify_pin(bv(kPin));
    Snapshot s;
    for (auto area : {pkcs15::Area::Public, pkcs15::Area::Private, pkcs15::Area::Vscard}) {
        for (const auto& f : app.list(area)) {
            auto [it, fresh] =
                s.emplace(std::pair{area, f.label}, bytes_of(app.read(area, f.label)));
            EXPECT_TRUE(fresh) << "two entries labelled " << f.label;
            if (f.size) {
                EXPECT_EQ(*f.size, it->second.size()) << f.label;
            }
        }
    }
    return s;
}

inline std::string describe(const Snapshot& s) {
    std::string out;
    for (const auto& [k, v] : s)
        out += std::string(pkcs15::area_name(k.first)) + ":" + k.second + "(" +
               std::to_string(v.size()) + ") ";
    return out;
}

}  // namespace vscard::testing
