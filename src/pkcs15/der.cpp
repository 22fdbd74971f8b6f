#include "pkcs15/der.hpp"

#include <string>

#include "error.hpp"

namespace vscard::pkcs15::der {
namespace {

[[noreturn]] void corrupt(const std::string& what) {
    throw Error(ErrorKind::Corrupt, "PKCS#15: malformed DER: " + what);
}

void validate_at(ByteView in, int depth) {
    if (depth > kMaxDepth) corrupt("nesting deeper than " + std::to_string(kMaxDepth));
    Element e = read(in);
    if (e.whole.size() != in.size()) corrupt("trailing bytes after an element");
    if (e.cls == 0) {
        if (e.tag == 0) corrupt("end-of-contents octets (indefinite length)");
        const bool must_construct = e.tag == 16 || e.tag == 17;
        if (must_construct != e.constructed) corrupt("universal type in the wrong form");
    }
    if (!e.constructed) return;
    ByteView rest = e.content;
    while (!rest.empty()) {
        Element child = read(rest);
        validate_at(child.whole, depth + 1);
        rest = rest.subspan(child.whole.size());
    }
}

}  // namespace

Element read(ByteView in) {
    std::size_t pos = 0;
    if (in.empty()) corrupt("element expected, input ended");
    Element e;
    const std::uint8_t first = in[pos++];
    e.cls = static_cast<std::uint8_t>(first >> 6);
    e.constructed = (first & 0x20) != 0;
    e.tag = first & 0x1F;
    if (e.tag == 0x1F) {
        // High tag number: base-128, no leading zero group, at most 4 groups (< 2^28).
        std::uint32_t tag = 0;
        for (int groups = 0;; ++groups) {
            if (pos >= in.size()) corrupt("truncated tag");
            if (groups == 4) corrupt("tag number too large");
            const std::uint8_t b = in[pos++];
            if (groups == 0 && b == 0x80) corrupt("non-minimal tag number");
            tag = (tag << 7) | (b & 0x7F);
            if ((b & 0x80) == 0) break;
        }
        if (tag < 0x1F) corrupt("non-minimal tag number");
        e.tag = tag;
    }
    if (pos >= in.size()) corrupt("truncated length");
    const std::uint8_t l0 = in[pos++];
    std::size_t length = 0;
    if (l0 < 0x80) {
        length = l0;
    } else if (l0 == 0x80) {
        corrupt("indefinite length");
    } else {
        const std::size_t n = l0 & 0x7F;
        if (n > 4) corrupt("length field longer than 4 octets");
        if (in.size() - pos < n) corrupt("truncated length");
        if (in[pos] == 0) corrupt("non-minimal length");
        for (std::size_t i = 0; i < n; ++i) length = (length << 8) | in[pos++];
        if (length < 0x80) corrupt("non-minimal length");
    }
    if (length > in.size() - pos) corrupt("length beyond the end of the data");
    e.whole = in.subspan(0, pos + length);
    e.content = in.subspan(pos, length);
    return e;
}

void validate(ByteView in) {
    validate_at(in, 0);
}

std::vector<ByteView> children(ByteView contents) {
    std::vector<ByteView> out;
    while (!contents.empty()) {
        Element e = read(contents);
        validate(e.whole);
        out.push_back(e.whole);
        contents = contents.subspan(e.whole.size());
    }
    return out;
}

std::uint8_t identifier(std::uint8_t cls, bool constructed, std::uint8_t tag) {
    return static_cast<std::uint8_t>((cls << 6) | (constructed ? 0x20 : 0) | (tag & 0x1F));
}

void append(Bytes& out, std::uint8_t identifier_octet, ByteView contents) {
    out.push_back(identifier_octet);
    const std::size_t n = contents.size();
    if (n < 0x80) {
        out.push_back(static_cast<std::uint8_t>(n));
    } else {
        std::uint8_t len[sizeof(std::size_t)];
        std::size_t count = 0;
        for (std::size_t v = n; v != 0; v >>= 8) len[count++] = static_cast<std::uint8_t>(v);
        out.push_back(static_cast<std::uint8_t>(0x80 | count));
        while (count > 0) out.push_back(len[--count]);
    }
    out.insert(out.end(), contents.begin(), contents.end());
}

Bytes wrap(std::uint8_t identifier_octet, ByteView contents) {
    Bytes out;
    out.reserve(contents.size() + 6);
    append(out, identifier_octet, contents);
    return out;
}

}  // namespace vscard::pkcs15::der
