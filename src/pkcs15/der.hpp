#pragma once
// Strict DER element reader and writer used around the OpenSSL ASN.1 templates.
//
// Why hand-written: OpenSSL's d2i accepts BER (indefinite lengths, constructed strings, long
// length forms), which a card must not be allowed to smuggle past us, and it cannot split a
// directory file into entries while keeping each entry's bytes and stopping at the 0x00/0xFF
// padding cards leave after the last entry. This reader does exactly that and nothing more:
// every byte string handed to a template has passed validate() first.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "secure_bytes.hpp"

namespace vscard::pkcs15::der {

// Nesting that PKCS#15 needs is below 10; anything deeper is refused before recursion.
inline constexpr int kMaxDepth = 32;

struct Element {
    std::uint8_t cls = 0;  // 0 universal, 1 application, 2 context, 3 private
    bool constructed = false;
    std::uint32_t tag = 0;  // tag number
    ByteView whole;         // identifier, length and contents
    ByteView content;
};

// Reads the element at the start of `in` (trailing bytes are allowed and ignored). Throws
// Error(Corrupt) on truncation, indefinite or non-minimal length, lengths beyond the input,
// oversized or non-minimal high tag numbers.
Element read(ByteView in);

// Checks that `in` is exactly one DER element whose constructed parts nest well-formed
// elements, down to kMaxDepth levels. Universal types that DER requires to be primitive
// (strings, integers, ...) must be primitive, SEQUENCE and SET constructed.
void validate(ByteView in);

// The elements inside a constructed element's contents, in order (each validated).
std::vector<ByteView> children(ByteView contents);

// True for the bytes cards fill unused space with; a directory file ends at the first one
// found where the next entry would start.
inline bool is_padding(std::uint8_t b) {
    return b == 0x00 || b == 0xFF;
}

// Identifier octet for a low tag number (< 31).
std::uint8_t identifier(std::uint8_t cls, bool constructed, std::uint8_t tag);

// Appends identifier, DER length and contents.
void append(Bytes& out, std::uint8_t identifier_octet, ByteView contents);
Bytes wrap(std::uint8_t identifier_octet, ByteView contents);

}  // namespace vscard::pkcs15::der
