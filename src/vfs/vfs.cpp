#include "vfs/vfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <chrono>
#include <cstring>
#include <functional>

#include "card/apdu.hpp"
#include "error.hpp"
#include "log.hpp"
#include "vfs/card_family_key.hpp"
#include "vfs/card_store.hpp"
#include "vfs/card_watch.hpp"
#include "vfs/secret_policy.hpp"

namespace vscard {
namespace {

constexpr std::uint64_t kRootIno = 1, kVscRootIno = 2, kCardRootIno = 3;
constexpr int kIdArea = 4;  // inode space of id/ beside the three areas
constexpr auto kTouchInterval = std::chrono::seconds(30);

// libfuse hides files unlinked while open under this prefix until their last close.
const std::string kHiddenPrefix = ".fuse_hidden";

class AgentSecretSource final : public SecretSource {
public:
    explicit AgentSecretSource(std::filesystem::path socket) : client_(std::move(socket)) {}
    std::optional<SecureBytes> get(const std::string& target) override {
        return client_.get(target);
    }
    void forget(const std::string& target) override { client_.forget(target); }
    void touch(const std::string& target) override { client_.touch(target); }

private:
    AgentClient client_;
};

// A card's PIN as the agent holds it for "card/SERIAL".
class AgentPins final : public PinSource {
public:
    AgentPins(std::shared_ptr<SecretSource> secrets, std::string target)
        : secrets_(std::move(secrets)), target_(std::move(target)) {}
    std::optional<SecureBytes> get() override {
        try {
            return secrets_->get(target_);
        } catch (const Error& e) {
            if (e.kind() != ErrorKind::Unavailable) throw;
            return std::nullopt;  // no agent: as good as no PIN (the message says what to do)
        }
    }
    void forget() override {
        try {
            secrets_->forget(target_);
        } catch (const Error& e) {
            log_line(target_ + ": cannot make the agent forget the wrong PIN: " + e.what());
        }
    }

private:
    std::shared_ptr<SecretSource> secrets_;
    std::string target_;
};

std::vector<std::string> split(const std::string& path) {
    std::vector<std::string> parts;
    std::size_t i = 0;
    while (i < path.size()) {
        std::size_t j = path.find('/', i);
        if (j == std::string::npos) j = path.size();
        if (j > i) parts.push_back(path.substr(i, j - i));
        i = j + 1;
    }
    return parts;
}

std::optional<Area> area_named(const std::string& name) {
    if (name == "public") return Area::Public;
    if (name == "private") return Area::Private;
    if (name == "secret") return Area::Secret;
    return std::nullopt;
}

// Inode numbers: 24 bits of the VSC's uid, 4 bits of area, 36 bits of object id.
constexpr std::uint64_t kNodeMask = (1ull << 36) - 1;

VfsAttr vfs_attr(std::uint64_t ino, const Attr& a) {
    VfsAttr v;
    v.ino = ino;
    v.dir = a.kind == NodeKind::Dir;
    v.mode = a.mode;
    v.size = a.size;
    v.nlink = a.nlink;
    v.mtime = a.mtime;
    v.ctime = a.ctime;
    return v;
}

VfsAttr synthetic_dir(std::uint64_t ino, std::uint32_t mode, Timestamp time) {
    VfsAttr a;
    a.ino = ino;
    a.dir = true;
    a.mode = mode;
    a.nlink = 2;
    a.mtime = a.ctime = time;
    return a;
}

[[noreturn]] void read_only_id() {
    throw Error(ErrorKind::ReadOnly, "id/ is read-only");
}

[[noreturn]] void not_here() {
    throw Error(ErrorKind::Locked,
                "only public/, private/ and secret/ of a VSC or card take files; create a VSC "
                "with 'vscardctl create NAME'");
}

std::uint64_t tag_of(const std::string& key) {
    return (std::hash<std::string>{}(key) % ((1u << 24) - 1)) + 1;
}

}  // namespace

// A VSC or a card, as the mount shows it.
struct Vfs::Medium {
    std::string kind;       // "vsc" or "card": the folder it shows in
    std::string name;       // the VSC's name, the card's serial
    std::uint64_t tag = 0;  // high bits of every inode number of this medium
    Timestamp mtime;
    std::mutex mutex;  // guards areas and last_touch
    std::shared_ptr<AreaFs> areas[3];
    std::chrono::steady_clock::time_point last_touch{};

