#include "backup.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <vector>

#include "backup/mirror.hpp"
#include "error.hpp"
#include "locations.hpp"
#include "target.hpp"

namespace vscard::tools {
namespace {

namespace fs = std::filesystem;

// The areas copied and compared, in this order; id/ never is (DESIGN §3).
const char* const kAreas[] = {"public", "private", "secret"};

std::string format_bytes(std::uint64_t bytes) {
    static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    std::size_t unit = 0;
    while (v >= 1024 && unit + 1 < std::size(kUnits)) {
        v /= 1024;
        ++unit;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", v, kUnits[unit]);
    return buf;
}

std::string plural(std::uint64_t n, const std::string& word) {
    return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// One line on standard error, redrawn at most ten times a second: a bar, objects and bytes
// done out of the totals, and the object being worked on. Only on a terminal.
class ProgressBar {
public:
    explicit ProgressBar(bool quiet) : on_(!quiet && ::isatty(STDERR_FILENO)) {}
    ~ProgressBar() { clear(); }
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    void attach(backup::Progress& progress) {
        if (on_) progress.on_change = [this](const backup::Progress& p) { show(p); };
    }

    void clear() {
        if (shown_) std::cerr << "\r\x1b[K" << std::flush;
        shown_ = false;
    }

private:
    void show(const backup::Progress& p) {
        auto now = std::chrono::steady_clock::now();
        if (shown_ && now - last_ < std::chrono::milliseconds(100) &&
            p.objects_done < p.objects_total)
            return;
        last_ = now;
        double objects = p.objects_total ? double(p.objects_done) / double(p.objects_total) : 1;
        double bytes = p.bytes_total ? double(p.bytes_done) / double(p.bytes_total) : objects;
        constexpr int kWidth = 20;
        int filled = static_cast<int>((objects + bytes) / 2 * kWidth);
        std::string line = "[" + std::string(static_cast<std::size_t>(filled), '#') +
                           std::string(static_cast<std::size_t>(kWidth - filled), '-') + "] " +
                           std::to_string(p.objects_done) + "/" + std::to_string(p.objects_total) +
                           " objects, " + format_bytes(p.bytes_done) + "/" +
                           format_bytes(p.bytes_total) + "  " + p.current;
        winsize ws{};
        std::size_t columns =
            ::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
        if (line.size() >= columns) line.resize(columns - 1);
        std::cerr << "\r" << line << "\x1b[K" << std::flush;
        shown_ = true;
    }

    bool on_;
    bool shown_ = false;
    std::chrono::steady_clock::time_point last_{};
};

// A card or VSC in the mount.
struct Side {
    Target target;
    fs::path root;
    std::string text() const { return target.text(); }
};

fs::path checked_mount(const std::optional<std::string>& option) {
    fs::path mount = mount_dir(option);
    std::error_code ec;
    if (!fs::is_directory(mount / "vsc", ec))
        throw Error(ErrorKind::Unavailable,
                    "no vscard mount at " + mount.string() + "; start it with 'vscard-mountd " +
                        mount.string() +
                        "' (or 'systemctl --user start vscard-mountd.service'), or give "
                        "--mount DIR");
    return mount;
}

// TEXT (vsc/NAME or card/SERIAL) in MOUNT, which must hold it; MISSING says what to do if not.
Side side_of(const fs::path& mount, const std::string& text, const std::string& missing = "") {
    Target t = target_of(text);
    Side side{t, mount / (t.card ? "card" : "vsc") / t.name};
    std::error_code ec;
    if (fs::is_directory(side.root, ec)) return side;
    if (!missing.empty()) throw Error(ErrorKind::NotFound, missing);
    if (t.card)
        throw Error(ErrorKind::NotFound, t.text() + " is not in " + (mount / "card").string() +
                                             ": insert the card (see 'vscardctl readers')");
    throw Error(ErrorKind::NotFound,
                "no " + t.text() + " in " + (mount / "vsc").string() + "; see 'vscardctl list'");
}

// AREA of SIDE, scanned; nullopt (with a note) when SIDE does not offer it. A locked area is
// an error that says how to unlock it.
std::optional<backup::Node> scan_area(const Side& side, const std::string& area,
                                      std::vector<std::string>& notes) {
    try {
        return backup::scan(side.root / area);
    } catch (const Error& e) {
        const std::string where = side.text() + "/" + area;
        if (e.kind() == ErrorKind::Locked)
            throw Error(ErrorKind::Locked, where + " is locked; unlock it with 'vscardctl unlock " +
                                               side.text() + "', then run this again");
        if (e.kind() == ErrorKind::NotSupported ||
            (e.kind() == ErrorKind::NotFound && area == "secret")) {
            notes.push_back(area + "/ skipped: " + where + " cannot be listed (" + e.what() + ")");
            return std::nullopt;
        }
        if (e.kind() == ErrorKind::NotFound)
            throw Error(ErrorKind::NotFound,
                        side.text() + " has no " + area +
                            "/: a blank card or one of another application ('vscardctl format "
                            "READER' prepares a blank card)");
        throw;
    }
}

struct AreaPair {
    std::string area;
    backup::Node a, b;
};

// The areas both sides offer, scanned (notes for the others).
std::vector<AreaPair> scan_areas(const Side& a, const Side& b, std::vector<std::string>& notes) {
    std::vector<AreaPair> out;
    for (const char* area : kAreas) {
        auto na = scan_area(a, area, notes);
        if (!na) continue;
        auto nb = scan_area(b, area, notes);
        if (!nb) continue;
        out.push_back({area, std::move(*na), std::move(*nb)});
    }
    return out;
}

// Whether REL (e.g. "secret/k") of SIDE is a key the card keeps to itself, or the public key
// beside one: the mount lists such an entry but refuses to open it (EACCES), and no copy of
// the key can exist anywhere else.
bool kept_on_card(const Side& side, const std::string& rel) {
    if (!side.target.card || rel.rfind("secret/", 0) != 0) return false;
    std::string key = rel;
    if (key.ends_with(".pub")) key.resize(key.size() - 4);
    const fs::path path = side.root / key;
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW);
    if (fd >= 0) {
        ::close(fd);
        return false;
    }
    return errno == EACCES;
}

constexpr const char* kKeptOnCard = " (a key the card keeps to itself: it never leaves the card)";

void print_notes(const std::vector<std::string>& notes) {
    for (const auto& n : notes) std::cout << "note: " << n << "\n";
}

// Makes TO's areas hold what FROM's hold.
int mirror(const Side& from, const Side& to, bool quiet) {
    std::vector<std::string> notes;
    auto areas = scan_areas(from, to, notes);
    backup::Progress progress;
    for (const auto& p : areas) progress.add_to_totals(p.a);
    backup::Summary summary;
    {
        ProgressBar bar(quiet);
        bar.attach(progress);
        for (const auto& p : areas)
            summary += backup::mirror(p.a, from.root / p.area, p.b, to.root / p.area, progress,
                                      p.area + "/");
    }
    std::vector<std::string> kept;
    std::erase_if(summary.failures, [&](const backup::Failure& f) {
        if (!kept_on_card(from, f.path) && !kept_on_card(to, f.path)) return false;
        kept.push_back(f.path);
        return true;
    });
    std::cout << from.text() << " -> " << to.text() << ": " << summary.copied << " copied, "
              << summary.skipped << " skipped (unchanged), " << summary.deleted << " deleted, "
              << summary.failures.size() << " failed";
    if (!kept.empty()) std::cout << ", " << kept.size() << " kept on the card";
    std::cout << " (" << format_bytes(progress.bytes_total) << " in "
              << plural(progress.objects_total, "object") << ")\n";
    print_notes(notes);
    for (const auto& k : kept) std::cout << "kept on the card: " << k << kKeptOnCard << "\n";
    for (const auto& f : summary.failures)
        std::cout << "failed: " << f.path << ": " << f.error << "\n";
    if (!summary.failures.empty())
        throw Error(ErrorKind::Io, plural(summary.failures.size(), "object") + " of " +
                                       from.text() + " could not be copied to " + to.text() +
                                       " (listed above); mend the cause and run this again "
                                       "(what is unchanged is skipped)");
    return 0;
}

int verify(const Side& a, const Side& b, bool quiet) {
    std::vector<std::string> notes;
    auto areas = scan_areas(a, b, notes);
    backup::Progress progress;
    for (const auto& p : areas) progress.add_to_totals(p.a);
    std::vector<backup::Difference> diffs;
    {
        ProgressBar bar(quiet);
        bar.attach(progress);
        for (const auto& p : areas) {
            auto d =
                backup::compare(p.a, a.root / p.area, p.b, b.root / p.area, progress, p.area + "/");
            diffs.insert(diffs.end(), d.begin(), d.end());
        }
    }
    std::vector<std::string> kept;
    std::erase_if(diffs, [&](const backup::Difference& d) {
        const bool card_only =
            (d.kind != backup::Difference::Kind::OnlyInB && kept_on_card(a, d.path)) ||
            (d.kind != backup::Difference::Kind::OnlyInA && kept_on_card(b, d.path));
        if (card_only) kept.push_back(d.path);
        return card_only;
    });
    for (const auto& k : kept) std::cout << "kept on the card: " << k << kKeptOnCard << "\n";
    for (const auto& d : diffs) {
        switch (d.kind) {
            case backup::Difference::Kind::OnlyInA:
                std::cout << "only in " << a.text() << ": " << d.path << "\n";
                break;
            case backup::Difference::Kind::OnlyInB:
                std::cout << "only in " << b.text() << ": " << d.path << "\n";
                break;
            case backup::Difference::Kind::Differs:
                std::cout << "differs: " << d.path << " (" << d.detail << ")\n";
                break;
            case backup::Difference::Kind::Unreadable:
                std::cout << "unreadable: " << d.path << " (" << d.detail << ")\n";
                break;
        }
    }
    std::string compared;
    for (const auto& p : areas) compared += (compared.empty() ? "" : ", ") + p.area + "/";
    if (diffs.empty())
        std::cout << a.text() << " and " << b.text() << " are identical ("
                  << (compared.empty() ? "no area" : compared) << ": "
                  << plural(progress.objects_total, "object") << ", "
                  << format_bytes(progress.bytes_total) << ")"
                  << (kept.empty() ? "" : " but for the keys kept on the card") << "\n";
    print_notes(notes);
    if (!diffs.empty())
        throw Error(ErrorKind::Invalid, a.text() + " and " + b.text() + " differ (" +
                                            plural(diffs.size(), "difference") +
                                            ", listed above); 'vscardctl backup' or "
                                            "'vscardctl restore' makes them the same");
    return 0;
}

}  // namespace

BackupCommands::BackupCommands(CLI::App& app) {
    backup_ = app.add_subcommand(
        "backup", "copy the areas of card/SERIAL to its VSC (like rsync -a --delete)");
    backup_->add_option("CARD", first_, "card/SERIAL")->required();
    backup_->add_option("VSC", second_, "vsc/NAME (default: vsc/SERIAL)");
    restore_ = app.add_subcommand("restore",
                                  "copy the areas of vsc/NAME onto card/SERIAL (like rsync -a "
                                  "--delete), e.g. onto a new card");
    restore_->add_option("VSC", first_, "vsc/NAME")->required();
    restore_->add_option("CARD", second_, "card/SERIAL")->required();
    verify_ = app.add_subcommand(
        "verify", "compare the areas of two targets (vsc/NAME or card/SERIAL); writes nothing");
    verify_->add_option("A", first_, "vsc/NAME or card/SERIAL")->required();
    verify_->add_option("B", second_, "vsc/NAME or card/SERIAL")->required();
    for (CLI::App* cmd : {backup_, restore_, verify_}) {
        cmd->add_option("--mount", mount_,
                        "where the cards are mounted (default: $VSCARD_MOUNT, else ~/Cards)");
        cmd->add_flag("-q,--quiet", quiet_, "no progress bar");
    }
    backup_->footer(
        "Areas public/, private/ and secret/ (where both sides list it) are mirrored: new and "
        "changed files copied, files gone from the card deleted from the VSC; id/ never. Exit "
        "status 0 when nothing failed.");
}

bool BackupCommands::selected() const {
    return backup_->parsed() || restore_->parsed() || verify_->parsed();
}

int BackupCommands::run() const {
    fs::path mount = checked_mount(mount_);
    if (verify_->parsed()) return verify(side_of(mount, first_), side_of(mount, second_), quiet_);
    if (backup_->parsed()) {
        Target card = target_of(first_);
        Target vsc = target_of(second_.empty() ? "vsc/" + card.name : second_);
        if (!card.card || vsc.card)
            throw Error(ErrorKind::Usage,
                        "backup copies a card to a VSC: 'vscardctl backup card/SERIAL "
                        "[vsc/NAME]'; to copy a VSC onto a card use 'vscardctl restore'");
        std::string create = "vscardctl create " + (vsc.name == card.name ? "" : vsc.name + " ") +
                             "--for-card " + card.name;
        Side from = side_of(mount, card.text());
        Side to = side_of(mount, vsc.text(),
                          vsc.text() + " does not exist; create it with '" + create + "'");
        return mirror(from, to, quiet_);
    }
    Target vsc = target_of(first_), card = target_of(second_);
    if (vsc.card || !card.card)
        throw Error(ErrorKind::Usage,
                    "restore copies a VSC onto a card: 'vscardctl restore vsc/NAME "
                    "card/SERIAL'; to copy a card to its VSC use 'vscardctl backup'");
    return mirror(side_of(mount, vsc.text()), side_of(mount, card.text()), quiet_);
}

}  // namespace vscard::tools
