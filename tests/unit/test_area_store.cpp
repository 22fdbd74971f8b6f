// Conformance of the AreaStore contract itself (below the filesystem logic), on every medium,
// plus what only the in-memory medium offers (a capacity).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "error.hpp"
#include "store_test_util.hpp"
#include "test_media.hpp"
#include "vfs/memory_store.hpp"

namespace vscard {
namespace {

using testing::pattern;

NodeRow file_row(std::uint64_t id, std::uint64_t parent, const std::string& name,
                 std::uint64_t content, std::uint64_t size) {
    NodeRow row;
    row.id = id;
    row.meta.kind = NodeKind::File;
    row.meta.parent = parent;
    row.meta.name = name;
    row.meta.mode = 0640;
    row.meta.mtime = row.meta.ctime = Timestamp{1234, 5};
    row.meta.content = content;
    row.meta.size = size;
    row.meta.xattrs["user.k"] = "v";
    return row;
}

ChunkWrite chunk(std::uint64_t content, std::uint64_t index, const std::string& data) {
    return {content, index, wiped_from(data)};
}

template <typename Medium>
class AreaStoreConformance : public ::testing::Test {
protected:
    AreaStoreConformance() : store_(medium_.store()) {
        for (const auto& row : store_->load())
            if (row.meta.parent == 0) root_ = row.id;
    }

    std::string read(std::uint64_t content, std::uint64_t index) {
        WipedBytes out;
        if (!store_->read_chunk(content, index, out)) return "<none>";
        return std::string(out.begin(), out.end());
    }

    const NodeRow* find(const std::vector<NodeRow>& rows, std::uint64_t id) {
        for (const auto& r : rows)
            if (r.id == id) return &r;
        return nullptr;
    }

    Medium medium_;
    std::shared_ptr<AreaStore> store_;
    std::uint64_t root_ = 0;
};

using Media = ::testing::Types<testing::MemorySmallChunks, testing::MemoryDefaultChunks,
                               testing::VscPublic, testing::VscPrivate>;
TYPED_TEST_SUITE(AreaStoreConformance, Media, testing::MediumNames);

TYPED_TEST(AreaStoreConformance, FreshAreaHoldsOnlyItsRoot) {
    auto rows = this->store_->load();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].meta.kind, NodeKind::Dir);
    EXPECT_EQ(rows[0].meta.parent, 0u);
    EXPECT_NE(this->root_, 0u);
    EXPECT_GT(this->store_->chunk_size(), 0u);
    EXPECT_FALSE(this->store_->describe().empty());
    SpaceInfo space = this->store_->space();
    EXPECT_GE(space.total_bytes, space.free_bytes);
}

TYPED_TEST(AreaStoreConformance, AllocatedIdsAreUnique) {
    std::set<std::uint64_t> ids{this->root_};
    for (int i = 0; i < 100; ++i) EXPECT_TRUE(ids.insert(this->store_->allocate_id()).second);
}

TYPED_TEST(AreaStoreConformance, ApplyLoadAndReadBack) {
    auto& store = *this->store_;
    const std::uint64_t id = store.allocate_id(), content = store.allocate_id();
    AreaChange change;
    change.upserts.push_back(file_row(id, this->root_, "f", content, 20));
    change.chunks.push_back(chunk(content, 0, "first"));
    change.chunks.push_back(chunk(content, 3, "fourth"));
    store.apply(change);
    auto rows = store.load();
    ASSERT_EQ(rows.size(), 2u);
    const NodeRow* row = this->find(rows, id);
    ASSERT_NE(row, nullptr);
    EXPECT_EQ(row->meta.name, "f");
    EXPECT_EQ(row->meta.size, 20u);
    EXPECT_EQ(row->meta.content, content);
    EXPECT_EQ(row->meta.mode, 0640u);
    EXPECT_EQ(row->meta.mtime, (Timestamp{1234, 5}));
    EXPECT_EQ(row->meta.xattrs.at("user.k"), "v");
    EXPECT_EQ(this->read(content, 0), "first");
    EXPECT_EQ(this->read(content, 3), "fourth");
    EXPECT_EQ(this->read(content, 1), "<none>");  // never written: a hole
    EXPECT_EQ(this->read(content + 1000, 0), "<none>");

    // An upsert replaces the row; a chunk write replaces the chunk.
    AreaChange update;
    update.upserts.push_back(file_row(id, this->root_, "renamed", content, 5));
    update.chunks.push_back(chunk(content, 0, "again"));
    store.apply(update);
    EXPECT_EQ(this->find(store.load(), id)->meta.name, "renamed");
    EXPECT_EQ(this->read(content, 0), "again");
    EXPECT_EQ(this->read(content, 3), "fourth");
}