    virtual ~Medium() = default;
    std::string target() const { return kind + "/" + name; }
    std::string prefix(Area area) const { return "/" + target() + "/" + area_name(area); }
    std::uint64_t ino_of(int space, std::uint64_t id) const {
        return (tag << 40) | (std::uint64_t(space) << 36) | (id & kNodeMask);
    }
    bool unlocked_now() {
        std::lock_guard lock(mutex);
        return areas[1] && !areas[1]->locked();
    }
};

struct Vfs::Vsc : Medium {
    std::filesystem::path path;
    dev_t dev = 0;
    ino_t ino = 0;
    std::shared_ptr<VscFile> file;  // null when the file failed to open
    std::string error;
};

struct Vfs::Card : Medium {
    std::shared_ptr<CardSession> session;
    std::mutex pin_mutex;
    card::PinStatus pin;  // as last asked
};

struct Vfs::Route {
    enum Kind { Root, VscRoot, CardRoot, MediumDir, IdDir, IdFile, AreaPath } kind = Root;
    std::shared_ptr<Medium> medium;
    Area area = Area::Public;
    RelPath rel;
    std::string id_file;
};

Vfs::Vfs(VfsOptions options) : options_(std::move(options)), started_(Timestamp::now()) {
    if (!options_.secrets) {
        options_.secrets = std::make_shared<AgentSecretSource>(options_.agent_socket);
        watcher_ = std::make_unique<AgentWatcher>(
            options_.agent_socket,
            [this](const std::string& target, bool unlocked) { agent_event(target, unlocked); });
    }
    rescan();
    if (options_.pcsc)
        card_watch_ = std::make_unique<CardWatch>(CardWatch::Callbacks{
            [this](std::shared_ptr<CardSession> s) { card_inserted(std::move(s)); },
            [this](const std::string& reader) { card_removed(reader); }});
}

Vfs::~Vfs() {
    card_watch_.reset();
    watcher_.reset();
    shutdown();
}

void Vfs::set_invalidator(std::function<void(const std::vector<std::string>&)> invalidate) {
    std::lock_guard lock(invalidate_mutex_);
    invalidate_ = std::move(invalidate);
}

void Vfs::invalidate(const std::vector<std::string>& paths) {
    // The agent watcher's thread calls this while the mount may be shutting down.
    std::lock_guard lock(invalidate_mutex_);
    if (invalidate_) invalidate_(paths);
}

void Vfs::rescan() {
    std::map<std::string, std::shared_ptr<Vsc>> found;
    std::vector<std::string> gone;
    DIR* dir = ::opendir(options_.store.c_str());
    if (dir) {
        while (dirent* e = ::readdir(dir)) {
            std::string file = e->d_name;
            if (file.size() <= 4 || file.compare(file.size() - 4, 4, ".vsc") != 0 || file[0] == '.')
                continue;
            std::string name = file.substr(0, file.size() - 4);
            struct stat st {};
            auto path = options_.store / file;
            if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
            std::lock_guard lock(mutex_);
            auto it = vscs_.find(name);
            if (it != vscs_.end() && it->second->dev == st.st_dev && it->second->ino == st.st_ino) {
                found[name] = it->second;
                continue;
            }
            auto vsc = std::make_shared<Vsc>();
            vsc->kind = "vsc";
            vsc->name = name;
            vsc->path = path;
            vsc->dev = st.st_dev;
            vsc->ino = st.st_ino;
            vsc->mtime = {st.st_mtim.tv_sec, static_cast<std::uint32_t>(st.st_mtim.tv_nsec)};
            vsc->tag = tag_of(name);
            try {
                vsc->file = VscFile::open(path);
                vsc->tag = tag_of(vsc->file->uid_hex());
            } catch (const Error& e) {
                vsc->error = e.what();
                log_line(std::string("cannot use ") + path.string() + ": " + e.what());
            }
            found[name] = vsc;
        }
        ::closedir(dir);
    }
    std::vector<std::shared_ptr<Vsc>> removed;
    {
        std::lock_guard lock(mutex_);
        for (auto& [name, vsc] : vscs_) {
            auto it = found.find(name);
            if (it == found.end() || it->second != vsc) removed.push_back(vsc);
        }
        vscs_ = std::move(found);
    }
    for (auto& vsc : removed) {
        lock_medium(*vsc);
        invalidate({"/vsc/" + vsc->name});
    }
}

void Vfs::card_inserted(std::shared_ptr<CardSession> session) {
    auto card = std::make_shared<Card>();
    card->kind = "card";
    card->name = session->serial();
    card->tag = tag_of("card/" + card->name);
    card->mtime = Timestamp::now();
    session->set_pin_source(std::make_shared<AgentPins>(options_.secrets, card->target()));
    card->session = std::move(session);
    std::shared_ptr<Card> replaced;
    {
        std::lock_guard lock(mutex_);
        auto& slot = cards_[card->name];
        replaced = std::move(slot);
        slot = card;
    }
    if (replaced) {
        replaced->session->removed();
        lock_medium(*replaced, Error(ErrorKind::Io, replaced->target() + " was inserted again"));
    }
    invalidate({"/card", "/" + card->target()});
}

void Vfs::card_removed(const std::string& reader) {
    std::vector<std::shared_ptr<Card>> gone;
    {
        std::lock_guard lock(mutex_);
        for (auto it = cards_.begin(); it != cards_.end();) {
            if (it->second->session->reader() == reader) {
                gone.push_back(it->second);
                it = cards_.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (auto& card : gone) {
        card->session->removed();
        try {
            options_.secrets->forget(card->target());  // DESIGN §4: wiped on card removal
        } catch (const Error& e) {
            log_line(card->target() + ": cannot make the agent forget its PIN: " + e.what());
        }
        log_line(card->target() + ": removed from '" + reader + "'");
        lock_medium(*card, Error(ErrorKind::Io, card->target() + " was removed from its reader; "
                                                                 "insert it again"));
        invalidate({"/card", "/" + card->target()});
    }
}

void Vfs::look_for_apps(bool now_please) {
    std::vector<std::shared_ptr<Card>> blank;
    {
        std::lock_guard lock(mutex_);
        for (auto& [serial, card] : cards_)
            if (!card->session->has_app()) blank.push_back(card);
    }
    for (auto& card : blank) {
        if (!card->session->look_for_app(now_please)) continue;
        // Formatted since it came: it shows under its serial now, as if inserted anew.
        {
            std::lock_guard lock(mutex_);
            auto it = cards_.find(card->name);
            if (it != cards_.end() && it->second == card) cards_.erase(it);
        }
        invalidate({"/card/" + card->name});
        card_inserted(card->session);
    }
}

std::shared_ptr<Vfs::Card> Vfs::find_card(const std::string& serial) {
    for (int attempt = 0;; ++attempt) {
        {
            std::lock_guard lock(mutex_);
            auto it = cards_.find(serial);
            if (it != cards_.end()) return it->second;
        }
        if (attempt > 0) throw Error(ErrorKind::NotFound, "no card " + serial + " in any reader");
        look_for_apps(true);  // formatted a moment ago?
    }
}

std::shared_ptr<Vfs::Vsc> Vfs::find_vsc(const std::string& name) {
    {
        std::lock_guard lock(mutex_);
        auto it = vscs_.find(name);
        if (it != vscs_.end()) return it->second;
    }
    rescan();  // created since we last looked?
    std::lock_guard lock(mutex_);
    auto it = vscs_.find(name);
    if (it == vscs_.end()) throw Error(ErrorKind::NotFound, "no VSC named " + name);
    return it->second;
}

Vfs::Route Vfs::route(const std::string& path) {
    auto parts = split(path);
    Route r;
    if (parts.empty()) return r;
    const bool cards = parts[0] == "card";
    if (!cards && parts[0] != "vsc") throw Error(ErrorKind::NotFound, "no such file or directory");
    if (parts.size() == 1) {
        r.kind = cards ? Route::CardRoot : Route::VscRoot;
        return r;
    }
    if (cards) {
        r.medium = find_card(parts[1]);
    } else {
        auto vsc = find_vsc(parts[1]);
        r.medium = vsc;
        if (parts.size() > 2 && !vsc->file) throw Error(ErrorKind::Corrupt, vsc->error);
    }
    if (parts.size() == 2) {
        r.kind = Route::MediumDir;
        return r;
    }
    if (parts[2] == "id") {
        if (parts.size() == 3) {
            r.kind = Route::IdDir;
            return r;
        }
        if (parts.size() > 4) throw Error(ErrorKind::NotDirectory, "not a directory");
        if (!id_files(*r.medium).count(parts[3]))
            throw Error(ErrorKind::NotFound, "no such file in id/");
        r.kind = Route::IdFile;
        r.id_file = parts[3];
        return r;
    }
    auto area = area_named(parts[2]);
    if (!area) throw Error(ErrorKind::NotFound, "no such file or directory");
    if (auto* card = dynamic_cast<Card*>(r.medium.get()); card && !card->session->has_app())
        throw Error(ErrorKind::NotFound,
                    r.medium->target() + " shows only id/: " + card->session->app_problem());
    r.kind = Route::AreaPath;
    r.area = *area;
    r.rel.assign(parts.begin() + 3, parts.end());
    return r;
}

Vfs::Route Vfs::writable_route(const std::string& path) {
    auto parts = split(path);
    if (parts.size() >= 3 && (parts[0] == "vsc" || parts[0] == "card") && parts[2] == "id")
        read_only_id();
    Route r = route(path);
    if (r.kind == Route::IdDir || r.kind == Route::IdFile) read_only_id();
    if (r.kind != Route::AreaPath) not_here();
    return r;
}

std::shared_ptr<AreaFs> Vfs::area_of(Medium& medium, Area area) {
    std::lock_guard lock(medium.mutex);
    auto& fs = medium.areas[static_cast<int>(area) - 1];
    if (area != Area::Public && fs && !fs->locked()) {
        auto now = std::chrono::steady_clock::now();
        if (now - medium.last_touch > kTouchInterval) {
            medium.last_touch = now;
            try {
                options_.secrets->touch(medium.target());
            } catch (const Error&) {
            }
        }
        return fs;
    }
    if (auto* card = dynamic_cast<Card*>(&medium)) return card_area(*card, area);
    return vsc_area(static_cast<Vsc&>(medium), area);
}

std::shared_ptr<AreaFs> Vfs::vsc_area(Vsc& vsc, Area area) {
    int slot = static_cast<int>(area) - 1;
    auto& fs = vsc.areas[slot];
    if (area == Area::Public) {
        if (!fs) fs = open_area(vsc, Area::Public, nullptr);
        return fs;
    }
    // The agent is asked even when no unlock event has arrived yet: `vscardctl unlock`
    // returns before the event reaches us, and the next command must find it unlocked.
    std::optional<SecureBytes> password;
    try {
        password = options_.secrets->get(vsc.target());
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::Unavailable) throw;
        throw Error(ErrorKind::Locked, vsc.target() + " is locked: " + e.what());
    }
    if (password) {
        std::lock_guard g(mutex_);
        unlocked_[vsc.target()] = true;
    }
    if (!password)
        throw Error(
            ErrorKind::Locked,
            vsc.target() + " is locked; unlock it with 'vscardctl unlock " + vsc.target() + "'");
    VscKeys keys;
    try {
        keys = vsc.file->unlock(*password);
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::WrongPassword) {
            log_line(vsc.target() + ": the password held by the agent is wrong; forgotten");
            options_.secrets->forget(vsc.target());
            throw Error(ErrorKind::Locked, e.what());
        }
        throw;
    }
    vsc.areas[1] = open_area(vsc, Area::Private, &keys);
    vsc.areas[2] = open_area(vsc, Area::Secret, &keys);
    vsc.last_touch = std::chrono::steady_clock::now();
    return fs;
}

std::shared_ptr<AreaFs> Vfs::card_area(Card& card, Area area) {
    auto& fs = card.areas[static_cast<int>(area) - 1];
    if (area == Area::Public) {
        if (!fs) fs = open_card_area(card, Area::Public);
        return fs;
    }
    // Private and secret open once the card has accepted the PIN the agent holds.
    card.session->verify();
    {
        std::lock_guard g(mutex_);
        unlocked_[card.target()] = true;
    }
    card.last_touch = std::chrono::steady_clock::now();
    if (area == Area::Private) {
        fs = open_card_area(card, Area::Private);
        return fs;
    }
    // The secret area holds key envelopes under the card family's key, which the card keeps
    // wrapped under its PIN (made on first use).
    std::optional<SecureBytes> pin = options_.secrets->get(card.target());
    if (!pin) throw Error(ErrorKind::Locked, card.target() + " was locked meanwhile");
    SecureBytes family;
    try {
        family = card.session->run_write(
            [&](pkcs15::CardApp& app) { return card_family_key(app, *pin, true); });
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::WrongPassword) throw;
        throw Error(ErrorKind::Locked, card.target() + "/secret: " + e.what());
    }
    fs = open_card_area(card, Area::Secret, std::move(family));
    return fs;
}

std::shared_ptr<AreaFs> Vfs::open_card_area(Card& card, Area area,
                                            std::optional<SecureBytes> family_key) {
    CardAreaStore::Options options;
    options.area = area == Area::Public    ? pkcs15::Area::Public
                   : area == Area::Private ? pkcs15::Area::Private
                                           : pkcs15::Area::Vscard;
    if (area == Area::Secret) options.label_prefix = pkcs15::kSecretLabelPrefix;
    options.name = card.prefix(area).substr(1);
    options.time = card.mtime;
    options.dir_mode = area == Area::Public ? 0755 : 0700;
    options.file_mode = area == Area::Public ? 0644 : 0600;
    std::shared_ptr<ContentPolicy> policy;
    if (family_key) {
        options.family_key = *family_key;  // keys written go into the card's key store too
        policy = std::make_shared<SecretKeyPolicy>(std::move(*family_key));
    }
    auto fs = std::make_shared<AreaFs>(std::make_shared<CardAreaStore>(card.session, options), area,
                                       policy, kHiddenPrefix, options_.caller);
    if (auto n = fs->remove_leftovers())
        log_line(card.prefix(area) + ": removed " + std::to_string(n) +
                 " file(s) deleted while open before the card was pulled");
    return fs;
}

std::shared_ptr<AreaFs> Vfs::open_area(Vsc& vsc, Area area, const VscKeys* keys) {
    std::shared_ptr<ContentPolicy> policy;
    if (area == Area::Secret) policy = std::make_shared<SecretKeyPolicy>(keys->family_key);
    auto fs = std::make_shared<AreaFs>(vsc.file->area(area, keys), area, policy, kHiddenPrefix,
                                       options_.caller);
    if (auto n = fs->remove_leftovers())
        log_line(vsc.prefix(area) + ": removed " + std::to_string(n) +
                 " file(s) deleted while open before a crash");
    return fs;
}

bool Vfs::area_open(Medium& medium, Area area) {
    if (area == Area::Public) return true;
    try {
        area_of(medium, area);
        return true;
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::Locked || e.kind() == ErrorKind::NotSupported) return false;
        throw;
    }
}

