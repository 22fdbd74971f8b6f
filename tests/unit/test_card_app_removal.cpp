// Pulling the card out in the middle of a write, at every APDU of it: a fresh session then
// reads either the state before the write or the state after it, never a DODF entry naming
// a missing or partial file, and the card takes new writes again.
#include <gtest/gtest.h>

#include <functional>
#include <iostream>
#include <set>

#include "card_app_util.hpp"
#include "error.hpp"

namespace vscard::pkcs15 {
namespace {

using testing::bv;
using testing::byte_pattern;
using testing::describe;
using testing::formatted_image;
using testing::kPin;
using testing::Snapshot;
using testing::snapshot;
using testing::TestCard;

struct Config {
    const char* name;
    card::EmulatorOptions options;
    std::size_t dodf_size;  // 0: format's default
};

void PrintTo(const Config& c, std::ostream* os) {
    *os << c.name;
}

struct Op {
    const char* name;
    std::function<void(CardApp&)> run;
};

// A label that makes a DODF entry longer than one short APDU carries.
const std::string kLong(250, 'L');

std::vector<Op> ops() {
    return {
        {"create public",
         [](CardApp& a) { a.write(Area::Public, "new.bin", byte_pattern(900, 3)); }},
        {"create private",
         [](CardApp& a) { a.write(Area::Private, "p/new", byte_pattern(300, 4)); }},
        {"create vscard",
         [](CardApp& a) { a.write(Area::Vscard, "envelope", byte_pattern(90, 5)); }},
        {"create long label",
         [](CardApp& a) { a.write(Area::Public, kLong, byte_pattern(20, 6)); }},
        {"overwrite grow",
         [](CardApp& a) { a.write(Area::Public, "a.txt", byte_pattern(1200, 7)); }},
        {"overwrite shrink",
         [](CardApp& a) { a.write(Area::Public, "a.txt", byte_pattern(10, 8)); }},
        {"truncate to empty", [](CardApp& a) { a.write(Area::Public, "a.txt", {}); }},
        {"overwrite first",
         [](CardApp& a) { a.write(Area::Public, "keep.txt", byte_pattern(50, 9)); }},
        {"rename", [](CardApp& a) { a.rename(Area::Public, "a.txt", "renamed.txt"); }},
        {"rename over", [](CardApp& a) { a.rename(Area::Public, "a.txt", "keep.txt"); }},
        {"remove first", [](CardApp& a) { a.remove(Area::Public, "keep.txt"); }},
        {"remove middle", [](CardApp& a) { a.remove(Area::Public, "a.txt"); }},
        {"mkdir", [](CardApp& a) { a.mkdir(Area::Public, "newdir"); }},
        {"rename folder", [](CardApp& a) { a.rename_prefix(Area::Private, "p/", "q/"); }},
    };
}

// The card every operation starts from: a few objects in each area, enough of them that the
// DODF is longer than one short APDU.
card::emu::CardImage base_image(const Config& c) {
    FormatOptions f;
    f.dodf_size = c.dodf_size;
    TestCard card(formatted_image(16 * 1024, f, c.options), c.options);
    CardApp app = card.open();
    app.verify_pin(bv(kPin));
    app.write(Area::Public, "keep.txt", byte_pattern(300, 1));
    app.write(Area::Public, "a.txt", byte_pattern(700, 2));
    app.write(Area::Private, "p/secret", byte_pattern(400, 3));
    app.mkdir(Area::Public, "d");
    app.write(Area::Vscard, "family-key", byte_pattern(64, 4));
    for (int i = 0; i < 6; ++i)
        app.write(Area::Public, "more/file-" + std::to_string(i),
                  byte_pattern(20, static_cast<std::uint8_t>(i)));
    return card.emu.image().clone();
}

// Files in the application's data FID range that no DODF entry names.
std::size_t data_leftovers(TestCard& card) {
    card.link.reinsert();
    CardApp app = card.open();
    std::set<std::uint16_t> named;
    for (auto area : {Area::Public, Area::Private, Area::Vscard})
        for (const auto& f : app.list(area)) {
            const Bytes& v = f.object.path.value;
            named.insert(static_cast<std::uint16_t>(v[v.size() - 2] << 8 | v[v.size() - 1]));
        }
    std::size_t n = 0;
    for (const auto& c : card.emu.image().mf->child(0x5015)->children)
        if (c->fid >= 0x6000 && c->fid <= 0x7FFF && !named.count(c->fid)) ++n;
    return n;
}

class Removal : public ::testing::TestWithParam<Config> {};

TEST_P(Removal, EveryCutLeavesTheOldOrTheNewState) {
    const Config& c = GetParam();
    const card::emu::CardImage base = base_image(c);
    TestCard first(base.clone(), c.options);
    const Snapshot before = snapshot(first);
    std::size_t cuts = 0, old_state = 0, new_state = 0;
    for (const Op& op : ops()) {
        // The uninterrupted run: its APDUs and the state after.
        TestCard ref(base.clone(), c.options);
        std::size_t total = 0;
        {
            CardApp app = ref.open();
            app.verify_pin(bv(kPin));
            const std::size_t start = ref.link.sent();
            op.run(app);
            total = ref.link.sent() - start;
        }
        const Snapshot after = snapshot(ref);
        ASSERT_NE(after, before) << op.name;
        std::cout << "[ measured ] " << c.name << " / " << op.name << ": " << total << " APDUs\n";

        for (std::size_t n = 0; n < total; ++n) {
            for (bool applied : {false, true}) {
                SCOPED_TRACE(std::string(op.name) + " cut at APDU " + std::to_string(n) +
                             (applied ? " (applied, answer lost)" : " (never arrived)"));
                TestCard card(base.clone(), c.options);
                CardApp app = card.open();
                app.verify_pin(bv(kPin));
                card.link.cut_after(n, applied);
                try {
                    op.run(app);
                    ADD_FAILURE() << "the write went through a removed card";
                } catch (const Error& e) {
                    EXPECT_EQ(e.kind(), ErrorKind::Io) << e.what();
                }
                // The model no longer trusts itself.
                EXPECT_THROW(app.write(Area::Public, "z", byte_pattern(1)), Error);
                const Snapshot s = snapshot(card);
                ++cuts;
                if (s == before)
                    ++old_state;
                else if (s == after)
                    ++new_state;
                else
                    ADD_FAILURE() << "neither state: " << describe(s)
                                  << "\nbefore: " << describe(before)
                                  << "\nafter:  " << describe(after);
                // The card takes writes again, leftovers or not.
                card.link.reinsert();
                CardApp again = card.open();
                again.verify_pin(bv(kPin));
                again.write(Area::Public, "recovered", byte_pattern(700, 42));
                again.write(Area::Public, kLong.substr(1) + "2", byte_pattern(30, 43));
                Snapshot s2 = snapshot(card);
                EXPECT_EQ(s2.at({Area::Public, "recovered"}), byte_pattern(700, 42));
                s2.erase({Area::Public, "recovered"});
                s2.erase({Area::Public, kLong.substr(1) + "2"});
                EXPECT_EQ(s2, s);
                EXPECT_EQ(data_leftovers(card), 0u) << "a leftover file was not reclaimed";
            }
        }
    }
    std::cout << "[ measured ] " << c.name << ": " << cuts << " cuts, " << old_state
              << " left the old state, " << new_state << " the new one\n";
}

std::vector<Config> configs() {
    std::vector<Config> v;
    v.push_back({"extended", {}, 0});
    card::EmulatorOptions o;
    o.extended = false;
    v.push_back({"short_only", o, 0});
    v.push_back({"short_only_small_dodf", o, 128});
    v.push_back({"short_only_big_dodf", o, 4096});
    o = {};
    v.push_back({"extended_small_dodf", o, 128});
    o.fci = false;
    o.t0_responses = true;
    o.extended = false;
    v.push_back({"no_fci_t0", o, 0});
    return v;
}

INSTANTIATE_TEST_SUITE_P(Cards, Removal, ::testing::ValuesIn(configs()),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace vscard::pkcs15
