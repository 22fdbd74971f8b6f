// Data object labels <-> paths in the mount; the rules are documented in pkcs15.hpp.
#include <openssl/evp.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "pkcs15/pkcs15.hpp"

namespace vscard::pkcs15 {
namespace {

constexpr std::size_t kNameMax = 255;  // NAME_MAX of Linux file systems
constexpr std::string_view kHashMark = "%~";
constexpr std::size_t kHashDigits = 16;
constexpr char kHex[] = "0123456789ABCDEF";

// Bytes an escape may stand for; "%HH" naming any other byte is literal text.
bool escapable(std::uint8_t b) {
    return b < 0x20 || b == '%' || b == '.' || b == '/' || b == 0x7F || b >= 0x80;
}

bool upper_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}
int hex_value(char c) {
    return c <= '9' ? c - '0' : c - 'A' + 10;
}

// "%HH" at text[i] that decodes to an escapable byte.
bool token_at(std::string_view text, std::size_t i) {
    if (i + 2 >= text.size()) return false;
    if (text[i] != '%' || !upper_hex(text[i + 1]) || !upper_hex(text[i + 2])) return false;
    return escapable(
        static_cast<std::uint8_t>(hex_value(text[i + 1]) << 4 | hex_value(text[i + 2])));
}

// Would a '%' at text[i] be read as more than a literal percent sign?
bool escape_follows(std::string_view text, std::size_t i) {
    if (i + 1 < text.size() && text[i + 1] == '~') return true;
    return token_at(text, i);
}

// Length of the well-formed UTF-8 sequence starting at s[i] (no overlongs, no surrogates,
// nothing above U+10FFFF), or 0.
std::size_t utf8_length(std::string_view s, std::size_t i) {
    const auto b0 = static_cast<std::uint8_t>(s[i]);
    if (b0 < 0x80) return 1;
    std::size_t n;
    std::uint32_t cp;
    std::uint32_t min;
    if ((b0 & 0xE0) == 0xC0) {
        n = 2, cp = b0 & 0x1Fu, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        n = 3, cp = b0 & 0x0Fu, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        n = 4, cp = b0 & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (s.size() - i < n) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        const auto b = static_cast<std::uint8_t>(s[i + k]);
        if ((b & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (b & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

std::string escaped_byte(std::uint8_t b) {
    return {'%', kHex[b >> 4], kHex[b & 0x0F]};
}

std::string hash_suffix(std::string_view component) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(component.data(), component.size(), md, &len, EVP_sha256(), nullptr) != 1)
        throw std::bad_alloc();
    std::string out(kHashMark);
    for (std::size_t i = 0; i < kHashDigits / 2; ++i) {
        out.push_back(kHex[md[i] >> 4]);
        out.push_back(kHex[md[i] & 0x0F]);
    }
    return out;
}

// One label component as one file name. Built from pieces (a character or an escape) so a
// name that is too long is cut between pieces.
std::string escape_component(std::string_view c) {
    if (c.empty()) return "%";
    std::vector<std::string> pieces;
    for (std::size_t i = 0; i < c.size();) {
        const auto b = static_cast<std::uint8_t>(c[i]);
        if (b < 0x20 || b == 0x7F || b == '/') {
            pieces.push_back(escaped_byte(b));
            ++i;
        } else if (b >= 0x80) {
            const std::size_t n = utf8_length(c, i);
            if (n == 0) {
                pieces.push_back(escaped_byte(b));
                ++i;
            } else {
                pieces.emplace_back(c.substr(i, n));
                i += n;
            }
        } else if (b == '%' && (c.size() == 1 || escape_follows(c, i))) {
            pieces.push_back(escaped_byte(b));
            ++i;
        } else {
            pieces.emplace_back(1, static_cast<char>(b));
            ++i;
        }
    }
    if (c == "." || c == "..") pieces.front() = escaped_byte('.');
    std::string out;
    for (const auto& p : pieces) out += p;
    if (out.size() <= kNameMax) return out;
    const std::size_t budget = kNameMax - kHashMark.size() - kHashDigits;
    out.clear();
    for (const auto& p : pieces) {
        if (out.size() + p.size() > budget) break;
        out += p;
    }
    return out + hash_suffix(c);
}

std::vector<std::string_view> split(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        const std::size_t slash = s.find('/', start);
        if (slash == std::string_view::npos) {
            out.push_back(s.substr(start));
            return out;
        }
        out.push_back(s.substr(start, slash - start));
        start = slash + 1;
    }
}

bool clean_component(std::string_view c) {
    return !c.empty() && c != "." && c != "..";
}

std::string unescape_component(std::string_view name) {
    if (name == "%") return {};
    std::string out;
    for (std::size_t i = 0; i < name.size();) {
        if (name[i] == '%' && i + 1 < name.size() && name[i + 1] == '~')
            throw Error(ErrorKind::NameTooLong,
                        "a shortened name stands for a longer label and cannot be created");
        if (token_at(name, i)) {
            out.push_back(static_cast<char>(hex_value(name[i + 1]) << 4 | hex_value(name[i + 2])));
            i += 3;
        } else {
            out.push_back(name[i++]);
        }
    }
    return out;
}

}  // namespace

std::string label_to_path(std::string_view label) {
    bool folder = false;
    std::string_view body = label;
    if (label.size() > 1 && label.back() == '/') {
        folder = true;
        body.remove_suffix(1);
    }
    std::vector<std::string_view> components = split(body);
    bool clean = true;
    for (std::string_view c : components) clean = clean && clean_component(c);
    if (!clean) {
        // Not a folder path: one file at the top of the area, its slashes escaped.
        components = {label};
        folder = false;
    }
    std::string out;
    for (std::size_t i = 0; i < components.size(); ++i) {
        if (i > 0) out.push_back('/');
        out += escape_component(components[i]);
    }
    if (folder) out.push_back('/');
    return out;
}

std::string path_to_label(std::string_view path) {
    std::string_view body = path;
    bool folder = false;
    if (!body.empty() && body.back() == '/') {
        folder = true;
        body.remove_suffix(1);
    }
    if (body.empty()) throw Error(ErrorKind::Invalid, "empty name");
    std::string label;
    bool first = true;
    for (std::string_view name : split(body)) {
        if (!clean_component(name) || name.find('\0') != std::string_view::npos)
            throw Error(ErrorKind::Invalid, "invalid path component");
        if (name.size() > kNameMax) throw Error(ErrorKind::NameTooLong, "name too long");
        if (!first) label.push_back('/');
        first = false;
        label += unescape_component(name);
    }
    if (folder) label.push_back('/');
    if (label.size() > kMaxLabelBytes)
        throw Error(ErrorKind::NameTooLong, "path is longer than a card label may be (" +
                                                std::to_string(kMaxLabelBytes) + " bytes)");
    if (label_to_path(label) != path)
        throw Error(ErrorKind::Invalid, "name is not in canonical form (stray escape)");
    return label;
}

}  // namespace vscard::pkcs15
