#include "vfs/card_store.hpp"

#include <algorithm>
#include <functional>
#include <vector>

#include "card/personalize.hpp"
#include "error.hpp"
#include "keys.hpp"
#include "log.hpp"

namespace vscard {
namespace {

// An entry the card shows but the mount cannot change (see CardAreaStore::Fixed).
struct FixedFile {
    std::string name;
    std::optional<WipedBytes> content;  // nullopt: cannot be opened at all
    std::string why;
};

struct Listing {
    std::vector<pkcs15::DataFile> files;  // labels without the area's prefix
    std::vector<FixedFile> fixed;
};

constexpr const char* kKeptOnCard =
    "a key the card keeps to itself (no copy of it exists elsewhere); it cannot be read, "
    "overwritten, moved or deleted through the mount (`vscardctl delete-key` deletes it for good)";
constexpr const char* kPublicKeyOfCardKey =
    "the public key of a key the card keeps to itself; it goes with that key";
constexpr const char* kFromCardDirectory =
    "a certificate or public key of the card's own; the mount shows it read-only";

bool is_entry_name(const std::string& name) {
    return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

WipedBytes wiped(const std::string& s) {
    return WipedBytes(s.begin(), s.end());
}

// The keys in the card's key store that no envelope among FILES stands for (generated on the
// card, or put there by other tools), each with its NAME.pub when the card keeps that.
void add_card_only_keys(pkcs15::CardApp& app, Listing& l, const std::string& area_name) {
    std::set<std::string> names;
    for (const auto& f : l.files) names.insert(f.label);
    for (const auto& key : app.private_keys()) {
        const std::string& name = key.common.label;
        if (names.count(name)) continue;
        if (!is_entry_name(name) || name.ends_with(".pub")) {
            log_line(area_name + ": a key on the card is not shown: its label '" + name +
                     "' is no entry name");
            continue;
        }
        l.fixed.push_back({name, std::nullopt, kKeptOnCard});
        if (names.count(name + ".pub")) continue;
        try {
            if (auto spki = app.public_key(name))
                l.fixed.push_back(
                    {name + ".pub", wiped(keys::public_pem_of_spki(*spki)), kPublicKeyOfCardKey});
        } catch (const Error& e) {
            if (e.kind() == ErrorKind::Io) throw;
            log_line(area_name + ": no public key for '" + name + "': " + e.what());
        }
    }
}

// The card's certificates (as DER, NAME.crt) and the public keys of no key of the card's
// (as PEM, NAME.pub), from its CDF and PuKDF.
void add_directory_objects(pkcs15::CardApp& app, Listing& l, const std::string& area_name) {
    auto add = [&](const std::string& label, const std::string& suffix, const pkcs15::Path& path,
                   auto convert) {
        const std::string name = label.ends_with(suffix) ? label : label + suffix;
        if (!is_entry_name(label)) {
            log_line(area_name + ": '" + label +
                     "' of the card's directory is not shown: " + "its label is no file name");
            return;
        }
        try {
            l.fixed.push_back({name, convert(app.read_path(path)), kFromCardDirectory});
        } catch (const Error& e) {
            if (e.kind() == ErrorKind::Io) throw;
            log_line(area_name + ": '" + name + "' is not shown: " + e.what());
        }
    };
    for (const auto& cert : app.certificates())
        add(cert.common.label, ".crt", cert.path, [](WipedBytes der) { return der; });
    std::set<Bytes> private_ids;
    for (const auto& key : app.private_keys()) private_ids.insert(key.id);
    for (const auto& pub : app.public_keys())
        if (!private_ids.count(pub.id))
            add(pub.common.label, ".pub", pub.path,
                [](const WipedBytes& spki) { return wiped(keys::public_pem_of_spki(spki)); });
}

std::string entry_name(const std::string& label, const std::string& prefix) {
    return label.substr(prefix.size());
}

// Secret area: an entry's content goes into the card's key store too when it is a key
// envelope; an entry that no longer holds one takes its key out of it.
void write_entry(pkcs15::CardApp& app, const std::string& label, const std::string& name,
                 const WipedBytes& content, const SecureBytes& family_key) {
    if (keys::classify(content) != keys::ContentKind::Envelope) {
        app.write(pkcs15::Area::Vscard, label, content);
        if (app.private_key(name)) app.remove_key(name);
        return;
    }
    // The key first, so that a card pulled in between holds the key (shown as a key of the
    // card's own) rather than an envelope the card cannot use.
    keys::OpenedKey key = keys::open_envelope(content, family_key);
    const bool had_key = app.private_key(name).has_value();
    app.import_key(name, key.pkcs8, key.spki);
    try {
        app.write(pkcs15::Area::Vscard, label, content);
    } catch (const Error& e) {
        if (had_key || e.kind() == ErrorKind::Io) throw;
        try {
            app.remove_key(name);
        } catch (const Error& undo) {
            if (undo.kind() == ErrorKind::Io) throw;
        }
        throw;
    }
}

std::vector<std::string> components(const std::string& label) {
    std::vector<std::string> parts;
    std::size_t i = 0;
    while (i < label.size()) {
        std::size_t j = label.find('/', i);
        if (j == std::string::npos) j = label.size();
        parts.push_back(label.substr(i, j - i));
        i = j + 1;
    }
    return parts;
}

}  // namespace

CardAreaStore::CardAreaStore(std::shared_ptr<CardSession> session, Options options)
    : session_(std::move(session)), options_(std::move(options)) {}

std::string CardAreaStore::label_of(const Nodes& nodes, std::uint64_t id) const {
    return options_.label_prefix + path_of(nodes, id);
}

std::string CardAreaStore::path_of(const Nodes& nodes, std::uint64_t id) {
    std::string label;
    for (std::size_t depth = 0; id != kRootId; ++depth) {
        auto it = nodes.find(id);
        if (it == nodes.end() || depth > nodes.size())
            throw Error(ErrorKind::Corrupt, "the folder tree of the card model is broken");
        const NodeMeta& m = it->second;
        label = label.empty() ? m.name : m.name + "/" + label;
        id = m.parent;
    }
    return label;
}

std::optional<std::uint64_t> CardAreaStore::owner_of(std::uint64_t content) const {
    for (const auto& [id, meta] : nodes_)
        if (meta.kind == NodeKind::File && meta.content == content) return id;
    return std::nullopt;
}

std::vector<NodeRow> CardAreaStore::load() {
    {
        std::lock_guard lock(mutex_);
        if (loaded_) return rows();
    }
    const pkcs15::Area area = options_.area;
    const std::string& prefix = options_.label_prefix;
    Listing listing = session_->run([&](pkcs15::CardApp& app) {
        Listing l;
        for (auto& f : app.list(area)) {
            if (f.label.rfind(prefix, 0) != 0 || f.label.size() == prefix.size()) continue;
            if (!f.is_folder() && !f.size) f.size = app.size(area, f.label);
            f.label.erase(0, prefix.size());
            l.files.push_back(std::move(f));
        }
        if (keeps_keys()) add_card_only_keys(app, l, options_.name);
        if (area == pkcs15::Area::Public) add_directory_objects(app, l, options_.name);
        return l;
    });

    std::lock_guard lock(mutex_);
    nodes_.clear();
    markers_.clear();
    orphans_.clear();
    fixed_.clear();
    NodeMeta root;
    root.kind = NodeKind::Dir;
    root.mode = options_.dir_mode;
    root.mtime = root.ctime = options_.time;
    nodes_[kRootId] = root;
    std::map<std::pair<std::uint64_t, std::string>, std::uint64_t> children;

    auto sorted = listing.files;
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.label < b.label; });
    for (const auto& f : sorted) {
        auto parts = components(f.label);
        if (parts.empty()) continue;
        std::uint64_t parent = kRootId;
        const std::size_t dirs = f.is_folder() ? parts.size() : parts.size() - 1;
        bool conflict = false;
        for (std::size_t i = 0; i < dirs && !conflict; ++i) {
            auto [it, fresh] = children.try_emplace({parent, parts[i]}, 0);
            if (fresh) {
                NodeMeta dir;
                dir.kind = NodeKind::Dir;
                dir.parent = parent;
                dir.name = parts[i];
                dir.mode = options_.dir_mode;
                dir.mtime = dir.ctime = options_.time;
                it->second = next_id_.fetch_add(1);
                nodes_[it->second] = dir;
            } else if (nodes_.at(it->second).kind != NodeKind::Dir) {
                conflict = true;
                break;
            }
            parent = it->second;
        }
        if (!conflict && f.is_folder()) {
            markers_.insert(parent);
            continue;
        }
        if (!conflict && !parts.back().empty()) {
            auto [it, fresh] = children.try_emplace({parent, parts.back()}, 0);
            if (fresh) {
                NodeMeta file;
                file.kind = NodeKind::File;
                file.parent = parent;
                file.name = parts.back();
                file.mode = options_.file_mode;
                file.mtime = file.ctime = options_.time;
                file.size = f.size.value_or(0);
                file.content = next_id_.fetch_add(1);
                it->second = next_id_.fetch_add(1);
                nodes_[it->second] = file;
                continue;
            }
        }
        // Two objects claim one name (written by another program): the first one shows.
        log_line(options_.name + ": object '" + f.label +
                 "' is hidden: its name is taken by another object");
    }

