#include "fuse_adapter.hpp"

#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "error.hpp"
#include "log.hpp"

namespace vscard::mountd {
namespace {

Vfs& vfs() {
    return *static_cast<Vfs*>(fuse_get_context()->private_data);
}
VfsHandle& handle(fuse_file_info* fi) {
    return *reinterpret_cast<VfsHandle*>(fi->fh);
}

// Every callback runs through here: typed errors become their errno, anything else EIO
// with a line in the log, so no exception ever crosses into libfuse.
template <typename F>
int guard(const char* op, const char* path, F&& f) {
    try {
        return f();
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::Corrupt || e.kind() == ErrorKind::Io ||
            e.kind() == ErrorKind::Unavailable)
            log_line(std::string(op) + " " + (path ? path : "") + ": " + e.what());
        return -e.errno_value();
    } catch (const std::bad_alloc&) {
        log_line(std::string(op) + " " + (path ? path : "") + ": out of memory");
        return -ENOMEM;
    } catch (const std::exception& e) {
        log_line(std::string(op) + " " + (path ? path : "") + ": " + e.what());
        return -EIO;
    }
}

timespec to_timespec(Timestamp t) {
    return {static_cast<time_t>(t.sec), static_cast<long>(t.nsec)};
}

void fill_stat(const VfsAttr& a, struct stat* st) {
    std::memset(st, 0, sizeof *st);
    st->st_ino = a.ino;
    st->st_mode = (a.dir ? S_IFDIR : S_IFREG) | (a.mode & 07777);
    st->st_nlink = a.nlink;
    st->st_uid = ::getuid();
    st->st_gid = ::getgid();
    st->st_size = static_cast<off_t>(a.size);
    st->st_blksize = 4096;
    st->st_blocks = static_cast<blkcnt_t>((a.size + 511) / 512);
    st->st_mtim = to_timespec(a.mtime);
    st->st_atim = st->st_mtim;
    st->st_ctim = to_timespec(a.ctime);
}

void* op_init(fuse_conn_info* conn, fuse_config* cfg) {
    cfg->use_ino = 1;
    cfg->nullpath_ok = 1;  // operations on unlinked open files arrive without a path
    // hard_remove would make fstat() of an unlinked open file fail (the high-level API has
    // no path for it), so libfuse hides such files as .fuse_hidden*; Vfs keeps them out of
    // listings and removes leftovers of a crash.
    cfg->hard_remove = 0;
    cfg->entry_timeout = 1.0;
    cfg->attr_timeout = 1.0;
    cfg->negative_timeout = 1.0;  // names missing a moment ago (rsync probes many)
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
    return fuse_get_context()->private_data;
}

void op_destroy(void* data) {
    static_cast<Vfs*>(data)->shutdown();
}

int op_getattr(const char* path, struct stat* st, fuse_file_info* fi) {
    return guard("getattr", path, [&] {
        if (fi) {
            fill_stat(vfs().fgetattr(handle(fi), path), st);
            return 0;
        }
        auto a = vfs().find(path);  // a missing name is common (looked up before a create)
        if (!a) return -ENOENT;
        fill_stat(*a, st);
        return 0;
    });
}

// An open folder. With nullpath_ok readdir may come without a path, so it is kept here, with
// the listing taken when reading starts: the kernel's buffer holds only part of a large
// folder, and the next call goes on at the offset of the last entry it took.
struct OpenDir {
    std::string path;
    std::vector<std::pair<std::string, VfsAttr>> entries;
};

int op_opendir(const char* path, fuse_file_info* fi) {
    return guard("opendir", path, [&] {
        vfs().access(path, R_OK);
        fi->fh = reinterpret_cast<std::uint64_t>(new OpenDir{path, {}});
        return 0;
    });
}

// access(2) and chdir: the kernel leaves permission checks to the mount (no
// default_permissions), except the x bits of a file executed.
int op_access(const char* path, int mask) {
    return guard("access", path, [&] {
        vfs().access(path, mask);
        return 0;
    });
}

int op_releasedir(const char*, fuse_file_info* fi) {
    delete reinterpret_cast<OpenDir*>(fi->fh);
    return 0;
}

// Entries go out with their offsets (1 and 2 for "." and "..", then 3 onwards): only then
// does libfuse hand the kernel, with READDIRPLUS, entries it keeps (`ls -l`, `find`, `cp -r`
// then need no LOOKUP per name). Without offsets it lists everything in one go and the
// kernel ignores the attributes sent along.
int op_readdir(const char*, void* buf, fuse_fill_dir_t filler, off_t offset, fuse_file_info* fi,
               fuse_readdir_flags flags) {
    auto& dir = *reinterpret_cast<OpenDir*>(fi->fh);
    return guard("readdir", dir.path.c_str(), [&] {
        if (offset == 0) dir.entries = vfs().readdir(dir.path);  // also after rewinddir()
        auto plus = (flags & FUSE_READDIR_PLUS) ? FUSE_FILL_DIR_PLUS : fuse_fill_dir_flags(0);
        const off_t end = 2 + static_cast<off_t>(dir.entries.size());
        for (off_t i = std::max<off_t>(offset, 0); i < end; ++i) {
            if (i < 2) {
                if (filler(buf, i == 0 ? "." : "..", nullptr, i + 1, fuse_fill_dir_flags(0))) break;
                continue;
            }
            const auto& [name, attr] = dir.entries[static_cast<std::size_t>(i - 2)];
            struct stat st;
            fill_stat(attr, &st);
            if (filler(buf, name.c_str(), &st, i + 1, plus)) break;
        }
        return 0;
    });
}

int op_mkdir(const char* path, mode_t mode) {
    return guard("mkdir", path, [&] {
        vfs().mkdir(path, mode);
        return 0;
    });
}

int op_rmdir(const char* path) {
    return guard("rmdir", path, [&] {
        vfs().rmdir(path);
        return 0;
    });
}

int op_unlink(const char* path) {
    return guard("unlink", path, [&] {
        vfs().unlink(path);
        return 0;
    });
}

int op_rename(const char* from, const char* to, unsigned int flags) {
    return guard("rename", from, [&] {
        if (flags & ~RENAME_NOREPLACE) return -EINVAL;  // RENAME_EXCHANGE, RENAME_WHITEOUT
        vfs().rename(from, to, flags & RENAME_NOREPLACE);
        return 0;
    });
}

int op_chmod(const char* path, mode_t mode, fuse_file_info*) {
    return guard("chmod", path, [&] {
        vfs().chmod(path, mode);
        return 0;
    });
}

// Every object belongs to the user who mounts; ownership is not stored, so chown to that
// user (or to "unchanged") succeeds and anything else is refused.
int op_chown(const char* path, uid_t uid, gid_t gid, fuse_file_info*) {
    return guard("chown", path, [&] {
        vfs().getattr(path);
        bool uid_ok = uid == static_cast<uid_t>(-1) || uid == ::getuid();
        bool gid_ok = gid == static_cast<gid_t>(-1) || gid == ::getgid();
        return uid_ok && gid_ok ? 0 : -EPERM;
    });
}

int op_truncate(const char* path, off_t size, fuse_file_info* fi) {
    return guard("truncate", path, [&] {
        if (size < 0) return -EINVAL;
        if (fi)
            vfs().ftruncate(handle(fi), static_cast<std::uint64_t>(size));
        else
            vfs().truncate(path, static_cast<std::uint64_t>(size));
        return 0;
    });
}

int op_utimens(const char* path, const timespec tv[2], fuse_file_info*) {
    return guard("utimens", path, [&] {
        if (!path) return -ENOENT;
        if (tv[1].tv_nsec == UTIME_OMIT) {
            vfs().getattr(path);
            return 0;
        }
        Timestamp t = tv[1].tv_nsec == UTIME_NOW
                          ? Timestamp::now()
                          : Timestamp{tv[1].tv_sec, static_cast<std::uint32_t>(tv[1].tv_nsec)};
        vfs().set_mtime(path, t);
        return 0;
    });
}

void attach(fuse_file_info* fi, std::unique_ptr<VfsHandle> h) {
    fi->direct_io = h->direct_io;
    fi->keep_cache = 0;
    fi->fh = reinterpret_cast<std::uint64_t>(h.release());
}

int op_open(const char* path, fuse_file_info* fi) {
    return guard("open", path, [&] {
        attach(fi, vfs().open(path, fi->flags));
        return 0;
    });
}

int op_create(const char* path, mode_t mode, fuse_file_info* fi) {
    return guard("create", path, [&] {
        attach(fi, vfs().create(path, mode, fi->flags));
        return 0;
    });
}

int op_read(const char* path, char* buf, size_t size, off_t off, fuse_file_info* fi) {
    return guard("read", path, [&] {
        return static_cast<int>(vfs().read(handle(fi), static_cast<std::uint64_t>(off), size, buf));
    });
}

int op_write(const char* path, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
    return guard("write", path, [&] {
        return static_cast<int>(
            vfs().write(handle(fi), static_cast<std::uint64_t>(off), buf, size));
    });
}

int op_statfs(const char* path, struct statvfs* sv) {
    return guard("statfs", path, [&] {
        SpaceInfo s = vfs().statfs(path);
        std::memset(sv, 0, sizeof *sv);
        sv->f_bsize = sv->f_frsize = 4096;
        sv->f_blocks = s.total_bytes / 4096;
        sv->f_bfree = sv->f_bavail = s.free_bytes / 4096;
        sv->f_files = 1u << 20;
        sv->f_ffree = 1u << 20;
        sv->f_namemax = 255;
        return 0;
    });
}

int op_flush(const char* path, fuse_file_info* fi) {
    return guard("flush", path, [&] {
        vfs().flush(handle(fi));
        return 0;
    });
}

int op_release(const char* path, fuse_file_info* fi) {
    std::unique_ptr<VfsHandle> h(reinterpret_cast<VfsHandle*>(fi->fh));
    return guard("release", path, [&] {
        vfs().release(*h);
        return 0;
    });
}

int op_fsync(const char* path, int, fuse_file_info* fi) {
    return guard("fsync", path, [&] {
        vfs().fsync(handle(fi));
        return 0;
    });
}

int op_setxattr(const char* path, const char* name, const char* value, size_t size, int flags) {
    return guard("setxattr", path, [&] {
        vfs().setxattr(path, name, std::string(value, size), flags);
        return 0;
    });
}

int op_getxattr(const char* path, const char* name, char* value, size_t size) {
    // The kernel asks for security.capability before every write to a file: answered here,
    // without a lookup (and without an exception per write).
    if (!is_kept_xattr(name)) return -ENODATA;
    return guard("getxattr", path, [&] {
        std::string v = vfs().getxattr(path, name);
        if (size == 0) return static_cast<int>(v.size());
        if (size < v.size()) return -ERANGE;
        std::memcpy(value, v.data(), v.size());
        return static_cast<int>(v.size());
    });
}

int op_listxattr(const char* path, char* list, size_t size) {
    return guard("listxattr", path, [&] {
        std::string all;
        for (const auto& n : vfs().listxattr(path)) {
            all += n;
            all.push_back('\0');
        }
        if (size == 0) return static_cast<int>(all.size());
        if (size < all.size()) return -ERANGE;
        std::memcpy(list, all.data(), all.size());
        return static_cast<int>(all.size());
    });
}

int op_removexattr(const char* path, const char* name) {
    return guard("removexattr", path, [&] {
        vfs().removexattr(path, name);
        return 0;
    });
}

fuse_operations make_ops() {
    fuse_operations ops{};
    ops.init = op_init;
    ops.destroy = op_destroy;
    ops.getattr = op_getattr;
    ops.opendir = op_opendir;
    ops.readdir = op_readdir;
    ops.releasedir = op_releasedir;
    ops.mkdir = op_mkdir;
    ops.rmdir = op_rmdir;
    ops.unlink = op_unlink;
    ops.rename = op_rename;
    ops.chmod = op_chmod;
    ops.chown = op_chown;
    ops.truncate = op_truncate;
    ops.utimens = op_utimens;
    ops.open = op_open;
    ops.create = op_create;
    ops.read = op_read;
    ops.write = op_write;
    ops.statfs = op_statfs;
    ops.flush = op_flush;
    ops.release = op_release;
    ops.fsync = op_fsync;
    ops.setxattr = op_setxattr;
    ops.getxattr = op_getxattr;
    ops.listxattr = op_listxattr;
    ops.removexattr = op_removexattr;
    ops.access = op_access;
    return ops;
}

}  // namespace

