#pragma once
// The filesystem logic of one area (public, private or secret) of one medium, written once
// against AreaStore: path lookup, POSIX semantics, write buffering and atomic commits.
//
// Locking: `tree_mutex_` (shared for data operations, exclusive for structural changes) is
// always taken before a file's own mutex, so readers and writers of different files run in
// parallel, including their crypto and disk I/O.
//
// Atomicity: what is written through a handle is buffered and committed as one transaction
// on flush, fsync or close, so after a crash every file holds its old or its new content.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "error.hpp"
#include "vfs/node.hpp"
#include "vfs/writer_first_mutex.hpp"

namespace vscard {

using RelPath = std::vector<std::string>;  // components below the area root

struct Attr {
    std::uint64_t node = 0;
    NodeKind kind = NodeKind::File;
    std::uint32_t mode = 0;
    std::uint64_t size = 0;
    std::uint32_t nlink = 1;
    Timestamp mtime;
    Timestamp ctime;
};

// What an area demands of file content (the secret area turns keys into envelopes).
class ContentPolicy {
public:
    virtual ~ContentPolicy() = default;
    // Called when a file's new content is committed; may replace CONTENT, or throw
    // Error(Invalid) to refuse it (the previous content then stays).
    virtual void on_commit(const std::string& name, WipedBytes& content) = 0;
    // Files to create beside NAME when absent (e.g. NAME.pub), given its committed content.
    virtual std::vector<std::pair<std::string, std::string>> siblings(const std::string& name,
                                                                      ByteView content) = 0;
    virtual std::uint64_t max_file_size() const = 0;
    // Called with the first bytes written at offset 0: may refuse early, so that even tools
    // that ignore errors of close(2) see the refusal.
    virtual void check_start(ByteView /*first_bytes*/) {}
};

class AreaFs;

// Who the kernel lets into the mount. FUSE admits only the user who mounted (the mount does
// not ask for allow_other), and the mount checks permission bits itself instead of asking the
// kernel to (default_permissions): the kernel would fetch the attributes of a folder again
// before every path walked through it after each change in it, a round trip per file copied.
enum class Caller {
    Owner,      // a normal user: the owner bits of each mode apply
    Superuser,  // root: bits restrict only execution, as for root on any filesystem
};

// Whether CALLER may do MASK (R_OK | W_OK | X_OK, as for access(2)) to an object of MODE.
inline bool caller_may(Caller caller, bool dir, std::uint32_t mode, int mask) {
    if (caller == Caller::Superuser) return !(mask & X_OK) || dir || (mode & 0111) != 0;
    return (mask & ~static_cast<int>((mode >> 6) & 7)) == 0;
}

// The extended attributes an area keeps: the user.* namespace (DESIGN §3); any other name
// has no value anywhere.
inline bool is_kept_xattr(std::string_view name) {
    return name.starts_with("user.");
}

// An open file: shared by every handle on the same object.
struct FileData {
    // Shared by reads (concurrent reads of one file fetch and decrypt their chunks in
    // parallel, as the kernel's read-ahead asks for them), exclusive for everything else.
    WriterFirstMutex mutex;
    std::uint64_t id = 0;
    std::uint64_t content = 0;
    std::uint64_t size = 0;  // live: includes what is not committed yet
    Timestamp mtime;
    std::uint64_t committed_size = 0;  // as in the store
    Timestamp committed_mtime;
    std::map<std::uint64_t, WipedBytes> dirty;  // chunk index -> plaintext
    std::uint64_t dirty_bytes = 0;
    std::optional<std::uint64_t> drop_from;  // chunks >= this are gone (truncate)
    // Staging. A file whose previous content is discarded entirely (new, or truncated to
    // nothing) hands its complete chunks to the store while it is being written, in batches
    // of AreaFs::kStageChunks committed in the background, under a content id no object
    // refers to yet; its commit then points the file there and drops the old stream. A crash
    // before that commit leaves the file as it was (the load drops the staged stream), the
    // encryption and the disk writes overlap the transfer of the data, and what is buffered
    // here stays small however large the file.
    std::uint64_t staging = 0;       // content id of the staged chunks; 0: none
    std::set<std::uint64_t> staged;  // indices held there (exactly the rows it has)
    std::vector<WipedBytes> spare;   // wiped buffers of staged chunks, for reuse
    AreaChange inflight;             // the batch being staged (read-only meanwhile)
    bool stage_failed = false;       // a batch failed: no more staging until the commit
    std::size_t stage_scan = 0;      // dirty.size() when it held too few complete chunks
    std::future<void> stage_job;     // after `inflight`: destroyed (waited for) before it
    bool orphan = false;             // unlinked while open: data dies with the last handle
    bool transient = false;          // renamed to a transient name: removed with its last handle
    bool persisted = true;           // false until a new file's row first reaches the store
    int handles = 0;
};

class OpenFile {
public:
    OpenFile(std::shared_ptr<FileData> data, bool writable)
        : data_(std::move(data)), writable_(writable) {}
    FileData& data() { return *data_; }
    const std::shared_ptr<FileData>& shared() const { return data_; }
    bool writable() const { return writable_; }

private:
    std::shared_ptr<FileData> data_;
    bool writable_;
};

class AreaFs {
public:
    // Files named with TRANSIENT_PREFIX (if given) live only as long as a handle holds them:
    // the FUSE layer renames a file deleted while open to such a name and removes it when the
    // file is closed, but a close racing with the delete can leave it there for good (libfuse
    // checks for open handles, then renames). So a file renamed to such a name while no handle
    // is open, or whose last handle closes while it has such a name, is removed at once, and
    // remove_leftovers() removes what a crash left of them.
    AreaFs(std::shared_ptr<AreaStore> store, Area area,
           std::shared_ptr<ContentPolicy> policy = nullptr, std::string transient_prefix = {},
           Caller caller = Caller::Superuser);
    ~AreaFs();

