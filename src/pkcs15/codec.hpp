#pragma once
// Shared plumbing of the PKCS#15 codec (internal): directory-file splitting and padding, the
// reuse of an entry's original bytes, and conversions of Path and CommonObjectAttributes.
#include <optional>
#include <string>
#include <variant>

#include "error.hpp"
#include "pkcs15/asn1_types.hpp"
#include "pkcs15/der.hpp"
#include "pkcs15/pkcs15.hpp"

namespace vscard::pkcs15::detail {

[[noreturn]] inline void corrupt(const std::string& what) {
    throw Error(ErrorKind::Corrupt, "PKCS#15: " + what);
}
[[noreturn]] inline void invalid(const std::string& what) {
    throw Error(ErrorKind::Invalid, "PKCS#15: " + what);
}

std::optional<Path> path_from(const asn1::P15_PATH* p);
void fill_path(asn1::P15_PATH* dst, const Path& src);

std::optional<CommonObjectAttributes> common_from(const asn1::P15_COA* c);
void fill_common(asn1::P15_COA* dst, const CommonObjectAttributes& src);

// Appends `layout` padding; NoSpace when the content does not fit.
void pad(Bytes& out, const Layout& layout, const char* file);

// Splits a directory file into entries. `decode` maps one validated DER element to the model
// (nullopt: keep it as UnknownEntry). Parsing stops at padding (0x00/0xFF) where an entry
// would start; anything else that is not DER is Corrupt.
template <typename T, typename Decode>
Entries<T> parse_entries(ByteView file, Decode decode) {
    Entries<T> out;
    ByteView rest = file;
    while (!rest.empty() && !der::is_padding(rest[0])) {
        const der::Element e = der::read(rest);
        der::validate(e.whole);
        Bytes raw(e.whole.begin(), e.whole.end());
        std::optional<T> t = decode(e.whole);
        if (t) {
            t->der = std::move(raw);
            out.emplace_back(std::move(*t));
        } else {
            out.emplace_back(UnknownEntry{std::move(raw)});
        }
        rest = rest.subspan(e.whole.size());
    }
    return out;
}

// The bytes read from the card while the entry is unchanged, a fresh encoding otherwise.
template <typename T, typename Decode, typename Encode>
Bytes reuse_or_encode(const T& t, Decode decode, Encode encode) {
    if (!t.der.empty()) {
        try {
            der::validate(t.der);
            std::optional<T> again = decode(ByteView(t.der));
            if (again) {
                again->der = t.der;
                if (*again == t) return t.der;
            }
        } catch (const Error&) {
            // not reusable: encode from the fields
        }
    }
    return encode(t);
}

template <typename T, typename Decode, typename Encode>
Bytes serialize_entries(const Entries<T>& entries, const Layout& layout, const char* file,
                        Decode decode, Encode encode) {
    Bytes out;
    for (const auto& entry : entries) {
        Bytes one;
        if (const auto* unknown = std::get_if<UnknownEntry>(&entry)) {
            try {
                der::validate(unknown->der);
            } catch (const Error&) {
                invalid(std::string("an unknown entry of ") + file + " is not one DER element");
            }
            one = unknown->der;
        } else {
            one = reuse_or_encode(std::get<T>(entry), decode, encode);
        }
        // A reader stops at a padding byte, so no entry may start with one.
        if (der::is_padding(one.front()))
            invalid(std::string("entry of ") + file + " starts with padding");
        out.insert(out.end(), one.begin(), one.end());
    }
    pad(out, layout, file);
    return out;
}

}  // namespace vscard::pkcs15::detail
