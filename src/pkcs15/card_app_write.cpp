// pkcs15::CardApp writes: data objects as files, and directory files rewritten so that the
// card is consistent after every APDU (the ordering is described in card_app.hpp).
#include <algorithm>

#include "error.hpp"
#include "pkcs15/card_app.hpp"
#include "pkcs15/card_app_state.hpp"

namespace vscard::pkcs15 {
namespace {

using card::Access;
using card::SecurityAttributes;

bool in_vscard_ranges(std::uint16_t fid) {
    return (fid >= kFirstDataFid && fid <= kLastDataFid) ||
           (fid >= kFirstDirFid && fid <= kLastDirFid) ||
           (fid >= kFirstKeyFid && fid <= kLastKeyFid);
}

Path file_only(Path p) {
    p.index.reset();
    p.length.reset();
    return p;
}

struct Located {
    std::size_t dir;
    std::size_t entry;
};

std::optional<Located> locate(const CardApp::State& s, Area area, std::string_view label) {
    for (std::size_t i = 0; i < s.dirs.size(); ++i)
        for (std::size_t j = 0; j < s.dirs[i].data.size(); ++j)
            if (const auto* d = std::get_if<DataObject>(&s.dirs[i].data[j]);
                d && area_of(*d) == area && d->common.label == label)
                return Located{i, j};
    return std::nullopt;
}

DataObject& object_at(CardApp::State& s, const Located& l) {
    return std::get<DataObject>(s.dirs[l.dir].data[l.entry]);
}

SecurityAttributes object_access(Area area, Access write, const std::optional<PinObject>& pin) {
    if (area == Area::Public) return {Access::always(), write, write};
    const Access p = Access::pin(static_cast<std::uint8_t>(*user_pin_of(pin).reference));
    return {p, p, p};
}

// Whether a DODF entry still names the file of P (another object in a range of it).
bool referenced(const CardApp::State& s, const Path& p) {
    for (const auto& f : s.dirs)
        for (const auto& e : f.data)
            if (const auto* d = std::get_if<DataObject>(&e);
                d && d->path.value == p.value && d->path.aid == p.aid)
                return true;
    return false;
}

void forget(CardApp::State& s, const Path& p) {
    s.content.erase(path_key(p));
    s.sizes.erase(path_key(p));
}

// Commits NEXT as the entries of DODF I.
void commit_dodf(CardApp::State& s, std::size_t i, Entries<DataObject> next) {
    commit_dir(s, s.dirs[i], serialize_dodf(next));
    s.dirs[i].data = std::move(next);
}

// Creates the file of a new object with CONTENT; returns its path (with index/length when
// the card gives file sizes, so that listing needs no SELECT). Nothing references it yet.
Path new_object_file(CardApp::State& s, Area area, ByteView content, const DirFile& dodf,
                     const std::optional<PinObject>& pin) {
    card::FileSpec spec;
    spec.size = content.size();
    spec.access = object_access(area, write_access(dodf, pin), pin);
    Path p = app_file_path(s, create_in_app(s, spec, kFirstDataFid, kLastDataFid));
    try {
        if (!content.empty()) s.iso.update_binary(0, content);  // the new file is current
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::Io) delete_quietly(s, p);
        throw;
    }
    if (!content.empty() && s.iso.caps().fci != false) {
        p.index = 0;
        p.length = static_cast<std::int64_t>(content.size());
    }
    return p;
}

DataObject new_entry(Area area, std::string_view label, const std::optional<PinObject>& pin,
                     Path path) {
    if (area == Area::Vscard)
        return make_vscard_object(std::string(label), user_pin_of(pin).auth_id, std::move(path));
    DataObject d;
    d.common.label = std::string(label);
    d.common.flags = kObjectModifiable;
    if (area == Area::Private) {
        d.common.flags |= kObjectPrivate;
        d.common.auth_id = user_pin_of(pin).auth_id;
    }
    d.path = std::move(path);
    return d;
}

void write_object(CardApp::State& s, const std::optional<PinObject>& pin, Area area,
                  std::string_view label, ByteView content) {
    const std::optional<Located> old = locate(s, area, label);
    const std::size_t di = old ? old->dir : writable_dir(s, DfType::DODF, pin);
    if (!s.dirs[di].writable)
        throw Error(ErrorKind::ReadOnly,
                    "the card's directory of '" + std::string(label) + "' cannot be rewritten");
    if (s.dirs[di].access && s.dirs[di].access->update.is_never())
        throw Error(ErrorKind::ReadOnly, "the card's data objects are read-only");
    // 1. the content, in a file of its own that nothing references yet
    Path p = new_object_file(s, area, content, s.dirs[di], pin);
    // 2. the DODF names it (the commit point)
    Entries<DataObject> next = s.dirs[di].data;
    std::optional<Path> replaced;
    if (old) {
        auto& d = std::get<DataObject>(next[old->entry]);
        replaced = d.path;
        d.path = p;
    } else {
        next.push_back(new_entry(area, label, pin, p));
    }
    try {
        commit_dodf(s, di, std::move(next));
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::Io) delete_quietly(s, p);
        throw;
    }
    s.content[path_key(p)] = WipedBytes(content.begin(), content.end());
    s.sizes[path_key(p)] = content.size();
    // 3. the old file goes last
    if (replaced) {
        forget(s, *replaced);
        if (!referenced(s, *replaced)) delete_quietly(s, *replaced);
    }
}