TYPED_TEST(AreaStoreConformance, DroppedChunksGoBeforeNewOnes) {
    auto& store = *this->store_;
    const std::uint64_t a = store.allocate_id(), b = store.allocate_id();
    AreaChange fill;
    for (std::uint64_t i = 0; i < 4; ++i) {
        fill.chunks.push_back(chunk(a, i, "a" + std::to_string(i)));
        fill.chunks.push_back(chunk(b, i, "b" + std::to_string(i)));
    }
    store.apply(fill);

    // Truncate-and-rewrite in one change: the rewritten chunk survives its own drop.
    AreaChange change;
    change.dropped_chunks.emplace_back(a, 1);
    change.chunks.push_back(chunk(a, 1, "new1"));
    store.apply(change);
    EXPECT_EQ(this->read(a, 0), "a0");
    EXPECT_EQ(this->read(a, 1), "new1");
    EXPECT_EQ(this->read(a, 2), "<none>");
    EXPECT_EQ(this->read(a, 3), "<none>");
    for (std::uint64_t i = 0; i < 4; ++i) EXPECT_EQ(this->read(b, i), "b" + std::to_string(i));

    AreaChange all;
    all.dropped_chunks.emplace_back(b, 0);
    store.apply(all);
    for (std::uint64_t i = 0; i < 4; ++i) EXPECT_EQ(this->read(b, i), "<none>");
    EXPECT_EQ(this->read(a, 0), "a0");
}

TYPED_TEST(AreaStoreConformance, DeletedNodesAndUnreferencedStreams) {
    auto& store = *this->store_;
    const std::uint64_t f1 = store.allocate_id(), c1 = store.allocate_id();
    const std::uint64_t f2 = store.allocate_id(), c2 = store.allocate_id();
    AreaChange change;
    change.upserts.push_back(file_row(f1, this->root_, "one", c1, 1));
    change.upserts.push_back(file_row(f2, this->root_, "two", c2, 1));
    change.chunks.push_back(chunk(c1, 0, "1"));
    change.chunks.push_back(chunk(c2, 0, "2"));
    store.apply(change);

    AreaChange remove;
    remove.deleted_nodes.push_back(f1);  // its data is left behind, as after a crash
    store.apply(remove);
    auto rows = store.load();
    EXPECT_EQ(rows.size(), 2u);
    EXPECT_EQ(this->find(rows, f1), nullptr);
    EXPECT_EQ(this->read(c1, 0), "1");
    store.drop_unreferenced({c2});
    EXPECT_EQ(this->read(c1, 0), "<none>");
    EXPECT_EQ(this->read(c2, 0), "2");
}

TYPED_TEST(AreaStoreConformance, LargeChunksRoundTrip) {
    auto& store = *this->store_;
    const std::uint64_t content = store.allocate_id();
    const std::string data = pattern(store.chunk_size(), 3);
    AreaChange change;
    change.chunks.push_back(chunk(content, 7, data));
    store.apply(change);
    EXPECT_EQ(this->read(content, 7), data);
    store.sync();
}

TYPED_TEST(AreaStoreConformance, ConcurrentReadersAndWriters) {
    auto& store = *this->store_;
    constexpr int kThreads = 4, kRounds = 40;
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            try {
                const std::uint64_t content = store.allocate_id();
                for (int i = 0; i < kRounds; ++i) {
                    AreaChange change;
                    change.chunks.push_back(chunk(content, static_cast<std::uint64_t>(i),
                                                  std::to_string(t * 1000 + i)));
                    store.apply(change);
                    WipedBytes out;
                    if (!store.read_chunk(content, static_cast<std::uint64_t>(i), out) ||
                        std::string(out.begin(), out.end()) != std::to_string(t * 1000 + i))
                        ++failures;
                    store.load();
                }
            } catch (const std::exception& e) {
                ADD_FAILURE() << e.what();
                ++failures;
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures, 0);
}

