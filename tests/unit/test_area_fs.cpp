// Conformance suite of the filesystem logic (AreaFs): every medium must pass the same typed
// tests, so the in-memory medium and the VSC file (clear and encrypted areas) cannot drift.
#include <gtest/gtest.h>
#include <sys/xattr.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "error.hpp"
#include "store_test_util.hpp"
#include "test_media.hpp"
#include "vfs/area_fs.hpp"
#include "vfs/memory_store.hpp"

namespace vscard {
namespace {

using testing::MediumNames;
using testing::MemoryDefaultChunks;
using testing::MemorySmallChunks;
using testing::pattern;
using testing::VscPrivate;
using testing::VscPublic;

using testing::P;

// Refuses content containing "reject" at commit, or starting with "bad:" at its first write,
// and upper-cases content starting with "up:".
class TestPolicy final : public ContentPolicy {
public:
    void check_start(ByteView first_bytes) override {
        if (std::string(first_bytes.begin(), first_bytes.end()).rfind("bad:", 0) == 0)
            throw Error(ErrorKind::Invalid, "content refused early");
    }
    void on_commit(const std::string&, WipedBytes& content) override {
        std::string text(content.begin(), content.end());
        if (text.find("reject") != std::string::npos)
            throw Error(ErrorKind::Invalid, "content refused");
        if (text.rfind("up:", 0) == 0)
            for (auto& c : content) c = static_cast<std::uint8_t>(std::toupper(c));
    }
    std::vector<std::pair<std::string, std::string>> siblings(const std::string&,
                                                              ByteView) override {
        return {};
    }
    std::uint64_t max_file_size() const override { return 1000; }
};

// ---- the fixture ---------------------------------------------------------------------------

template <typename Medium>
class AreaFsConformance : public ::testing::Test {
protected:
    AreaFsConformance() : store_(medium_.store()), fs_(make_fs()) {}

    std::unique_ptr<AreaFs> make_fs(std::shared_ptr<ContentPolicy> policy = nullptr,
                                    Caller caller = Caller::Superuser) {
        return std::make_unique<AreaFs>(store_, medium_.area(), std::move(policy), ".hidden",
                                        caller);
    }

    // Drops the filesystem object (without releasing handles: as in a crash) and builds a
    // new one over the same data.
    void reload(std::shared_ptr<ContentPolicy> policy = nullptr) {
        fs_.reset();
        store_.reset();
        store_ = medium_.reopen();
        fs_ = make_fs(std::move(policy));
    }

    std::size_t cs() const { return store_->chunk_size(); }

    // Writes DATA as the whole content of PATH and closes it.
    void put(const std::string& path, const std::string& data) { put(*fs_, path, data); }
    static void put(AreaFs& fs, const std::string& path, const std::string& data) {
        auto h = fs.create(P(path), 0644, false);
        fs.ftruncate(*h, 0);
        EXPECT_EQ(fs.write(*h, 0, data.data(), data.size()), data.size());
        fs.release(*h);
    }

    std::string get(const std::string& path) { return get(*fs_, path); }
    static std::string get(AreaFs& fs, const std::string& path) {
        auto h = fs.open(P(path), false, false);
        std::string out = read_all(fs, *h);
        fs.release(*h);
        return out;
    }

    std::string read_all(OpenFile& h) { return read_all(*fs_, h); }
    static std::string read_all(AreaFs& fs, OpenFile& h) {
        std::uint64_t size = fs.fgetattr(h).size;
        std::string out(static_cast<std::size_t>(size) + 10, '?');
        std::size_t n = fs.read(h, 0, out.size(), out.data());
        EXPECT_EQ(n, size);
        out.resize(n);
        return out;
    }

    std::string read_at(OpenFile& h, std::uint64_t offset, std::size_t size) {
        std::string out(size, '?');
        out.resize(fs_->read(h, offset, size, out.data()));
        return out;
    }

    void write_at(OpenFile& h, std::uint64_t offset, const std::string& data) {
        EXPECT_EQ(fs_->write(h, offset, data.data(), data.size()), data.size());
    }

    // The stored row of PATH, found through the store itself.
    NodeRow row_of(const std::string& path) {
        auto rows = store_->load();
        std::uint64_t id = 0;
        for (const auto& r : rows)
            if (r.meta.parent == 0) id = r.id;
        for (const auto& part : P(path)) {
            std::uint64_t next = 0;
            for (const auto& r : rows)
                if (r.meta.parent == id && r.meta.name == part) next = r.id;
            if (next == 0) throw Error(ErrorKind::NotFound, "no row for " + path);
            id = next;
        }
        for (auto& r : rows)
            if (r.id == id) return r;
        throw Error(ErrorKind::NotFound, "no row for " + path);
    }

    bool chunk_stored(std::uint64_t content, std::uint64_t index) {
        WipedBytes out;
        return store_->read_chunk(content, index, out);
    }

    std::vector<std::string> names(const std::string& dir) {
        std::vector<std::string> out;
        for (const auto& [name, attr] : fs_->readdir(P(dir))) out.push_back(name);
        return out;
    }

    // Everything observable about the tree below the root, for before/after comparisons
    // (of metadata, what the medium keeps across a reload).
    std::map<std::string, std::string> dump() {
        std::map<std::string, std::string> out;
        dump_into("", out);
        return out;
    }
    void dump_into(const std::string& dir, std::map<std::string, std::string>& out) {
        for (const auto& [name, a] : fs_->readdir(P(dir))) {
            std::string path = dir.empty() ? name : dir + "/" + name;
            std::string d = " kind=" + std::to_string(static_cast<int>(a.kind)) +
                            " size=" + std::to_string(a.size) + " nlink=" + std::to_string(a.nlink);
            if (Medium::kKeepsMetadata) {
                d += " node=" + std::to_string(a.node) + " mode=" + std::to_string(a.mode) +
                     " mtime=" + std::to_string(a.mtime.sec) + "." + std::to_string(a.mtime.nsec);
                for (const auto& x : fs_->listxattr(P(path)))
                    d += " " + x + "=" + fs_->getxattr(P(path), x);
            }
            if (a.kind == NodeKind::File) d += " data=" + get(path);
            out[path] = d;
            if (a.kind == NodeKind::Dir) dump_into(path, out);
        }
    }

    Medium medium_;
    std::shared_ptr<AreaStore> store_;
    std::unique_ptr<AreaFs> fs_;
};

using Media = ::testing::Types<MemorySmallChunks, MemoryDefaultChunks, VscPublic, VscPrivate,
                               testing::CardPublic, testing::CardPrivate>;
TYPED_TEST_SUITE(AreaFsConformance, Media, MediumNames);

// ---- basics --------------------------------------------------------------------------------

TYPED_TEST(AreaFsConformance, EmptyRoot) {
    Attr root = this->fs_->getattr({});
    EXPECT_EQ(root.kind, NodeKind::Dir);
    EXPECT_EQ(root.node, this->fs_->root_id());
    EXPECT_TRUE(this->fs_->readdir({}).empty());
    SpaceInfo space = this->fs_->statfs();
    EXPECT_GE(space.total_bytes, space.free_bytes);
    EXPECT_GT(space.total_bytes, 0u);
}

TYPED_TEST(AreaFsConformance, CreateWriteReadBack) {
    auto& fs = *this->fs_;
    auto h = fs.create(P("hello.txt"), 0640, true);
    this->write_at(*h, 0, "hello world");
    EXPECT_EQ(this->read_all(*h), "hello world");
    Attr a = fs.fgetattr(*h);
    EXPECT_EQ(a.size, 11u);
    EXPECT_EQ(a.mode, 0640u);
    EXPECT_EQ(a.kind, NodeKind::File);
    EXPECT_EQ(a.nlink, 1u);
    fs.release(*h);
    EXPECT_EQ(this->get("hello.txt"), "hello world");
    this->reload();
    EXPECT_EQ(this->get("hello.txt"), "hello world");
    if (TypeParam::kKeepsMetadata) {
        EXPECT_EQ(this->fs_->getattr(P("hello.txt")).mode, 0640u);
    }
}

TYPED_TEST(AreaFsConformance, CreateAndOpenErrors) {
    auto& fs = *this->fs_;
    this->put("f", "keep me");
    fs.mkdir(P("d"), 0755);
    EXPECT_VSC_ERROR(ErrorKind::Exists, EEXIST, fs.create(P("f"), 0644, true));
    // Without O_EXCL an existing file is opened with its content.
    auto h = fs.create(P("f"), 0644, false);
    EXPECT_EQ(this->read_all(*h), "keep me");
    fs.release(*h);
    EXPECT_VSC_ERROR(ErrorKind::IsDirectory, EISDIR, fs.create(P("d"), 0644, false));
    EXPECT_VSC_ERROR(ErrorKind::IsDirectory, EISDIR, fs.open(P("d"), false, false));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, fs.open(P("missing"), false, false));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, fs.create(P("nodir/f"), 0644, false));
    EXPECT_VSC_ERROR(ErrorKind::NotDirectory, ENOTDIR, fs.create(P("f/x"), 0644, false));
    EXPECT_VSC_ERROR(ErrorKind::NotDirectory, ENOTDIR, fs.getattr(P("f/x")));
    EXPECT_VSC_ERROR(ErrorKind::NotDirectory, ENOTDIR, fs.readdir(P("f")));
    auto ro = fs.open(P("f"), false, false);
    EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, fs.write(*ro, 0, "x", 1));
    fs.release(*ro);
    EXPECT_EQ(this->get("f"), "keep me");
}