const fuse_operations& fuse_ops() {
    static const fuse_operations ops = make_ops();
    return ops;
}

struct Invalidator::State {
    struct fuse* fuse;
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<std::string> queue;
    bool stop = false;
    std::thread thread;
};

Invalidator::Invalidator(struct fuse* fuse) : state_(std::make_unique<State>()) {
    state_->fuse = fuse;
    state_->thread = std::thread([s = state_.get()] {
        std::unique_lock lock(s->mutex);
        while (true) {
            s->cv.wait(lock, [s] { return s->stop || !s->queue.empty(); });
            if (s->stop) return;
            std::string path = std::move(s->queue.front());
            s->queue.pop_front();
            lock.unlock();
            fuse_invalidate_path(s->fuse, path.c_str());  // ENOENT: the kernel never saw it
            lock.lock();
        }
    });
}

Invalidator::~Invalidator() {
    {
        std::lock_guard lock(state_->mutex);
        state_->stop = true;
    }
    state_->cv.notify_all();
    state_->thread.join();
}

void Invalidator::push(const std::vector<std::string>& paths) {
    {
        std::lock_guard lock(state_->mutex);
        state_->queue.insert(state_->queue.end(), paths.begin(), paths.end());
    }
    state_->cv.notify_all();
}

}  // namespace vscard::mountd