std::string folder_label(std::string_view folder) {
    std::string l(folder);
    if (l.empty() || l.back() != '/') l += '/';
    return l;
}

}  // namespace

// ---- shared helpers (card_app_state.hpp) -----------------------------------------------------

std::uint16_t last_fid(const Bytes& v) {
    if (v.size() < 2) return 0;
    return static_cast<std::uint16_t>(v[v.size() - 2] << 8 | v[v.size() - 1]);
}

void check_label(std::string_view label) {
    if (label.empty() || label == "/")
        throw Error(ErrorKind::Invalid, "an object on the card needs a non-empty name");
    if (label.size() > kMaxLabelBytes)
        throw Error(ErrorKind::NameTooLong,
                    "names on the card have at most " + std::to_string(kMaxLabelBytes) + " bytes");
}

const PinObject& user_pin_of(const std::optional<PinObject>& pin) {
    if (!pin || !pin->reference)
        throw Error(ErrorKind::NotSupported,
                    "the card has no user PIN, so it cannot hold private objects");
    return *pin;
}

Access write_access(const DirFile& dir, const std::optional<PinObject>& pin) {
    if (dir.access) return dir.access->update;
    if (pin && pin->reference) return Access::pin(static_cast<std::uint8_t>(*pin->reference));
    return Access::always();
}

std::size_t writable_dir(CardApp::State& s, DfType type, const std::optional<PinObject>& pin) {
    for (std::size_t i = 0; i < s.dirs.size(); ++i)
        if (s.dirs[i].type == type && s.dirs[i].writable) return i;
    DirFile f;
    f.type = type;
    f.ef_size = 1024;
    const Access w = s.odf.access ? s.odf.access->update : write_access(f, pin);
    f.access = SecurityAttributes{Access::always(), w, w};
    card::FileSpec spec;
    spec.size = f.ef_size;
    spec.access = *f.access;
    f.path = app_file_path(s, create_in_app(s, spec, kFirstDirFid, kLastDirFid));
    Entries<OdfEntry> next = s.odf_entries;
    next.push_back(OdfEntry{type, f.path, {}});
    try {
        commit_dir(s, s.odf, serialize_odf(next));
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::Io) delete_quietly(s, f.path);
        throw;
    }
    s.odf_entries = std::move(next);
    f.odf_index = s.odf_entries.size() - 1;
    s.dirs.push_back(std::move(f));
    return s.dirs.size() - 1;
}