TYPED_TEST(AreaFsConformance, HandlesOfOneFileShareUncommittedData) {
    auto& fs = *this->fs_;
    auto w = fs.create(P("f"), 0644, true);
    auto r = fs.open(P("f"), false, false);
    this->write_at(*w, 0, "shared");
    EXPECT_EQ(this->read_all(*r), "shared");
    EXPECT_EQ(fs.getattr(P("f")).size, 6u);
    fs.release(*w);
    fs.release(*r);
}

// ---- content at offsets --------------------------------------------------------------------

TYPED_TEST(AreaFsConformance, ReadWriteAcrossChunkBoundaries) {
    auto& fs = *this->fs_;
    const std::size_t cs = this->cs();
    const std::string data = pattern(3 * cs + cs / 2 + 3, 1);
    auto h = fs.create(P("f"), 0644, true);
    // Back to front in odd-sized pieces: every write extends or fills at a misaligned offset.
    const std::size_t step = cs / 3 + 1;
    std::vector<std::size_t> offsets;
    for (std::size_t off = 0; off < data.size(); off += step) offsets.push_back(off);
    std::reverse(offsets.begin(), offsets.end());
    for (std::size_t off : offsets)
        this->write_at(*h, off, data.substr(off, std::min(step, data.size() - off)));

    auto check = [&](OpenFile& file) {
        EXPECT_EQ(this->read_all(file), data);
        const std::pair<std::size_t, std::size_t> ranges[] = {{0, 1},
                                                              {cs - 1, 2},
                                                              {cs - 3, cs + 6},
                                                              {2 * cs, cs},
                                                              {cs + 1, 2 * cs},
                                                              {data.size() - 5, 100},
                                                              {data.size(), 10},
                                                              {data.size() + cs, 10}};
        for (auto [off, len] : ranges) {
            std::string expect = off < data.size() ? data.substr(off, len) : "";
            EXPECT_EQ(this->read_at(file, off, len), expect) << "offset " << off;
        }
    };
    check(*h);  // uncommitted
    fs.flush(*h);
    check(*h);  // committed
    fs.release(*h);
    this->reload();
    auto h2 = this->fs_->open(P("f"), true, false);
    check(*h2);

    // An overwrite straddling a boundary keeps the rest of both chunks.
    std::string expect = data;
    const std::string patch = pattern(10, 2);
    expect.replace(cs - 5, patch.size(), patch);
    this->write_at(*h2, cs - 5, patch);
    EXPECT_EQ(this->read_all(*h2), expect);
    this->fs_->release(*h2);
    this->reload();
    EXPECT_EQ(this->get("f"), expect);
}

TYPED_TEST(AreaFsConformance, WritePastEndLeavesHoleOfZeros) {
    auto& fs = *this->fs_;
    const std::size_t cs = this->cs();
    auto h = fs.create(P("sparse"), 0644, true);
    this->write_at(*h, 2 * cs + 5, "tail");
    const std::string expect = std::string(2 * cs + 5, '\0') + "tail";
    EXPECT_EQ(fs.fgetattr(*h).size, expect.size());
    EXPECT_EQ(this->read_all(*h), expect);
    fs.release(*h);
    EXPECT_EQ(this->get("sparse"), expect);

    // Chunks never written stay holes in the medium (a card stores each object whole).
    NodeRow row = this->row_of("sparse");
    EXPECT_EQ(row.meta.size, expect.size());
    if (TypeParam::kKeepsHoles) {
        EXPECT_FALSE(this->chunk_stored(row.meta.content, 0));
        EXPECT_FALSE(this->chunk_stored(row.meta.content, 1));
    }
    EXPECT_TRUE(this->chunk_stored(row.meta.content, 2));
    EXPECT_FALSE(this->chunk_stored(row.meta.content, 3));

    // A hole in the middle of committed data.
    auto h2 = this->fs_->open(P("sparse"), true, false);
    this->write_at(*h2, 4 * cs + 1, "end");
    std::string expect2 = expect + std::string(4 * cs + 1 - expect.size(), '\0') + "end";
    EXPECT_EQ(this->read_all(*h2), expect2);
    this->fs_->release(*h2);
    this->reload();
    EXPECT_EQ(this->get("sparse"), expect2);
}

TYPED_TEST(AreaFsConformance, ReadsStopAtEndOfFile) {
    auto& fs = *this->fs_;
    this->put("f", "0123456789");
    auto h = fs.open(P("f"), false, false);
    EXPECT_EQ(this->read_at(*h, 8, 100), "89");
    EXPECT_EQ(this->read_at(*h, 10, 5), "");
    EXPECT_EQ(this->read_at(*h, 1000000, 5), "");
    EXPECT_EQ(this->read_at(*h, 3, 0), "");
    fs.release(*h);
}

TYPED_TEST(AreaFsConformance, ZeroLengthWriteChangesNothing) {
    this->put("f", "abc");
    auto h = this->fs_->open(P("f"), true, false);
    const Attr before = this->fs_->fgetattr(*h);
    EXPECT_EQ(this->fs_->write(*h, 1000, "", 0), 0u);
    EXPECT_EQ(this->fs_->write(*h, 1, "", 0), 0u);
    const Attr after = this->fs_->fgetattr(*h);
    EXPECT_EQ(after.size, 3u);
    EXPECT_EQ(after.mtime, before.mtime);
    this->fs_->release(*h);
    this->reload();
    EXPECT_EQ(this->get("f"), "abc");
}

// ---- truncate ------------------------------------------------------------------------------

TYPED_TEST(AreaFsConformance, TruncateDownThenUpShowsNoStaleDataBeforeCommit) {
    const std::size_t cs = this->cs();
    const std::string data = pattern(3 * cs, 3);
    this->put("f", data);
    for (std::uint64_t cut : {std::uint64_t{0}, std::uint64_t{3}, std::uint64_t{cs},
                              std::uint64_t{cs + 3}, std::uint64_t{3 * cs - 1}}) {
        SCOPED_TRACE("cut at " + std::to_string(cut));
        this->put("f", data);
        auto h = this->fs_->open(P("f"), true, false);
        this->fs_->ftruncate(*h, cut);
        this->fs_->ftruncate(*h, 4 * cs);
        const std::string expect = data.substr(0, cut) + std::string(4 * cs - cut, '\0');
        EXPECT_EQ(this->read_all(*h), expect);
        this->fs_->flush(*h);
        EXPECT_EQ(this->read_all(*h), expect);
        this->fs_->release(*h);
        EXPECT_EQ(this->get("f"), expect);
        this->reload();
        EXPECT_EQ(this->get("f"), expect);
    }
}

TYPED_TEST(AreaFsConformance, TruncateDownCommittedThenUpShowsNoStaleData) {
    const std::size_t cs = this->cs();
    const std::string data = pattern(3 * cs, 4);
    this->put("f", data);
    const std::uint64_t content = this->row_of("f").meta.content;
    auto h = this->fs_->open(P("f"), true, false);
    this->fs_->ftruncate(*h, cs + 1);
    this->fs_->flush(*h);
    // The medium no longer holds what lay beyond the cut.
    EXPECT_TRUE(this->chunk_stored(content, 1));
    EXPECT_FALSE(this->chunk_stored(content, 2));
    this->fs_->ftruncate(*h, 3 * cs);
    const std::string expect = data.substr(0, cs + 1) + std::string(2 * cs - 1, '\0');
    EXPECT_EQ(this->read_all(*h), expect);
    this->fs_->release(*h);
    EXPECT_EQ(this->get("f"), expect);
    this->reload();
    EXPECT_EQ(this->get("f"), expect);
}

TYPED_TEST(AreaFsConformance, TruncateOfUncommittedWritesThenExtend) {
    const std::size_t cs = this->cs();
    const std::string data = pattern(3 * cs, 5);
    auto h = this->fs_->create(P("f"), 0644, true);
    this->write_at(*h, 0, data);
    this->fs_->ftruncate(*h, cs / 2);
    this->write_at(*h, 2 * cs, "x");
    const std::string expect = data.substr(0, cs / 2) + std::string(2 * cs - cs / 2, '\0') + "x";
    EXPECT_EQ(this->read_all(*h), expect);
    this->fs_->release(*h);
    this->reload();
    EXPECT_EQ(this->get("f"), expect);
}

TYPED_TEST(AreaFsConformance, PathTruncateLandsAtOnce) {
    const std::size_t cs = this->cs();
    const std::string data = pattern(2 * cs + 10, 6);
    this->put("f", data);
    this->fs_->truncate(P("f"), 5);
    EXPECT_EQ(this->fs_->getattr(P("f")).size, 5u);
    {
        auto other = this->make_fs();  // a second view of the medium: no handle flushed this
        EXPECT_EQ(this->get(*other, "f"), data.substr(0, 5));
    }
    this->fs_->truncate(P("f"), 2 * cs);
    const std::string expect = data.substr(0, 5) + std::string(2 * cs - 5, '\0');
    EXPECT_EQ(this->get("f"), expect);
    this->reload();
    EXPECT_EQ(this->get("f"), expect);
    this->fs_->mkdir(P("d"), 0755);
    EXPECT_VSC_ERROR(ErrorKind::IsDirectory, EISDIR, this->fs_->truncate(P("d"), 0));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, this->fs_->truncate(P("missing"), 0));
}

