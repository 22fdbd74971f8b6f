// EF.DIR, EF.ODF, EF.TokenInfo, paths, common object attributes and the directory-file
// plumbing shared by the object directory files (objects.cpp).
#include "pkcs15/pkcs15.hpp"

#include <algorithm>

#include "pkcs15/codec.hpp"

namespace vscard::pkcs15 {

using namespace asn1;
using detail::corrupt;
using detail::invalid;

namespace {

std::string hex_of(ByteView v, bool upper) {
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    std::string out;
    out.reserve(v.size() * 2);
    for (std::uint8_t b : v) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0x0F]);
    }
    return out;
}

Bytes concat(const std::vector<ByteView>& parts, std::size_t from, std::size_t to) {
    Bytes out;
    for (std::size_t i = from; i < to; ++i) out.insert(out.end(), parts[i].begin(), parts[i].end());
    return out;
}

}  // namespace

// ---- Path ----------------------------------------------------------------------------------

Path Path::from_hex(std::string_view hex) {
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    if (hex.size() % 2 != 0) invalid("path has an odd number of hex digits");
    Path p;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        const int hi = nibble(hex[i]);
        const int lo = nibble(hex[i + 1]);
        if (hi < 0 || lo < 0) invalid("path is not hexadecimal");
        p.value.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
    }
    return p;
}

std::string Path::to_hex() const {
    return hex_of(value, true);
}

std::string TokenInfo::serial_hex() const {
    return hex_of(serial_number, false);
}

namespace detail {

std::optional<Path> path_from(const P15_PATH* p) {
    if (p == nullptr) return std::nullopt;
    Path out;
    if (p->ext != nullptr) {
        if (p->path != nullptr) return std::nullopt;  // both forms at once: keep the entry raw
        out.aid = bytes_of(p->ext->aid);
        out.value = bytes_of(p->ext->path);
        if (out.aid.empty()) return std::nullopt;
    } else {
        out.value = bytes_of(p->path);
    }
    if (p->index != nullptr) {
        out.index = int_of(p->index);
        if (!out.index) return std::nullopt;
    }
    if (p->length != nullptr) {
        out.length = int_of(p->length);
        if (!out.length) return std::nullopt;
    }
    return out;
}

void fill_path(P15_PATH* dst, const Path& src) {
    if (!src.aid.empty()) {
        dst->ext = static_cast<P15_PATH_EXT*>(new_item(ASN1_ITEM_rptr(P15_PATH_EXT)));
        set_octets(dst->ext->aid, src.aid);
        set_octets(dst->ext->path, src.value);
    } else {
        // Always present, even empty, as OpenSC writes it.
        dst->path = new_octets(src.value);
    }
    if (src.index) dst->index = new_int(*src.index);
    if (src.length) dst->length = new_int(*src.length);
}

std::optional<CommonObjectAttributes> common_from(const P15_COA* c) {
    CommonObjectAttributes out;
    out.label = string_of(c->label);
    const auto flags = bits_of(c->flags);
    if (!flags) return std::nullopt;
    out.flags = *flags;
    out.auth_id = bytes_of(c->auth_id);
    if (c->user_consent != nullptr) {
        out.user_consent = int_of(c->user_consent);
        if (!out.user_consent) return std::nullopt;
    }
    if (c->acl != nullptr) out.access_control_rules = der::wrap(0x30, contents_of(c->acl));
    return out;
}

void fill_common(P15_COA* dst, const CommonObjectAttributes& src) {
    if (!src.label.empty()) dst->label = new_utf8(src.label);
    if (src.flags != 0) dst->flags = new_bits(src.flags);
    if (!src.auth_id.empty()) dst->auth_id = new_octets(src.auth_id);
    if (src.user_consent) dst->user_consent = new_int(*src.user_consent);
    if (!src.access_control_rules.empty()) {
        der::Element e;
        try {
            der::validate(src.access_control_rules);
            e = der::read(src.access_control_rules);
        } catch (const Error&) {
            invalid("access control rules are not DER");
        }
        if (e.cls != 0 || e.tag != 16) invalid("access control rules are not a SEQUENCE");
        dst->acl = new_any_stack(e.content);
    }
}

void pad(Bytes& out, const Layout& layout, const char* file) {
    if (layout.pad_to == 0) return;
    if (out.size() > layout.pad_to)
        throw Error(ErrorKind::NoSpace, std::string("PKCS#15: ") + file + " needs " +
                                            std::to_string(out.size()) + " bytes, the file holds " +
                                            std::to_string(layout.pad_to));
    out.resize(layout.pad_to, layout.pad_byte);
}

}  // namespace detail