void Vfs::lock_medium(Medium& medium, std::optional<Error> reason) {
    std::vector<std::string> paths;
    {
        std::lock_guard lock(medium.mutex);
        for (Area area : {Area::Public, Area::Private, Area::Secret}) {
            // The public area of a VSC stays open; a card's goes with the card.
            if (area == Area::Public && !reason) continue;
            auto& fs = medium.areas[static_cast<int>(area) - 1];
            if (!fs) continue;
            for (auto& p : fs->lock(reason)) paths.push_back(medium.prefix(area) + p);
            paths.push_back(medium.prefix(area));
            fs.reset();
        }
    }
    if (auto* card = dynamic_cast<Card*>(&medium); card && !reason) card->session->logout();
    if (!paths.empty()) log_line(medium.target() + (reason ? ": gone" : ": locked"));
    if (!paths.empty()) invalidate(paths);
}

void Vfs::agent_event(const std::string& target, bool unlocked) {
    std::shared_ptr<Medium> medium;
    {
        std::lock_guard lock(mutex_);
        unlocked_[target] = unlocked;
        if (target.rfind("vsc/", 0) == 0) {
            auto it = vscs_.find(target.substr(4));
            if (it != vscs_.end()) medium = it->second;
        } else if (target.rfind("card/", 0) == 0) {
            auto it = cards_.find(target.substr(5));
            if (it != cards_.end()) medium = it->second;
        }
    }
    if (!medium) return;
    if (!unlocked) lock_medium(*medium);
    invalidate({"/" + target + "/id/state", "/" + target + "/id/pin-tries-left"});
}