TYPED_TEST(AreaFsConformance, FtruncateWhileOpenThenClose) {
    const std::size_t cs = this->cs();
    const std::string data = pattern(2 * cs + 7, 7);
    this->put("f", data);
    auto h = this->fs_->open(P("f"), true, false);
    this->fs_->ftruncate(*h, 10);
    EXPECT_EQ(this->fs_->fgetattr(*h).size, 10u);
    EXPECT_EQ(this->fs_->getattr(P("f")).size, 10u);
    this->fs_->release(*h);
    this->reload();
    EXPECT_EQ(this->fs_->getattr(P("f")).size, 10u);
    EXPECT_EQ(this->get("f"), data.substr(0, 10));
}

TYPED_TEST(AreaFsConformance, OpenWithTruncateLandsAtFlush) {
    const std::size_t cs = this->cs();
    const std::string old_data = pattern(2 * cs + 1, 8);
    this->put("f", old_data);
    auto h = this->fs_->open(P("f"), true, true);
    EXPECT_EQ(this->fs_->fgetattr(*h).size, 0u);
    this->write_at(*h, 0, "new");
    {
        // The medium still holds the old content: a crash now loses nothing.
        auto other = this->make_fs();
        EXPECT_EQ(this->get(*other, "f"), old_data);
    }
    this->fs_->flush(*h);
    {
        auto other = this->make_fs();
        EXPECT_EQ(this->get(*other, "f"), "new");
    }
    this->fs_->release(*h);
    this->reload();
    EXPECT_EQ(this->get("f"), "new");
}

// ---- rename --------------------------------------------------------------------------------

TYPED_TEST(AreaFsConformance, RenameOverExistingFile) {
    const std::string a = pattern(this->cs() + 1, 9);
    this->put("a", a);
    this->put("b", "old b");
    const std::uint64_t a_node = this->fs_->getattr(P("a")).node;
    const std::uint64_t b_content = this->row_of("b").meta.content;
    this->fs_->rename(P("a"), P("b"), false);
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, this->fs_->getattr(P("a")));
    EXPECT_EQ(this->get("b"), a);
    EXPECT_EQ(this->fs_->getattr(P("b")).node, a_node);
    EXPECT_EQ(this->names(""), std::vector<std::string>{"b"});
    EXPECT_FALSE(this->chunk_stored(b_content, 0));  // the replaced file's data is gone
    this->reload();
    EXPECT_EQ(this->get("b"), a);
    EXPECT_EQ(this->names(""), std::vector<std::string>{"b"});
}

TYPED_TEST(AreaFsConformance, RenameOverOpenFileKeepsItReadable) {
    const std::size_t cs = this->cs();
    const std::string a = pattern(cs + 3, 10), b = pattern(2 * cs + 1, 11);
    this->put("a", a);
    this->put("b", b);
    const std::uint64_t b_content = this->row_of("b").meta.content;
    auto hb = this->fs_->open(P("b"), false, false);
    this->fs_->rename(P("a"), P("b"), false);
    EXPECT_EQ(this->read_all(*hb), b);
    EXPECT_EQ(this->fs_->fgetattr(*hb).size, b.size());
    EXPECT_EQ(this->fs_->fgetattr(*hb).nlink, 0u);
    EXPECT_EQ(this->get("b"), a);
    EXPECT_TRUE(this->chunk_stored(b_content, 0));
    this->fs_->release(*hb);
    for (std::uint64_t i = 0; i < 3; ++i) EXPECT_FALSE(this->chunk_stored(b_content, i));
    this->reload();
    EXPECT_EQ(this->get("b"), a);
}

TYPED_TEST(AreaFsConformance, RenameAcrossFolders) {
    auto& fs = *this->fs_;
    fs.mkdir(P("d1"), 0755);
    fs.mkdir(P("d1/sub"), 0755);
    fs.mkdir(P("d2"), 0755);
    this->put("d1/sub/f", "moving");
    const std::uint64_t node = fs.getattr(P("d1/sub/f")).node;
    fs.rename(P("d1/sub/f"), P("d2/g"), false);
    EXPECT_TRUE(this->names("d1/sub").empty());
    EXPECT_EQ(this->get("d2/g"), "moving");
    EXPECT_EQ(fs.getattr(P("d2/g")).node, node);
    // A folder moves with what it holds.
    this->put("d1/sub/x", "x");
    fs.rename(P("d1/sub"), P("d2/sub2"), false);
    EXPECT_TRUE(this->names("d1").empty());
    EXPECT_EQ(this->names("d2"), (std::vector<std::string>{"g", "sub2"}));
    EXPECT_EQ(fs.getattr(P("d2")).nlink, 3u);
    EXPECT_EQ(fs.getattr(P("d1")).nlink, 2u);
    this->reload();
    EXPECT_EQ(this->get("d2/g"), "moving");
    EXPECT_EQ(this->get("d2/sub2/x"), "x");
    EXPECT_EQ(this->fs_->getattr(P("d2/g")).node, node);
    EXPECT_TRUE(this->names("d1").empty());
}

TYPED_TEST(AreaFsConformance, RenameDirectoryIntoItselfFails) {
    auto& fs = *this->fs_;
    fs.mkdir(P("a"), 0755);
    fs.mkdir(P("a/b"), 0755);
    fs.mkdir(P("a/b/c"), 0755);
    const auto before = this->dump();
    EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, fs.rename(P("a"), P("a/x"), false));
    EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, fs.rename(P("a"), P("a/b/c/x"), false));
    EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, fs.rename(P("a/b"), P("a/b/c/x"), false));
    EXPECT_EQ(this->dump(), before);
    this->reload();
    EXPECT_EQ(this->dump(), before);
}

TYPED_TEST(AreaFsConformance, RenameNoReplace) {
    auto& fs = *this->fs_;
    this->put("a", "A");
    this->put("b", "B");
    EXPECT_VSC_ERROR(ErrorKind::Exists, EEXIST, fs.rename(P("a"), P("b"), true));
    EXPECT_EQ(this->get("a"), "A");
    EXPECT_EQ(this->get("b"), "B");
    fs.rename(P("a"), P("c"), true);
    EXPECT_EQ(this->get("c"), "A");
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, fs.getattr(P("a")));
}

TYPED_TEST(AreaFsConformance, RenameKindConflicts) {
    auto& fs = *this->fs_;
    this->put("f", "file");
    fs.mkdir(P("d"), 0755);
    fs.mkdir(P("full"), 0755);
    this->put("full/x", "x");
    fs.mkdir(P("empty"), 0755);
    const auto before = this->dump();
    EXPECT_VSC_ERROR(ErrorKind::IsDirectory, EISDIR, fs.rename(P("f"), P("d"), false));
    EXPECT_VSC_ERROR(ErrorKind::NotDirectory, ENOTDIR, fs.rename(P("d"), P("f"), false));
    EXPECT_VSC_ERROR(ErrorKind::NotEmpty, ENOTEMPTY, fs.rename(P("d"), P("full"), false));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, fs.rename(P("missing"), P("x"), false));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, fs.rename(P("f"), P("nodir/x"), false));
    EXPECT_VSC_ERROR(ErrorKind::NotDirectory, ENOTDIR, fs.rename(P("d"), P("f/x"), false));
    EXPECT_EQ(this->dump(), before);
    // Renaming onto itself does nothing.
    fs.rename(P("f"), P("f"), false);
    EXPECT_EQ(this->dump(), before);
    // A folder may replace an empty folder.
    const std::uint64_t d_node = fs.getattr(P("d")).node;
    fs.rename(P("d"), P("empty"), false);
    EXPECT_EQ(fs.getattr(P("empty")).node, d_node);
    EXPECT_EQ(this->names(""), (std::vector<std::string>{"empty", "f", "full"}));
    this->reload();
    EXPECT_EQ(this->names(""), (std::vector<std::string>{"empty", "f", "full"}));
    if (TypeParam::kKeepsMetadata) {
        EXPECT_EQ(this->fs_->getattr(P("empty")).node, d_node);
    }
}

// ---- unlink --------------------------------------------------------------------------------

TYPED_TEST(AreaFsConformance, UnlinkOpenFileKeepsDataUntilLastClose) {
    const std::size_t cs = this->cs();
    const std::string data = pattern(2 * cs + 3, 12);
    this->put("f", data);
    const std::uint64_t content = this->row_of("f").meta.content;
    auto h = this->fs_->open(P("f"), true, false);
    this->fs_->unlink(P("f"));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, this->fs_->getattr(P("f")));
    EXPECT_TRUE(this->names("").empty());
    EXPECT_EQ(this->read_all(*h), data);
    EXPECT_EQ(this->fs_->fgetattr(*h).nlink, 0u);
    EXPECT_TRUE(this->chunk_stored(content, 0));
    // A new file of the same name is a different object.
    this->put("f", "new");
    std::string expect = data;
    expect[0] = 'Z';
    this->write_at(*h, 0, "Z");
    this->fs_->flush(*h);
    EXPECT_EQ(this->read_all(*h), expect);
    EXPECT_EQ(this->get("f"), "new");
    this->fs_->release(*h);
    for (std::uint64_t i = 0; i < 3; ++i) EXPECT_FALSE(this->chunk_stored(content, i));
    this->reload();
    EXPECT_EQ(this->get("f"), "new");
    EXPECT_EQ(this->names(""), std::vector<std::string>{"f"});
}

