#include "vfs/node.hpp"

#include <time.h>

#include <cstring>

#include "error.hpp"

namespace vscard {

std::optional<std::size_t> AreaStore::read_chunk_into(std::uint64_t content, std::uint64_t index,
                                                      std::uint8_t* out) {
    WipedBytes chunk;
    if (!read_chunk(content, index, chunk)) return std::nullopt;
    if (chunk.size() > chunk_size())
        throw Error(ErrorKind::Corrupt, describe() + ": a data block is larger than a chunk");
    if (!chunk.empty()) std::memcpy(out, chunk.data(), chunk.size());
    return chunk.size();
}

const char* area_name(Area area) {
    switch (area) {
        case Area::Public:
            return "public";
        case Area::Private:
            return "private";
        case Area::Secret:
            return "secret";
    }
    return "?";
}

Timestamp Timestamp::now() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return {ts.tv_sec, static_cast<std::uint32_t>(ts.tv_nsec)};
}

namespace {

constexpr std::uint8_t kMetaVersion = 1;

class Writer {
public:
    void u8(std::uint8_t v) { out.push_back(v); }
    void u16(std::uint16_t v) { put(v, 2); }
    void u32(std::uint32_t v) { put(v, 4); }
    void u64(std::uint64_t v) { put(v, 8); }
    void str16(const std::string& s) {
        u16(static_cast<std::uint16_t>(s.size()));
        out.insert(out.end(), s.begin(), s.end());
    }
    void str32(const std::string& s) {
        u32(static_cast<std::uint32_t>(s.size()));
        out.insert(out.end(), s.begin(), s.end());
    }
    WipedBytes out;

private:
    void put(std::uint64_t v, int n) {
        for (int i = 0; i < n; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
};

class Reader {
public:
    explicit Reader(ByteView b) : b_(b) {}
    std::uint8_t u8() { return static_cast<std::uint8_t>(get(1)); }
    std::uint16_t u16() { return static_cast<std::uint16_t>(get(2)); }
    std::uint32_t u32() { return static_cast<std::uint32_t>(get(4)); }
    std::uint64_t u64() { return get(8); }
    std::string str(std::size_t n) {
        need(n);
        std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
        pos_ += n;
        return s;
    }
    bool done() const { return pos_ == b_.size(); }

private:
    void need(std::size_t n) {
        if (b_.size() - pos_ < n) throw Error(ErrorKind::Corrupt, "object metadata is truncated");
    }
    std::uint64_t get(int n) {
        need(static_cast<std::size_t>(n));
        std::uint64_t v = 0;
        for (int i = 0; i < n; ++i) v |= std::uint64_t(b_[pos_ + i]) << (8 * i);
        pos_ += static_cast<std::size_t>(n);
        return v;
    }
    ByteView b_;
    std::size_t pos_ = 0;
};

}  // namespace

WipedBytes NodeMeta::serialize() const {
    Writer w;
    std::size_t xattr_bytes = 0;
    for (const auto& [k, v] : xattrs) xattr_bytes += 6 + k.size() + v.size();
    w.out.reserve(64 + name.size() + xattr_bytes);  // one allocation, not one per growth
    w.u8(kMetaVersion);
    w.u8(static_cast<std::uint8_t>(kind));
    w.u64(parent);
    w.u32(mode);
    w.u64(static_cast<std::uint64_t>(mtime.sec));
    w.u32(mtime.nsec);
    w.u64(static_cast<std::uint64_t>(ctime.sec));
    w.u32(ctime.nsec);
    w.u64(size);
    w.u64(content);
    w.str16(name);
    w.u16(static_cast<std::uint16_t>(xattrs.size()));
    for (const auto& [k, v] : xattrs) {
        w.str16(k);
        w.str32(v);
    }
    return std::move(w.out);
}

NodeMeta NodeMeta::parse(ByteView bytes) {
    Reader r(bytes);
    if (r.u8() != kMetaVersion)
        throw Error(ErrorKind::Corrupt, "object metadata has an unknown version");
    NodeMeta m;
    std::uint8_t kind = r.u8();
    if (kind != 1 && kind != 2) throw Error(ErrorKind::Corrupt, "object metadata has a bad kind");
    m.kind = static_cast<NodeKind>(kind);
    m.parent = r.u64();
    m.mode = r.u32() & 07777;
    m.mtime.sec = static_cast<std::int64_t>(r.u64());
    m.mtime.nsec = r.u32();
    m.ctime.sec = static_cast<std::int64_t>(r.u64());
    m.ctime.nsec = r.u32();
    m.size = r.u64();
    m.content = r.u64();
    m.name = r.str(r.u16());
    std::uint16_t n = r.u16();
    for (std::uint16_t i = 0; i < n; ++i) {
        std::string k = r.str(r.u16());
        m.xattrs[k] = r.str(r.u32());
    }
    if (!r.done()) throw Error(ErrorKind::Corrupt, "object metadata has trailing bytes");
    return m;
}

}  // namespace vscard
