// Mirroring and comparing folder trees (src/backup): what vscardctl backup, restore and verify
// do with each area, here on plain directories.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <set>

#include "backup/mirror.hpp"
#include "error.hpp"
#include "store_test_util.hpp"

namespace vscard {
namespace {

namespace fs = std::filesystem;
using backup::Difference;
using testing::pattern;
using testing::read_all;
using testing::write_all;

void set_mtime(const fs::path& path, time_t seconds) {
    const timespec times[2] = {{0, UTIME_OMIT}, {seconds, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

struct stat stat_of(const fs::path& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st;
}

// Every path below ROOT, relative ("dir/", "dir/file").
std::set<std::string> tree(const fs::path& root) {
    std::set<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        std::string rel = fs::relative(e.path(), root).string();
        out.insert(e.is_directory() ? rel + "/" : rel);
    }
    return out;
}

class Mirror : public ::testing::Test {
protected:
    void SetUp() override {
        fs::create_directories(src);
        fs::create_directories(dst);
    }

    backup::Summary mirror() {
        auto s = backup::scan(src);
        auto t = backup::scan(dst);
        backup::Progress progress;
        progress.add_to_totals(s);
        auto summary = backup::mirror(s, src, t, dst, progress);
        EXPECT_EQ(progress.objects_done, progress.objects_total);
        EXPECT_EQ(progress.bytes_done, progress.bytes_total);
        return summary;
    }

    std::vector<Difference> compare() {
        backup::Progress progress;
        return backup::compare(backup::scan(src), src, backup::scan(dst), dst, progress);
    }

    // A source tree: 3 files and 2 folders, all with fixed times.
    void fill_source() {
        fs::create_directories(src / "docs" / "old");
        write_all(src / "readme.txt", "hello\n");
        write_all(src / "docs" / "blob.bin", pattern(20000, 1));
        write_all(src / "docs" / "old" / "notes", "old notes\n");
        ::chmod((src / "readme.txt").c_str(), 0640);
        for (const char* p : {"readme.txt", "docs/blob.bin", "docs/old/notes", "docs/old", "docs"})
            set_mtime(src / p, 1700000000);
    }

    testing::TempDir dir;
    fs::path src = dir.path() / "src", dst = dir.path() / "dst";
};

TEST_F(Mirror, CopiesEverythingIntoAnEmptyFolderWithModesAndTimes) {
    fill_source();
    auto summary = mirror();
    EXPECT_EQ(summary.copied, 5u);
    EXPECT_EQ(summary.skipped, 0u);
    EXPECT_EQ(summary.deleted, 0u);
    EXPECT_TRUE(summary.failures.empty());
    EXPECT_EQ(tree(dst), tree(src));
    EXPECT_EQ(read_all(dst / "docs" / "blob.bin"), pattern(20000, 1));
    EXPECT_EQ(stat_of(dst / "readme.txt").st_mode & 07777, 0640u);
    EXPECT_EQ(stat_of(dst / "docs" / "old" / "notes").st_mtim.tv_sec, 1700000000);
    EXPECT_EQ(stat_of(dst / "docs").st_mtim.tv_sec, 1700000000);  // set after its content
    EXPECT_TRUE(compare().empty());
}

TEST_F(Mirror, AgainSkipsWhatIsUnchanged) {
    fill_source();
    mirror();
    auto again = mirror();
    EXPECT_EQ(again.copied, 0u);
    EXPECT_EQ(again.skipped, 5u);
    EXPECT_EQ(again.deleted, 0u);
}

TEST_F(Mirror, CopiesChangesAndDeletesWhatTheSourceLost) {
    fill_source();
    mirror();
    write_all(src / "readme.txt", "hello again\n");           // other size
    write_all(src / "docs" / "blob.bin", pattern(20000, 2));  // same size, other content
    fs::remove_all(src / "docs" / "old");                     // a folder with a file
    fs::create_directories(src / "new" / "deeper");           // nested new folders
    write_all(src / "new" / "deeper" / "file", "x");

    auto summary = mirror();
    EXPECT_EQ(summary.copied, 5u);   // readme.txt, docs/blob.bin, new/, new/deeper/, its file
    EXPECT_EQ(summary.skipped, 1u);  // docs/
    EXPECT_EQ(summary.deleted, 2u);  // docs/old/notes, docs/old/
    EXPECT_TRUE(summary.failures.empty());
    EXPECT_EQ(tree(dst), tree(src));
    EXPECT_EQ(read_all(dst / "readme.txt"), "hello again\n");
    EXPECT_EQ(read_all(dst / "docs" / "blob.bin"), pattern(20000, 2));
    // A folder's time is set after the changes inside it, even when it was right before.
    write_all(dst / "docs" / "extra", "x");
    set_mtime(src / "docs", 1700000100);
    set_mtime(dst / "docs", 1700000100);
    EXPECT_EQ(mirror().deleted, 1u);
    EXPECT_EQ(stat_of(dst / "docs").st_mtim.tv_sec, 1700000100);
    EXPECT_TRUE(compare().empty());
}

// A card forgets mtimes when it is pulled out: same size and another mtime is compared by
// content; the same content is unchanged (its time set), another content is copied.
TEST_F(Mirror, SameSizeAndOtherMtimeIsComparedByContent) {
    write_all(src / "same", "abc");
    write_all(dst / "same", "abc");
    write_all(src / "other", "abc");
    write_all(dst / "other", "xyz");
    for (const char* f : {"same", "other"}) {
        set_mtime(src / f, 1700000000);
        set_mtime(dst / f, 1600000000);
    }
    auto summary = mirror();
    EXPECT_EQ(summary.copied, 1u);
    EXPECT_EQ(summary.skipped, 1u);
    EXPECT_EQ(read_all(dst / "other"), "abc");
    EXPECT_EQ(stat_of(dst / "same").st_mtim.tv_sec, 1700000000);
}

TEST_F(Mirror, AFileBecomingAFolderAndBackIsReplaced) {
    fs::create_directories(src / "a");
    write_all(src / "a" / "inner", "1");
    write_all(src / "b", "2");
    fs::create_directories(dst / "b");
    write_all(dst / "b" / "inner", "3");
    write_all(dst / "a", "4");
    auto summary = mirror();
    EXPECT_EQ(summary.deleted, 3u);  // a, b/inner, b/
    EXPECT_EQ(summary.copied, 3u);   // a/, a/inner, b
    EXPECT_TRUE(summary.failures.empty());
    EXPECT_EQ(tree(dst), tree(src));
}

TEST_F(Mirror, WritesThroughATemporaryFileRenamedOver) {
    write_all(src / "f", "new");
    write_all(dst / "f", "old!");
    ASSERT_EQ(::link((dst / "f").c_str(), (dir.path() / "link").c_str()), 0);
    mirror();
    EXPECT_EQ(read_all(dst / "f"), "new");
    EXPECT_EQ(read_all(dir.path() / "link"), "old!");  // the old file was never written into
}

TEST_F(Mirror, AFailingWriteLeavesTheOldFileAndTheRestIsCopied) {
    write_all(src / "big", pattern(100000, 3));
    write_all(src / "small", "small");
    write_all(dst / "big", "previous content");
    // Writes past 50000 bytes fail with EFBIG, as a full medium would with ENOSPC.
    rlimit old{};
    ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit small{50000, old.rlim_max};
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
    auto summary = mirror();
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);

    ASSERT_EQ(summary.failures.size(), 1u);
    EXPECT_EQ(summary.failures[0].path, "big");
    EXPECT_NE(summary.failures[0].error.find("too large"), std::string::npos)
        << summary.failures[0].error;
    EXPECT_EQ(summary.copied, 1u);
    EXPECT_EQ(read_all(dst / "big"), "previous content");
    EXPECT_EQ(read_all(dst / "small"), "small");
    EXPECT_EQ(tree(dst), (std::set<std::string>{"big", "small"}));  // no temporary file left

    auto diffs = compare();
    ASSERT_EQ(diffs.size(), 1u);
    EXPECT_EQ(diffs[0].path, "big");
    EXPECT_EQ(diffs[0].kind, Difference::Kind::Differs);
}

TEST_F(Mirror, CompareNamesEveryDifferenceAndWritesNothing) {
    fill_source();
    mirror();
    write_all(src / "only-src", "1");
    fs::create_directories(dst / "only-dst");
    write_all(dst / "docs" / "old" / "notes", "OLD NOTES\n");  // same size
    write_all(dst / "readme.txt", "hello, longer\n");
    auto before = tree(dst);

    auto diffs = compare();
    std::set<std::pair<std::string, Difference::Kind>> got;
    for (const auto& d : diffs) got.insert({d.path, d.kind});
    EXPECT_EQ(got, (std::set<std::pair<std::string, Difference::Kind>>{
                       {"only-src", Difference::Kind::OnlyInA},
                       {"only-dst", Difference::Kind::OnlyInB},
                       {"docs/old/notes", Difference::Kind::Differs},
                       {"readme.txt", Difference::Kind::Differs}}));
    EXPECT_EQ(tree(dst), before);
    EXPECT_EQ(read_all(dst / "readme.txt"), "hello, longer\n");
}

TEST_F(Mirror, PrefixGoesBeforePathsAndProgressReachesTheTotals) {
    fill_source();
    auto s = backup::scan(src);
    backup::Progress progress;
    progress.add_to_totals(s);
    EXPECT_EQ(progress.objects_total, 5u);
    EXPECT_EQ(progress.bytes_total, 6u + 20000u + 10u);
    std::set<std::string> seen;
    int calls = 0;
    progress.on_change = [&](const backup::Progress& p) {
        ++calls;
        seen.insert(p.current);
        EXPECT_LE(p.objects_done, p.objects_total);
    };
    auto summary = backup::mirror(s, src, backup::scan(dst), dst, progress, "public/");
    EXPECT_EQ(calls, 5);
    EXPECT_TRUE(seen.count("public/docs/old/notes")) << *seen.begin();
    EXPECT_EQ(progress.bytes_done, progress.bytes_total);
}

TEST_F(Mirror, ScanOfAMissingFolderIsNotFound) {
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, backup::scan(dir.path() / "missing"));
    write_all(dir.path() / "file", "x");
    EXPECT_VSC_ERROR(ErrorKind::NotDirectory, ENOTDIR, backup::scan(dir.path() / "file"));
    EXPECT_EQ(system_error("x", ENOTSUP).kind(), ErrorKind::NotSupported);
}

}  // namespace
}  // namespace vscard