void Vfs::shutdown() {
    std::vector<std::shared_ptr<Medium>> all;
    {
        std::lock_guard lock(mutex_);
        for (auto& [name, vsc] : vscs_) all.push_back(vsc);
        for (auto& [serial, card] : cards_) all.push_back(card);
    }
    for (auto& medium : all) lock_medium(*medium);
}

std::map<std::string, std::string> Vfs::id_files(Medium& medium, bool fresh) {
    bool unlocked;
    {
        std::lock_guard g(mutex_);
        unlocked = unlocked_[medium.target()];
    }
    if (auto* card = dynamic_cast<Card*>(&medium)) {
        CardSession& s = *card->session;
        std::map<std::string, std::string> files{
            {"atr", card::to_hex(s.atr(), "") + "\n"},
            {"label", s.label() + "\n"},
            {"reader", s.reader() + "\n"},
            {"serial", s.serial() + "\n"},
            {"state", card->unlocked_now() ? "unlocked\n" : "locked\n"},
            {"type", s.has_app() ? "pkcs15\n" : "unknown\n"},
        };
        if (!s.has_app()) return files;
        std::lock_guard g(card->pin_mutex);
        if (fresh) {
            try {
                card->pin = s.pin_status();  // VERIFY without data: spends no try
            } catch (const Error& e) {
                log_line(card->target() + ": cannot ask the PIN state: " + e.what());
            }
        }
        files["pin-tries-left"] = card->pin.verified ? "verified\n"
                                  : card->pin.tries_left
                                      ? std::to_string(*card->pin.tries_left) + "\n"
                                      : "unknown\n";
        return files;
    }
    auto& vsc = static_cast<Vsc&>(medium);
    return {
        {"assigned-card", vsc.file->assigned_card() + "\n"},
        {"label", vsc.name + "\n"},
        {"pin-tries-left", "unlimited\n"},
        {"serial", vsc.file->uid_hex() + "\n"},
        {"state", unlocked ? "unlocked\n" : "locked\n"},
        {"type", "vsc\n"},
        {"uid", vsc.file->uid_hex() + "\n"},
    };
}

