#include "vfs/area_fs.hpp"

#include <sys/xattr.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <tuple>

#include "error.hpp"

namespace vscard {
namespace {

constexpr std::size_t kMaxName = 255;
constexpr std::size_t kMaxXattrValue = 64 * 1024;

using Exclusive = std::unique_lock<std::shared_mutex>;
using Shared = std::shared_lock<std::shared_mutex>;

bool has_pending(const FileData& f) {
    return !f.persisted || !f.dirty.empty() || f.drop_from || f.staging ||
           f.size != f.committed_size || !(f.mtime == f.committed_mtime);
}

// The chunk INDEX of F while it is being staged (the batch is sorted by index), or null.
const WipedBytes* inflight_chunk(const FileData& f, std::uint64_t index) {
    const auto& v = f.inflight.chunks;
    auto it = std::lower_bound(v.begin(), v.end(), index,
                               [](const ChunkWrite& c, std::uint64_t i) { return c.index < i; });
    return it != v.end() && it->index == index ? &it->data : nullptr;
}

}  // namespace

AreaFs::AreaFs(std::shared_ptr<AreaStore> store, Area area, std::shared_ptr<ContentPolicy> policy,
               std::string transient_prefix, Caller caller)
    : store_(std::move(store)),
      area_(area),
      policy_(std::move(policy)),
      transient_prefix_(std::move(transient_prefix)),
      caller_(caller),
      chunk_size_(store_->chunk_size()) {
    load();
}

AreaFs::~AreaFs() {
    // A batch still being staged finishes first (the data it writes is dropped at the next
    // load, as after a crash).
    for (auto& [id, n] : nodes_)
        if (n.file && n.file->stage_job.valid()) n.file->stage_job.wait();
}

void AreaFs::check_unlocked() const {
    if (!locked_) return;
    if (lock_reason_) throw *lock_reason_;
    throw Error(ErrorKind::Locked, std::string("the ") + area_name(area_) +
                                       " area is locked; unlock it with 'vscardctl unlock'");
}

void AreaFs::check_name(const std::string& name) {
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
        name.find('\0') != std::string::npos)
        throw Error(ErrorKind::Invalid, "invalid file name");
    if (name.size() > kMaxName) throw Error(ErrorKind::NameTooLong, "file name too long");
}

void AreaFs::load() {
    auto rows = store_->load();
    std::vector<std::uint64_t> live_contents;
    for (auto& row : rows) {
        if (row.meta.parent == 0) {
            if (root_ != 0 || row.meta.kind != NodeKind::Dir)
                throw Error(ErrorKind::Corrupt, store_->describe() + ": the " + area_name(area_) +
                                                    " area has a damaged root");
            root_ = row.id;
        }
        Node n;
        if (row.meta.kind == NodeKind::File) {
            n.file = std::make_shared<FileData>();
            n.file->id = row.id;
            n.file->content = row.meta.content;
            n.file->size = n.file->committed_size = row.meta.size;
            n.file->mtime = n.file->committed_mtime = row.meta.mtime;
            live_contents.push_back(row.meta.content);
        }
        n.meta = std::move(row.meta);
        nodes_.emplace(row.id, std::move(n));
    }
    if (root_ == 0)
        throw Error(ErrorKind::Corrupt,
                    store_->describe() + ": the " + area_name(area_) + " area has no root");
    for (auto& [id, n] : nodes_) {
        if (id == root_) continue;
        auto parent = nodes_.find(n.meta.parent);
        if (parent == nodes_.end() || parent->second.meta.kind != NodeKind::Dir)
            throw Error(ErrorKind::Corrupt, store_->describe() + ": object '" + n.meta.name +
                                                "' in the " + area_name(area_) +
                                                " area has lost its folder");
        if (!parent->second.children.emplace(n.meta.name, id).second)
            throw Error(ErrorKind::Corrupt, store_->describe() + ": two objects named '" +
                                                n.meta.name + "' in one folder");
        if (n.meta.kind == NodeKind::Dir) ++parent->second.subdirs;
    }
    // Every object must hang below the root: folders forming a cycle in a damaged store
    // would otherwise make walks up the tree (path_of) loop forever.
    std::size_t reachable = 0;
    std::vector<std::uint64_t> pending{root_};
    while (!pending.empty()) {
        const Node& n = nodes_.at(pending.back());
        pending.pop_back();
        ++reachable;
        for (const auto& [name, child] : n.children) pending.push_back(child);
    }
    if (reachable != nodes_.size())
        throw Error(ErrorKind::Corrupt, store_->describe() + ": the " + area_name(area_) +
                                            " area has folders that form a cycle");
    store_->drop_unreferenced(live_contents);
}

AreaFs::Node& AreaFs::node(std::uint64_t id) {
    auto it = nodes_.find(id);
    if (it == nodes_.end()) throw Error(ErrorKind::NotFound, "no such file or directory");
    return it->second;
}

void AreaFs::check_access(const Node& n, int mask) const {
    if (caller_may(caller_, n.meta.kind == NodeKind::Dir, n.meta.mode, mask)) return;
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", n.meta.mode & 07777);
    throw Error(ErrorKind::Locked, std::string("permission denied by mode ") + mode + " of '" +
                                       (n.meta.name.empty() ? "/" : n.meta.name) +
                                       "'; change it with chmod");
}

std::optional<std::uint64_t> AreaFs::find(const RelPath& path) {
    std::uint64_t id = root_;
    for (const auto& part : path) {
        Node& n = node(id);
        if (n.meta.kind != NodeKind::Dir) throw Error(ErrorKind::NotDirectory, "not a directory");
        check_access(n, X_OK);
        auto it = n.children.find(part);
        if (it == n.children.end()) {
            if (part.size() > kMaxName) throw Error(ErrorKind::NameTooLong, "file name too long");
            return std::nullopt;
        }
        id = it->second;
    }
    return id;
}