    auto add_file = [&](const std::string& name, std::uint32_t mode, std::size_t size) {
        auto [it, fresh] = children.try_emplace({kRootId, name}, 0);
        if (!fresh) return std::uint64_t{0};
        NodeMeta file;
        file.kind = NodeKind::File;
        file.parent = kRootId;
        file.name = name;
        file.mode = mode;
        // The card dates none of them: a time that stays the same across insertions (the
        // epoch, "unknown"), so that rsync -a back onto the card finds them unchanged.
        file.mtime = file.ctime = Timestamp{};
        file.size = size;
        file.content = next_id_.fetch_add(1);
        it->second = next_id_.fetch_add(1);
        nodes_[it->second] = file;
        return file.content;
    };
    for (auto& f : listing.fixed) {
        const std::size_t size = f.content ? f.content->size() : 0;
        const std::uint64_t content = add_file(f.name, f.content ? 0444 : 0400, size);
        if (content)
            fixed_[content] = {f.name, std::move(f.content), f.why};
        else
            log_line(options_.name + ": '" + f.name + "' is not shown: its name is taken");
    }

    loaded_ = true;
    return rows();
}

std::vector<NodeRow> CardAreaStore::rows() const {
    std::vector<NodeRow> out;
    out.reserve(nodes_.size());
    for (const auto& [id, meta] : nodes_) out.push_back({id, meta});
    return out;
}