    Area area() const { return area_; }
    std::uint64_t root_id() const { return root_; }

    Attr getattr(const RelPath& path);
    // As getattr, but nullopt when PATH does not exist (the kernel looks up every name before
    // it creates it: no exception for each).
    std::optional<Attr> find_attr(const RelPath& path);
    std::vector<std::pair<std::string, Attr>> readdir(const RelPath& path);
    Attr mkdir(const RelPath& path, std::uint32_t mode);
    void rmdir(const RelPath& path);
    void unlink(const RelPath& path);
    void rename(const RelPath& from, const RelPath& to, bool no_replace);
    // Returns the paths below PATH whose cached attributes the kernel must drop: those of a
    // folder its owner can no longer search (the kernel walks cached names without asking).
    std::vector<std::string> chmod(const RelPath& path, std::uint32_t mode);
    void set_mtime(const RelPath& path, Timestamp mtime);
    void truncate(const RelPath& path, std::uint64_t size);

    // READABLE: false only for O_WRONLY (it decides which permission bits are needed).
    std::shared_ptr<OpenFile> open(const RelPath& path, bool writable, bool truncate,
                                   bool readable = true);
    std::shared_ptr<OpenFile> create(const RelPath& path, std::uint32_t mode, bool exclusive,
                                     bool readable = true);
    std::size_t read(OpenFile& file, std::uint64_t offset, std::size_t size, char* out);
    std::size_t write(OpenFile& file, std::uint64_t offset, const char* data, std::size_t size);
    void ftruncate(OpenFile& file, std::uint64_t size);
    Attr fgetattr(OpenFile& file);
    void flush(OpenFile& file);
    void fsync(OpenFile& file);
    void release(OpenFile& file);

    void setxattr(const RelPath& path, const std::string& name, const std::string& value,
                  int flags);
    std::string getxattr(const RelPath& path, const std::string& name);
    std::vector<std::string> listxattr(const RelPath& path);
    void removexattr(const RelPath& path, const std::string& name);

    SpaceInfo statfs();
    // access(2): MASK of R_OK, W_OK and X_OK, or F_OK (0); throws EACCES when not permitted.
    void access(const RelPath& path, int mask);

    // Removes the files with a transient name anywhere in the area that no handle holds (what
    // a crash left of them); returns how many.
    std::size_t remove_leftovers();

    // Commits what handles hold, then refuses every further access with EACCES, or with
    // REASON (e.g. EIO: the card was removed). Returns the paths of all objects (for the
    // kernel cache to be invalidated).
    std::vector<std::string> lock(std::optional<Error> reason = std::nullopt);
    bool locked() const { return locked_; }