std::uint64_t AreaFs::resolve(const RelPath& path) {
    if (auto id = find(path)) return *id;
    throw Error(ErrorKind::NotFound, "no such file or directory");
}

std::pair<std::uint64_t, std::string> AreaFs::resolve_parent(const RelPath& path, int parent_mask) {
    if (path.empty()) throw Error(ErrorKind::Busy, "the area root cannot be changed");
    RelPath parent(path.begin(), path.end() - 1);
    std::uint64_t pid = resolve(parent);
    if (node(pid).meta.kind != NodeKind::Dir)
        throw Error(ErrorKind::NotDirectory, "not a directory");
    check_access(node(pid), parent_mask);
    check_name(path.back());
    return {pid, path.back()};
}

Attr AreaFs::attr_of(std::uint64_t id) {
    Node& n = node(id);
    Attr a;
    a.node = id;
    a.kind = n.meta.kind;
    a.mode = n.meta.mode;
    a.ctime = n.meta.ctime;
    if (n.file) {
        std::lock_guard lock(n.file->mutex);
        a.size = n.file->size;
        a.mtime = n.file->mtime;
        a.nlink = 1;
    } else {
        a.mtime = n.meta.mtime;
        a.nlink = 2 + n.subdirs;
    }
    return a;
}

NodeRow AreaFs::row_of(std::uint64_t id) {
    Node& n = node(id);
    NodeRow row{id, n.meta};
    if (n.file) {
        row.meta.size = n.file->committed_size;
        row.meta.mtime = n.file->committed_mtime;
        row.meta.content = n.file->content;
    }
    return row;
}

std::string AreaFs::path_of(std::uint64_t id) {
    std::string path;
    while (id != root_) {
        Node& n = node(id);
        path = "/" + n.meta.name + path;
        id = n.meta.parent;
    }
    return path;
}

Attr AreaFs::getattr(const RelPath& path) {
    Shared lock(tree_mutex_);
    check_unlocked();
    return attr_of(resolve(path));
}

std::optional<Attr> AreaFs::find_attr(const RelPath& path) {
    Shared lock(tree_mutex_);
    check_unlocked();
    if (auto id = find(path)) return attr_of(*id);
    return std::nullopt;
}

std::vector<std::pair<std::string, Attr>> AreaFs::readdir(const RelPath& path) {
    Shared lock(tree_mutex_);
    check_unlocked();
    Node& dir = node(resolve(path));
    if (dir.meta.kind != NodeKind::Dir) throw Error(ErrorKind::NotDirectory, "not a directory");
    std::vector<std::pair<std::string, Attr>> out;
    out.reserve(dir.children.size());
    for (const auto& [name, id] : dir.children) out.emplace_back(name, attr_of(id));
    return out;
}

NodeRow AreaFs::new_row(NodeKind kind, std::uint64_t parent, const std::string& name,
                        std::uint32_t mode, Timestamp now) {
    NodeRow row;
    row.id = store_->allocate_id();
    row.meta.kind = kind;
    row.meta.parent = parent;
    row.meta.name = name;
    row.meta.mode = mode & 07777;
    row.meta.mtime = row.meta.ctime = now;
    if (kind == NodeKind::File) row.meta.content = store_->allocate_id();
    return row;
}

Attr AreaFs::mkdir(const RelPath& path, std::uint32_t mode) {
    Exclusive lock(tree_mutex_);
    check_unlocked();
    auto [pid, name] = resolve_parent(path, W_OK | X_OK);
    if (node(pid).children.count(name)) throw Error(ErrorKind::Exists, "file exists");
    Timestamp now = Timestamp::now();
    NodeRow row = new_row(NodeKind::Dir, pid, name, mode, now);
    AreaChange change;
    change.upserts = {row};
    touch_dir(pid, now);
    apply_with_pending(change);
    node(pid).children[name] = row.id;
    ++node(pid).subdirs;
    nodes_[row.id] = Node{row.meta, {}, nullptr, 0};
    return attr_of(row.id);
}

void AreaFs::rmdir(const RelPath& path) {
    Exclusive lock(tree_mutex_);
    // The kernel sends the close of a file after close() has returned: a folder that holds
    // nothing but files deleted while open waits a moment for them to go (`rm -r` right after
    // a program closed such a file). A file still really open keeps it busy.
    auto deadline = std::chrono::steady_clock::now() + kTransientWait;
    for (;;) {
        check_unlocked();
        resolve_parent(path, W_OK | X_OK);
        std::uint64_t id = resolve(path);
        Node& n = node(id);
        if (n.meta.kind != NodeKind::Dir) throw Error(ErrorKind::NotDirectory, "not a directory");
        if (n.children.empty()) break;
        if (!wait_for_transient_close(lock, n, deadline))
            throw Error(ErrorKind::NotEmpty, "directory not empty");
    }
    auto [pid, name] = resolve_parent(path, W_OK | X_OK);
    std::uint64_t id = resolve(path);
    AreaChange change;
    change.deleted_nodes.push_back(id);
    {
        std::lock_guard plock(pending_mutex_);
        pending_dirs_.erase(id);
    }
    touch_dir(pid, Timestamp::now());
    apply_with_pending(change);
    node(pid).children.erase(name);
    --node(pid).subdirs;
    nodes_.erase(id);
}