void CardAreaStore::refuse(const Fixed& entry) const {
    throw Error(ErrorKind::Locked, options_.name + "/" + entry.name + ": " + entry.why);
}

void CardAreaStore::check_open(std::uint64_t content, bool writable) {
    std::lock_guard lock(mutex_);
    auto it = fixed_.find(content);
    if (it != fixed_.end() && (writable || !it->second.content)) refuse(it->second);
}

void CardAreaStore::check_fixed_untouched(const Nodes& after, const AreaChange& change) const {
    std::set<std::uint64_t> written;
    for (const auto& c : change.chunks) written.insert(c.content);
    for (auto [content, from] : change.dropped_chunks) written.insert(content);
    for (const auto& [id, meta] : nodes_) {
        if (meta.kind != NodeKind::File) continue;
        auto fixed = fixed_.find(meta.content);
        if (fixed == fixed_.end()) continue;
        auto now = after.find(id);
        if (now == after.end() || now->second.name != meta.name ||
            now->second.parent != meta.parent || now->second.size != meta.size ||
            written.count(meta.content))
            refuse(fixed->second);
    }
}

void CardAreaStore::apply(const AreaChange& change) {
    const pkcs15::Area area = options_.area;
    std::lock_guard lock(mutex_);
    Nodes after = nodes_;
    for (const auto& row : change.upserts) after[row.id] = row.meta;
    for (auto id : change.deleted_nodes) after.erase(id);
    if (!fixed_.empty()) check_fixed_untouched(after, change);
    const std::string& prefix = options_.label_prefix;
    const bool keys = keeps_keys();
    const SecureBytes& family_key = options_.family_key;
    std::set<std::uint64_t> dropped_whole;
    for (auto [content, from] : change.dropped_chunks)
        if (from == 0) dropped_whole.insert(content);
    for (const auto& c : change.chunks)
        if (c.index >= kChunksPerObject || c.data.size() > kChunkSize) check_size(UINT64_MAX);
    std::map<std::uint64_t, std::vector<const ChunkWrite*>> chunks;  // content -> its writes
    std::map<std::uint64_t, std::uint64_t> cut_at;                   // content -> first chunk gone
    for (const auto& c : change.chunks) chunks[c.content].push_back(&c);
    for (auto [content, from] : change.dropped_chunks) {
        auto [it, fresh] = cut_at.try_emplace(content, from);
        if (!fresh) it->second = std::min(it->second, from);
    }

    // The card operations this change needs, in an order that never loses an object: a
    // rename replaces its target itself, new folders exist before what goes into them, and
    // removals come last.
    std::vector<std::function<void(pkcs15::CardApp&)>> steps;
    std::set<std::string> taken_by_moves;
    std::set<std::uint64_t> new_markers, gone_markers;
    std::map<std::uint64_t, std::uint64_t> keep_orphan;  // content -> node it belonged to

    for (const auto& row : change.upserts) {
        auto old = nodes_.find(row.id);
        if (old == nodes_.end() || row.id == kRootId) continue;
        std::string from = label_of(nodes_, row.id), to = label_of(after, row.id);
        if (from == to) continue;
        taken_by_moves.insert(to);
        if (row.meta.kind == NodeKind::Dir) {
            // A folder moved over an empty folder: that one's marker goes first.
            for (auto id : change.deleted_nodes)
                if (nodes_.count(id) && label_of(nodes_, id) == to && markers_.count(id)) {
                    steps.push_back([=](pkcs15::CardApp& app) { app.remove(area, to + "/"); });
                    gone_markers.insert(id);
                }
            steps.push_back([=](pkcs15::CardApp& app) {
                app.rename_prefix(area, from + "/", to + "/");
                if (!keys) return;
                const std::string key_from = entry_name(from, prefix) + "/";
                const std::string key_to = entry_name(to, prefix) + "/";
                for (const auto& k : app.private_keys())
                    if (k.common.label.rfind(key_from, 0) == 0)
                        app.rename_key(k.common.label,
                                       key_to + k.common.label.substr(key_from.size()));
            });
        } else {
            for (auto id : change.deleted_nodes) {
                auto d = nodes_.find(id);
                if (d != nodes_.end() && d->second.kind == NodeKind::File &&
                    label_of(nodes_, id) == to && !dropped_whole.count(d->second.content))
                    keep_orphan[d->second.content] = id;
            }
            steps.push_back([=](pkcs15::CardApp& app) {
                if (!keys) return app.rename(area, from, to);
                // The rename replaces the target's key too; the key follows its entry.
                const std::string key_from = entry_name(from, prefix);
                const std::string key_to = entry_name(to, prefix);
                if (app.private_key(key_to)) app.remove_key(key_to);
                app.rename(area, from, to);
                if (app.private_key(key_from)) app.rename_key(key_from, key_to);
            });
        }
    }
    for (const auto& row : change.upserts) {
        if (nodes_.count(row.id) || row.meta.kind != NodeKind::Dir) continue;
        std::string label = label_of(after, row.id);
        steps.push_back([=](pkcs15::CardApp& app) { app.mkdir(area, label); });
        new_markers.insert(row.id);
    }
    for (const auto& [id, meta] : after) {
        if (meta.kind != NodeKind::File) continue;
        auto old = nodes_.find(id);
        const bool existed = old != nodes_.end();
        const bool written = chunks.count(meta.content) || cut_at.count(meta.content);
        if (existed && !written && old->second.size == meta.size) continue;
        check_size(meta.size);
        // The object's new content: what the card holds (unless all of it goes), cut where
        // the change truncates, the written chunks laid over it, zeros up to the size.
        std::string label = label_of(after, id);
        std::vector<const ChunkWrite*> writes = chunks[meta.content];
        const std::uint64_t cut = cut_at.count(meta.content) ? cut_at[meta.content] : UINT64_MAX;
        const bool read_old = existed && cut != 0;
        const std::size_t size = static_cast<std::size_t>(meta.size);
        steps.push_back([=, &family_key](pkcs15::CardApp& app) {
            WipedBytes content;
            if (read_old) content = app.read(area, label);
            if (cut != UINT64_MAX && cut * kChunkSize < content.size())
                content.resize(static_cast<std::size_t>(cut * kChunkSize));
            for (const ChunkWrite* w : writes) {
                // A chunk is replaced whole: what a shorter one does not cover is a hole.
                const std::size_t at = static_cast<std::size_t>(w->index * kChunkSize);
                const std::size_t end = std::max(content.size(), at + w->data.size());
                content.resize(end, 0);
                auto chunk_end =
                    content.begin() + static_cast<std::ptrdiff_t>(std::min(end, at + kChunkSize));
                auto copied = std::copy(w->data.begin(), w->data.end(),
                                        content.begin() + static_cast<std::ptrdiff_t>(at));
                std::fill(copied, chunk_end, 0);
            }
            content.resize(size, 0);
            if (keys)
                write_entry(app, label, entry_name(label, prefix), content, family_key);
            else
                app.write(area, label, content);
        });
    }
    for (auto id : change.deleted_nodes) {
        auto d = nodes_.find(id);
        if (d == nodes_.end() || id == kRootId) continue;
        std::string label = label_of(nodes_, id);
        if (d->second.kind == NodeKind::Dir) {
            if (markers_.count(id) && !gone_markers.count(id)) {
                steps.push_back([=](pkcs15::CardApp& app) { app.remove(area, label + "/"); });
                gone_markers.insert(id);
            }
            continue;
        }
        if (taken_by_moves.count(label)) continue;  // replaced by a rename above
        if (!dropped_whole.count(d->second.content)) keep_orphan[d->second.content] = id;
        steps.push_back([=](pkcs15::CardApp& app) {
            // The key before its envelope: a card pulled in between still has the envelope,
            // and removing it again finishes the job.
            if (keys && app.private_key(entry_name(label, prefix)))
                app.remove_key(entry_name(label, prefix));
            app.remove(area, label);
        });
    }
    // A folder known only from the labels below it would vanish with its last object.
    for (const auto& [id, meta] : after) {
        if (meta.kind != NodeKind::Dir || id == kRootId || markers_.count(id) ||
            new_markers.count(id) || !nodes_.count(id))
            continue;
        const bool empty = std::none_of(after.begin(), after.end(), [&, id = id](const auto& n) {
            return n.second.parent == id;
        });
        if (!empty) continue;
        std::string label = label_of(after, id);
        const std::string name = options_.name;
        steps.push_back([=](pkcs15::CardApp& app) {
            try {
                app.mkdir(area, label);
            } catch (const Error& e) {
                // Nothing is lost: the empty folder just does not come back after reinsertion.
                log_line(name + ": cannot keep the empty folder '" + label + "': " + e.what());
            }
        });
        new_markers.insert(id);
    }

    // Open files whose object goes keep their content until their last close.
    std::map<std::uint64_t, WipedBytes> kept;
    std::size_t done = 0;
    // Mode and time changes stay in the model: the card is not asked at all.
    if (!steps.empty() || !keep_orphan.empty())
        session_->run_write([&](pkcs15::CardApp& app) {
            if (done == 0)
                for (auto [content, id] : keep_orphan)
                    if (!kept.count(content)) kept[content] = app.read(area, label_of(nodes_, id));
            for (; done < steps.size(); ++done) steps[done](app);
            return 0;
        });

    nodes_ = std::move(after);
    if (!steps.empty()) space_.reset();
    for (auto id : new_markers) markers_.insert(id);
    for (auto id : gone_markers) markers_.erase(id);
    for (auto id : change.deleted_nodes) markers_.erase(id);
    for (auto& [content, data] : kept) orphans_[content] = std::move(data);
    for (auto content : dropped_whole)
        if (!owner_of(content)) orphans_.erase(content);
}