// ---- EF.DIR --------------------------------------------------------------------------------

namespace {

std::optional<DirRecord> decode_dir(ByteView der) {
    auto v = decode<P15_DIR_RECORD>(der, ASN1_ITEM_rptr(P15_DIR_ENTRY));
    if (!v) return std::nullopt;
    DirRecord r;
    r.aid = bytes_of(v->aid);
    if (v->label != nullptr) r.label = string_of(v->label);
    r.path = bytes_of(v->path);
    if (v->ddo != nullptr) r.ddo = contents_of(v->ddo);
    return r;
}

Bytes encode_dir(const DirRecord& r) {
    auto v = make<P15_DIR_RECORD>(ASN1_ITEM_rptr(P15_DIR_ENTRY));
    set_octets(v->aid, r.aid);
    if (r.label) v->label = new_utf8(*r.label);
    if (!r.path.empty()) v->path = new_octets(r.path);
    if (!r.ddo.empty()) v->ddo = new_any_stack(r.ddo);
    return encode_item(v.get(), ASN1_ITEM_rptr(P15_DIR_ENTRY));
}

}  // namespace

Entries<DirRecord> parse_dir(ByteView file) {
    return detail::parse_entries<DirRecord>(file, decode_dir);
}

Bytes serialize_dir(const Entries<DirRecord>& entries, Layout layout) {
    return detail::serialize_entries(entries, layout, "EF.DIR", decode_dir, encode_dir);
}

// ---- EF.ODF --------------------------------------------------------------------------------

namespace {

P15_PATH*& odf_slot(P15_ODF_ENTRY* e, int type) {
    switch (type) {
        case 0:
            return e->d.prkdf;
        case 1:
            return e->d.pukdf;
        case 2:
            return e->d.trusted_pukdf;
        case 3:
            return e->d.skdf;
        case 4:
            return e->d.cdf;
        case 5:
            return e->d.trusted_cdf;
        case 6:
            return e->d.useful_cdf;
        case 7:
            return e->d.dodf;
        default:
            return e->d.aodf;
    }
}

std::optional<OdfEntry> decode_odf(ByteView der) {
    auto v = decode<P15_ODF_ENTRY>(der, ASN1_ITEM_rptr(P15_ODF_ENTRY));
    if (!v || v->type < 0 || v->type > 8) return std::nullopt;
    auto path = detail::path_from(odf_slot(v.get(), v->type));
    if (!path) return std::nullopt;
    return OdfEntry{static_cast<DfType>(v->type), std::move(*path), {}};
}

Bytes encode_odf(const OdfEntry& e) {
    const int type = static_cast<int>(e.type);
    if (type < 0 || type > 8) invalid("unknown ODF entry type");
    auto v = make<P15_ODF_ENTRY>(ASN1_ITEM_rptr(P15_ODF_ENTRY));
    v->type = type;
    P15_PATH*& slot = odf_slot(v.get(), type);
    slot = static_cast<P15_PATH*>(new_item(ASN1_ITEM_rptr(P15_PATH)));
    detail::fill_path(slot, e.path);
    return encode_item(v.get(), ASN1_ITEM_rptr(P15_ODF_ENTRY));
}

}  // namespace

Entries<OdfEntry> parse_odf(ByteView file) {
    return detail::parse_entries<OdfEntry>(file, decode_odf);
}

Bytes serialize_odf(const Entries<OdfEntry>& entries, Layout layout) {
    return detail::serialize_entries(entries, layout, "EF.ODF", decode_odf, encode_odf);
}

// ---- EF.TokenInfo --------------------------------------------------------------------------