TYPED_TEST(AreaFsConformance, UnlinkOpenFileThenCrashDropsDataOnReload) {
    const std::string data = pattern(this->cs() + 3, 13);
    this->put("f", data);
    this->put("other", "stays");
    const std::uint64_t content = this->row_of("f").meta.content;
    const std::uint64_t other_content = this->row_of("other").meta.content;
    auto h = this->fs_->open(P("f"), false, false);
    this->fs_->unlink(P("f"));
    EXPECT_TRUE(this->chunk_stored(content, 0));
    this->reload();  // the handle is never released
    EXPECT_FALSE(this->chunk_stored(content, 0));
    EXPECT_FALSE(this->chunk_stored(content, 1));
    if (TypeParam::kKeepsMetadata) {
        EXPECT_TRUE(this->chunk_stored(other_content, 0));
    }
    EXPECT_EQ(this->get("other"), "stays");
    EXPECT_EQ(this->names(""), std::vector<std::string>{"other"});
}

TYPED_TEST(AreaFsConformance, UnlinkClosedFileDropsData) {
    this->put("f", pattern(this->cs() + 1, 14));
    const std::uint64_t content = this->row_of("f").meta.content;
    this->fs_->unlink(P("f"));
    EXPECT_FALSE(this->chunk_stored(content, 0));
    EXPECT_FALSE(this->chunk_stored(content, 1));
    this->fs_->mkdir(P("d"), 0755);
    EXPECT_VSC_ERROR(ErrorKind::IsDirectory, EISDIR, this->fs_->unlink(P("d")));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, this->fs_->unlink(P("f")));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, this->fs_->unlink(P("d/f")));
    this->reload();
    EXPECT_EQ(this->names(""), std::vector<std::string>{"d"});
}

// ---- folders and names ---------------------------------------------------------------------

TYPED_TEST(AreaFsConformance, MkdirRmdir) {
    auto& fs = *this->fs_;
    Attr d = fs.mkdir(P("d"), 0750);
    EXPECT_EQ(d.kind, NodeKind::Dir);
    EXPECT_EQ(d.mode, 0750u);
    EXPECT_EQ(d.nlink, 2u);
    fs.mkdir(P("d/e"), 0755);
    this->put("f", "f");
    EXPECT_VSC_ERROR(ErrorKind::Exists, EEXIST, fs.mkdir(P("d"), 0755));
    EXPECT_VSC_ERROR(ErrorKind::Exists, EEXIST, fs.mkdir(P("f"), 0755));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, fs.mkdir(P("x/y"), 0755));
    EXPECT_VSC_ERROR(ErrorKind::NotDirectory, ENOTDIR, fs.mkdir(P("f/y"), 0755));
    EXPECT_VSC_ERROR(ErrorKind::NotEmpty, ENOTEMPTY, fs.rmdir(P("d")));
    EXPECT_VSC_ERROR(ErrorKind::NotDirectory, ENOTDIR, fs.rmdir(P("f")));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, fs.rmdir(P("missing")));
    EXPECT_EQ(fs.getattr(P("d")).nlink, 3u);
    this->reload();
    if (TypeParam::kKeepsMetadata) {
        EXPECT_EQ(this->fs_->getattr(P("d")).mode, 0750u);
    }
    EXPECT_EQ(this->names("d"), std::vector<std::string>{"e"});
    this->fs_->rmdir(P("d/e"));
    this->fs_->rmdir(P("d"));
    EXPECT_EQ(this->names(""), std::vector<std::string>{"f"});
    this->reload();
    EXPECT_EQ(this->names(""), std::vector<std::string>{"f"});
}

TYPED_TEST(AreaFsConformance, NameLimitsAndOddNames) {
    if (TypeParam::kMaxPathBytes) GTEST_SKIP() << "the medium limits whole paths (own test)";
    auto& fs = *this->fs_;
    const std::string longest(255, 'n'), too_long(256, 'n');
    fs.mkdir(P(longest), 0755);
    this->put(longest + "/" + longest, "deep");
    EXPECT_VSC_ERROR(ErrorKind::NameTooLong, ENAMETOOLONG, fs.mkdir(P(too_long), 0755));
    EXPECT_VSC_ERROR(ErrorKind::NameTooLong, ENAMETOOLONG, fs.create(P(too_long), 0644, true));
    EXPECT_VSC_ERROR(ErrorKind::NameTooLong, ENAMETOOLONG, fs.getattr(P(too_long)));
    EXPECT_VSC_ERROR(ErrorKind::NameTooLong, ENAMETOOLONG,
                     fs.rename(P(longest), P(too_long), false));
    for (const std::string bad : {"", ".", ".."})
        EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, fs.create(RelPath{bad}, 0644, true));
    EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, fs.mkdir(RelPath{"a/b"}, 0755));
    EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, fs.mkdir(RelPath{std::string("a\0b", 3)}, 0755));
    // Names are bytes as the user gave them.
    std::string odd;
    for (int c = 1; c < 256; ++c)
        if (c != '/') odd.push_back(static_cast<char>(c));
    const std::string utf8 = "caf\xc3\xa9 \xe2\x9c\x93 name with spaces";
    this->put(odd, "odd");
    this->put(utf8, "utf8");
    this->reload();
    EXPECT_EQ(this->get(longest + "/" + longest), "deep");
    EXPECT_EQ(this->get(odd), "odd");
    EXPECT_EQ(this->get(utf8), "utf8");
}

// ---- metadata ------------------------------------------------------------------------------

TYPED_TEST(AreaFsConformance, ChmodAndMtimePersist) {
    auto& fs = *this->fs_;
    this->put("f", "data");
    fs.mkdir(P("d"), 0755);
    fs.chmod(P("f"), 0600);
    fs.chmod(P("d"), 01711);
    EXPECT_EQ(fs.getattr(P("f")).mode, 0600u);
    EXPECT_EQ(fs.getattr(P("d")).mode, 01711u);
    const Timestamp t1{1234567890, 123456789}, t2{-5, 7};
    fs.set_mtime(P("f"), t1);
    fs.set_mtime(P("d"), t2);
    EXPECT_EQ(fs.getattr(P("f")).mtime, t1);
    EXPECT_EQ(fs.getattr(P("d")).mtime, t2);
    // An mtime set after a write to an open file wins at close (touch after write).
    this->put("g", "g");
    auto h = fs.open(P("g"), true, false);
    this->write_at(*h, 0, "written");
    fs.set_mtime(P("g"), t1);
    fs.release(*h);
    EXPECT_EQ(fs.getattr(P("g")).mtime, t1);
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, fs.chmod(P("missing"), 0600));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, fs.set_mtime(P("missing"), t1));
    this->reload();
    EXPECT_EQ(this->get("g"), "written");
    if (!TypeParam::kKeepsMetadata) return;
    EXPECT_EQ(this->fs_->getattr(P("f")).mode, 0600u);
    EXPECT_EQ(this->fs_->getattr(P("d")).mode, 01711u);
    EXPECT_EQ(this->fs_->getattr(P("f")).mtime, t1);
    EXPECT_EQ(this->fs_->getattr(P("d")).mtime, t2);
    EXPECT_EQ(this->fs_->getattr(P("g")).mtime, t1);
    EXPECT_EQ(this->get("g"), "written");
}

TYPED_TEST(AreaFsConformance, ChmodDoesNotCommitPendingData) {
    auto& fs = *this->fs_;
    this->put("f", "old");
    auto h = fs.open(P("f"), true, false);
    this->write_at(*h, 0, "new content");
    fs.chmod(P("f"), 0600);
    {
        auto other = this->make_fs();
        EXPECT_EQ(this->get(*other, "f"), "old");
        EXPECT_EQ(other->getattr(P("f")).mode, 0600u);
    }
    fs.release(*h);
    this->reload();
    EXPECT_EQ(this->get("f"), "new content");
    if (TypeParam::kKeepsMetadata) {
        EXPECT_EQ(this->fs_->getattr(P("f")).mode, 0600u);
    }
}

// rsync, cp -a and tar set the mode and times of a file they write before closing it: for a
// new file that rides with its first commit instead of taking a transaction of its own.
TYPED_TEST(AreaFsConformance, NewFileTakesItsModeAndTimesAlongToItsFirstCommit) {
    auto& fs = *this->fs_;
    const Timestamp t1{1234567890, 5};
    auto h = fs.create(P("f"), 0600, true);
    this->write_at(*h, 0, "data");
    fs.chmod(P("f"), 0640);
    fs.set_mtime(P("f"), t1);
    if (TypeParam::kKeepsMetadata) fs.setxattr(P("f"), "user.a", "1", 0);
    EXPECT_FALSE(this->make_fs()->find_attr(P("f")));  // nothing in the store yet
    EXPECT_EQ(fs.getattr(P("f")).mode, 0640u);
    fs.release(*h);
    auto other = this->make_fs();
    EXPECT_EQ(this->get(*other, "f"), "data");
    if (!TypeParam::kKeepsMetadata) return;
    EXPECT_EQ(other->getattr(P("f")).mode, 0640u);
    EXPECT_EQ(other->getattr(P("f")).mtime, t1);
    EXPECT_EQ(other->getxattr(P("f"), "user.a"), "1");
}

#define EXPECT_DENIED(...) EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, __VA_ARGS__)

