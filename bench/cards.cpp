// APDU economy of the mount on a card (issue contract, DESIGN §5): APDUs and wall time for
// mounting and listing a card of 50 objects, listing it again, reading every object and
// writing 20 objects; beside OpenSC reading the same objects (`pkcs15-tool
// --read-data-object` per object) in the same run, on the same emulated card. Prints a table;
// checks nothing but that every step works.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <regex>
#include <string>

#include "pcsc_rig.hpp"
#include "rig.hpp"

using namespace vscard::test;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kPin = "123456";
constexpr int kObjects = 50;
constexpr int kWrites = 20;

struct Row {
    std::string what;
    std::size_t apdus = 0;
    double seconds = 0;
};

std::size_t apdus_in(const PcscRig& pcsc) {
    std::string log = read_text(pcsc.card_log(0));
    std::size_t n = 0;
    for (std::size_t at = 0; (at = log.find(" > ", at)) != std::string::npos; ++at) ++n;
    return n;
}

void must(const RunResult& r, const std::string& what) {
    if (r.exit_code != 0) throw std::runtime_error(what + " failed: " + r.out + r.err);
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = argc > 1 && std::string(argv[1]) == "--quick";
    if (auto why = pcsc_rig_unavailable()) {
        std::cout << "bench/cards: cannot run here: " << *why << "\n";
        return 0;
    }
    try {
        PcscRig pcsc;
        Rig rig;
        rig.use_pcsc(pcsc.client_options());
        pcsc.start_card(0, pcsc.dir() / "card.img", {"--verbose", "--size", "256K"});
        auto f = rig.ctl({"format", pcsc.reader(0), "--pin-stdin"}, std::string(kPin) + "\n");
        must(f, "vscardctl format");
        std::smatch m;
        if (!std::regex_search(f.out, m, std::regex("serial ([0-9a-f]+)")))
            throw std::runtime_error("no serial in " + f.out);
        const std::string serial = m[1];
        const int objects = quick ? 10 : kObjects;

        auto mnt = rig.mount();
        if (!wait_until([&] { return std::filesystem::exists(mnt / "card" / serial); }, 10s))
            throw std::runtime_error("the card did not show in the mount");
        must(rig.ctl({"unlock", "card/" + serial, "--password-stdin"}, std::string(kPin) + "\n"),
             "vscardctl unlock");
        // The card's content: OBJECTS public objects of 200..1200 bytes in a few folders.
        must(rig.sh("C=$M/card/" + serial +
                        "/public; mkdir -p $C/d0 $C/d1 $C/d2; for i in $(seq 1 " +
                        std::to_string(objects) +
                        "); do head -c $((200 + i * 20)) /dev/urandom > $C/d$((i % 3))/obj$i; done",
                    mnt),
             "filling the card");
        rig.unmount(mnt);

        std::vector<Row> rows;
        auto measure = [&](const std::string& what, auto&& step) {
            std::size_t before = apdus_in(pcsc);
            auto start = Clock::now();
            step();
            rows.push_back({what, apdus_in(pcsc) - before,
                            std::chrono::duration<double>(Clock::now() - start).count()});
        };
        measure("vscard: mount, card shows, ls -lR", [&] {
            mnt = rig.mount();
            if (!wait_until([&] { return std::filesystem::exists(mnt / "card" / serial); }, 10s))
                throw std::runtime_error("the card did not show in the mount");
            must(rig.sh("ls -lR $M/card/" + serial + "/public > /dev/null", mnt), "ls -lR");
        });
        measure("vscard: ls -lR again", [&] {
            must(rig.sh("ls -lR $M/card/" + serial + "/public > /dev/null", mnt), "ls -lR");
        });
        measure("vscard: read every object", [&] {
            must(rig.sh("cat $M/card/" + serial + "/public/d*/* > /dev/null", mnt), "cat");
        });
        measure("vscard: write " + std::to_string(kWrites) + " objects", [&] {
            must(rig.sh("C=$M/card/" + serial + "/public; mkdir -p $C/new; for i in $(seq 1 " +
                            std::to_string(kWrites) +
                            "); do head -c 600 /dev/urandom > $C/new/w$i; done",
                        mnt),
                 "writing");
        });
        rig.unmount(mnt);
        // pkcs15-tool --read-data-object looks at the first 32 data objects only (OpenSC 0.23):
        // the objects beyond are read by --list-data-objects, which reads every object.
        int found = 0;
        measure("OpenSC: pkcs15-tool --read-data-object, each object", [&] {
            for (int i = 1; i <= objects; ++i) {
                auto r = pcsc.run_in_rig(
                    "pkcs15-tool", {"--read-data-object",
                                    "d" + std::to_string(i % 3) + "/obj" + std::to_string(i)});
                if (r.exit_code == 0)
                    ++found;
                else if ((r.out + r.err).find("not found") == std::string::npos)
                    must(r, "pkcs15-tool");
            }
        });
        rows.back().what += " (" + std::to_string(found) + " found)";
        measure("OpenSC: pkcs15-tool --list-data-objects (reads all)", [&] {
            must(pcsc.run_in_rig("pkcs15-tool", {"--list-data-objects"}), "pkcs15-tool");
        });

        std::printf("%-58s %8s %9s\n", "row", "APDUs", "seconds");
        for (const auto& r : rows)
            std::printf("%-58s %8zu %9.3f\n", r.what.c_str(), r.apdus, r.seconds);
        // Reading every object from a fresh insertion: the mount's first listing and reads,
        // against OpenSC's one pass over the same card.
        const std::size_t ours = rows[0].apdus + rows[2].apdus;
        const std::size_t theirs = rows.back().apdus;
        std::printf(
            "\nall %d objects from a fresh insertion: vscard %zu APDUs, OpenSC %zu APDUs "
            "(ratio %.2f; target below 1); a repeated listing: %zu APDUs (target 0)\n",
            objects, ours, theirs, theirs ? double(ours) / double(theirs) : 0.0, rows[1].apdus);
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "bench/cards: " << e.what() << "\n";
        return 1;
    }
}