VfsAttr Vfs::attr(const Medium& medium, Area area, const Attr& a) {
    return vfs_attr(medium.ino_of(static_cast<int>(area), a.node), a);
}

VfsAttr Vfs::getattr(const std::string& path) {
    Route r = route(path);
    switch (r.kind) {
        case Route::Root:
            return synthetic_dir(kRootIno, 0755, started_);
        case Route::VscRoot:
            return synthetic_dir(kVscRootIno, 0755, started_);
        case Route::CardRoot:
            return synthetic_dir(kCardRootIno, 0755, started_);
        case Route::MediumDir:
            return synthetic_dir(r.medium->ino_of(0, 1), 0755, r.medium->mtime);
        case Route::IdDir:
            return synthetic_dir(r.medium->ino_of(kIdArea, 1), 0555, r.medium->mtime);
        case Route::IdFile: {
            auto files = id_files(*r.medium);
            VfsAttr a;
            auto it = files.find(r.id_file);
            a.ino = r.medium->ino_of(
                kIdArea, 2 + static_cast<std::uint64_t>(std::distance(files.begin(), it)));
            a.mode = 0444;
            a.size = it->second.size();
            a.mtime = a.ctime = r.medium->mtime;
            return a;
        }
        case Route::AreaPath: {
            if (r.rel.empty() && r.area != Area::Public) {
                try {
                    auto fs = area_of(*r.medium, r.area);
                    return attr(*r.medium, r.area, fs->getattr(r.rel));
                } catch (const Error& e) {
                    if (e.kind() != ErrorKind::Locked && e.kind() != ErrorKind::NotSupported) throw;
                    // A locked area still shows as a folder nobody can enter.
                    return synthetic_dir(r.medium->ino_of(static_cast<int>(r.area), 0), 0700,
                                         r.medium->mtime);
                }
            }
            auto fs = area_of(*r.medium, r.area);
            return attr(*r.medium, r.area, fs->getattr(r.rel));
        }
    }
    throw Error(ErrorKind::NotFound, "no such file or directory");
}