std::set<std::uint16_t> used_fids(const CardApp::State& s) {
    std::set<std::uint16_t> used{kDirFid, kAppFid, kOdfFid, kTokenInfoFid};
    auto add = [&](const Path& p) { used.insert(last_fid(p.value)); };
    // Entries the codec does not model may name files too: every byte pair in vscard's ranges
    // inside them counts as used (at worst a FID is skipped).
    auto add_raw = [&](const Bytes& der) {
        for (std::size_t i = 0; i + 1 < der.size(); ++i) {
            const auto fid = static_cast<std::uint16_t>(der[i] << 8 | der[i + 1]);
            if (in_vscard_ranges(fid)) used.insert(fid);
        }
    };
    add(s.odf.path);
    for (const auto& f : s.dirs) {
        add(f.path);
        add_raw(f.content);  // every path of every directory file, modelled or not
    }
    for (const auto& e : s.odf_entries)
        if (const auto* u = std::get_if<UnknownEntry>(&e)) add_raw(u->der);
    return used;
}

std::uint16_t create_in_app(CardApp::State& s, card::FileSpec spec, std::uint16_t first,
                            std::uint16_t last, const std::set<std::uint16_t>& also_taken) {
    std::set<std::uint16_t> used = used_fids(s);
    used.insert(also_taken.begin(), also_taken.end());
    for (std::uint32_t fid = first; fid <= last; ++fid) {
        if (used.count(static_cast<std::uint16_t>(fid))) continue;
        spec.fid = static_cast<std::uint16_t>(fid);
        if (s.app_path.empty())
            s.iso.select_aid(kPkcs15Aid);
        else
            s.iso.select_path(s.app_path);
        try {
            s.iso.create_file(spec);
            return spec.fid;
        } catch (const Error& e) {
            if (e.kind() != ErrorKind::Exists) throw;
        }
        // An unreferenced file on a FID of ours: left by an interrupted write.
        try {
            s.iso.delete_file(spec.fid);
        } catch (const Error& e) {
            if (e.kind() == ErrorKind::Io) throw;
            continue;  // not ours to delete after all: take the next FID
        }
        try {
            s.iso.create_file(spec);
            return spec.fid;
        } catch (const Error& e) {
            if (e.kind() != ErrorKind::Exists) throw;
        }
    }
    throw Error(ErrorKind::NoSpace, "no free file identifier left in the card's application");
}

void delete_quietly(CardApp::State& s, const Path& p) {
    try {
        s.select(file_only(p), false);
        s.iso.delete_file();
    } catch (const Error& e) {
        // Anything but a removal only leaves a file behind, reclaimed when its FID comes up.
        if (e.kind() == ErrorKind::Io) throw;
    }
}