AreaFs::FileRemoval AreaFs::remove_file(std::uint64_t id, AreaChange& change) {
    FileRemoval removal;
    removal.file = node(id).file;
    removal.lock = std::unique_lock(removal.file->mutex);
    removal.open = removal.file->handles > 0;
    change.deleted_nodes.push_back(id);
    if (!removal.open) change.dropped_chunks.emplace_back(removal.file->content, 0);
    return removal;
}

void AreaFs::FileRemoval::finish() {
    if (open) file->orphan = true;
    lock.unlock();
}

void AreaFs::unlink(const RelPath& path) {
    Exclusive lock(tree_mutex_);
    check_unlocked();
    auto [pid, name] = resolve_parent(path, W_OK | X_OK);
    std::uint64_t id = resolve(path);
    if (node(id).meta.kind == NodeKind::Dir) throw Error(ErrorKind::IsDirectory, "is a directory");
    unlink_locked(pid, name, id);
}

void AreaFs::unlink_locked(std::uint64_t parent, const std::string& name, std::uint64_t id) {
    AreaChange change;
    FileRemoval removal = remove_file(id, change);
    touch_dir(parent, Timestamp::now());
    apply_with_pending(change);
    removal.finish();
    node(parent).children.erase(name);
    nodes_.erase(id);
}

void AreaFs::rename(const RelPath& from, const RelPath& to, bool no_replace) {
    Exclusive lock(tree_mutex_);
    // A folder replaced that holds only files deleted while open waits for them as rmdir() does.
    const auto deadline = std::chrono::steady_clock::now() + kTransientWait;
    std::uint64_t src_parent = 0, src = 0, dst_parent = 0;
    std::string src_name, dst_name;
    std::optional<std::uint64_t> dst;
    for (;;) {
        check_unlocked();
        std::tie(src_parent, src_name) = resolve_parent(from, W_OK | X_OK);
        src = resolve(from);
        std::tie(dst_parent, dst_name) = resolve_parent(to, W_OK | X_OK);
        const Node& s = node(src);
        // A folder moved to another parent has its ".." entry changed: it must be writable.
        if (s.meta.kind == NodeKind::Dir && src_parent != dst_parent) check_access(s, W_OK);

        dst.reset();
        auto existing = node(dst_parent).children.find(dst_name);
        if (existing != node(dst_parent).children.end()) dst = existing->second;
        if (dst == src) return;  // POSIX: renaming a file onto itself does nothing
        if (dst) {
            if (no_replace) throw Error(ErrorKind::Exists, "file exists");
            const Node& d = node(*dst);
            if (s.meta.kind == NodeKind::Dir && d.meta.kind != NodeKind::Dir)
                throw Error(ErrorKind::NotDirectory, "not a directory");
            if (s.meta.kind != NodeKind::Dir && d.meta.kind == NodeKind::Dir)
                throw Error(ErrorKind::IsDirectory, "is a directory");
            if (d.meta.kind == NodeKind::Dir && src_parent != dst_parent) check_access(d, W_OK);
            if (d.meta.kind == NodeKind::Dir && !d.children.empty()) {
                if (!wait_for_transient_close(lock, d, deadline))
                    throw Error(ErrorKind::NotEmpty, "directory not empty");
                continue;  // the tree may have changed meanwhile: look again
            }
        }
        if (s.meta.kind == NodeKind::Dir) {
            for (std::uint64_t p = dst_parent; p != 0; p = p == root_ ? 0 : node(p).meta.parent)
                if (p == src)
                    throw Error(ErrorKind::Invalid, "cannot move a directory into itself");
        }
        break;
    }
    Node& s = node(src);

    Timestamp now = Timestamp::now();
    AreaChange change;
    NodeRow moved = row_of(src);
    moved.meta.parent = dst_parent;
    moved.meta.name = dst_name;
    moved.meta.ctime = now;
    change.upserts.push_back(moved);
    std::optional<FileRemoval> replaced;
    if (dst) {
        if (node(*dst).file) {
            replaced = remove_file(*dst, change);
        } else {
            change.deleted_nodes.push_back(*dst);
            std::lock_guard plock(pending_mutex_);
            pending_dirs_.erase(*dst);
        }
    }
    touch_dir(src_parent, now);
    touch_dir(dst_parent, now);
    apply_with_pending(change);

    bool moved_dir = s.meta.kind == NodeKind::Dir;
    if (dst) {
        if (replaced)
            replaced->finish();
        else
            --node(dst_parent).subdirs;
        nodes_.erase(*dst);
    }
    node(src_parent).children.erase(src_name);
    node(dst_parent).children[dst_name] = src;
    if (moved_dir) {
        --node(src_parent).subdirs;
        ++node(dst_parent).subdirs;
    }
    Node& moved_node = node(src);
    if (moved_node.file) {
        std::unique_lock flock(moved_node.file->mutex);
        moved_node.file->persisted = true;
        moved_node.file->transient = is_transient(dst_name);
        // Closed already (the last close came first, or ran while this rename was written):
        // nothing will remove it later.
        bool closed = moved_node.file->transient && moved_node.file->handles == 0;
        flock.unlock();
        if (closed) return unlink_locked(dst_parent, dst_name, src);
    }
    moved_node.meta.parent = dst_parent;
    moved_node.meta.name = dst_name;
    moved_node.meta.ctime = now;
    if (policy_ && moved_node.file) create_siblings(src);
}

bool AreaFs::wait_for_transient_close(std::unique_lock<std::shared_mutex>& lock, const Node& dir,
                                      std::chrono::steady_clock::time_point deadline) {
    bool only_transient = std::all_of(dir.children.begin(), dir.children.end(),
                                      [&](const auto& c) { return is_transient(c.first); });
    return only_transient && transient_gone_.wait_until(lock, deadline) != std::cv_status::timeout;
}