std::optional<VfsAttr> Vfs::find(const std::string& path) {
    Route r = route(path);
    if (r.kind != Route::AreaPath || r.rel.empty()) return getattr(path);
    auto fs = area_of(*r.medium, r.area);
    if (auto a = fs->find_attr(r.rel)) return attr(*r.medium, r.area, *a);
    return std::nullopt;
}

std::vector<std::pair<std::string, VfsAttr>> Vfs::readdir(const std::string& path) {
    Route r = route(path);
    std::vector<std::pair<std::string, VfsAttr>> out;
    switch (r.kind) {
        case Route::Root:
            out.emplace_back("card", getattr("/card"));
            out.emplace_back("vsc", getattr("/vsc"));
            return out;
        case Route::VscRoot: {
            rescan();
            std::map<std::string, std::shared_ptr<Vsc>> all;
            {
                std::lock_guard lock(mutex_);
                all = vscs_;
            }
            for (auto& [name, vsc] : all)
                out.emplace_back(name, synthetic_dir(vsc->ino_of(0, 1), 0755, vsc->mtime));
            return out;
        }
        case Route::CardRoot: {
            look_for_apps();
            std::lock_guard lock(mutex_);
            for (auto& [serial, card] : cards_)
                out.emplace_back(serial, synthetic_dir(card->ino_of(0, 1), 0755, card->mtime));
            return out;
        }
        case Route::MediumDir: {
            if (auto* vsc = dynamic_cast<Vsc*>(r.medium.get()); vsc && !vsc->file)
                throw Error(ErrorKind::Corrupt, vsc->error);
            auto* card = dynamic_cast<Card*>(r.medium.get());
            if (card && !card->session->has_app()) {
                out.emplace_back("id", getattr(path + "/id"));
                return out;
            }
            for (const char* n : {"id", "private", "public", "secret"})
                out.emplace_back(n, getattr(path + "/" + n));
            return out;
        }
        case Route::IdDir:
            for (const auto& [name, content] : id_files(*r.medium))
                out.emplace_back(name, getattr(path + "/" + name));
            return out;
        case Route::IdFile:
            throw Error(ErrorKind::NotDirectory, "not a directory");
        case Route::AreaPath: {
            auto fs = area_of(*r.medium, r.area);
            for (auto& [name, a] : fs->readdir(r.rel))
                if (name.rfind(kHiddenPrefix, 0) != 0)
                    out.emplace_back(name, attr(*r.medium, r.area, a));
            return out;
        }
    }
    return out;
}

