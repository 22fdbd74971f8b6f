#include "store/wal_vfs.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <mutex>
#include <new>

// Why this exists: SQLite appends each WAL frame with two write calls (a 24-byte header, then
// the page), so writing a large file costs two misaligned system calls per 4 KiB page, which
// made large writes two to three times slower than gocryptfs. This VFS gathers consecutive
// appends to a WAL file into one call of up to 128 KiB. The bytes written, their order and
// every sync stay exactly SQLite's; only when they reach the kernel changes:
// - the buffer is written out as soon as a commit frame's header is in it, and that frame's
//   page right after. Other connections read only committed frames, and SQLite publishes a
//   commit in the WAL index (shared memory) right after its last write of the commit,
//   without another call on the WAL file. A commit frame is told by its header: bytes 4-7,
//   the database size after the commit, are non-zero only in commit frames (SQLite file
//   format, "WAL Frame Format");
// - every other call on the file (read, sync, size, truncate, close, locks, file controls)
//   and every write that does not extend the buffer writes it out first, so SQLite itself
//   never sees a difference.
// What is still buffered when the process dies was not committed: the same as if the process
// had died before writing it. Nothing changes for a power cut either, since the buffer is
// always written before any sync.
//
// A failed delayed write must reach SQLite as a failed write, or SQLite could commit a
// transaction whose earlier frames never reached the file (readers would then read whatever
// the file held there). Its error is returned by the call that wrote the buffer out and is
// kept until a write or a sync has returned it too: SQLite abandons the whole transaction
// when one of those fails. Reads of the lost bytes fail meanwhile.
//
// Only WAL files are wrapped: each connection has its own handle (the pool hands a connection
// to one thread at a time), so the buffer needs no lock. Everything else is the default VFS.

