// NodeMeta's binary form: exact round trips, and a clean Error(Corrupt) for anything
// malformed (it is read back from files that may be damaged).
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "error.hpp"
#include "vfs/node.hpp"

namespace vscard {
namespace {

NodeMeta sample() {
    NodeMeta m;
    m.kind = NodeKind::File;
    m.parent = 0x0102030405060708ull;
    for (int c = 1; c < 256; ++c) m.name.push_back(static_cast<char>(c));  // 255 bytes
    m.mode = 04755;
    m.mtime = {1700000000, 999999999};
    m.ctime = {-1, 1};
    m.size = 1ull << 40;
    m.content = ~0ull;
    m.xattrs["user.empty"] = "";
    m.xattrs["user.binary"] = std::string("\0\x01\xff\0", 4);
    m.xattrs["user.big"] = std::string(64 * 1024, 'x');
    m.xattrs[std::string("user.") + std::string(250, '\xfe')] = "long name";
    return m;
}

void expect_equal(const NodeMeta& a, const NodeMeta& b) {
    EXPECT_EQ(a.kind, b.kind);
    EXPECT_EQ(a.parent, b.parent);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.mode, b.mode);
    EXPECT_EQ(a.mtime, b.mtime);
    EXPECT_EQ(a.ctime, b.ctime);
    EXPECT_EQ(a.size, b.size);
    EXPECT_EQ(a.content, b.content);
    EXPECT_EQ(a.xattrs, b.xattrs);
}

// Parses BYTES and accepts success or Error(Corrupt); anything else fails the test.
bool parses(ByteView bytes) {
    try {
        NodeMeta::parse(bytes);
        return true;
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Corrupt) << e.what();
        return false;
    }
}

TEST(NodeMeta, RoundTripWithOddNamesAndXattrs) {
    const NodeMeta m = sample();
    ASSERT_EQ(m.name.size(), 255u);
    WipedBytes bytes = m.serialize();
    expect_equal(NodeMeta::parse(bytes), m);
    // Deterministic: the same metadata always gives the same bytes.
    EXPECT_EQ(m.serialize(), bytes);
}

TEST(NodeMeta, RoundTripOfDirectoryAndDefaults) {
    NodeMeta dir;
    dir.kind = NodeKind::Dir;
    dir.mode = 0700;
    expect_equal(NodeMeta::parse(dir.serialize()), dir);
    NodeMeta empty_name;
    expect_equal(NodeMeta::parse(empty_name.serialize()), empty_name);
}

TEST(NodeMeta, ModeKeepsOnlyPermissionBits) {
    NodeMeta m;
    m.mode = 0100644;  // S_IFREG | 0644
    EXPECT_EQ(NodeMeta::parse(m.serialize()).mode, 0644u);
}

TEST(NodeMeta, EveryTruncationIsCorrupt) {
    WipedBytes bytes = sample().serialize();
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        ByteView prefix(bytes.data(), n);
        EXPECT_THROW(
            {
                try {
                    NodeMeta::parse(prefix);
                } catch (const Error& e) {
                    EXPECT_EQ(e.kind(), ErrorKind::Corrupt);
                    throw;
                }
            },
            Error)
            << "prefix of " << n << " bytes";
    }
}

TEST(NodeMeta, TrailingBytesAreCorrupt) {
    WipedBytes bytes = sample().serialize();
    bytes.push_back(0);
    EXPECT_FALSE(parses(bytes));
}

TEST(NodeMeta, BadVersionOrKindIsCorrupt) {
    const WipedBytes good = NodeMeta{}.serialize();
    for (std::uint8_t version : {0, 2, 255}) {
        WipedBytes b = good;
        b[0] = version;
        EXPECT_FALSE(parses(b)) << "version " << int(version);
    }
    for (std::uint8_t kind : {0, 3, 255}) {
        WipedBytes b = good;
        b[1] = kind;
        EXPECT_FALSE(parses(b)) << "kind " << int(kind);
    }
}

TEST(NodeMeta, HugeLengthFieldsAreCorrupt) {
    // Offsets in the format: version(1) kind(1) parent(8) mode(4) mtime(12) ctime(12) size(8)
    // content(8), then the name length (u16).
    constexpr std::size_t kNameLength = 54;
    NodeMeta m;
    m.name = "abc";
    m.xattrs["user.a"] = "v";
    WipedBytes good = m.serialize();
    ASSERT_EQ(good[kNameLength], 3);
    {
        WipedBytes b = good;
        b[kNameLength] = 0xff;
        b[kNameLength + 1] = 0xff;
        EXPECT_FALSE(parses(b));
    }
    {
        // The xattr count, just after the name.
        WipedBytes b = good;
        b[kNameLength + 2 + 3] = 0xff;
        b[kNameLength + 2 + 3 + 1] = 0xff;
        EXPECT_FALSE(parses(b));
    }
    {
        // The xattr value length (u32), after the count, key length and key.
        WipedBytes b = good;
        std::size_t value_length = kNameLength + 2 + 3 + 2 + 2 + 6;
        for (std::size_t i = 0; i < 4; ++i) b[value_length + i] = 0xff;
        EXPECT_FALSE(parses(b));
    }
}

TEST(NodeMeta, GarbageNeverCrashes) {
    std::mt19937 rng(20240501);
    for (int i = 0; i < 5000; ++i) {
        WipedBytes b(rng() % 200);
        for (auto& c : b) c = static_cast<std::uint8_t>(rng());
        if (!b.empty() && i % 2 == 0) b[0] = 1;  // get past the version check half the time
        if (b.size() > 1 && i % 4 == 0) b[1] = 1 + rng() % 2;
        parses(b);
    }
    // Every single-byte change of a valid form parses or is refused cleanly.
    NodeMeta m;
    m.name = "file";
    m.xattrs["user.k"] = "value";
    const WipedBytes good = m.serialize();
    for (std::size_t pos = 0; pos < good.size(); ++pos) {
        for (std::uint8_t v : {0x00, 0x01, 0x7f, 0x80, 0xff}) {
            WipedBytes b = good;
            b[pos] = v;
            parses(b);
        }
    }
}

TEST(NodeMeta, AreaNames) {
    EXPECT_STREQ(area_name(Area::Public), "public");
    EXPECT_STREQ(area_name(Area::Private), "private");
    EXPECT_STREQ(area_name(Area::Secret), "secret");
}

}  // namespace
}  // namespace vscard
