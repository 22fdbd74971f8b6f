#pragma once
// An area held in memory: a real medium with the same semantics as the VSC file's areas
// (atomic changes, holes, orphaned streams), used by the conformance tests and as a stand-in
// for a card of limited capacity.
#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <utility>

#include "vfs/node.hpp"

namespace vscard {

class MemoryAreaStore final : public AreaStore {
public:
    struct Options {
        std::size_t chunk_size = 64 * 1024;
        // Bytes of chunk data the medium holds; apply() throws Error(NoSpace) beyond it.
        std::optional<std::uint64_t> capacity;
        std::uint32_t root_mode = 0755;
        std::string name = "memory";
    };

    MemoryAreaStore() : MemoryAreaStore(Options{}) {}
    explicit MemoryAreaStore(Options options);

    std::vector<NodeRow> load() override;
    std::uint64_t allocate_id() override { return next_id_.fetch_add(1); }
    void apply(const AreaChange& change) override;
    bool read_chunk(std::uint64_t content, std::uint64_t index, WipedBytes& out) override;
    std::size_t chunk_size() const override { return chunk_size_; }
    void sync() override {}
    SpaceInfo space() override;
    void drop_unreferenced(const std::vector<std::uint64_t>& live_contents) override;
    std::string describe() const override { return name_; }

    // For tests and callers that model a medium filling up.
    void set_capacity(std::optional<std::uint64_t> capacity);
    std::uint64_t used_bytes() const;
    std::size_t chunk_count() const;

    static constexpr std::uint64_t kRootId = 1;

private:
    using ChunkKey = std::pair<std::uint64_t, std::uint64_t>;  // content, index

    const std::size_t chunk_size_;
    const std::string name_;
    mutable std::shared_mutex mutex_;
    std::optional<std::uint64_t> capacity_;
    std::map<std::uint64_t, WipedBytes> nodes_;  // id -> serialized NodeMeta
    std::map<ChunkKey, WipedBytes> chunks_;
    std::uint64_t used_ = 0;  // sum of chunk sizes
    std::atomic<std::uint64_t> next_id_{16};
};

}  // namespace vscard