void AreaFs::touch_dir(std::uint64_t id, Timestamp now) {
    Node& dir = node(id);
    dir.meta.mtime = dir.meta.ctime = now;
    std::lock_guard plock(pending_mutex_);
    pending_dirs_.insert(id);
}

std::vector<std::uint64_t> AreaFs::take_pending_dirs(AreaChange& change) {
    std::vector<std::uint64_t> taken;
    std::lock_guard plock(pending_mutex_);
    for (auto id : pending_dirs_) {
        auto it = nodes_.find(id);
        if (it == nodes_.end()) continue;
        change.upserts.push_back(NodeRow{id, it->second.meta});
        taken.push_back(id);
    }
    pending_dirs_.clear();
    return taken;
}

void AreaFs::apply_with_pending(AreaChange& change) {
    auto taken = take_pending_dirs(change);
    try {
        store_->apply(change);
    } catch (...) {
        std::lock_guard plock(pending_mutex_);
        pending_dirs_.insert(taken.begin(), taken.end());
        throw;
    }
}

void AreaFs::commit_meta(std::uint64_t id) {
    if (Node& n = node(id); n.file) {
        std::lock_guard flock(n.file->mutex);
        // A new file whose row is not in the store yet (rsync, cp -a and tar set the mode and
        // times of the files they write before closing them): the change goes with that row
        // at its first commit, at the latest its close.
        if (!n.file->persisted) return;
    }
    AreaChange change;
    change.upserts.push_back(row_of(id));
    apply_with_pending(change);
    if (Node& n = node(id); n.file) n.file->persisted = true;
}

std::vector<std::string> AreaFs::chmod(const RelPath& path, std::uint32_t mode) {
    Exclusive lock(tree_mutex_);
    check_unlocked();
    std::uint64_t id = resolve(path);
    Node& n = node(id);
    NodeMeta before = n.meta;
    n.meta.mode = mode & 07777;
    n.meta.ctime = Timestamp::now();
    try {
        commit_meta(id);
    } catch (...) {
        n.meta = before;
        throw;
    }
    std::vector<std::string> stale;
    const bool dir = n.meta.kind == NodeKind::Dir;
    if (!dir || !caller_may(caller_, true, before.mode, X_OK) ||
        caller_may(caller_, true, n.meta.mode, X_OK))
        return stale;
    std::vector<std::pair<std::uint64_t, std::string>> todo{{id, path_of(id)}};
    while (!todo.empty()) {
        auto [folder, folder_path] = std::move(todo.back());
        todo.pop_back();
        for (const auto& [name, child] : node(folder).children) {
            stale.push_back(folder_path + "/" + name);
            if (node(child).meta.kind == NodeKind::Dir) todo.emplace_back(child, stale.back());
        }
    }
    return stale;
}

void AreaFs::set_mtime(const RelPath& path, Timestamp mtime) {
    Exclusive lock(tree_mutex_);
    check_unlocked();
    std::uint64_t id = resolve(path);
    Node& n = node(id);
    NodeMeta before = n.meta;
    n.meta.ctime = Timestamp::now();
    Timestamp live_before, committed_before;
    if (n.file) {
        live_before = n.file->mtime;
        committed_before = n.file->committed_mtime;
        n.file->mtime = n.file->committed_mtime = mtime;
    } else {
        n.meta.mtime = mtime;
    }
    try {
        commit_meta(id);
    } catch (...) {
        n.meta = before;
        if (n.file) {
            n.file->mtime = live_before;
            n.file->committed_mtime = committed_before;
        }
        throw;
    }
}

void AreaFs::truncate(const RelPath& path, std::uint64_t size) {
    std::shared_ptr<FileData> f;
    {
        Shared lock(tree_mutex_);
        check_unlocked();
        Node& n = node(resolve(path));
        if (!n.file) throw Error(ErrorKind::IsDirectory, "is a directory");
        check_access(n, W_OK);
        f = n.file;
    }
    OpenFile handle(f, true);
    ftruncate(handle, size);
    Shared lock(tree_mutex_);
    check_unlocked();
    std::lock_guard flock(f->mutex);
    // Without an open handle nobody will flush: the truncate lands now.
    if (f->handles == 0 && !f->orphan) commit_locked(*f);
}

std::shared_ptr<OpenFile> AreaFs::open(const RelPath& path, bool writable, bool truncate,
                                       bool readable) {
    std::shared_ptr<FileData> f;
    {
        Shared lock(tree_mutex_);
        check_unlocked();
        Node& n = node(resolve(path));
        if (!n.file) throw Error(ErrorKind::IsDirectory, "is a directory");
        check_access(n, (readable ? R_OK : 0) | (writable ? W_OK : 0));
        store_->check_open(n.meta.content, writable);
        f = n.file;
        std::lock_guard flock(f->mutex);
        ++f->handles;
    }
    auto handle = std::make_shared<OpenFile>(f, writable);
    if (truncate) ftruncate(*handle, 0);
    return handle;
}