VfsAttr Vfs::mkdir(const std::string& path, std::uint32_t mode) {
    Route r = writable_route(path);
    return attr(*r.medium, r.area, area_of(*r.medium, r.area)->mkdir(r.rel, mode));
}

void Vfs::rmdir(const std::string& path) {
    Route r = writable_route(path);
    area_of(*r.medium, r.area)->rmdir(r.rel);
}

void Vfs::unlink(const std::string& path) {
    Route r = writable_route(path);
    area_of(*r.medium, r.area)->unlink(r.rel);
}

void Vfs::rename(const std::string& from, const std::string& to, bool no_replace) {
    Route a = writable_route(from);
    Route b = writable_route(to);
    if (a.medium != b.medium || a.area != b.area)
        throw Error(ErrorKind::CrossDevice, "rename between areas, VSCs or cards copies instead");
    area_of(*a.medium, a.area)->rename(a.rel, b.rel, no_replace);
}

void Vfs::chmod(const std::string& path, std::uint32_t mode) {
    Route r = writable_route(path);
    auto stale = area_of(*r.medium, r.area)->chmod(r.rel, mode);
    if (stale.empty()) return;
    for (auto& p : stale) p = r.medium->prefix(r.area) + p;
    invalidate(stale);
}

void Vfs::set_mtime(const std::string& path, Timestamp mtime) {
    Route r = writable_route(path);
    area_of(*r.medium, r.area)->set_mtime(r.rel, mtime);
}

void Vfs::truncate(const std::string& path, std::uint64_t size) {
    Route r = writable_route(path);
    area_of(*r.medium, r.area)->truncate(r.rel, size);
}

std::unique_ptr<VfsHandle> Vfs::open(const std::string& path, int flags) {
    bool writable = (flags & O_ACCMODE) != O_RDONLY;
    Route r = writable ? writable_route(path) : route(path);
    auto h = std::make_unique<VfsHandle>();
    if (r.kind == Route::IdFile) {
        h->fixed_content = id_files(*r.medium, true)[r.id_file];
        h->direct_io = true;  // state changes while the mount runs
        return h;
    }
    if (r.kind != Route::AreaPath) throw Error(ErrorKind::IsDirectory, "is a directory");
    h->area = area_of(*r.medium, r.area);
    h->file = h->area->open(r.rel, writable, writable && (flags & O_TRUNC),
                            (flags & O_ACCMODE) != O_WRONLY);
    h->direct_io = r.area == Area::Secret;
    h->ino_base = r.medium->ino_of(static_cast<int>(r.area), 0);
    return h;
}

