#include "vfs/memory_store.hpp"

#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <set>

#include "error.hpp"

namespace vscard {

MemoryAreaStore::MemoryAreaStore(Options options)
    : chunk_size_(options.chunk_size), name_(std::move(options.name)), capacity_(options.capacity) {
    if (chunk_size_ == 0) throw Error(ErrorKind::Invalid, "chunk size must not be zero");
    NodeMeta root;
    root.kind = NodeKind::Dir;
    root.mode = options.root_mode & 07777;
    root.mtime = root.ctime = Timestamp::now();
    // Metadata is kept serialized, as a real medium keeps it, so the round trip is exercised.
    nodes_.emplace(kRootId, root.serialize());
}

std::vector<NodeRow> MemoryAreaStore::load() {
    std::shared_lock lock(mutex_);
    std::vector<NodeRow> rows;
    rows.reserve(nodes_.size());
    for (const auto& [id, meta] : nodes_) rows.push_back({id, NodeMeta::parse(meta)});
    return rows;
}

void MemoryAreaStore::apply(const AreaChange& change) {
    // Whatever can fail (copies, the capacity check) happens before the first mutation, so
    // a change lands whole or not at all.
    std::vector<std::pair<std::uint64_t, WipedBytes>> metas;
    metas.reserve(change.upserts.size());
    for (const auto& row : change.upserts) metas.emplace_back(row.id, row.meta.serialize());
    std::map<ChunkKey, WipedBytes> writes;  // a later write of the same chunk wins
    for (const auto& c : change.chunks) writes[{c.content, c.index}] = c.data;

    std::unique_lock lock(mutex_);
    // Dropped ranges go before the new chunks are inserted (a truncate-and-rewrite).
    std::set<ChunkKey> removed;
    for (auto [content, from] : change.dropped_chunks) {
        for (auto it = chunks_.lower_bound({content, from});
             it != chunks_.end() && it->first.first == content; ++it)
            removed.insert(it->first);
    }
    std::uint64_t after = used_;
    for (const auto& key : removed) after -= chunks_.at(key).size();
    for (const auto& [key, data] : writes) {
        auto it = chunks_.find(key);
        if (it != chunks_.end() && !removed.count(key)) after -= it->second.size();
        after += data.size();
    }
    // A change that does not grow the data is always allowed: deleting on a full medium works.
    if (capacity_ && after > *capacity_ && after > used_)
        throw Error(ErrorKind::NoSpace, name_ + ": no space left (" + std::to_string(after) +
                                            " bytes needed, capacity " +
                                            std::to_string(*capacity_) + ")");

    for (auto& [id, meta] : metas) nodes_[id] = std::move(meta);
    for (auto id : change.deleted_nodes) nodes_.erase(id);
    for (const auto& key : removed) chunks_.erase(key);
    for (auto& [key, data] : writes) chunks_[key] = std::move(data);
    used_ = after;
}

bool MemoryAreaStore::read_chunk(std::uint64_t content, std::uint64_t index, WipedBytes& out) {
    std::shared_lock lock(mutex_);
    auto it = chunks_.find({content, index});
    if (it == chunks_.end()) return false;
    out.assign(it->second.begin(), it->second.end());
    return true;
}

SpaceInfo MemoryAreaStore::space() {
    std::shared_lock lock(mutex_);
    if (capacity_) return {*capacity_, *capacity_ - std::min(used_, *capacity_)};
    long pages = ::sysconf(_SC_AVPHYS_PAGES);
    long page_size = ::sysconf(_SC_PAGESIZE);
    std::uint64_t avail = pages > 0 && page_size > 0 ? static_cast<std::uint64_t>(pages) *
                                                           static_cast<std::uint64_t>(page_size)
                                                     : 0;
    return {used_ + avail, avail};
}

void MemoryAreaStore::drop_unreferenced(const std::vector<std::uint64_t>& live_contents) {
    std::set<std::uint64_t> live(live_contents.begin(), live_contents.end());
    std::unique_lock lock(mutex_);
    for (auto it = chunks_.begin(); it != chunks_.end();) {
        if (live.count(it->first.first)) {
            ++it;
            continue;
        }
        used_ -= it->second.size();
        it = chunks_.erase(it);
    }
}

void MemoryAreaStore::set_capacity(std::optional<std::uint64_t> capacity) {
    std::unique_lock lock(mutex_);
    capacity_ = capacity;
}

std::uint64_t MemoryAreaStore::used_bytes() const {
    std::shared_lock lock(mutex_);
    return used_;
}

std::size_t MemoryAreaStore::chunk_count() const {
    std::shared_lock lock(mutex_);
    return chunks_.size();
}

}  // namespace vscard