namespace {

// Chunk INDEX of CONTENT into OUT; false past its end.
bool slice(const WipedBytes& content, std::uint64_t index, std::size_t chunk_size,
           WipedBytes& out) {
    out.clear();
    if (index * chunk_size >= content.size()) return false;
    auto from = content.begin() + static_cast<std::ptrdiff_t>(index * chunk_size);
    auto to = content.begin() + static_cast<std::ptrdiff_t>(std::min<std::uint64_t>(
                                    content.size(), (index + 1) * chunk_size));
    out.assign(from, to);
    return true;
}

}  // namespace

bool CardAreaStore::read_chunk(std::uint64_t content, std::uint64_t index, WipedBytes& out) {
    std::string label;
    {
        std::lock_guard lock(mutex_);
        auto orphan = orphans_.find(content);
        if (orphan != orphans_.end()) return slice(orphan->second, index, kChunkSize, out);
        if (auto it = fixed_.find(content); it != fixed_.end()) {
            if (!it->second.content) refuse(it->second);
            return slice(*it->second.content, index, kChunkSize, out);
        }
        auto owner = owner_of(content);
        if (!owner) return false;
        label = label_of(nodes_, *owner);
    }
    // The application keeps what it read, so the chunks after the first cost no APDU.
    WipedBytes whole =
        session_->run([&](pkcs15::CardApp& app) { return app.read(options_.area, label); });
    return slice(whole, index, kChunkSize, out);
}

void CardAreaStore::check_size(std::uint64_t size) const {
    if (size > pkcs15::kMaxObjectSize)
        throw Error(ErrorKind::TooBig, options_.name + ": objects on a card hold at most " +
                                           std::to_string(pkcs15::kMaxObjectSize) + " bytes");
}

SpaceInfo CardAreaStore::space() {
    {
        std::lock_guard lock(mutex_);
        if (space_) return *space_;
    }
    SpaceInfo info;
    if (auto personalizer = card::personalizer_for(session_->atr())) {
        auto memory =
            session_->run([&](pkcs15::CardApp& app) { return personalizer->memory(app.iso()); });
        if (memory) info = {memory->capacity, memory->available};
    }
    std::lock_guard lock(mutex_);
    space_ = info;  // asked again after the next change (tools call statfs often)
    return info;
}
void CardAreaStore::drop_unreferenced(const std::vector<std::uint64_t>& live_contents) {
    std::set<std::uint64_t> live(live_contents.begin(), live_contents.end());
    std::lock_guard lock(mutex_);
    for (auto it = orphans_.begin(); it != orphans_.end();)
        it = live.count(it->first) ? std::next(it) : orphans_.erase(it);
}

}  // namespace vscard
