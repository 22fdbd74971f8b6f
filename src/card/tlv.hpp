#pragma once
// BER-TLV as ISO/IEC 7816-4 §5.2 uses it (a subset of ASN.1 BER): tags of 1 to 4 bytes, held
// as the big-endian integer of their bytes (0x62, 0x5F20, 0x9F7F...); definite lengths only,
// in short form or long form with 1 to 4 length bytes. Parsing checks every bound: malformed
// input is Error(Invalid), never a crash or a read outside the buffer, and nesting is capped.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "secure_bytes.hpp"

namespace vscard::card::tlv {

using Tag = std::uint32_t;

inline constexpr std::size_t kDefaultMaxDepth = 16;

// True when TAG (as held here) has the constructed bit (b6 of its first byte).
bool is_constructed(Tag tag);

// One data object inside a parsed buffer; VALUE points into that buffer.
struct Item {
    Tag tag = 0;
    ByteView value;
    std::size_t header_size = 0;  // tag and length bytes
    std::size_t size() const { return header_size + value.size(); }
    bool constructed() const { return is_constructed(tag); }
};

struct ParseOptions {
    // ISO 7816-4 allows '00' and 'FF' bytes before, between and after objects (padding of a
    // fixed-size EF); they are skipped when set, else Error(Invalid).
    bool allow_padding = false;
    std::size_t max_depth = kDefaultMaxDepth;
};

// Reads the objects of a buffer one at a time.
class Reader {
public:
    explicit Reader(ByteView data, ParseOptions options = {}) : data_(data), options_(options) {}
    // The next object, or nullopt at the end. Error(Invalid) when malformed.
    std::optional<Item> next();
    bool at_end();

private:
    void skip_padding();
    ByteView data_;
    std::size_t pos_ = 0;
    ParseOptions options_;
};

// All top-level objects of DATA (no recursion into constructed values).
std::vector<Item> parse_all(ByteView data, ParseOptions options = {});
// Exactly one object spanning DATA (trailing bytes are Error(Invalid), padding aside).
Item parse_one(ByteView data, ParseOptions options = {});
// The first top-level object of DATA with TAG, if any.
std::optional<Item> find(ByteView data, Tag tag, ParseOptions options = {});

// An owned tree: a primitive object holds VALUE, a constructed one holds CHILDREN.
struct Node {
    Tag tag = 0;
    Bytes value;
    std::vector<Node> children;

    bool constructed() const { return is_constructed(tag); }
    // First child with TAG, if any.
    const Node* child(Tag tag) const;

    // Parses DATA as exactly one object, recursing into constructed ones up to
    // OPTIONS.max_depth levels (deeper: Error(Invalid)).
    static Node parse(ByteView data, ParseOptions options = {});
    static std::vector<Node> parse_list(ByteView data, ParseOptions options = {});
    Bytes encode() const;
};

Node primitive(Tag tag, ByteView value);
Node constructed(Tag tag, std::vector<Node> children);

// Builders. Error(Invalid) for a tag that is not a well-formed 1-4 byte tag, or a length
// above 0xFFFFFFFF.
Bytes encode_tag(Tag tag);
Bytes encode_length(std::size_t length);
void append(Bytes& out, Tag tag, ByteView value);
Bytes encode(Tag tag, ByteView value);

// Unsigned big-endian integers as used in FCP (file size, FID): minimal length, at least
// MIN_BYTES bytes.
Bytes encode_uint(std::uint64_t value, std::size_t min_bytes = 1);
// Error(Invalid) when VALUE is empty or longer than MAX_BYTES.
std::uint64_t decode_uint(ByteView value, std::size_t max_bytes = 8);

}  // namespace vscard::card::tlv