    // Buffered data above this is committed early (except under a policy that forbids it).
    static constexpr std::uint64_t kMaxDirtyBytes = 256ull << 20;
    // A file rewritten from scratch stages its complete chunks in batches of this many
    // (4 MiB with 64 KiB chunks) once it buffers as many: see FileData::staging.
    static constexpr std::size_t kStageChunks = 64;
    // How long rmdir() and a rename() over a folder wait for the last close of files with a
    // transient name in the folder.
    static constexpr std::chrono::milliseconds kTransientWait{1000};

private:
    struct Node {
        NodeMeta meta;
        std::map<std::string, std::uint64_t> children;  // dirs
        std::shared_ptr<FileData> file;                 // files
        std::uint32_t subdirs = 0;                      // dirs: for nlink
    };

    // Removing a file: its content goes with CHANGE, unless a handle is still open; then the
    // data lives on (POSIX unlink semantics) and dies with the last release(). release()
    // counts handles down without the tree lock: the file's mutex is held from here until
    // finish() sets the orphan flag, after CHANGE is applied, so that a racing last close
    // either is seen here or sees the flag.
    struct FileRemoval {
        std::shared_ptr<FileData> file;  // outlives the node erased
        std::unique_lock<WriterFirstMutex> lock;
        bool open = false;
        void finish();
    };
    FileRemoval remove_file(std::uint64_t id, AreaChange& change);
    // unlink() of file ID, named NAME in folder PARENT; the caller holds tree_mutex_ exclusive.
    void unlink_locked(std::uint64_t parent, const std::string& name, std::uint64_t id);
    bool is_transient(std::string_view name) const {
        return !transient_prefix_.empty() && name.starts_with(transient_prefix_);
    }
    // Folder DIR is not empty: if it holds only transient names, waits (releasing LOCK) for a
    // close that removes one, at most until DEADLINE. False: other names, or the time ran out.
    // After true the caller looks again (the tree may have changed).
    bool wait_for_transient_close(std::unique_lock<std::shared_mutex>& lock, const Node& dir,
                                  std::chrono::steady_clock::time_point deadline);

    void check_unlocked() const;
    void load();
    Node& node(std::uint64_t id);
    std::uint64_t resolve(const RelPath& path);              // throws ENOENT/ENOTDIR
    std::optional<std::uint64_t> find(const RelPath& path);  // nullopt: no such entry
    // PARENT_MASK: the permission the caller needs on the folder (X_OK to look up the name,
    // W_OK | X_OK to change the entry).
    std::pair<std::uint64_t, std::string> resolve_parent(const RelPath& path, int parent_mask);
    void check_access(const Node& n, int mask) const;  // EACCES unless the caller may
    Attr attr_of(std::uint64_t id);
    NodeRow row_of(std::uint64_t id);  // meta with live file data (caller holds file mutex)
    NodeRow new_row(NodeKind kind, std::uint64_t parent, const std::string& name,
                    std::uint32_t mode, Timestamp now);
    void commit_meta(std::uint64_t id);
    // Folder times change with every entry; they ride along with the next change written.
    void touch_dir(std::uint64_t id, Timestamp now);
    std::vector<std::uint64_t> take_pending_dirs(AreaChange& change);
    void apply_with_pending(AreaChange& change);
    // Caller holds tree_mutex_ (shared or exclusive) and f.mutex.
    void commit_locked(FileData& f);
    void drop_chunks_beyond(FileData& f, std::uint64_t size);
    // Caller holds f.mutex. finish_staging() waits for the batch in flight, if any.
    void launch_staging(FileData& f);
    void finish_staging(FileData& f);
    void check_size(std::uint64_t size) const;  // EFBIG beyond what the medium can hold
    WipedBytes& dirty_chunk(FileData& f, std::uint64_t index);
    void read_committed_chunk(FileData& f, std::uint64_t index, WipedBytes& out);
    std::size_t read_committed_chunk_into(FileData& f, std::uint64_t index, std::uint8_t* out);
    WipedBytes whole_content(FileData& f);
    void create_siblings(std::uint64_t id);
    std::string path_of(std::uint64_t id);
    static void check_name(const std::string& name);

    std::shared_ptr<AreaStore> store_;
    Area area_;
    std::shared_ptr<ContentPolicy> policy_;
    const std::string transient_prefix_;
    const Caller caller_;
    std::size_t chunk_size_;
    std::uint64_t root_ = 0;
    mutable std::shared_mutex tree_mutex_;
    std::unordered_map<std::uint64_t, Node> nodes_;
    std::atomic<bool> locked_{false};
    std::optional<Error> lock_reason_;  // set before locked_, never changed after
    std::mutex pending_mutex_;
    std::set<std::uint64_t> pending_dirs_;
    std::condition_variable_any transient_gone_;  // with tree_mutex_
};

}  // namespace vscard