// The mount's owner, the one user the kernel lets in, gets what the owner bits of each mode
// allow: the kernel leaves the checks to the mount.
TYPED_TEST(AreaFsConformance, OwnerGetsWhatTheOwnerBitsAllow) {
    this->fs_ = this->make_fs(nullptr, Caller::Owner);
    auto& fs = *this->fs_;
    fs.mkdir(P("d"), 0755);
    fs.mkdir(P("d/sub"), 0755);
    this->put("d/f", "data");
    fs.access(P("d/f"), R_OK | W_OK);
    EXPECT_DENIED(fs.access(P("d/f"), X_OK));

    // A folder without x: nothing below it can be reached, whatever its own mode.
    fs.chmod(P("d"), 0600);
    EXPECT_EQ(fs.getattr(P("d")).mode, 0600u);
    EXPECT_EQ(fs.readdir(P("d")).size(), 2u);  // r alone lists the names
    EXPECT_DENIED(fs.getattr(P("d/f")));
    EXPECT_DENIED(fs.find_attr(P("d/missing")));
    EXPECT_DENIED(fs.open(P("d/f"), false, false));
    EXPECT_DENIED(fs.create(P("d/g"), 0644, true));
    EXPECT_DENIED(fs.unlink(P("d/f")));
    EXPECT_DENIED(fs.chmod(P("d/f"), 0777));
    EXPECT_DENIED(fs.getxattr(P("d/f"), "user.a"));
    EXPECT_DENIED(fs.rename(P("d/f"), P("f2"), false));
    EXPECT_DENIED(fs.access(P("d/sub"), F_OK));
    EXPECT_DENIED(fs.access(P("d"), X_OK));

    // x without w: names resolve, entries cannot change.
    fs.chmod(P("d"), 0500);
    EXPECT_EQ(this->get("d/f"), "data");
    EXPECT_DENIED(fs.create(P("d/g"), 0644, true));
    EXPECT_DENIED(fs.mkdir(P("d/g"), 0755));
    EXPECT_DENIED(fs.unlink(P("d/f")));
    EXPECT_DENIED(fs.rmdir(P("d/sub")));
    EXPECT_DENIED(fs.rename(P("d/f"), P("d/f2"), false));
    EXPECT_DENIED(fs.rename(P("d/f"), P("f2"), false));
    fs.release(*fs.create(P("d/f"), 0644, false));  // an existing file opens as it is
    fs.chmod(P("d"), 0300);                         // w and x without r: no listing
    EXPECT_DENIED(fs.access(P("d"), R_OK));
    fs.access(P("d"), W_OK | X_OK);
    fs.release(*fs.create(P("d/g"), 0644, true));
    fs.chmod(P("d"), 0755);

    // The file's own bits decide how it opens.
    fs.chmod(P("d/f"), 0200);
    EXPECT_DENIED(fs.open(P("d/f"), false, false));
    EXPECT_DENIED(fs.open(P("d/f"), true, false));      // read and write
    fs.release(*fs.open(P("d/f"), true, true, false));  // write only (O_TRUNC)
    EXPECT_DENIED(fs.getxattr(P("d/f"), "user.a"));
    fs.chmod(P("d/f"), 0400);
    EXPECT_EQ(this->get("d/f"), "");
    EXPECT_DENIED(fs.open(P("d/f"), true, false, false));
    EXPECT_DENIED(fs.create(P("d/f"), 0644, false));
    EXPECT_DENIED(fs.truncate(P("d/f"), 0));
    if (TypeParam::kKeepsMetadata) {
        EXPECT_DENIED(fs.setxattr(P("d/f"), "user.a", "1", 0));
        EXPECT_DENIED(fs.removexattr(P("d/f"), "user.a"));
    }
    EXPECT_VSC_ERROR(ErrorKind::NoAttribute, ENODATA, fs.getxattr(P("d/f"), "security.capability"));
    fs.chmod(P("d/f"), 0);  // the owner may still change the mode, times and name
    fs.set_mtime(P("d/f"), Timestamp{1, 0});
    fs.rename(P("d/f"), P("d/f0"), false);
    fs.unlink(P("d/f0"));

    // A folder moved to another parent must be writable (its ".." changes).
    fs.chmod(P("d/sub"), 0500);
    EXPECT_DENIED(fs.rename(P("d/sub"), P("sub"), false));
    fs.rename(P("d/sub"), P("d/sub2"), false);
    fs.chmod(P("d/sub2"), 0700);
    fs.rename(P("d/sub2"), P("sub"), false);
    EXPECT_EQ(fs.getattr(P("sub")).kind, NodeKind::Dir);
}

// Root gets what root gets anywhere: every file opens; only execution needs an x bit.
TYPED_TEST(AreaFsConformance, SuperuserIsNotRestrictedByTheBits) {
    auto& fs = *this->fs_;
    fs.mkdir(P("d"), 0);
    this->put("d/f", "data");
    fs.chmod(P("d/f"), 0);
    EXPECT_EQ(this->get("d/f"), "data");
    fs.release(*fs.open(P("d/f"), true, false));
    fs.access(P("d/f"), R_OK | W_OK);
    EXPECT_DENIED(fs.access(P("d/f"), X_OK));
    fs.chmod(P("d/f"), 0010);
    fs.access(P("d/f"), X_OK);
    fs.access(P("d"), R_OK | W_OK | X_OK);
    EXPECT_TRUE(fs.chmod(P("d"), 0).empty());
}

// The kernel walks names it has cached without asking: when the owner can no longer search a
// folder, chmod names everything below it for the kernel to forget.
TYPED_TEST(AreaFsConformance, ChmodNamesWhatTheKernelMustForget) {
    this->fs_ = this->make_fs(nullptr, Caller::Owner);
    auto& fs = *this->fs_;
    fs.mkdir(P("d"), 0755);
    fs.mkdir(P("d/sub"), 0755);
    this->put("d/sub/f", "x");
    this->put("d/g", "x");
    EXPECT_TRUE(fs.chmod(P("d"), 0711).empty());  // still searchable
    EXPECT_TRUE(fs.chmod(P("d/g"), 0).empty());   // a file
    auto stale = fs.chmod(P("d"), 0600);
    std::sort(stale.begin(), stale.end());
    EXPECT_EQ(stale, (std::vector<std::string>{"/d/g", "/d/sub", "/d/sub/f"}));
    EXPECT_TRUE(fs.chmod(P("d"), 0).empty());  // already unsearchable
}

TYPED_TEST(AreaFsConformance, ExtendedAttributes) {
    auto& fs = *this->fs_;
    this->put("f", "data");
    fs.mkdir(P("d"), 0755);
    if (!TypeParam::kKeepsMetadata) {
        EXPECT_VSC_ERROR(ErrorKind::NotSupported, ENOTSUP, fs.setxattr(P("f"), "user.a", "1", 0));
        EXPECT_TRUE(fs.listxattr(P("f")).empty());
        return;
    }
    const std::string binary("v\0\xff\x01", 4);
    fs.setxattr(P("f"), "user.a", "1", 0);
    fs.setxattr(P("f"), "user.b", binary, XATTR_CREATE);
    fs.setxattr(P("d"), "user.dir", "", 0);
    EXPECT_VSC_ERROR(ErrorKind::Exists, EEXIST, fs.setxattr(P("f"), "user.a", "2", XATTR_CREATE));
    EXPECT_VSC_ERROR(ErrorKind::NoAttribute, ENODATA,
                     fs.setxattr(P("f"), "user.c", "2", XATTR_REPLACE));
    fs.setxattr(P("f"), "user.a", "replaced", XATTR_REPLACE);
    EXPECT_EQ(fs.getxattr(P("f"), "user.a"), "replaced");
    EXPECT_EQ(fs.getxattr(P("f"), "user.b"), binary);
    EXPECT_EQ(fs.getxattr(P("d"), "user.dir"), "");
    EXPECT_VSC_ERROR(ErrorKind::NoAttribute, ENODATA, fs.getxattr(P("f"), "user.none"));
    EXPECT_VSC_ERROR(ErrorKind::NoAttribute, ENODATA, fs.removexattr(P("f"), "user.none"));
    for (const char* name : {"trusted.x", "security.selinux", "system.posix_acl_access", "x"})
        EXPECT_VSC_ERROR(ErrorKind::NotSupported, ENOTSUP, fs.setxattr(P("f"), name, "v", 0));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, fs.setxattr(P("missing"), "user.a", "v", 0));
    EXPECT_EQ(fs.listxattr(P("f")), (std::vector<std::string>{"user.a", "user.b"}));
    this->reload();
    EXPECT_EQ(this->fs_->getxattr(P("f"), "user.a"), "replaced");
    EXPECT_EQ(this->fs_->getxattr(P("f"), "user.b"), binary);
    EXPECT_EQ(this->fs_->listxattr(P("d")), std::vector<std::string>{"user.dir"});
    this->fs_->removexattr(P("f"), "user.a");
    EXPECT_EQ(this->fs_->listxattr(P("f")), std::vector<std::string>{"user.b"});
    this->reload();
    EXPECT_EQ(this->fs_->listxattr(P("f")), std::vector<std::string>{"user.b"});
    EXPECT_EQ(this->get("f"), "data");
}

TYPED_TEST(AreaFsConformance, EverythingSurvivesReload) {
    auto& fs = *this->fs_;
    const std::size_t cs = this->cs();
    fs.mkdir(P("docs"), 0750);
    fs.mkdir(P("docs/old"), 0700);
    this->put("docs/a.txt", pattern(cs * 2 + 17, 15));
    this->put("docs/old/b.bin", pattern(5, 16));
    this->put("empty", "");
    this->put("gone", "x");
    this->fs_->unlink(P("gone"));
    fs.rename(P("docs/a.txt"), P("a.txt"), false);
    fs.chmod(P("a.txt"), 0604);
    fs.set_mtime(P("docs/old"), Timestamp{1000, 1});
    if (TypeParam::kKeepsMetadata) fs.setxattr(P("docs"), "user.tag", "t", 0);
    this->fs_->truncate(P("docs/old/b.bin"), 3);
    const auto before = this->dump();
    EXPECT_EQ(before.size(), 5u);
    this->reload();
    EXPECT_EQ(this->dump(), before);
}

