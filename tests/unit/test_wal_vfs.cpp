// The batching VFS under every SQLite connection: gathered WAL appends must reach the file
// before anything can see them (another connection, a read, a sync), a failed delayed write
// must fail the transaction, and a process killed at any instant must leave the database
// whole, with every transaction it committed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "store/sqlite.hpp"
#include "store/wal_vfs.hpp"
#include "store_test_util.hpp"

namespace vscard {
namespace {

using testing::pattern;
using testing::read_all;
using testing::TempDir;

ByteView view(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

class WalVfsTest : public ::testing::Test {
protected:
    WalVfsTest() : path_(dir_.path() / "t.db") {
        sql::Connection db(path_, true);
        db.exec(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
            "CREATE TABLE t(id INTEGER PRIMARY KEY, data BLOB NOT NULL)");
    }

    std::unique_ptr<sql::Connection> open() {
        auto db = std::make_unique<sql::Connection>(path_, false);
        db->exec("PRAGMA wal_autocheckpoint=0; PRAGMA mmap_size=268435456");
        return db;
    }

    // Rows [from, to) in one transaction; row i holds pattern(size_of(i), i + salt).
    static std::size_t size_of(std::int64_t id) { return 100 + (id * 7919) % 20000; }
    static void put(sql::Connection& db, std::int64_t from, std::int64_t to, int salt) {
        sql::Transaction txn(db);
        for (std::int64_t id = from; id < to; ++id) {
            std::string data = pattern(size_of(id), static_cast<std::uint32_t>(id + salt));
            db.prepare("INSERT OR REPLACE INTO t(id, data) VALUES(?1, ?2)")
                .bind(1, id)
                .bind(2, view(data))
                .run();
        }
        txn.commit();
    }
    // Checks rows [from, to) hold SALT's content; returns how many do not.
    static int check(sql::Connection& db, std::int64_t from, std::int64_t to, int salt) {
        int bad = 0;
        for (std::int64_t id = from; id < to; ++id) {
            auto st = db.prepare("SELECT data FROM t WHERE id = ?1");
            st.bind(1, id);
            std::string want = pattern(size_of(id), static_cast<std::uint32_t>(id + salt));
            if (!st.step()) {
                ++bad;
                continue;
            }
            ByteView got = st.blob(0);
            if (std::string(got.begin(), got.end()) != want) ++bad;
        }
        return bad;
    }
    // SQL is a string literal (statements are cached by the address of their text).
    static void checkpoint(sql::Connection& db, const char* sql, bool* complete = nullptr) {
        auto st = db.prepare(sql);
        ASSERT_TRUE(st.step());
        if (complete) *complete = st.integer(0) == 0 && st.integer(1) == st.integer(2);
    }

    TempDir dir_;
    std::filesystem::path path_;
};

TEST_F(WalVfsTest, EveryCommitIsVisibleAtOnce) {
    auto writer = open();
    auto reader = open();
    for (int round = 0; round < 50; ++round) {
        put(*writer, round * 20, round * 20 + 20, 1);
        EXPECT_EQ(check(*reader, round * 20, round * 20 + 20, 1), 0) << "round " << round;
    }
}

TEST_F(WalVfsTest, CheckpointKeepsSnapshotsAndConcurrentWriters) {
    auto writer = open();
    put(*writer, 0, 400, 1);
    put(*writer, 400, 800, 1);

    // A reader holds a snapshot while rows change: the checkpoint may not overwrite what it
    // still reads from the database file.
    auto reader = open();
    reader->exec("BEGIN");
    ASSERT_EQ(check(*reader, 0, 800, 1), 0);
    put(*writer, 0, 800, 2);

    auto checkpointer = open();
    bool complete = true;
    checkpoint(*checkpointer, "PRAGMA wal_checkpoint(PASSIVE)", &complete);
    EXPECT_FALSE(complete);
    EXPECT_EQ(check(*reader, 0, 800, 1), 0);
    reader->exec("COMMIT");
    EXPECT_EQ(check(*reader, 0, 800, 2), 0);

    // A writer appends while checkpoints copy the WAL.
    std::atomic<bool> stop{false};
    std::thread more([&] {
        auto w = open();
        for (int round = 0; !stop && round < 40; ++round)
            put(*w, 1000 + round * 10, 1010 + round * 10, 3);
    });
    for (int i = 0; i < 5; ++i) checkpoint(*checkpointer, "PRAGMA wal_checkpoint(PASSIVE)");
    stop = true;
    more.join();
    checkpoint(*checkpointer, "PRAGMA wal_checkpoint(TRUNCATE)", &complete);
    EXPECT_TRUE(complete);
    {
        // The WAL is empty now: everything comes from the database file.
        auto fresh = open();
        EXPECT_EQ(check(*fresh, 0, 800, 2), 0);
        auto ic = fresh->prepare("PRAGMA integrity_check");
        ASSERT_TRUE(ic.step());
        EXPECT_EQ(ic.text(0), "ok");
    }

    // The WAL restarts from its start; everything reads back, also from a new connection.
    put(*writer, 0, 300, 4);
    checkpoint(*checkpointer, "PRAGMA wal_checkpoint(PASSIVE)");
    writer.reset();
    reader.reset();
    checkpointer.reset();
    auto fresh = open();
    EXPECT_EQ(check(*fresh, 0, 300, 4), 0);
    EXPECT_EQ(check(*fresh, 300, 800, 2), 0);
    auto st = fresh->prepare("SELECT count(*) FROM t WHERE id >= 1000");
    ASSERT_TRUE(st.step());
    std::int64_t extra = st.integer(0);
    EXPECT_EQ(extra % 10, 0);
    EXPECT_EQ(check(*fresh, 1000, 1000 + extra, 3), 0);
    auto ic = fresh->prepare("PRAGMA integrity_check");
    ASSERT_TRUE(ic.step());
    EXPECT_EQ(ic.text(0), "ok");
}

// ---- the VFS's WAL file, called directly ------------------------------------------------------

constexpr int kPage = 4096;
constexpr int kFrameHeader = 24;

// A WAL file opened through the batching VFS, next to an empty database file.
class WalFileTest : public ::testing::Test {
protected:
    WalFileTest() : db_path_(dir_.path() / "t.db"), wal_path_(dir_.path() / "t.db-wal") {
        { std::ofstream(db_path_.string()); }
        vfs_ = sqlite3_vfs_find(sql::batching_vfs_name());
        file_ =
            static_cast<sqlite3_file*>(::operator new(static_cast<std::size_t>(vfs_->szOsFile)));
        int out = 0;
        int rc = vfs_->xOpen(vfs_, wal_path_.c_str(), file_,
                             SQLITE_OPEN_WAL | SQLITE_OPEN_CREATE | SQLITE_OPEN_READWRITE, &out);
        if (rc != SQLITE_OK) throw std::runtime_error("cannot open the WAL file");
    }
    ~WalFileTest() override {
        if (file_->pMethods) file_->pMethods->xClose(file_);
        ::operator delete(file_);
    }

    int write(const std::string& data, sqlite3_int64 offset) {
        return file_->pMethods->xWrite(file_, data.data(), static_cast<int>(data.size()), offset);
    }
    // A frame header: a commit frame's holds the database size in bytes 4-7.
    static std::string header(bool commit) {
        std::string h(kFrameHeader, '\x11');
        if (!commit) std::memset(h.data() + 4, 0, 4);
        return h;
    }
    static sqlite3_int64 frame_offset(int frame) { return 32 + frame * (kFrameHeader + kPage); }
    // Appends frame FRAME (from 0) after the WAL header; returns the first error.
    int append_frame(int frame, bool commit) {
        int rc = write(header(commit), frame_offset(frame));
        if (rc != SQLITE_OK) return rc;
        return write(pattern(kPage, static_cast<std::uint32_t>(frame)),
                     frame_offset(frame) + kFrameHeader);
    }
    // What is in the file itself, read past the VFS.
    sqlite3_int64 size_on_disk() const {
        return static_cast<sqlite3_int64>(std::filesystem::file_size(wal_path_));
    }
    std::string on_disk(sqlite3_int64 offset, std::size_t size) const {
        std::string s = read_all(wal_path_);
        if (offset + static_cast<sqlite3_int64>(size) > static_cast<sqlite3_int64>(s.size()))
            return {};
        return s.substr(static_cast<std::size_t>(offset), size);
    }

    TempDir dir_;
    std::filesystem::path db_path_, wal_path_;
    sqlite3_vfs* vfs_ = nullptr;
    sqlite3_file* file_ = nullptr;
};

TEST_F(WalFileTest, AppendsWaitUntilACommitFrame) {
    ASSERT_EQ(write(std::string(32, '\x22'), 0), SQLITE_OK);
    for (int frame = 0; frame < 3; ++frame) ASSERT_EQ(append_frame(frame, false), SQLITE_OK);
    EXPECT_EQ(size_on_disk(), 0);  // gathered

    // The commit frame's header goes out with all before it, its page right after.
    ASSERT_EQ(write(header(true), frame_offset(3)), SQLITE_OK);
    EXPECT_EQ(size_on_disk(), frame_offset(3) + kFrameHeader);
    ASSERT_EQ(write(pattern(kPage, 3), frame_offset(3) + kFrameHeader), SQLITE_OK);
    EXPECT_EQ(size_on_disk(), frame_offset(4));
    EXPECT_EQ(on_disk(frame_offset(1) + kFrameHeader, kPage), pattern(kPage, 1));
}

TEST_F(WalFileTest, RewrittenCommitHeaderGoesOutAtOnce) {
    // SQLite rewrites the headers of a transaction's frames (new checksums) after it has
    // overwritten one in place, ending with the commit frame's, and then publishes the commit.
    for (int frame = 0; frame < 2; ++frame) ASSERT_EQ(append_frame(frame, frame == 1), SQLITE_OK);
    std::string rewritten = header(true);
    rewritten[10] = '\x33';
    ASSERT_EQ(write(header(false), frame_offset(0)), SQLITE_OK);
    ASSERT_EQ(write(rewritten, frame_offset(1)), SQLITE_OK);
    EXPECT_EQ(on_disk(frame_offset(1), kFrameHeader), rewritten);
}

TEST_F(WalFileTest, SyncSizeReadAndTruncateSeeBufferedFrames) {
    ASSERT_EQ(append_frame(0, false), SQLITE_OK);
    ASSERT_EQ(append_frame(1, false), SQLITE_OK);
    ASSERT_EQ(size_on_disk(), 0);
    ASSERT_EQ(file_->pMethods->xSync(file_, SQLITE_SYNC_NORMAL), SQLITE_OK);
    EXPECT_EQ(size_on_disk(), frame_offset(2));

    ASSERT_EQ(append_frame(2, false), SQLITE_OK);
    sqlite3_int64 size = 0;
    ASSERT_EQ(file_->pMethods->xFileSize(file_, &size), SQLITE_OK);
    EXPECT_EQ(size, frame_offset(3));

    ASSERT_EQ(append_frame(3, false), SQLITE_OK);
    std::string page(kPage, '\0');
    ASSERT_EQ(file_->pMethods->xRead(file_, page.data(), kPage, frame_offset(3) + kFrameHeader),
              SQLITE_OK);
    EXPECT_EQ(page, pattern(kPage, 3));

    ASSERT_EQ(append_frame(4, false), SQLITE_OK);
    ASSERT_EQ(file_->pMethods->xTruncate(file_, frame_offset(4) + kFrameHeader), SQLITE_OK);
    EXPECT_EQ(size_on_disk(), frame_offset(4) + kFrameHeader);
    EXPECT_EQ(on_disk(frame_offset(4), kFrameHeader), header(false));
}

// Files may grow to LIMIT bytes while one lives; writes past it fail (EFBIG).
class FileSizeLimit {
public:
    explicit FileSizeLimit(rlim_t limit) {
        old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
        ::getrlimit(RLIMIT_FSIZE, &old_);
        rlimit now = old_;
        now.rlim_cur = limit;
        ::setrlimit(RLIMIT_FSIZE, &now);
    }
    ~FileSizeLimit() {
        ::setrlimit(RLIMIT_FSIZE, &old_);
        ::signal(SIGXFSZ, old_handler_);
    }
    FileSizeLimit(const FileSizeLimit&) = delete;
    FileSizeLimit& operator=(const FileSizeLimit&) = delete;

private:
    rlimit old_{};
    sighandler_t old_handler_;
};

TEST_F(WalFileTest, FailedDelayedWriteFailsTheNextWriteAndSync) {
    {
        FileSizeLimit limit(static_cast<rlim_t>(frame_offset(1)));
        for (int frame = 0; frame < 3; ++frame) ASSERT_EQ(append_frame(frame, false), SQLITE_OK);
        // A call whose result SQLite may ignore writes the buffer out: the write fails...
        EXPECT_NE(file_->pMethods->xFileControl(file_, SQLITE_FCNTL_LOCKSTATE, nullptr), SQLITE_OK);
    }
    // ... and keeps failing what could read or commit the lost frames.
    std::string page(kPage, '\0');
    EXPECT_NE(file_->pMethods->xRead(file_, page.data(), kPage, frame_offset(2) + kFrameHeader),
              SQLITE_OK);
    EXPECT_NE(append_frame(3, true), SQLITE_OK);
    // Reported once by a write: SQLite has abandoned the transaction, and the file works again.
    EXPECT_EQ(append_frame(0, false), SQLITE_OK);
    EXPECT_EQ(file_->pMethods->xSync(file_, SQLITE_SYNC_NORMAL), SQLITE_OK);

    {
        FileSizeLimit limit(static_cast<rlim_t>(frame_offset(1)));
        ASSERT_EQ(append_frame(1, false), SQLITE_OK);
        EXPECT_NE(file_->pMethods->xSync(file_, SQLITE_SYNC_NORMAL), SQLITE_OK);
    }
    EXPECT_EQ(file_->pMethods->xSync(file_, SQLITE_SYNC_NORMAL), SQLITE_OK);
}

// ---- through SQLite ----------------------------------------------------------------------------

TEST_F(WalVfsTest, FullDiskFailsTheTransactionAndKeepsTheOldContent) {
    auto writer = open();
    put(*writer, 0, 100, 1);
    checkpoint(*writer, "PRAGMA wal_checkpoint(TRUNCATE)");
    {
        // Room for a few frames only: the writes gathered for the commit fail.
        FileSizeLimit limit(256 * 1024);
        EXPECT_THROW(put(*writer, 0, 200, 2), Error);
    }
    EXPECT_EQ(check(*writer, 0, 100, 1), 0);
    auto reader = open();
    EXPECT_EQ(check(*reader, 0, 100, 1), 0);
    put(*writer, 0, 200, 3);
    EXPECT_EQ(check(*reader, 0, 200, 3), 0);
    auto ic = reader->prepare("PRAGMA integrity_check");
    ASSERT_TRUE(ic.step());
    EXPECT_EQ(ic.text(0), "ok");
}

// What a process killed now would leave: the database and its WAL as they are in the files
// (the WAL index is rebuilt from the WAL on opening the copy).
std::filesystem::path copy_as_killed(const std::filesystem::path& db) {
    auto copy = db.parent_path() / "killed.db";
    std::filesystem::copy_file(db, copy, std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(db.string() + "-wal", copy.string() + "-wal",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::remove(copy.string() + "-shm");
    return copy;
}

TEST_F(WalVfsTest, CommitIsInTheFileWhenCommitReturns) {
    auto writer = open();
    put(*writer, 0, 300, 1);
    // As in the store, commits do not sync. A small page cache spills the transaction to the
    // WAL before its commit, and the second pass overwrites spilled frames in place: SQLite
    // then rewrites the frame headers, the commit frame's last, and writes nothing after it.
    writer->exec("PRAGMA cache_size=8; PRAGMA synchronous=NORMAL");
    {
        sql::Transaction txn(*writer);
        for (int salt : {2, 3}) {
            for (std::int64_t id = 0; id < (salt == 2 ? 300 : 50); ++id) {
                std::string data = pattern(size_of(id), static_cast<std::uint32_t>(id + salt));
                writer->prepare("INSERT OR REPLACE INTO t(id, data) VALUES(?1, ?2)")
                    .bind(1, id)
                    .bind(2, view(data))
                    .run();
            }
        }
        txn.commit();
    }
    sql::Connection killed(copy_as_killed(path_), false);
    EXPECT_EQ(check(killed, 0, 50, 3), 0);
    EXPECT_EQ(check(killed, 50, 300, 2), 0);
    auto ic = killed.prepare("PRAGMA integrity_check");
    ASSERT_TRUE(ic.step());
    EXPECT_EQ(ic.text(0), "ok");
}

// A child process rewrites every row in each transaction (a small page cache makes SQLite
// spill to the WAL and overwrite frames in place), reports each commit through a pipe, and
// checkpoints meanwhile; it is killed at a random instant. Every row must then hold the same
// generation, at least the last one reported.
TEST_F(WalVfsTest, KilledWriterLeavesOldOrNewAndKeepsCommits) {
    constexpr std::int64_t kRows = 300;
    {
        auto db = open();
        put(*db, 0, kRows, 0);
    }
    std::mt19937 random(12345);
    int previous = 0;  // the generation the rows hold
    for (int round = 1; round <= 12; ++round) {
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            ::close(fds[0]);
            try {
                auto db = open();
                db->exec("PRAGMA cache_size=8; PRAGMA synchronous=NORMAL");
                auto checkpointer = open();
                std::thread background([&] {
                    for (;;) {
                        auto st = checkpointer->prepare("PRAGMA wal_checkpoint(PASSIVE)");
                        st.step();
                    }
                });
                background.detach();
                for (std::int32_t generation = 1;; ++generation) {
                    put(*db, 0, kRows, round * 100000 + generation);
                    if (::write(fds[1], &generation, sizeof generation) != sizeof generation) break;
                }
            } catch (...) {
            }
            ::_exit(1);
        }
        ::close(fds[1]);
        std::this_thread::sleep_for(std::chrono::milliseconds(50 + random() % 400));
        ::kill(child, SIGKILL);
        int status = 0;
        ::waitpid(child, &status, 0);
        ASSERT_TRUE(WIFSIGNALED(status)) << "the writer stopped by itself";
        std::int32_t committed = 0, generation = 0;
        while (::read(fds[0], &generation, sizeof generation) == sizeof generation)
            committed = generation;
        ::close(fds[0]);

        auto db = open();
        auto ic = db->prepare("PRAGMA integrity_check");
        ASSERT_TRUE(ic.step());
        ASSERT_EQ(ic.text(0), "ok") << "round " << round;
        // The last commit reported, or the one after it (committed, not yet reported).
        int last = committed == 0 ? previous : round * 100000 + committed;
        int found = -1;
        for (int salt : {last, round * 100000 + committed + 1})
            if (check(*db, 0, 1, salt) == 0) found = salt;
        ASSERT_GE(found, 0) << "round " << round << ": row 0 lost commit " << committed;
        EXPECT_EQ(check(*db, 0, kRows, found), 0) << "round " << round << ": a torn transaction";
        previous = found;
    }
}

}  // namespace
}  // namespace vscard