std::unique_ptr<VfsHandle> Vfs::create(const std::string& path, std::uint32_t mode, int flags) {
    Route r = writable_route(path);
    auto h = std::make_unique<VfsHandle>();
    h->area = area_of(*r.medium, r.area);
    h->file = h->area->create(r.rel, mode, flags & O_EXCL, (flags & O_ACCMODE) != O_WRONLY);
    if (flags & O_TRUNC) h->area->ftruncate(*h->file, 0);
    h->direct_io = r.area == Area::Secret;
    h->ino_base = r.medium->ino_of(static_cast<int>(r.area), 0);
    return h;
}

std::size_t Vfs::read(VfsHandle& h, std::uint64_t offset, std::size_t size, char* out) {
    if (!h.area) {
        if (offset >= h.fixed_content.size()) return 0;
        std::size_t n = std::min<std::size_t>(size, h.fixed_content.size() - offset);
        std::memcpy(out, h.fixed_content.data() + offset, n);
        return n;
    }
    return h.area->read(*h.file, offset, size, out);
}

std::size_t Vfs::write(VfsHandle& h, std::uint64_t offset, const char* data, std::size_t size) {
    if (!h.area) read_only_id();
    return h.area->write(*h.file, offset, data, size);
}

void Vfs::ftruncate(VfsHandle& h, std::uint64_t size) {
    if (!h.area) read_only_id();
    h.area->ftruncate(*h.file, size);
}

VfsAttr Vfs::fgetattr(VfsHandle& h, const char* path) {
    if (!h.area) {
        if (!path) throw Error(ErrorKind::NotFound, "no such file");
        return getattr(path);
    }
    Attr a = h.area->fgetattr(*h.file);
    return vfs_attr(h.ino_base | (a.node & kNodeMask), a);
}

void Vfs::flush(VfsHandle& h) {
    if (h.area) h.area->flush(*h.file);
}

void Vfs::fsync(VfsHandle& h) {
    if (h.area) h.area->fsync(*h.file);
}

void Vfs::release(VfsHandle& h) {
    if (h.area) h.area->release(*h.file);
}

void Vfs::setxattr(const std::string& path, const std::string& name, const std::string& value,
                   int flags) {
    Route r = writable_route(path);
    area_of(*r.medium, r.area)->setxattr(r.rel, name, value, flags);
}

std::string Vfs::getxattr(const std::string& path, const std::string& name) {
    Route r = route(path);
    if (r.kind != Route::AreaPath || (r.rel.empty() && !area_open(*r.medium, r.area)))
        throw Error(ErrorKind::NoAttribute, "no such attribute");
    return area_of(*r.medium, r.area)->getxattr(r.rel, name);
}

std::vector<std::string> Vfs::listxattr(const std::string& path) {
    Route r = route(path);
    if (r.kind != Route::AreaPath || (r.rel.empty() && !area_open(*r.medium, r.area))) return {};
    return area_of(*r.medium, r.area)->listxattr(r.rel);
}

void Vfs::removexattr(const std::string& path, const std::string& name) {
    Route r = writable_route(path);
    area_of(*r.medium, r.area)->removexattr(r.rel, name);
}

void Vfs::access(const std::string& path, int mask) {
    Route r = route(path);
    if (r.kind == Route::AreaPath && !(r.rel.empty() && !area_open(*r.medium, r.area)))
        return area_of(*r.medium, r.area)->access(r.rel, mask);
    if ((mask & W_OK) && (r.kind == Route::IdDir || r.kind == Route::IdFile)) read_only_id();
    VfsAttr a = getattr(path);  // the synthetic folders and files, and locked area roots
    if (!caller_may(options_.caller, a.dir, a.mode, mask))
        throw Error(ErrorKind::Locked, "permission denied");
}

SpaceInfo Vfs::statfs(const std::string& path) {
    Route r = route(path);
    if (r.kind == Route::AreaPath) {
        try {
            return area_of(*r.medium, r.area)->statfs();
        } catch (const Error& e) {
            if (e.kind() != ErrorKind::Locked) throw;
        }
    }
    struct statvfs sv {};
    if (::statvfs(options_.store.c_str(), &sv) != 0) return {};
    return {static_cast<std::uint64_t>(sv.f_blocks) * sv.f_frsize,
            static_cast<std::uint64_t>(sv.f_bavail) * sv.f_frsize};
}

}  // namespace vscard
