#pragma once
// The object model shared by every medium: areas of named nodes (files and folders) with
// POSIX metadata, whose file content is a sequence of fixed-size chunks.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "secure_bytes.hpp"

namespace vscard {

enum class Area : std::uint8_t { Public = 1, Private = 2, Secret = 3 };
const char* area_name(Area area);

// Chunks of one file are numbered below this (64 GiB at 64 KiB a chunk).
inline constexpr std::uint64_t kMaxChunksPerFile = 1ull << 20;

enum class NodeKind : std::uint8_t { File = 1, Dir = 2 };

struct Timestamp {
    std::int64_t sec = 0;
    std::uint32_t nsec = 0;
    static Timestamp now();
    bool operator==(const Timestamp&) const = default;
};

struct NodeMeta {
    NodeKind kind = NodeKind::File;
    std::uint64_t parent = 0;   // 0 only for the area root
    std::string name;           // bytes as the user gave them
    std::uint32_t mode = 0644;  // permission bits only
    Timestamp mtime;
    Timestamp ctime;
    std::uint64_t size = 0;
    std::uint64_t content = 0;                  // id of the chunk stream holding the data (files)
    std::map<std::string, std::string> xattrs;  // "user.*" only

    // Versioned binary form stored (encrypted where the area asks) by the medium.
    WipedBytes serialize() const;
    // Throws Error(Corrupt) on anything malformed.
    static NodeMeta parse(ByteView bytes);
};

struct NodeRow {
    std::uint64_t id = 0;
    NodeMeta meta;
};

struct ChunkWrite {
    std::uint64_t content = 0;
    std::uint64_t index = 0;
    WipedBytes data;  // plaintext; the medium encrypts where the area asks
};

// One atomic change to an area: all of it lands, or none of it.
struct AreaChange {
    std::vector<NodeRow> upserts;
    std::vector<std::uint64_t> deleted_nodes;
    // Chunks of a content stream from `from_index` on are dropped (truncate, delete).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> dropped_chunks;
    std::vector<ChunkWrite> chunks;
    bool empty() const {
        return upserts.empty() && deleted_nodes.empty() && dropped_chunks.empty() && chunks.empty();
    }
};

struct SpaceInfo {
    std::uint64_t total_bytes = 0;
    std::uint64_t free_bytes = 0;
};

// Persistence of one area of one medium. Implementations are thread-safe: reads may run
// concurrently with each other and with one apply().
class AreaStore {
public:
    virtual ~AreaStore() = default;
    virtual std::vector<NodeRow> load() = 0;
    virtual std::uint64_t allocate_id() = 0;
    virtual void apply(const AreaChange& change) = 0;
    // Reads one chunk's plaintext into OUT; returns false for a chunk never written (a hole).
    virtual bool read_chunk(std::uint64_t content, std::uint64_t index, WipedBytes& out) = 0;
    // The same into OUT, which has room for chunk_size() bytes: returns the chunk's length, or
    // nothing for a hole. Lets a reader decrypt straight into its destination.
    virtual std::optional<std::size_t> read_chunk_into(std::uint64_t content, std::uint64_t index,
                                                       std::uint8_t* out);
    virtual std::size_t chunk_size() const = 0;
    // Largest file the medium holds (EFBIG beyond).
    virtual std::uint64_t max_file_size() const { return chunk_size() * kMaxChunksPerFile; }
    // False for a medium that has no room for extended attributes (ENOTSUP).
    virtual bool keeps_xattrs() const { return true; }
    // Refuses (Error(Locked): EACCES) to open CONTENT when the medium keeps it out of reach,
    // e.g. a key a card generated and never lets out.
    virtual void check_open(std::uint64_t /*content*/, bool /*writable*/) {}
    virtual void sync() = 0;
    virtual SpaceInfo space() = 0;
    // Drops chunk streams no object refers to (left by a crash between unlink and the
    // last close of the file).
    virtual void drop_unreferenced(const std::vector<std::uint64_t>& live_contents) = 0;
    // Names the medium in error messages ("vsc/NAME").
    virtual std::string describe() const = 0;
};

}  // namespace vscard