std::shared_ptr<OpenFile> AreaFs::create(const RelPath& path, std::uint32_t mode, bool exclusive,
                                         bool readable) {
    Exclusive lock(tree_mutex_);
    check_unlocked();
    auto [pid, name] = resolve_parent(path, X_OK);
    auto existing = node(pid).children.find(name);
    if (existing != node(pid).children.end()) {
        if (exclusive) throw Error(ErrorKind::Exists, "file exists");
        Node& n = node(existing->second);
        if (!n.file) throw Error(ErrorKind::IsDirectory, "is a directory");
        check_access(n, W_OK | (readable ? R_OK : 0));
        store_->check_open(n.meta.content, true);
        std::lock_guard flock(n.file->mutex);
        ++n.file->handles;
        return std::make_shared<OpenFile>(n.file, true);
    }
    check_access(node(pid), W_OK);
    Timestamp now = Timestamp::now();
    NodeRow row = new_row(NodeKind::File, pid, name, mode, now);
    // The row is written with the file's first commit (at the latest when it is closed): one
    // transaction per new file instead of two.
    touch_dir(pid, now);
    node(pid).children[name] = row.id;
    auto f = std::make_shared<FileData>();
    f->id = row.id;
    f->content = row.meta.content;
    f->mtime = f->committed_mtime = now;
    f->handles = 1;
    f->persisted = false;
    nodes_[row.id] = Node{row.meta, {}, f, 0};
    return std::make_shared<OpenFile>(f, true);
}

void AreaFs::check_size(std::uint64_t size) const {
    std::uint64_t limit = store_->max_file_size();
    if (policy_) limit = std::min(limit, policy_->max_file_size());
    if (size > limit)
        throw Error(ErrorKind::TooBig, store_->describe() + ": a file here holds at most " +
                                           std::to_string(limit) + " bytes");
}

void AreaFs::read_committed_chunk(FileData& f, std::uint64_t index, WipedBytes& out) {
    out.clear();
    if (const WipedBytes* c = inflight_chunk(f, index)) {
        out.resize(c->size());
        if (!c->empty()) std::memcpy(out.data(), c->data(), c->size());
        return;
    }
    if (f.staged.count(index)) {
        if (!store_->read_chunk(f.staging, index, out)) out.clear();
        return;
    }
    if (f.drop_from && index >= *f.drop_from) return;
    if (index * chunk_size_ >= f.committed_size) return;
    if (!store_->read_chunk(f.content, index, out)) out.clear();
}

std::size_t AreaFs::read_committed_chunk_into(FileData& f, std::uint64_t index, std::uint8_t* out) {
    if (const WipedBytes* c = inflight_chunk(f, index)) {
        if (!c->empty()) std::memcpy(out, c->data(), c->size());
        return c->size();
    }
    if (f.staged.count(index)) return store_->read_chunk_into(f.staging, index, out).value_or(0);
    if (f.drop_from && index >= *f.drop_from) return 0;
    if (index * chunk_size_ >= f.committed_size) return 0;
    return store_->read_chunk_into(f.content, index, out).value_or(0);
}

WipedBytes& AreaFs::dirty_chunk(FileData& f, std::uint64_t index) {
    auto it = f.dirty.find(index);
    if (it != f.dirty.end()) return it->second;
    WipedBytes buf;
    if (!f.spare.empty()) {
        buf = std::move(f.spare.back());
        f.spare.pop_back();
    }
    read_committed_chunk(f, index, buf);
    f.dirty_bytes += chunk_size_;
    return f.dirty.emplace(index, std::move(buf)).first->second;
}

std::size_t AreaFs::read(OpenFile& file, std::uint64_t offset, std::size_t size, char* out) {
    Shared lock(tree_mutex_);
    check_unlocked();
    FileData& f = file.data();
    std::shared_lock flock(f.mutex);
    if (offset >= f.size) return 0;
    size = static_cast<std::size_t>(std::min<std::uint64_t>(size, f.size - offset));
    WipedBytes scratch;
    std::size_t done = 0;
    while (done < size) {
        std::uint64_t pos = offset + done;
        std::uint64_t index = pos / chunk_size_;
        std::size_t in_chunk = static_cast<std::size_t>(pos % chunk_size_);
        std::size_t n = std::min(size - done, chunk_size_ - in_chunk);
        const WipedBytes* chunk;
        auto it = f.dirty.find(index);
        if (it != f.dirty.end()) {
            chunk = &it->second;
        } else if (n == chunk_size_) {
            // A whole stored chunk: decrypted straight into OUT, no buffer of our own.
            auto* dest = reinterpret_cast<std::uint8_t*>(out + done);
            std::size_t got = read_committed_chunk_into(f, index, dest);
            if (got < n) std::memset(dest + got, 0, n - got);  // a hole, or a short last chunk
            done += n;
            continue;
        } else {
            read_committed_chunk(f, index, scratch);
            chunk = &scratch;
        }
        std::size_t avail = chunk->size() > in_chunk ? std::min(n, chunk->size() - in_chunk) : 0;
        if (avail) std::memcpy(out + done, chunk->data() + in_chunk, avail);
        if (avail < n) std::memset(out + done + avail, 0, n - avail);  // a hole
        done += n;
    }
    return done;
}