// ---- lock ----------------------------------------------------------------------------------

TYPED_TEST(AreaFsConformance, LockRefusesEverything) {
    auto& fs = *this->fs_;
    this->put("f", "committed content");
    fs.mkdir(P("d"), 0755);
    auto w = fs.open(P("f"), true, false);
    this->write_at(*w, 0, "PENDING");
    auto r = fs.open(P("f"), false, false);

    auto paths = fs.lock();
    EXPECT_TRUE(fs.locked());
    EXPECT_NE(std::find(paths.begin(), paths.end(), "/f"), paths.end());
    EXPECT_NE(std::find(paths.begin(), paths.end(), "/d"), paths.end());

    char buf[16];
    const auto L = ErrorKind::Locked;
    EXPECT_VSC_ERROR(L, EACCES, fs.getattr({}));
    EXPECT_VSC_ERROR(L, EACCES, fs.getattr(P("f")));
    EXPECT_VSC_ERROR(L, EACCES, fs.readdir({}));
    EXPECT_VSC_ERROR(L, EACCES, fs.mkdir(P("e"), 0755));
    EXPECT_VSC_ERROR(L, EACCES, fs.rmdir(P("d")));
    EXPECT_VSC_ERROR(L, EACCES, fs.unlink(P("f")));
    EXPECT_VSC_ERROR(L, EACCES, fs.rename(P("f"), P("g"), false));
    EXPECT_VSC_ERROR(L, EACCES, fs.chmod(P("f"), 0600));
    EXPECT_VSC_ERROR(L, EACCES, fs.set_mtime(P("f"), Timestamp{1, 0}));
    EXPECT_VSC_ERROR(L, EACCES, fs.truncate(P("f"), 0));
    EXPECT_VSC_ERROR(L, EACCES, fs.open(P("f"), false, false));
    EXPECT_VSC_ERROR(L, EACCES, fs.create(P("n"), 0644, false));
    EXPECT_VSC_ERROR(L, EACCES, fs.read(*r, 0, sizeof buf, buf));
    EXPECT_VSC_ERROR(L, EACCES, fs.read(*w, 0, sizeof buf, buf));
    EXPECT_VSC_ERROR(L, EACCES, fs.write(*w, 0, "x", 1));
    EXPECT_VSC_ERROR(L, EACCES, fs.ftruncate(*w, 0));
    EXPECT_VSC_ERROR(L, EACCES, fs.fgetattr(*r));
    EXPECT_VSC_ERROR(L, EACCES, fs.flush(*w));
    EXPECT_VSC_ERROR(L, EACCES, fs.fsync(*w));
    EXPECT_VSC_ERROR(L, EACCES, fs.setxattr(P("f"), "user.a", "v", 0));
    EXPECT_VSC_ERROR(L, EACCES, fs.getxattr(P("f"), "user.a"));
    EXPECT_VSC_ERROR(L, EACCES, fs.listxattr(P("f")));
    EXPECT_VSC_ERROR(L, EACCES, fs.removexattr(P("f"), "user.a"));
    EXPECT_VSC_ERROR(L, EACCES, fs.statfs());
    // Closing handles of a locked area is always possible.
    EXPECT_NO_THROW(fs.release(*w));
    EXPECT_NO_THROW(fs.release(*r));
    EXPECT_TRUE(fs.lock().empty());

    // What the handles held was committed by lock().
    this->reload();
    EXPECT_EQ(this->get("f"), "PENDINGed content");
    EXPECT_FALSE(this->fs_->locked());
}

// ---- concurrency ---------------------------------------------------------------------------

TYPED_TEST(AreaFsConformance, ConcurrentWritersOnDifferentFiles) {
    constexpr int kThreads = 4, kFiles = 3;
    const std::size_t cs = this->cs();
    const std::size_t size = 2 * cs + cs / 2 + 1;
    const std::size_t step = cs / 3 + 7;
    AreaFs& fs = *this->fs_;
    std::atomic<int> failures{0};
    auto content = [&](int t, int f) {
        return pattern(size, static_cast<std::uint32_t>(100 + t * 10 + f));
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            try {
                const std::string dir = "t" + std::to_string(t);
                fs.mkdir(P(dir), 0755);
                std::vector<std::shared_ptr<OpenFile>> handles;
                for (int f = 0; f < kFiles; ++f)
                    handles.push_back(fs.create(P(dir + "/f" + std::to_string(f)), 0644, true));
                // Interleave the files of this thread, piece by piece.
                for (std::size_t off = 0; off < size; off += step) {
                    for (int f = 0; f < kFiles; ++f) {
                        std::string data = content(t, f).substr(off, step);
                        fs.write(*handles[f], off, data.data(), data.size());
                    }
                    fs.getattr(P(dir));
                    fs.readdir({});
                    if (off % (3 * step) == 0) fs.flush(*handles[0]);
                }
                for (auto& h : handles) fs.release(*h);
            } catch (const std::exception& e) {
                ADD_FAILURE() << "thread " << t << ": " << e.what();
                ++failures;
            }
        });
    }
    for (auto& th : threads) th.join();
    ASSERT_EQ(failures, 0);
    auto verify = [&] {
        for (int t = 0; t < kThreads; ++t)
            for (int f = 0; f < kFiles; ++f)
                EXPECT_EQ(this->get("t" + std::to_string(t) + "/f" + std::to_string(f)),
                          content(t, f))
                    << "t" << t << "/f" << f;
    };
    verify();
    this->reload();
    verify();
}

// Reads of one file run in parallel (as the kernel's read-ahead sends them); a writer on
// another handle rewrites and commits the file meanwhile. Every read must see each chunk
// whole, either as it was or as it was rewritten.
TYPED_TEST(AreaFsConformance, ConcurrentReadsOfOneFileWhileItIsRewritten) {
    constexpr int kReaders = 4, kRounds = 6;
    const std::size_t cs = this->cs();
    const std::size_t chunks = 5;
    const std::string before = pattern(chunks * cs, 41), after = pattern(chunks * cs, 42);
    AreaFs& fs = *this->fs_;
    this->put("f", before);
    std::atomic<bool> writing{true};
    std::atomic<int> reads{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < kReaders; ++t) {
        readers.emplace_back([&, t] {
            try {
                auto h = fs.open(P("f"), false, false);
                std::string buf(2 * cs, '\0');
                for (std::size_t n = 0; writing || n < 50; ++n) {
                    std::size_t first = (n + static_cast<std::size_t>(t)) % (chunks - 1);
                    std::size_t got = fs.read(*h, first * cs, buf.size(), buf.data());
                    ASSERT_EQ(got, buf.size());
                    for (std::size_t c = 0; c < 2; ++c) {
                        std::size_t at = (first + c) * cs;
                        std::string_view seen(buf.data() + c * cs, cs);
                        ASSERT_TRUE(seen == std::string_view(before).substr(at, cs) ||
                                    seen == std::string_view(after).substr(at, cs))
                            << "chunk " << first + c << " torn";
                    }
                    ++reads;
                }
                fs.release(*h);
            } catch (const std::exception& e) {
                ADD_FAILURE() << "reader " << t << ": " << e.what();
            }
        });
    }
    for (int round = 0; round < kRounds; ++round) {
        const std::string& data = round % 2 ? before : after;
        auto w = fs.open(P("f"), true, false);
        for (std::size_t c = 0; c < chunks; ++c)
            this->write_at(*w, c * cs, data.substr(c * cs, cs));
        fs.flush(*w);
        fs.release(*w);
    }
    writing = false;
    for (auto& th : readers) th.join();
    EXPECT_GE(reads, kReaders * 50);
    EXPECT_EQ(this->get("f"), before);  // the last round wrote it back
}

// ---- refusals: content policy and a full medium --------------------------------------------

TYPED_TEST(AreaFsConformance, RefusedContentLeavesPreviousContent) {
    this->reload(std::make_shared<TestPolicy>());
    auto& fs = *this->fs_;
    this->put("f", "good content");
    auto h = fs.open(P("f"), true, false);
    this->write_at(*h, 0, "reject");
    EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, fs.flush(*h));
    EXPECT_EQ(this->read_all(*h), "good content");
    {
        auto other = this->make_fs();
        EXPECT_EQ(this->get(*other, "f"), "good content");
    }
    fs.release(*h);

    // Refused at close, after an O_TRUNC open.
    auto t = fs.open(P("f"), true, true);
    this->write_at(*t, 0, "please reject this");
    EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, fs.release(*t));
    EXPECT_EQ(this->get("f"), "good content");
    EXPECT_EQ(fs.getattr(P("f")).size, 12u);

    // Refused at the first write already: nothing is buffered.
    auto e = fs.open(P("f"), true, false);
    EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, fs.write(*e, 0, "bad: data", 9));
    EXPECT_EQ(this->read_all(*e), "good content");
    EXPECT_NO_THROW(fs.release(*e));

    // The policy may also transform what lands.
    this->put("u", "up:hello");
    EXPECT_EQ(this->get("u"), "UP:HELLO");

    auto big = fs.open(P("f"), true, false);
    EXPECT_VSC_ERROR(ErrorKind::TooBig, EFBIG, fs.write(*big, 995, "0123456789", 10));
    EXPECT_VSC_ERROR(ErrorKind::TooBig, EFBIG, fs.ftruncate(*big, 1001));
    fs.release(*big);

    this->reload();
    EXPECT_EQ(this->get("f"), "good content");
    EXPECT_EQ(this->get("u"), "UP:HELLO");
}