namespace {

// Writes NEXT over F's file in place when every intermediate state parses as the old or the
// new entries: one APDU for the changed bytes, or an append written back to front. False when
// neither applies (F's file must be replaced).
bool write_in_place(CardApp::State& s, DirFile& f, const Bytes& next) {
    const Bytes& old = f.content;
    // New bytes from LO on: NEXT, then one padding byte ending the entries (unless NEXT
    // fills the file); stale bytes of OLD behind it are cleared when that costs nothing.
    std::size_t lo = 0;
    while (lo < old.size() && lo < next.size() && old[lo] == next[lo]) ++lo;
    const std::size_t end = std::min(f.ef_size, next.size() + 1);
    const std::size_t end_clean = std::max(end, std::min(f.ef_size, old.size()));
    auto image = [&](std::size_t from, std::size_t to) {
        Bytes b(to - from, 0x00);
        for (std::size_t i = from; i < to && i < next.size(); ++i) b[i - from] = next[i];
        return b;
    };
    s.select(f.path, false);
    for (;;) {
        const std::size_t chunk = s.iso.write_chunk();
        if (end_clean - lo <= chunk || end - lo <= chunk) {
            const std::size_t to = end_clean - lo <= chunk ? end_clean : end;
            if (s.iso.update_binary_once(lo, image(lo, to))) return true;
            continue;  // the card took less than it was offered: plan again
        }
        if (lo < old.size()) return false;
        // An append: chunks from the back; the chunk holding the new entry's first byte (the
        // old end-of-entries padding) goes last, so until then readers see the old entries.
        std::vector<std::size_t> starts;
        for (std::size_t at = lo; at < end; at += chunk) starts.push_back(at);
        bool refused = false;
        for (auto it = starts.rbegin(); it != starts.rend() && !refused; ++it)
            refused = !s.iso.update_binary_once(*it, image(*it, std::min(end, *it + chunk)));
        if (!refused) return true;
    }
}

// Writes NEXT into a new, larger file and switches the ODF to it; the old file goes last.
void move_dir(CardApp::State& s, DirFile& f, const Bytes& next) {
    card::FileSpec spec;
    spec.access =
        f.access.value_or(SecurityAttributes{Access::always(), Access::always(), Access::always()});
    if (!f.access && s.odf.access) {
        spec.access.update = s.odf.access->update;
        spec.access.remove = s.odf.access->update;
    }
    const std::size_t room = std::max<std::size_t>(256, next.size() / 2);
    std::uint16_t fid = 0;
    for (std::size_t size : {std::max(f.ef_size, next.size() + room), next.size()}) {
        spec.size = std::min(size, kMaxObjectSize);
        try {
            fid = create_in_app(s, spec, kFirstDirFid, kLastDirFid);
            break;
        } catch (const Error& e) {
            if (e.kind() != ErrorKind::NoSpace || size == next.size()) throw;
        }
    }
    Path p = f.path.value.size() == 2 && !s.app_path.empty()
                 ? Path{{static_cast<std::uint8_t>(fid >> 8), static_cast<std::uint8_t>(fid)},
                        {},
                        {},
                        {}}
                 : app_file_path(s, fid);
    Entries<OdfEntry> odf = s.odf_entries;
    try {
        s.iso.update_binary(0, next);  // the new file is current; nothing references it yet
        std::get<OdfEntry>(odf[f.odf_index]).path = p;
        commit_dir(s, s.odf, serialize_odf(odf));  // the switch: one APDU
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::Io) delete_quietly(s, p);
        throw;
    }
    s.odf_entries = std::move(odf);
    const Path old = f.path;
    f.path = p;
    f.ef_size = spec.size;
    f.content = next;
    f.access = spec.access;
    delete_quietly(s, old);
}

}  // namespace

void commit_dir(CardApp::State& s, DirFile& f, const Bytes& next) {
    if (!f.writable) throw Error(ErrorKind::ReadOnly, "this directory file cannot be rewritten");
    if (next == f.content) return;
    if (next.size() <= f.ef_size && write_in_place(s, f, next)) {
        f.content = next;
        return;
    }
    if (&f == &s.odf) throw Error(ErrorKind::NoSpace, "the card's ODF has no room for this change");
    move_dir(s, f, next);
}

// ---- CardApp writes --------------------------------------------------------------------------

void CardApp::write(Area area, std::string_view label, ByteView content) {
    check_label(label);
    if (content.size() > kMaxObjectSize)
        throw Error(ErrorKind::TooBig, "objects on the card hold at most " +
                                           std::to_string(kMaxObjectSize) + " bytes");
    const auto pin = user_pin();
    guarded(*s_, [&] { write_object(*s_, pin, area, label, content); });
}

void CardApp::mkdir(Area area, std::string_view folder) {
    const std::string label = folder_label(folder);
    check_label(label);
    if (find(area, label))
        throw Error(ErrorKind::Exists, "folder '" + label + "' exists on the card");
    const auto pin = user_pin();
    guarded(*s_, [&] { write_object(*s_, pin, area, label, {}); });
}