std::size_t AreaFs::write(OpenFile& file, std::uint64_t offset, const char* data,
                          std::size_t size) {
    Shared lock(tree_mutex_);
    check_unlocked();
    if (!file.writable()) throw Error(ErrorKind::Invalid, "file not open for writing");
    if (size == 0) return 0;  // POSIX: no data, no effect (neither size nor mtime)
    FileData& f = file.data();
    std::lock_guard flock(f.mutex);
    check_size(offset + size);
    if (policy_ && offset == 0 && size > 0)
        policy_->check_start({reinterpret_cast<const std::uint8_t*>(data), size});
    if (f.stage_job.valid() &&
        f.stage_job.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
        finish_staging(f);
    if (!f.stage_job.valid() && f.dirty.size() >= f.stage_scan + kStageChunks) launch_staging(f);
    std::size_t done = 0;
    while (done < size) {
        std::uint64_t pos = offset + done;
        std::uint64_t index = pos / chunk_size_;
        std::size_t in_chunk = static_cast<std::size_t>(pos % chunk_size_);
        std::size_t n = std::min(size - done, chunk_size_ - in_chunk);
        WipedBytes& chunk = dirty_chunk(f, index);
        const auto* from = reinterpret_cast<const std::uint8_t*>(data + done);
        // Over what the chunk holds, then appended after it (or after a hole up to the
        // write), by resize and memcpy: insert() copies byte by byte with this allocator.
        const std::size_t inside =
            in_chunk < chunk.size() ? std::min(n, chunk.size() - in_chunk) : 0;
        if (inside > 0) std::memcpy(chunk.data() + in_chunk, from, inside);
        if (inside < n) {
            const std::size_t at = in_chunk + inside;
            chunk.resize(at + (n - inside));  // zero-fills a hole before AT as well
            std::memcpy(chunk.data() + at, from + inside, n - inside);
        }
        done += n;
    }
    f.size = std::max<std::uint64_t>(f.size, offset + size);
    f.mtime = Timestamp::now();
    if (!policy_ && !f.orphan && f.dirty_bytes > kMaxDirtyBytes) commit_locked(f);
    return size;
}

void AreaFs::launch_staging(FileData& f) {
    // Only where the old content is discarded entirely: the new one is then the staged stream
    // plus what is buffered, nothing of the old stream.
    bool fresh = f.committed_size == 0 || (f.drop_from && *f.drop_from == 0);
    if (policy_ || f.orphan || f.stage_failed || !fresh) return;
    std::vector<std::uint64_t> full;
    for (const auto& [index, data] : f.dirty)
        if (data.size() == chunk_size_ && full.size() < kStageChunks) full.push_back(index);
    if (full.size() < kStageChunks / 4) {
        f.stage_scan = f.dirty.size();  // mostly partial chunks: look again when more come
        return;
    }
    f.stage_scan = 0;
    if (!f.staging) f.staging = store_->allocate_id();
    f.inflight.chunks.clear();
    f.inflight.chunks.reserve(full.size());
    for (auto index : full) {
        auto it = f.dirty.find(index);
        f.inflight.chunks.push_back({f.staging, index, std::move(it->second)});
        f.dirty.erase(it);
    }
    f.dirty_bytes -= chunk_size_ * full.size();
    try {
        // Encryption and the transaction run beside the writer, which goes on receiving data.
        // Nobody changes the batch until finish_staging() has waited for it.
        f.stage_job = std::async(std::launch::async,
                                 [store = store_, batch = &f.inflight] { store->apply(*batch); });
    } catch (...) {
        // No thread to stage with: the batch stays buffered for the commit.
        for (auto& c : f.inflight.chunks) f.dirty.emplace(c.index, std::move(c.data));
        f.dirty_bytes += chunk_size_ * f.inflight.chunks.size();
        f.inflight.chunks.clear();
        f.stage_failed = true;
    }
}

void AreaFs::finish_staging(FileData& f) {
    if (!f.stage_job.valid()) return;
    try {
        f.stage_job.get();
        for (auto& c : f.inflight.chunks) {
            f.staged.insert(c.index);
            wipe(c.data);
            f.spare.push_back(std::move(c.data));
        }
    } catch (...) {
        // Back to the buffer (unless written again since) and no more staging for this file:
        // the commit writes everything, and reports the error if it persists.
        for (auto& c : f.inflight.chunks) {
            if (f.dirty.count(c.index)) continue;
            f.dirty.emplace(c.index, std::move(c.data));
            f.dirty_bytes += chunk_size_;
        }
        f.stage_failed = true;
    }
    f.inflight.chunks.clear();
}

void AreaFs::drop_chunks_beyond(FileData& f, std::uint64_t size) {
    finish_staging(f);
    std::uint64_t keep = (size + chunk_size_ - 1) / chunk_size_;  // chunks still holding data
    if (!f.staged.empty() && *f.staged.rbegin() >= keep) {
        // The staged stream holds exactly f.staged: cut it now, before anything else changes.
        AreaChange change;
        change.dropped_chunks.emplace_back(f.staging, keep);
        store_->apply(change);
        f.staged.erase(f.staged.lower_bound(keep), f.staged.end());
    }
    for (auto it = f.dirty.lower_bound(keep); it != f.dirty.end();) it = f.dirty.erase(it);
    if (size % chunk_size_ != 0) {
        WipedBytes& last = dirty_chunk(f, size / chunk_size_);
        std::size_t len = static_cast<std::size_t>(size % chunk_size_);
        if (last.size() > len) last.resize(len);
    }
    f.drop_from = std::min(f.drop_from.value_or(keep), keep);
}

void AreaFs::ftruncate(OpenFile& file, std::uint64_t size) {
    Shared lock(tree_mutex_);
    check_unlocked();
    FileData& f = file.data();
    std::lock_guard flock(f.mutex);
    check_size(size);
    if (size < f.size) drop_chunks_beyond(f, size);
    f.size = size;
    f.mtime = Timestamp::now();
}

Attr AreaFs::fgetattr(OpenFile& file) {
    Shared lock(tree_mutex_);
    check_unlocked();
    FileData& f = file.data();
    if (f.orphan) {
        std::lock_guard flock(f.mutex);
        Attr a;
        a.node = f.id;
        a.size = f.size;
        a.mtime = a.ctime = f.mtime;
        a.nlink = 0;
        a.mode = 0600;
        return a;
    }
    return attr_of(f.id);
}

WipedBytes AreaFs::whole_content(FileData& f) {
    WipedBytes content(static_cast<std::size_t>(f.size));
    WipedBytes scratch;
    for (std::uint64_t index = 0; index * chunk_size_ < f.size; ++index) {
        const WipedBytes* chunk;
        auto it = f.dirty.find(index);
        if (it != f.dirty.end()) {
            chunk = &it->second;
        } else {
            read_committed_chunk(f, index, scratch);
            chunk = &scratch;
        }
        std::size_t start = static_cast<std::size_t>(index * chunk_size_);
        std::size_t n = std::min(chunk->size(), content.size() - start);
        std::memcpy(content.data() + start, chunk->data(), n);
    }
    return content;
}

void AreaFs::commit_locked(FileData& f) {
    finish_staging(f);
    if (f.orphan || !has_pending(f)) return;
    auto revert = [&] {
        if (f.staging) {
            try {
                AreaChange drop;
                drop.dropped_chunks.emplace_back(f.staging, 0);
                store_->apply(drop);
            } catch (const Error&) {
                // Nothing refers to the staged stream: the next load drops it.
            }
            f.staging = 0;
            f.staged.clear();
            f.spare.clear();
        }
        f.stage_failed = false;
        f.stage_scan = 0;
        f.dirty.clear();
        f.dirty_bytes = 0;
        f.drop_from.reset();
        f.size = f.committed_size;
        f.mtime = f.committed_mtime;
    };
    if (policy_) {
        // The policy sees (and may replace) the whole new content: keys become envelopes.
        WipedBytes content = whole_content(f);
        try {
            policy_->on_commit(node(f.id).meta.name, content);
        } catch (...) {
            revert();
            throw;
        }
        f.dirty.clear();
        for (std::size_t start = 0; start < content.size(); start += chunk_size_) {
            std::size_t n = std::min(chunk_size_, content.size() - start);
            f.dirty.emplace(start / chunk_size_,
                            WipedBytes(content.begin() + static_cast<std::ptrdiff_t>(start),
                                       content.begin() + static_cast<std::ptrdiff_t>(start + n)));
        }
        f.drop_from = 0;
        f.size = content.size();
    }
    AreaChange change;
    // With staged chunks the file moves to the staged stream and its old stream goes.
    std::uint64_t content = f.staging ? f.staging : f.content;
    NodeRow row{f.id, node(f.id).meta};
    row.meta.size = f.size;
    row.meta.mtime = f.mtime;
    row.meta.content = content;
    change.upserts.push_back(row);
    if (f.staging)
        change.dropped_chunks.emplace_back(f.content, 0);
    else if (f.drop_from)
        change.dropped_chunks.emplace_back(f.content, *f.drop_from);
    for (auto& [index, data] : f.dirty) change.chunks.push_back({content, index, std::move(data)});
    try {
        apply_with_pending(change);
    } catch (...) {
        revert();
        throw;
    }
    f.content = content;
    f.stage_failed = false;
    f.stage_scan = 0;
    f.staging = 0;
    f.staged.clear();
    f.spare.clear();
    f.persisted = true;
    f.dirty.clear();
    f.dirty_bytes = 0;
    f.drop_from.reset();
    f.committed_size = f.size;
    f.committed_mtime = f.mtime;
}

void AreaFs::flush(OpenFile& file) {
    bool committed = false;
    {
        Shared lock(tree_mutex_);
        check_unlocked();
        FileData& f = file.data();
        std::lock_guard flock(f.mutex);
        committed = has_pending(f) && !f.orphan;
        commit_locked(f);
    }
    if (committed && policy_) {
        Exclusive lock(tree_mutex_);
        if (!locked_ && nodes_.count(file.data().id)) create_siblings(file.data().id);
    }
}

void AreaFs::fsync(OpenFile& file) {
    flush(file);
    Shared lock(tree_mutex_);
    check_unlocked();
    AreaChange change;
    apply_with_pending(change);  // folder times too
    store_->sync();
}

void AreaFs::release(OpenFile& file) {
    FileData& f = file.data();
    std::exception_ptr failure;
    if (!locked_) {
        try {
            flush(file);
        } catch (...) {
            failure = std::current_exception();
        }
    }
    bool drop = false;
    bool remove = false;
    {
        std::lock_guard flock(f.mutex);
        drop = --f.handles == 0 && f.orphan;
        remove = f.handles == 0 && !f.orphan && f.transient;
        if (drop) {
            finish_staging(f);
            f.dirty.clear();
            f.dirty_bytes = 0;
            f.spare.clear();
        }
    }
    if (drop && !locked_) {
        Shared lock(tree_mutex_);
        if (!locked_) {
            AreaChange change;
            change.dropped_chunks.emplace_back(f.content, 0);
            if (f.staging) change.dropped_chunks.emplace_back(f.staging, 0);
            store_->apply(change);
        }
    }
    if (remove && !locked_) {
        Exclusive lock(tree_mutex_);
        auto it = nodes_.find(f.id);
        // Unless it was renamed or deleted meanwhile.
        if (!locked_ && it != nodes_.end() && it->second.file.get() == &f &&
            is_transient(it->second.meta.name)) {
            unlink_locked(it->second.meta.parent, it->second.meta.name, f.id);
            transient_gone_.notify_all();
        }
    }
    if (failure) std::rethrow_exception(failure);
}

void AreaFs::create_siblings(std::uint64_t id) {
    Node& n = node(id);
    if (!n.file || n.meta.name.empty() || n.meta.name[0] == '.') return;
    WipedBytes content;
    {
        std::lock_guard flock(n.file->mutex);
        content = whole_content(*n.file);
    }
    std::uint64_t pid = n.meta.parent;
    for (auto& [name, data] : policy_->siblings(n.meta.name, content)) {
        if (node(pid).children.count(name)) continue;
        Timestamp now = Timestamp::now();
        NodeRow row = new_row(NodeKind::File, pid, name, 0644, now);
        row.meta.size = data.size();
        AreaChange change;
        change.upserts.push_back(row);
        if (!data.empty()) change.chunks.push_back({row.meta.content, 0, wiped_from(data)});
        touch_dir(pid, now);
        apply_with_pending(change);
        node(pid).children[name] = row.id;
        auto f = std::make_shared<FileData>();
        f->id = row.id;
        f->content = row.meta.content;
        f->size = f->committed_size = data.size();
        f->mtime = f->committed_mtime = now;
        nodes_[row.id] = Node{row.meta, {}, f, 0};
    }
}

void AreaFs::setxattr(const RelPath& path, const std::string& name, const std::string& value,
                      int flags) {
    if (!is_kept_xattr(name))
        throw Error(ErrorKind::NotSupported, "only user.* extended attributes are kept");
    if (name.size() > kMaxName) throw Error(ErrorKind::NameTooLong, "attribute name too long");
    if (value.size() > kMaxXattrValue) throw Error(ErrorKind::TooBig, "attribute value too large");
    Exclusive lock(tree_mutex_);
    check_unlocked();
    if (!store_->keeps_xattrs())
        throw Error(ErrorKind::NotSupported,
                    store_->describe() + " does not keep extended attributes");
    std::uint64_t id = resolve(path);
    Node& n = node(id);
    check_access(n, W_OK);
    bool present = n.meta.xattrs.count(name) > 0;
    if ((flags & XATTR_CREATE) && present) throw Error(ErrorKind::Exists, "attribute exists");
    if ((flags & XATTR_REPLACE) && !present)
        throw Error(ErrorKind::NoAttribute, "no such attribute");
    NodeMeta before = n.meta;
    n.meta.xattrs[name] = value;
    n.meta.ctime = Timestamp::now();
    try {
        commit_meta(id);
    } catch (...) {
        n.meta = before;
        throw;
    }
}

std::string AreaFs::getxattr(const RelPath& path, const std::string& name) {
    Shared lock(tree_mutex_);
    check_unlocked();
    Node& n = node(resolve(path));
    // Other names (the kernel asks for security.capability before writes) have no value.
    if (is_kept_xattr(name)) check_access(n, R_OK);
    auto it = n.meta.xattrs.find(name);
    if (it == n.meta.xattrs.end()) throw Error(ErrorKind::NoAttribute, "no such attribute");
    return it->second;
}

std::vector<std::string> AreaFs::listxattr(const RelPath& path) {
    Shared lock(tree_mutex_);
    check_unlocked();
    Node& n = node(resolve(path));
    std::vector<std::string> names;
    for (const auto& [k, v] : n.meta.xattrs) names.push_back(k);
    return names;
}

void AreaFs::removexattr(const RelPath& path, const std::string& name) {
    Exclusive lock(tree_mutex_);
    check_unlocked();
    std::uint64_t id = resolve(path);
    Node& n = node(id);
    if (is_kept_xattr(name)) check_access(n, W_OK);
    if (!n.meta.xattrs.count(name)) throw Error(ErrorKind::NoAttribute, "no such attribute");
    NodeMeta before = n.meta;
    n.meta.xattrs.erase(name);
    n.meta.ctime = Timestamp::now();
    try {
        commit_meta(id);
    } catch (...) {
        n.meta = before;
        throw;
    }
}

SpaceInfo AreaFs::statfs() {
    Shared lock(tree_mutex_);
    check_unlocked();
    return store_->space();
}

void AreaFs::access(const RelPath& path, int mask) {
    Shared lock(tree_mutex_);
    check_unlocked();
    check_access(node(resolve(path)), mask);
}

std::size_t AreaFs::remove_leftovers() {
    Exclusive lock(tree_mutex_);
    check_unlocked();
    AreaChange change;
    std::vector<std::uint64_t> doomed;
    for (auto& [id, n] : nodes_) {
        if (n.file && n.file->handles == 0 && is_transient(n.meta.name)) {
            doomed.push_back(id);
            change.deleted_nodes.push_back(id);
            change.dropped_chunks.emplace_back(n.file->content, 0);
        }
    }
    if (doomed.empty()) return 0;
    store_->apply(change);
    for (auto id : doomed) {
        node(node(id).meta.parent).children.erase(node(id).meta.name);
        nodes_.erase(id);
    }
    return doomed.size();
}

std::vector<std::string> AreaFs::lock(std::optional<Error> reason) {
    Exclusive lock(tree_mutex_);
    std::vector<std::string> paths;
    if (locked_) return paths;
    if (reason) lock_reason_ = std::move(reason);
    for (auto& [id, n] : nodes_) {
        if (n.file) {
            std::lock_guard flock(n.file->mutex);
            try {
                commit_locked(*n.file);
            } catch (const Error&) {
                // Refused content (e.g. a half-written key) is dropped with the lock.
            }
            n.file->dirty.clear();
        }
        paths.push_back(path_of(id));
    }
    try {
        AreaChange change;
        apply_with_pending(change);
    } catch (const Error&) {
        // Only folder times are lost; the lock must happen regardless.
    }
    locked_ = true;
    nodes_.clear();
    store_.reset();  // the area key goes with the store
    return paths;
}

}  // namespace vscard