// ---- the in-memory medium's own promises ---------------------------------------------------

TEST(MemoryAreaStore, RefusesZeroChunkSize) {
    MemoryAreaStore::Options options;
    options.chunk_size = 0;
    EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, MemoryAreaStore{options});
}

TEST(MemoryAreaStore, RootAndName) {
    MemoryAreaStore::Options options;
    options.root_mode = 0700;
    options.name = "card/TEST";
    MemoryAreaStore store(options);
    auto rows = store.load();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].id, MemoryAreaStore::kRootId);
    EXPECT_EQ(rows[0].meta.mode, 0700u);
    EXPECT_EQ(store.describe(), "card/TEST");
    EXPECT_EQ(store.chunk_size(), 64u * 1024);
}

TEST(MemoryAreaStore, CapacityRefusalChangesNothing) {
    MemoryAreaStore::Options options;
    options.chunk_size = 16;
    options.capacity = 20;
    MemoryAreaStore store(options);
    EXPECT_EQ(store.space().total_bytes, 20u);
    EXPECT_EQ(store.space().free_bytes, 20u);

    AreaChange fill;
    fill.chunks.push_back(chunk(100, 0, std::string(16, 'a')));
    store.apply(fill);
    EXPECT_EQ(store.used_bytes(), 16u);
    EXPECT_EQ(store.space().free_bytes, 4u);

    // Node rows and chunks of a refused change all stay out.
    AreaChange too_much;
    too_much.upserts.push_back(file_row(50, MemoryAreaStore::kRootId, "f", 101, 16));
    too_much.dropped_chunks.emplace_back(100, 1);
    too_much.chunks.push_back(chunk(101, 0, std::string(5, 'b')));
    EXPECT_VSC_ERROR(ErrorKind::NoSpace, ENOSPC, store.apply(too_much));
    EXPECT_EQ(store.load().size(), 1u);
    EXPECT_EQ(store.used_bytes(), 16u);
    EXPECT_EQ(store.chunk_count(), 1u);
    WipedBytes out;
    EXPECT_FALSE(store.read_chunk(101, 0, out));

    // Replacing data counts what it frees: this fits exactly.
    AreaChange replace;
    replace.dropped_chunks.emplace_back(100, 0);
    replace.chunks.push_back(chunk(101, 0, std::string(20, 'c')));
    store.apply(replace);
    EXPECT_EQ(store.used_bytes(), 20u);
    EXPECT_EQ(store.space().free_bytes, 0u);
    AreaChange overwrite;  // the same chunk rewritten, same size: no growth
    overwrite.chunks.push_back(chunk(101, 0, std::string(20, 'd')));
    overwrite.chunks.push_back(chunk(101, 0, std::string(20, 'e')));  // the last write wins
    store.apply(overwrite);
    ASSERT_TRUE(store.read_chunk(101, 0, out));
    EXPECT_EQ(std::string(out.begin(), out.end()), std::string(20, 'e'));
    EXPECT_EQ(store.used_bytes(), 20u);

    // Below a lowered capacity, shrinking still works and growing does not.
    store.set_capacity(10);
    EXPECT_EQ(store.space().free_bytes, 0u);
    AreaChange grow;
    grow.chunks.push_back(chunk(102, 0, "x"));
    EXPECT_VSC_ERROR(ErrorKind::NoSpace, ENOSPC, store.apply(grow));
    AreaChange shrink;
    shrink.chunks.push_back(chunk(101, 0, std::string(12, 'f')));
    store.apply(shrink);
    EXPECT_EQ(store.used_bytes(), 12u);
    store.drop_unreferenced({});
    EXPECT_EQ(store.used_bytes(), 0u);
    EXPECT_EQ(store.chunk_count(), 0u);
    store.set_capacity(std::nullopt);
    store.apply(grow);
    EXPECT_EQ(store.used_bytes(), 1u);
}

}  // namespace
}  // namespace vscard