namespace {

constexpr std::size_t kTokenInfoCoreFields = 5;  // version .. tokenflags
constexpr std::size_t kMaxTokenInfoFields = 64;

std::optional<TokenInfo> token_info_from(const P15_TOKEN_INFO* v) {
    TokenInfo t;
    const auto version = int_of(v->version);
    const auto flags = bits_of(v->flags);
    if (!version || !flags) return std::nullopt;
    t.version = *version;
    t.token_flags = *flags;
    t.serial_number = bytes_of(v->serial);
    if (v->manufacturer != nullptr) t.manufacturer_id = string_of(v->manufacturer);
    if (v->label != nullptr) t.label = string_of(v->label);
    return t;
}

}  // namespace

TokenInfo parse_token_info(ByteView file) {
    const der::Element e = der::read(file);
    der::validate(e.whole);
    const ByteView after = file.subspan(e.whole.size());
    if (!std::all_of(after.begin(), after.end(), der::is_padding))
        corrupt("EF.TokenInfo has bytes after its SEQUENCE");
    if (e.cls != 0 || e.tag != 16) corrupt("EF.TokenInfo is not a SEQUENCE");
    const std::vector<ByteView> fields = der::children(e.content);
    if (fields.size() > kMaxTokenInfoFields) corrupt("EF.TokenInfo has too many fields");
    // The template models the leading fields; whatever follows them (optional fields after
    // tokenflags, extensions of later versions) is kept byte for byte in `tail`.
    for (std::size_t k = std::min(fields.size(), kTokenInfoCoreFields); k > 0; --k) {
        const Bytes core = der::wrap(0x30, concat(fields, 0, k));
        auto v = decode<P15_TOKEN_INFO>(core, ASN1_ITEM_rptr(P15_TOKEN_INFO));
        if (!v) continue;
        auto t = token_info_from(v.get());
        if (!t) corrupt("EF.TokenInfo holds values out of range");
        t->tail = concat(fields, k, fields.size());
        return std::move(*t);
    }
    corrupt("EF.TokenInfo does not match ISO/IEC 7816-15");
}

Bytes serialize_token_info(const TokenInfo& info, Layout layout) {
    auto v = make<P15_TOKEN_INFO>(ASN1_ITEM_rptr(P15_TOKEN_INFO));
    set_int(v->version, info.version);
    if (!info.serial_number.empty()) v->serial = new_octets(info.serial_number);
    if (info.manufacturer_id) v->manufacturer = new_utf8(*info.manufacturer_id);
    if (info.label) v->label = new_utf8(*info.label);
    set_bits(v->flags, info.token_flags);
    const Bytes core = encode_item(v.get(), ASN1_ITEM_rptr(P15_TOKEN_INFO));
    const ByteView core_contents = der::read(core).content;
    Bytes contents(core_contents.begin(), core_contents.end());
    try {
        der::children(info.tail);
    } catch (const Error&) {
        invalid("TokenInfo tail is not a sequence of DER elements");
    }
    contents.insert(contents.end(), info.tail.begin(), info.tail.end());
    Bytes out = der::wrap(0x30, contents);
    detail::pad(out, layout, "EF.TokenInfo");
    return out;
}

// ---- vscard objects and fuzzing -------------------------------------------------------------

DataObject make_vscard_object(std::string label, Bytes auth_id, Path path) {
    DataObject d;
    d.common.label = std::move(label);
    d.common.flags = kObjectPrivate | kObjectModifiable;
    d.common.auth_id = std::move(auth_id);
    d.app_name = std::string(kVscardAppName);
    d.path = std::move(path);
    return d;
}

void parse_everything(ByteView data) {
    auto attempt = [](auto&& fn) {
        try {
            fn();
        } catch (const Error&) {
        }
    };
    attempt([&] { serialize_dir(parse_dir(data)); });
    attempt([&] { serialize_odf(parse_odf(data)); });
    attempt([&] { serialize_token_info(parse_token_info(data)); });
    attempt([&] { serialize_aodf(parse_aodf(data)); });
    attempt([&] { serialize_dodf(parse_dodf(data)); });
    attempt([&] { serialize_cdf(parse_cdf(data)); });
    attempt([&] { serialize_prkdf(parse_prkdf(data)); });
    attempt([&] { serialize_pukdf(parse_pukdf(data)); });
    attempt([&] { serialize_skdf(parse_skdf(data)); });
    const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
    attempt([&] { path_to_label(label_to_path(text)); });
    attempt([&] { label_to_path(path_to_label(text)); });
}

}  // namespace vscard::pkcs15