void CardApp::remove(Area area, std::string_view label) {
    guarded(*s_, [&] {
        const auto at = locate(*s_, area, label);
        if (!at)
            throw Error(ErrorKind::NotFound, "no object '" + std::string(label) + "' in the " +
                                                 area_name(area) + " area of the card");
        const Path p = object_at(*s_, *at).path;
        Entries<DataObject> next = s_->dirs[at->dir].data;
        next.erase(next.begin() + static_cast<long>(at->entry));
        commit_dodf(*s_, at->dir, std::move(next));  // the entry first ...
        forget(*s_, p);
        if (!referenced(*s_, p)) delete_quietly(*s_, p);  // ... then the file
    });
}

void CardApp::rename(Area area, std::string_view from, std::string_view to) {
    check_label(to);
    if ((!from.empty() && from.back() == '/') != (to.back() == '/'))
        throw Error(ErrorKind::Invalid, "a folder renames to a folder, a file to a file");
    guarded(*s_, [&] {
        const auto src = locate(*s_, area, from);
        if (!src)
            throw Error(ErrorKind::NotFound, "no object '" + std::string(from) + "' in the " +
                                                 area_name(area) + " area of the card");
        if (from == to) return;
        const auto dst = locate(*s_, area, to);
        std::optional<Path> replaced;
        if (dst) replaced = object_at(*s_, *dst).path;
        Entries<DataObject> next = s_->dirs[src->dir].data;
        std::get<DataObject>(next[src->entry]).common.label = std::string(to);
        if (dst && dst->dir == src->dir) next.erase(next.begin() + static_cast<long>(dst->entry));
        commit_dodf(*s_, src->dir, std::move(next));
        if (dst && dst->dir != src->dir) {  // the replaced entry lives in another DODF
            Entries<DataObject> other = s_->dirs[dst->dir].data;
            other.erase(other.begin() + static_cast<long>(dst->entry));
            commit_dodf(*s_, dst->dir, std::move(other));
        }
        if (replaced) {
            forget(*s_, *replaced);
            if (!referenced(*s_, *replaced)) delete_quietly(*s_, *replaced);
        }
    });
}

void CardApp::rename_prefix(Area area, std::string_view from_prefix, std::string_view to_prefix) {
    if (from_prefix.empty()) throw Error(ErrorKind::Invalid, "renaming needs a folder name");
    guarded(*s_, [&] {
        std::vector<std::string> targets;
        std::size_t moved = 0;
        for (const auto& f : list(area)) {
            if (f.label.rfind(from_prefix, 0) == 0) {
                ++moved;
                std::string l = std::string(to_prefix) + f.label.substr(from_prefix.size());
                check_label(l);
                targets.push_back(std::move(l));
            }
        }
        for (const auto& t : targets)
            if (t.rfind(from_prefix, 0) != 0 && find(area, t))
                throw Error(ErrorKind::Exists, "'" + t + "' exists on the card");
        if (moved == 0)
            throw Error(ErrorKind::NotFound, "nothing named '" + std::string(from_prefix) +
                                                 "...' in the " + area_name(area) + " area");
        for (std::size_t i = 0; i < s_->dirs.size(); ++i) {
            Entries<DataObject> next = s_->dirs[i].data;
            bool changed = false;
            for (auto& e : next) {
                auto* d = std::get_if<DataObject>(&e);
                if (!d || area_of(*d) != area || d->common.label.rfind(from_prefix, 0) != 0)
                    continue;
                d->common.label =
                    std::string(to_prefix) + d->common.label.substr(from_prefix.size());
                changed = true;
            }
            if (changed) commit_dodf(*s_, i, std::move(next));
        }
    });
}

}  // namespace vscard::pkcs15