TYPED_TEST(AreaFsConformance, FullMediumLeavesPreviousContent) {
    MemoryAreaStore* memory = this->medium_.memory();
    if (!memory) GTEST_SKIP() << "capacity is modelled by the in-memory medium";
    auto& fs = *this->fs_;
    const std::size_t cs = this->cs();
    const std::string data = pattern(cs + 10, 17);
    this->put("f", data);
    memory->set_capacity(memory->used_bytes() + 5);
    EXPECT_EQ(fs.statfs().total_bytes, memory->used_bytes() + 5);
    EXPECT_EQ(fs.statfs().free_bytes, 5u);

    auto h = fs.open(P("f"), true, false);
    this->write_at(*h, 0, "XY");  // an overwrite needs no room
    this->write_at(*h, data.size(), std::string(100, 'z'));
    EXPECT_VSC_ERROR(ErrorKind::NoSpace, ENOSPC, fs.flush(*h));
    EXPECT_EQ(this->read_all(*h), data);
    {
        auto other = this->make_fs();
        EXPECT_EQ(this->get(*other, "f"), data);
    }
    this->write_at(*h, 0, "XY");
    fs.flush(*h);
    fs.release(*h);
    std::string expect = data;
    expect.replace(0, 2, "XY");
    EXPECT_EQ(this->get("f"), expect);

    // A new object can be made, but its data fails at close and leaves it empty.
    auto n = fs.create(P("n"), 0644, true);
    this->write_at(*n, 0, std::string(cs, 'n'));
    EXPECT_VSC_ERROR(ErrorKind::NoSpace, ENOSPC, fs.release(*n));
    EXPECT_EQ(fs.getattr(P("n")).size, 0u);

    // Freeing space always works on a full medium.
    fs.truncate(P("f"), 1);
    this->put("n", std::string(cs, 'n'));
    this->reload();
    EXPECT_EQ(this->get("f"), "X");
    EXPECT_EQ(this->get("n"), std::string(cs, 'n'));
}

TYPED_TEST(AreaFsConformance, RemoveLeftoversKeepsOpenFiles) {
    auto& fs = *this->fs_;
    fs.mkdir(P("d"), 0755);
    this->put(".hidden_1", pattern(this->cs() + 1, 18));
    this->put("d/.hidden_2", "x");
    this->put("d/.hidden_open", "open");
    this->put("keep", "keep");
    const std::uint64_t content = this->row_of(".hidden_1").meta.content;
    auto h = fs.open(P("d/.hidden_open"), false, false);
    EXPECT_EQ(fs.remove_leftovers(), 2u);
    EXPECT_FALSE(this->chunk_stored(content, 0));
    EXPECT_EQ(this->names(""), (std::vector<std::string>{"d", "keep"}));
    EXPECT_EQ(this->names("d"), std::vector<std::string>{".hidden_open"});
    EXPECT_EQ(this->read_all(*h), "open");
    fs.release(*h);
    this->reload();
    EXPECT_EQ(this->names("d"), std::vector<std::string>{".hidden_open"});
    EXPECT_EQ(this->fs_->remove_leftovers(), 1u);
    EXPECT_TRUE(this->names("d").empty());
}

// The FUSE layer renames a file deleted while open to a transient name and removes it when
// it is closed; a close racing with the delete must not leave it behind in either order.
TYPED_TEST(AreaFsConformance, TransientNameLivesOnlyWhileOpen) {
    auto& fs = *this->fs_;
    const std::string data = pattern(this->cs() + 5, 21);
    fs.mkdir(P("d"), 0755);

    // Open at the rename: removed by its last close, data readable until then.
    this->put("d/a", data);
    const std::uint64_t a_content = this->row_of("d/a").meta.content;
    auto h1 = fs.open(P("d/a"), true, false);
    auto h2 = fs.open(P("d/a"), false, false);
    fs.rename(P("d/a"), P("d/.hidden_a"), false);
    EXPECT_EQ(this->names("d"), std::vector<std::string>{".hidden_a"});
    fs.release(*h1);
    EXPECT_EQ(this->names("d"), std::vector<std::string>{".hidden_a"});
    EXPECT_EQ(this->read_all(*h2), data);
    fs.release(*h2);
    EXPECT_TRUE(this->names("d").empty());
    EXPECT_FALSE(this->chunk_stored(a_content, 0));
    fs.rmdir(P("d"));  // nothing keeps the folder busy

    // Closed before the rename (the close won the race): removed at once.
    this->put("b", data);
    const std::uint64_t b_content = this->row_of("b").meta.content;
    fs.rename(P("b"), P(".hidden_b"), false);
    EXPECT_TRUE(this->names("").empty());
    EXPECT_FALSE(this->chunk_stored(b_content, 0));
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, fs.unlink(P(".hidden_b")));  // libfuse's, later

    // Renamed away from a transient name, a file is an ordinary file again.
    this->put("c", "c");
    auto h3 = fs.open(P("c"), false, false);
    fs.rename(P("c"), P(".hidden_c"), false);
    fs.rename(P(".hidden_c"), P("c2"), false);
    fs.release(*h3);
    EXPECT_EQ(this->get("c2"), "c");

    // A file of any other name stays when closed.
    this->put("e", "e");
    fs.release(*fs.open(P("e"), false, false));
    this->reload();
    EXPECT_EQ(this->names(""), (std::vector<std::string>{"c2", "e"}));
}

// The kernel sends the close of a file after close() has returned: rmdir waits for files
// deleted while open (transient names) to go, but not for ever.
TYPED_TEST(AreaFsConformance, RmdirWaitsForTheLastCloseOfTransientFiles) {
    auto& fs = *this->fs_;
    fs.mkdir(P("d"), 0755);
    this->put("d/f", "x");
    auto h = fs.open(P("d/f"), false, false);
    fs.rename(P("d/f"), P("d/.hidden_f"), false);
    EXPECT_VSC_ERROR(ErrorKind::NotEmpty, ENOTEMPTY, fs.rmdir(P("d")));  // still open
    std::thread closer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        fs.release(*h);
    });
    EXPECT_NO_THROW(fs.rmdir(P("d")));
    closer.join();
    EXPECT_TRUE(this->names("").empty());
}

TYPED_TEST(AreaFsConformance, RenameOverAFolderWaitsForTheLastCloseOfTransientFiles) {
    auto& fs = *this->fs_;
    fs.mkdir(P("d"), 0755);
    fs.mkdir(P("e"), 0755);
    this->put("d/f", "x");
    auto h = fs.open(P("d/f"), false, false);
    fs.rename(P("d/f"), P("d/.hidden_f"), false);
    EXPECT_VSC_ERROR(ErrorKind::NotEmpty, ENOTEMPTY, fs.rename(P("e"), P("d"), false));
    std::thread closer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        fs.release(*h);
    });
    EXPECT_NO_THROW(fs.rename(P("e"), P("d"), false));
    closer.join();
    EXPECT_EQ(this->names(""), std::vector<std::string>{"d"});
}

// A damaged medium is refused when the area is loaded, never followed into a hang or a crash.
TYPED_TEST(AreaFsConformance, DamagedTreeIsRefusedOnLoad) {
    if (!TypeParam::kStoresNodeRows) GTEST_SKIP() << "the medium builds its tree from names";
    auto dir = [&](std::uint64_t id, std::uint64_t parent, const std::string& name) {
        NodeRow row;
        row.id = id;
        row.meta.kind = NodeKind::Dir;
        row.meta.parent = parent;
        row.meta.name = name;
        return row;
    };
    auto& store = *this->store_;
    const std::uint64_t root = this->fs_->root_id();
    const std::uint64_t a = store.allocate_id(), b = store.allocate_id(), c = store.allocate_id();
    auto refused = [&](const AreaChange& damage, const AreaChange& repair) {
        store.apply(damage);
        EXPECT_VSC_ERROR(ErrorKind::Corrupt, EIO, AreaFs(this->store_, this->medium_.area()));
        store.apply(repair);
        EXPECT_NO_THROW(AreaFs(this->store_, this->medium_.area()));
    };
    AreaChange remove_all;
    remove_all.deleted_nodes = {a, b, c};
    {
        SCOPED_TRACE("folders that are each other's parent");
        AreaChange damage;
        damage.upserts = {dir(a, b, "a"), dir(b, a, "b")};
        refused(damage, remove_all);
    }
    {
        SCOPED_TRACE("a folder that is its own parent");
        AreaChange damage;
        damage.upserts = {dir(a, a, "a")};
        refused(damage, remove_all);
    }
    {
        SCOPED_TRACE("an object whose folder is missing");
        AreaChange damage;
        damage.upserts = {dir(a, c, "a")};
        refused(damage, remove_all);
    }
    {
        SCOPED_TRACE("two objects of one name in one folder");
        AreaChange damage;
        damage.upserts = {dir(a, root, "same"), dir(b, root, "same")};
        refused(damage, remove_all);
    }
    {
        SCOPED_TRACE("a second root");
        AreaChange damage;
        damage.upserts = {dir(a, 0, "")};
        refused(damage, remove_all);
    }
}

TYPED_TEST(AreaFsConformance, FsyncCommits) {
    auto& fs = *this->fs_;
    auto h = fs.create(P("f"), 0644, true);
    this->write_at(*h, 0, "durable");
    fs.fsync(*h);
    {
        auto other = this->make_fs();
        EXPECT_EQ(this->get(*other, "f"), "durable");
    }
    fs.release(*h);
}

// ---- large rewrites: complete chunks reach the medium before the commit ------------------