namespace vscard::sql {
namespace {

constexpr int kWalFrameHeaderSize = 24;
// The default unix VFS writes at most 128 KiB - 1 bytes per call (os_unix.c, seekAndWriteFd).
constexpr int kBufferSize = 0x1ffff;

sqlite3_vfs* g_base = nullptr;
sqlite3_vfs g_vfs;

struct WalFile {
    sqlite3_file base;                // base.pMethods = &kWalMethods
    sqlite3_file* real;               // the default VFS's file, stored right after this struct
    unsigned char* buffer = nullptr;  // allocated at the first gathered write
    sqlite3_int64 start = 0;          // file offset of buffer[0]
    int used = 0;
    bool commit_page_next = false;  // the last write was a commit frame's header
    // A delayed write that failed: its error, until a write or a sync returned it, and the
    // bytes it lost.
    int lost_rc = SQLITE_OK;
    sqlite3_int64 lost_start = 0;
    sqlite3_int64 lost_end = 0;
};

WalFile* wal(sqlite3_file* f) {
    return reinterpret_cast<WalFile*>(f);
}

// Writes the buffer out. Returns SQLITE_OK, or the error of that write (kept in LOST_RC).
int write_out(WalFile* w) {
    if (w->used == 0) return SQLITE_OK;
    int n = w->used;
    w->used = 0;
    int rc = w->real->pMethods->xWrite(w->real, w->buffer, n, w->start);
    if (rc != SQLITE_OK) {
        w->lost_rc = rc;
        w->lost_start = w->start;
        w->lost_end = w->start + n;
    }
    return rc;
}

// For a write or a sync: writes the buffer out and returns any error not yet reported by
// one, which SQLite then takes as the failure of the transaction.
int write_out_and_report(WalFile* w) {
    write_out(w);
    int rc = w->lost_rc;
    w->lost_rc = SQLITE_OK;
    return rc;
}

int wal_close(sqlite3_file* f) {
    WalFile* w = wal(f);
    int rc = write_out(w);
    int rc2 = w->real->pMethods->xClose(w->real);
    sqlite3_free(w->buffer);
    w->buffer = nullptr;
    return rc != SQLITE_OK ? rc : rc2;
}

int wal_read(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
    WalFile* w = wal(f);
    if (int rc = write_out(w); rc != SQLITE_OK) return rc;
    if (w->lost_rc != SQLITE_OK && offset < w->lost_end && offset + amount > w->lost_start)
        return w->lost_rc;
    return w->real->pMethods->xRead(w->real, out, amount, offset);
}

int wal_write(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
    WalFile* w = wal(f);
    const auto* bytes = static_cast<const unsigned char*>(data);
    // The commit frame goes out in two calls: its header with all before it, then its page.
    // The header alone may be the last write before SQLite publishes the commit: when frames
    // were overwritten in place, SQLite rewrites the headers of the transaction's frames,
    // ending with the commit frame's, and writes nothing after it.
    const bool commit_header =
        amount == kWalFrameHeaderSize && (bytes[4] | bytes[5] | bytes[6] | bytes[7]) != 0;
    const bool commit_page = w->commit_page_next;
    w->commit_page_next = false;
    const bool extends =
        w->used > 0 && offset == w->start + w->used && w->used + amount <= kBufferSize;
    if (!extends) {
        if (int rc = write_out_and_report(w); rc != SQLITE_OK) return rc;
    }
    if (!w->buffer) w->buffer = static_cast<unsigned char*>(sqlite3_malloc(kBufferSize));
    if (amount > kBufferSize || !w->buffer) {
        w->commit_page_next = commit_header;
        return w->real->pMethods->xWrite(w->real, data, amount, offset);
    }
    if (w->used == 0) w->start = offset;
    std::copy_n(bytes, amount, w->buffer + w->used);
    w->used += amount;
    if (commit_header || commit_page) {
        w->commit_page_next = commit_header;
        return write_out_and_report(w);
    }
    return SQLITE_OK;
}

int wal_truncate(sqlite3_file* f, sqlite3_int64 size) {
    WalFile* w = wal(f);
    if (int rc = write_out(w); rc != SQLITE_OK) return rc;
    return w->real->pMethods->xTruncate(w->real, size);
}

int wal_sync(sqlite3_file* f, int flags) {
    WalFile* w = wal(f);
    if (int rc = write_out_and_report(w); rc != SQLITE_OK) return rc;
    return w->real->pMethods->xSync(w->real, flags);
}

int wal_file_size(sqlite3_file* f, sqlite3_int64* size) {
    WalFile* w = wal(f);
    if (int rc = write_out(w); rc != SQLITE_OK) return rc;
    return w->real->pMethods->xFileSize(w->real, size);
}

int wal_lock(sqlite3_file* f, int level) {
    WalFile* w = wal(f);
    if (int rc = write_out(w); rc != SQLITE_OK) return rc;
    return w->real->pMethods->xLock(w->real, level);
}

int wal_unlock(sqlite3_file* f, int level) {
    WalFile* w = wal(f);
    int rc = write_out(w);  // a failure is kept for the next write; the lock goes regardless
    int rc2 = w->real->pMethods->xUnlock(w->real, level);
    return rc != SQLITE_OK ? rc : rc2;
}

int wal_check_reserved_lock(sqlite3_file* f, int* out) {
    return wal(f)->real->pMethods->xCheckReservedLock(wal(f)->real, out);
}

int wal_file_control(sqlite3_file* f, int op, void* arg) {
    WalFile* w = wal(f);
    if (int rc = write_out(w); rc != SQLITE_OK) return rc;
    return w->real->pMethods->xFileControl(w->real, op, arg);
}

int wal_sector_size(sqlite3_file* f) {
    return wal(f)->real->pMethods->xSectorSize(wal(f)->real);
}

int wal_device_characteristics(sqlite3_file* f) {
    return wal(f)->real->pMethods->xDeviceCharacteristics(wal(f)->real);
}

// Version 1: SQLite maps shared memory and pages only through the main database file.
const sqlite3_io_methods kWalMethods = {
    1,
    wal_close,
    wal_read,
    wal_write,
    wal_truncate,
    wal_sync,
    wal_file_size,
    wal_lock,
    wal_unlock,
    wal_check_reserved_lock,
    wal_file_control,
    wal_sector_size,
    wal_device_characteristics,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

int vfs_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
    if (!(flags & SQLITE_OPEN_WAL)) return g_base->xOpen(g_base, name, file, flags, out_flags);
    auto* real = reinterpret_cast<sqlite3_file*>(wal(file) + 1);
    auto* w = ::new (static_cast<void*>(file)) WalFile{{nullptr}, real};
    real->pMethods = nullptr;
    int rc = g_base->xOpen(g_base, name, real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (real->pMethods) real->pMethods->xClose(real);
        return rc;  // w->base.pMethods stays null: SQLite does not close it
    }
    w->base.pMethods = &kWalMethods;
    return SQLITE_OK;
}

}  // namespace

const char* batching_vfs_name() {
    static std::once_flag once;
    std::call_once(once, [] {
        g_base = sqlite3_vfs_find(nullptr);
        // Every other method is the default VFS's own: they use nothing of the VFS object
        // but what the copy holds too (pAppData, mxPathname).
        g_vfs = *g_base;
        g_vfs.zName = "vscard-batching";
        g_vfs.pNext = nullptr;
        g_vfs.szOsFile = static_cast<int>(sizeof(WalFile)) + g_base->szOsFile;
        g_vfs.xOpen = vfs_open;
        sqlite3_vfs_register(&g_vfs, 0);
    });
    return g_vfs.zName;
}

}  // namespace vscard::sql
