#include "card/tlv.hpp"

#include <string>

#include "error.hpp"

namespace vscard::card::tlv {
namespace {

Error malformed(const std::string& why, std::size_t offset) {
    return Error(ErrorKind::Invalid,
                 "malformed BER-TLV at byte " + std::to_string(offset) + ": " + why);
}

std::size_t tag_bytes(Tag tag) {
    if (tag > 0xFFFFFF) return 4;
    if (tag > 0xFFFF) return 3;
    if (tag > 0xFF) return 2;
    return 1;
}

Node parse_node(const Item& item, const ParseOptions& options, std::size_t depth);

std::vector<Node> parse_nodes(ByteView data, const ParseOptions& options, std::size_t depth) {
    std::vector<Node> out;
    Reader reader(data, options);
    while (auto item = reader.next()) out.push_back(parse_node(*item, options, depth));
    return out;
}

Node parse_node(const Item& item, const ParseOptions& options, std::size_t depth) {
    Node n;
    n.tag = item.tag;
    if (!item.constructed()) {
        n.value.assign(item.value.begin(), item.value.end());
        return n;
    }
    // Recursion is bounded so that hostile nesting cannot exhaust the stack.
    if (depth + 1 > options.max_depth)
        throw Error(ErrorKind::Invalid,
                    "BER-TLV nested deeper than " + std::to_string(options.max_depth) + " levels");
    n.children = parse_nodes(item.value, options, depth + 1);
    return n;
}

}  // namespace

bool is_constructed(Tag tag) {
    std::size_t n = tag_bytes(tag);
    auto first = static_cast<std::uint8_t>(tag >> (8 * (n - 1)));
    return (first & 0x20) != 0;
}

void Reader::skip_padding() {
    if (!options_.allow_padding) return;
    while (pos_ < data_.size() && (data_[pos_] == 0x00 || data_[pos_] == 0xFF)) ++pos_;
}

bool Reader::at_end() {
    skip_padding();
    return pos_ >= data_.size();
}

std::optional<Item> Reader::next() {
    if (at_end()) return std::nullopt;
    const std::size_t start = pos_;
    std::size_t p = pos_;
    const std::size_t end = data_.size();

    std::uint8_t first = data_[p++];
    if (first == 0x00) throw malformed("tag byte 00", start);
    Tag tag = first;
    if ((first & 0x1F) == 0x1F) {  // multi-byte tag: b8 of each following byte says "more"
        for (;;) {
            if (p >= end) throw malformed("truncated tag", start);
            std::uint8_t b = data_[p++];
            tag = (tag << 8) | b;
            if ((b & 0x80) == 0) break;
            if (p - start >= 4) throw malformed("tag longer than 4 bytes", start);
        }
    }

    if (p >= end) throw malformed("missing length", start);
    std::uint8_t l0 = data_[p++];
    std::size_t length = 0;
    if (l0 < 0x80) {
        length = l0;
    } else if (l0 == 0x80) {
        throw malformed("indefinite length", start);
    } else {
        std::size_t count = l0 & 0x7F;
        if (count > 4) throw malformed("length of more than 4 bytes", start);
        if (end - p < count) throw malformed("truncated length", start);
        for (std::size_t i = 0; i < count; ++i) length = (length << 8) | data_[p++];
    }
    // Compared as a difference so that a huge length cannot overflow the check.
    if (length > end - p)
        throw malformed("length " + std::to_string(length) + " exceeds the " +
                            std::to_string(end - p) + " bytes left",
                        start);
    Item item;
    item.tag = tag;
    item.header_size = p - start;
    item.value = data_.subspan(p, length);
    pos_ = p + length;
    return item;
}

std::vector<Item> parse_all(ByteView data, ParseOptions options) {
    std::vector<Item> out;
    Reader reader(data, options);
    while (auto item = reader.next()) out.push_back(*item);
    return out;
}

Item parse_one(ByteView data, ParseOptions options) {
    Reader reader(data, options);
    auto item = reader.next();
    if (!item) throw Error(ErrorKind::Invalid, "empty BER-TLV data");
    if (!reader.at_end()) throw Error(ErrorKind::Invalid, "trailing bytes after a BER-TLV object");
    return *item;
}

std::optional<Item> find(ByteView data, Tag tag, ParseOptions options) {
    Reader reader(data, options);
    while (auto item = reader.next())
        if (item->tag == tag) return item;
    return std::nullopt;
}

const Node* Node::child(Tag wanted) const {
    for (const auto& c : children)
        if (c.tag == wanted) return &c;
    return nullptr;
}

Node Node::parse(ByteView data, ParseOptions options) {
    return parse_node(parse_one(data, options), options, 0);
}

std::vector<Node> Node::parse_list(ByteView data, ParseOptions options) {
    return parse_nodes(data, options, 0);
}

Bytes Node::encode() const {
    if (!constructed()) return tlv::encode(tag, value);
    Bytes inner;
    for (const auto& c : children) {
        Bytes e = c.encode();
        inner.insert(inner.end(), e.begin(), e.end());
    }
    return tlv::encode(tag, inner);
}

Node primitive(Tag tag, ByteView value) {
    if (is_constructed(tag))
        throw Error(ErrorKind::Invalid, "tag " + std::to_string(tag) + " is constructed");
    Node n;
    n.tag = tag;
    n.value.assign(value.begin(), value.end());
    return n;
}

Node constructed(Tag tag, std::vector<Node> children) {
    if (!is_constructed(tag))
        throw Error(ErrorKind::Invalid, "tag " + std::to_string(tag) + " is primitive");
    Node n;
    n.tag = tag;
    n.children = std::move(children);
    return n;
}

Bytes encode_tag(Tag tag) {
    std::size_t n = tag_bytes(tag);
    Bytes out;
    for (std::size_t i = n; i-- > 0;) out.push_back(static_cast<std::uint8_t>(tag >> (8 * i)));
    bool ok = tag != 0;
    if (ok && n == 1) {
        ok = (out[0] & 0x1F) != 0x1F;
    } else if (ok) {
        ok = (out[0] & 0x1F) == 0x1F;
        for (std::size_t i = 1; ok && i < n; ++i) ok = ((out[i] & 0x80) != 0) == (i + 1 < n);
    }
    if (!ok) throw Error(ErrorKind::Invalid, "not a valid BER-TLV tag: " + std::to_string(tag));
    return out;
}

Bytes encode_length(std::size_t length) {
    if (length < 0x80) return {static_cast<std::uint8_t>(length)};
    if (length > 0xFFFFFFFFULL) throw Error(ErrorKind::Invalid, "BER-TLV length above 4 bytes");
    Bytes digits = encode_uint(length);
    Bytes out{static_cast<std::uint8_t>(0x80 | digits.size())};
    out.insert(out.end(), digits.begin(), digits.end());
    return out;
}

void append(Bytes& out, Tag tag, ByteView value) {
    Bytes t = encode_tag(tag);
    Bytes l = encode_length(value.size());
    out.insert(out.end(), t.begin(), t.end());
    out.insert(out.end(), l.begin(), l.end());
    out.insert(out.end(), value.begin(), value.end());
}

Bytes encode(Tag tag, ByteView value) {
    Bytes out;
    append(out, tag, value);
    return out;
}

Bytes encode_uint(std::uint64_t value, std::size_t min_bytes) {
    Bytes out;
    while (value != 0) {
        out.insert(out.begin(), static_cast<std::uint8_t>(value & 0xFF));
        value >>= 8;
    }
    while (out.size() < min_bytes || out.empty()) out.insert(out.begin(), 0);
    return out;
}

std::uint64_t decode_uint(ByteView value, std::size_t max_bytes) {
    if (value.empty() || value.size() > max_bytes || value.size() > 8)
        throw Error(ErrorKind::Invalid, "integer field of " + std::to_string(value.size()) +
                                            " bytes (expected 1 to " + std::to_string(max_bytes) +
                                            ")");
    std::uint64_t v = 0;
    for (auto b : value) v = (v << 8) | b;
    return v;
}

}  // namespace vscard::card::tlv