// More than a few staging rounds (AreaFs::kStageChunks), in writes of odd sizes.
std::string large_data(std::size_t cs, int seed) {
    return pattern((3 * AreaFs::kStageChunks + 2) * cs + 11, seed);
}

TYPED_TEST(AreaFsConformance, LargeRewriteLandsWholeAtCloseOnly) {
    if (!TypeParam::kHoldsLargeFiles) GTEST_SKIP() << "no file here is large enough to be staged";
    const std::size_t cs = this->cs();
    const std::string old_data = pattern(3 * cs + 5, 30);
    this->put("f", old_data);
    const NodeRow old_row = this->row_of("f");
    const std::string data = large_data(cs, 31);
    auto h = this->fs_->open(P("f"), true, true);
    const std::size_t step = 7 * cs + 3;
    for (std::size_t off = 0; off < data.size(); off += step)
        this->write_at(*h, off, data.substr(off, step));
    // Staged chunks (also those still being staged) read back through the handle, also
    // across their boundaries.
    EXPECT_EQ(this->read_all(*h), data);
    EXPECT_EQ(this->read_at(*h, AreaFs::kStageChunks * cs - 3, 2 * cs),
              data.substr(AreaFs::kStageChunks * cs - 3, 2 * cs));
    // The medium still describes the old content: a crash now would keep it.
    const NodeRow row = this->row_of("f");
    EXPECT_EQ(row.meta.content, old_row.meta.content);
    EXPECT_EQ(row.meta.size, old_data.size());
    EXPECT_TRUE(this->chunk_stored(old_row.meta.content, 3));
    this->fs_->release(*h);
    EXPECT_EQ(this->get("f"), data);
    EXPECT_NE(this->row_of("f").meta.content, old_row.meta.content);  // the staged stream
    EXPECT_FALSE(this->chunk_stored(old_row.meta.content, 0));
    EXPECT_EQ(this->medium_.chunk_count(), (data.size() + cs - 1) / cs);
    this->reload();
    EXPECT_EQ(this->get("f"), data);
    EXPECT_EQ(this->medium_.chunk_count(), (data.size() + cs - 1) / cs);
}

TYPED_TEST(AreaFsConformance, CrashDuringLargeRewriteKeepsOldContent) {
    if (!TypeParam::kHoldsLargeFiles) GTEST_SKIP() << "no file here is large enough to be staged";
    const std::size_t cs = this->cs();
    const std::string old_data = pattern(2 * cs + 1, 32);
    this->put("f", old_data);
    const std::size_t chunks_before = this->medium_.chunk_count();
    auto h = this->fs_->open(P("f"), true, true);
    const std::string data = large_data(cs, 33);
    this->write_at(*h, 0, data);
    this->write_at(*h, data.size(), data);
    auto n = this->fs_->create(P("new"), 0644, true);
    this->write_at(*n, 0, large_data(cs, 34));
    this->write_at(*n, 0, large_data(cs, 35));      // staged chunks written again
    this->fs_->ftruncate(*h, 2 * data.size() - 1);  // waits for the batch being staged
    EXPECT_GE(this->medium_.chunk_count(), chunks_before + AreaFs::kStageChunks);
    this->reload();  // the handles are never released
    EXPECT_EQ(this->get("f"), old_data);
    EXPECT_EQ(this->names(""), std::vector<std::string>{"f"});
    EXPECT_EQ(this->medium_.chunk_count(), chunks_before);
}

TYPED_TEST(AreaFsConformance, TruncateAndRewriteDuringLargeRewrite) {
    if (!TypeParam::kHoldsLargeFiles) GTEST_SKIP() << "no file here is large enough to be staged";
    const std::size_t cs = this->cs();
    const std::string big = large_data(cs, 36);
    auto h = this->fs_->create(P("f"), 0644, true);
    this->write_at(*h, 0, big);
    // Cut inside the staged part, then leave a hole over staged chunks that were cut.
    const std::size_t cut = AreaFs::kStageChunks * cs + cs / 2;
    this->fs_->ftruncate(*h, cut);
    const std::size_t far = 2 * AreaFs::kStageChunks * cs + 1;
    this->write_at(*h, far, "tail");
    // Rewrite the start (staged chunks, now written again) and grow past a staging round.
    const std::string head = pattern(AreaFs::kStageChunks * cs + 2, 37);
    this->write_at(*h, 0, head);
    std::string expect = big.substr(0, cut) + std::string(far - cut, '\0') + "tail";
    expect.replace(0, head.size(), head);
    const std::string more = pattern((AreaFs::kStageChunks + 3) * cs, 38);
    this->write_at(*h, expect.size(), more);
    expect += more;
    EXPECT_EQ(this->read_all(*h), expect);
    this->fs_->release(*h);
    EXPECT_EQ(this->get("f"), expect);
    EXPECT_EQ(this->medium_.chunk_count(),
              (expect.size() + cs - 1) / cs -
                  ((far / cs) - (cut + cs - 1) / cs));  // the hole holds no chunks
    this->reload();
    EXPECT_EQ(this->get("f"), expect);

    // Truncated to nothing after staging: nothing staged survives.
    h = this->fs_->open(P("f"), true, true);
    this->write_at(*h, 0, large_data(cs, 39));
    this->fs_->ftruncate(*h, 0);
    this->write_at(*h, 0, "small");
    this->fs_->release(*h);
    EXPECT_EQ(this->get("f"), "small");
    EXPECT_EQ(this->medium_.chunk_count(), (5 + cs - 1) / cs);
}

TYPED_TEST(AreaFsConformance, UnlinkDuringLargeRewriteDropsEverything) {
    if (!TypeParam::kHoldsLargeFiles) GTEST_SKIP() << "no file here is large enough to be staged";
    const std::size_t cs = this->cs();
    this->put("other", "stays");
    const std::size_t chunks_before = this->medium_.chunk_count();
    const std::string data = large_data(cs, 40);
    auto h = this->fs_->create(P("f"), 0644, true);
    this->write_at(*h, 0, data);
    this->fs_->flush(*h);
    this->write_at(*h, data.size(), "more");  // committed: no more staging for this handle
    this->fs_->release(*h);
    h = this->fs_->open(P("f"), true, true);
    this->write_at(*h, 0, data);
    this->fs_->unlink(P("f"));
    this->write_at(*h, data.size(), data);
    EXPECT_EQ(this->read_all(*h), data + data);
    this->fs_->release(*h);
    EXPECT_EQ(this->medium_.chunk_count(), chunks_before);
    this->reload();
    EXPECT_EQ(this->names(""), std::vector<std::string>{"other"});
    EXPECT_EQ(this->medium_.chunk_count(), chunks_before);
}

TYPED_TEST(AreaFsConformance, FullMediumDuringLargeRewrite) {
    if (!TypeParam::kHoldsLargeFiles) GTEST_SKIP() << "no file here is large enough to be staged";
    MemoryAreaStore* memory = this->medium_.memory();
    if (!memory) GTEST_SKIP() << "capacity is modelled by the in-memory medium";
    const std::size_t cs = this->cs();
    const std::string old_data = pattern(cs + 3, 41);
    this->put("f", old_data);
    const std::size_t chunks_before = this->medium_.chunk_count();
    // Room for two staged batches, not for the whole file.
    memory->set_capacity(memory->used_bytes() + 2 * AreaFs::kStageChunks * cs);
    const std::string data = large_data(cs, 42);
    auto h = this->fs_->open(P("f"), true, true);
    for (std::size_t off = 0; off < data.size(); off += cs)
        this->write_at(*h, off, data.substr(off, cs));  // a batch that fails stays buffered
    EXPECT_EQ(this->read_all(*h), data);
    EXPECT_VSC_ERROR(ErrorKind::NoSpace, ENOSPC, this->fs_->release(*h));
    EXPECT_EQ(this->get("f"), old_data);
    EXPECT_EQ(this->medium_.chunk_count(), chunks_before);
    memory->set_capacity(std::nullopt);
    this->reload();
    EXPECT_EQ(this->get("f"), old_data);
    EXPECT_EQ(this->medium_.chunk_count(), chunks_before);
}

// The last close of a file races with its unlink (or its replacement by rename): whichever
// wins, the data must leave the medium, not linger until the area is next loaded.
TEST(AreaFsRaces, LastCloseRacingRemovalDropsData) {
    constexpr int kRounds = 1500;
    MemoryAreaStore::Options options;
    options.chunk_size = 16;
    auto store = std::make_shared<MemoryAreaStore>(options);
    AreaFs fs(store, Area::Public);
    std::atomic<int> go{0}, done{0};
    std::shared_ptr<OpenFile> handle;
    std::thread closer([&] {
        for (int i = 1; i <= kRounds; ++i) {
            while (go.load() != i) std::this_thread::yield();
            fs.release(*handle);
            done.store(i);
        }
    });
    int leaks = 0;
    for (int i = 1; i <= kRounds; ++i) {
        fs.release(*fs.create(P("other"), 0644, false));  // empty: no chunks of its own
        handle = fs.create(P("f"), 0644, true);
        fs.write(*handle, 0, "data", 4);
        fs.flush(*handle);
        go.store(i);
        if (i % 2)
            fs.unlink(P("f"));
        else
            fs.rename(P("other"), P("f"), false);
        while (done.load() != i) std::this_thread::yield();
        if (store->chunk_count() != 0) ++leaks;
        store->drop_unreferenced({});
        if (i % 2 == 0) fs.unlink(P("f"));
    }
    closer.join();
    EXPECT_EQ(leaks, 0);
}

}  // namespace
}  // namespace vscard
