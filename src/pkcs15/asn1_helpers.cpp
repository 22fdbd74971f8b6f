// The d2i/i2d boundary of the PKCS#15 templates and conversions between OpenSSL's ASN.1
// primitives and the C++ model.
#include <openssl/err.h>
#include <openssl/objects.h>

#include <climits>
#include <new>
#include <string>
#include <vector>

#include "error.hpp"
#include "pkcs15/asn1_types.hpp"
#include "pkcs15/der.hpp"

namespace vscard::pkcs15::asn1 {

// ---- d2i / i2d -----------------------------------------------------------------------------

namespace {

[[noreturn]] void invalid(const std::string& what) {
    throw Error(ErrorKind::Invalid, "PKCS#15: " + what);
}

// OpenSSL failures here are expected outcomes (bytes that do not match a template); keep
// them out of the thread's error queue so unrelated code does not see them.
struct ErrMark {
    ErrMark() { ERR_set_mark(); }
    ~ErrMark() { ERR_pop_to_mark(); }
};

template <typename T>
T* check_alloc(T* p) {
    if (p == nullptr) throw std::bad_alloc();
    return p;
}

}  // namespace

void* new_item(const ASN1_ITEM* it) {
    return check_alloc(ASN1_item_new(it));
}

void* decode_item(ByteView der, const ASN1_ITEM* it) {
    if (der.size() > static_cast<std::size_t>(LONG_MAX)) return nullptr;
    ErrMark mark;
    const unsigned char* p = der.data();
    ASN1_VALUE* v = ASN1_item_d2i(nullptr, &p, static_cast<long>(der.size()), it);
    if (v == nullptr) return nullptr;
    if (p != der.data() + der.size()) {
        ASN1_item_free(v, it);
        return nullptr;
    }
    return v;
}

Bytes encode_item(const void* value, const ASN1_ITEM* it) {
    ErrMark mark;
    unsigned char* out = nullptr;
    const int n = ASN1_item_i2d(static_cast<const ASN1_VALUE*>(value), &out, it);
    if (n <= 0 || out == nullptr) invalid("a value cannot be encoded");
    Bytes result(out, out + n);
    OPENSSL_free(out);
    return result;
}

// ---- primitives ----------------------------------------------------------------------------

Bytes bytes_of(const ASN1_STRING* s) {
    if (s == nullptr) return {};
    const unsigned char* d = ASN1_STRING_get0_data(s);
    return Bytes(d, d + ASN1_STRING_length(s));
}

std::string string_of(const ASN1_STRING* s) {
    if (s == nullptr) return {};
    const unsigned char* d = ASN1_STRING_get0_data(s);
    return std::string(reinterpret_cast<const char*>(d),
                       static_cast<std::size_t>(ASN1_STRING_length(s)));
}

std::optional<std::int64_t> int_of(const ASN1_INTEGER* i) {
    ErrMark mark;
    int64_t v = 0;
    if (i == nullptr || ASN1_INTEGER_get_int64(&v, i) != 1) return std::nullopt;
    return v;
}

std::optional<std::int64_t> enum_of(const ASN1_ENUMERATED* e) {
    ErrMark mark;
    int64_t v = 0;
    if (e == nullptr || ASN1_ENUMERATED_get_int64(&v, e) != 1) return std::nullopt;
    return v;
}

std::optional<std::uint32_t> bits_of(const ASN1_BIT_STRING* b) {
    if (b == nullptr) return 0u;
    const int len = ASN1_STRING_length(b);
    const unsigned char* d = ASN1_STRING_get0_data(b);
    for (int i = 4; i < len; ++i)
        if (d[i] != 0) return std::nullopt;  // a flag beyond bit 31
    std::uint32_t v = 0;
    for (int n = 0; n < 32; ++n)
        if (ASN1_BIT_STRING_get_bit(b, n)) v |= 1u << n;
    return v;
}

std::optional<std::string> oid_of(const ASN1_OBJECT* o) {
    if (o == nullptr) return std::string();
    ErrMark mark;
    const int n = OBJ_obj2txt(nullptr, 0, o, 1);
    if (n <= 0) return std::nullopt;
    std::vector<char> buf(static_cast<std::size_t>(n) + 1);
    if (OBJ_obj2txt(buf.data(), static_cast<int>(buf.size()), o, 1) != n) return std::nullopt;
    return std::string(buf.data(), static_cast<std::size_t>(n));
}

void set_octets(ASN1_STRING* s, ByteView v) {
    if (v.size() > static_cast<std::size_t>(INT_MAX)) invalid("string too long");
    if (ASN1_STRING_set(s, v.data(), static_cast<int>(v.size())) != 1) throw std::bad_alloc();
}

ASN1_OCTET_STRING* new_octets(ByteView v) {
    ASN1_OCTET_STRING* s = check_alloc(ASN1_OCTET_STRING_new());
    try {
        set_octets(s, v);
    } catch (...) {
        ASN1_OCTET_STRING_free(s);
        throw;
    }
    return s;
}

ASN1_UTF8STRING* new_utf8(std::string_view text) {
    ASN1_UTF8STRING* s = check_alloc(ASN1_UTF8STRING_new());
    try {
        set_octets(s, view_of(text));
    } catch (...) {
        ASN1_UTF8STRING_free(s);
        throw;
    }
    return s;
}

void set_int(ASN1_INTEGER* i, std::int64_t v) {
    if (ASN1_INTEGER_set_int64(i, v) != 1) throw std::bad_alloc();
}

void set_enum(ASN1_ENUMERATED* e, std::int64_t v) {
    if (ASN1_ENUMERATED_set_int64(e, v) != 1) throw std::bad_alloc();
}

ASN1_INTEGER* new_int(std::int64_t v) {
    ASN1_INTEGER* i = check_alloc(ASN1_INTEGER_new());
    if (ASN1_INTEGER_set_int64(i, v) != 1) {
        ASN1_INTEGER_free(i);
        throw std::bad_alloc();
    }
    return i;
}

void set_bits(ASN1_BIT_STRING* b, std::uint32_t v) {
    // set_bit trims trailing zero octets, and i2d then drops trailing zero bits: the minimal
    // named-bit encoding OpenSC writes (03 02 07 80 for bit 0 alone, 03 01 00 for none).
    set_octets(b, {});
    for (int n = 0; n < 32; ++n)
        if (ASN1_BIT_STRING_set_bit(b, n, (v >> n) & 1u) != 1) throw std::bad_alloc();
}

ASN1_BIT_STRING* new_bits(std::uint32_t v) {
    ASN1_BIT_STRING* b = check_alloc(ASN1_BIT_STRING_new());
    try {
        set_bits(b, v);
    } catch (...) {
        ASN1_BIT_STRING_free(b);
        throw;
    }
    return b;
}

ASN1_OBJECT* new_oid(const std::string& dotted) {
    ErrMark mark;
    bool ok = !dotted.empty();
    for (char c : dotted) ok = ok && ((c >= '0' && c <= '9') || c == '.');
    ASN1_OBJECT* o = ok ? OBJ_txt2obj(dotted.c_str(), 1) : nullptr;
    if (o == nullptr) invalid("not a dotted-decimal OID: " + dotted);
    return o;
}

Bytes contents_of(const STACK_OF(ASN1_TYPE) * elements) {
    Bytes out;
    for (int i = 0; i < sk_ASN1_TYPE_num(elements); ++i) {
        Bytes one = der_of(sk_ASN1_TYPE_value(elements, i));
        out.insert(out.end(), one.begin(), one.end());
    }
    return out;
}

STACK_OF(ASN1_TYPE) * new_any_stack(ByteView contents) {
    STACK_OF(ASN1_TYPE)* sk = check_alloc(sk_ASN1_TYPE_new_null());
    try {
        std::vector<ByteView> parts;
        try {
            parts = der::children(contents);
        } catch (const Error&) {
            invalid("opaque attribute is not DER");
        }
        for (ByteView part : parts) {
            ASN1_TYPE* t = new_any(part);
            if (sk_ASN1_TYPE_push(sk, t) <= 0) {
                ASN1_TYPE_free(t);
                throw std::bad_alloc();
            }
        }
    } catch (...) {
        sk_ASN1_TYPE_pop_free(sk, ASN1_TYPE_free);
        throw;
    }
    return sk;
}

Bytes der_of(const ASN1_TYPE* any) {
    return any == nullptr ? Bytes() : encode_item(any, ASN1_ITEM_rptr(ASN1_ANY));
}

ASN1_TYPE* new_any(ByteView der) {
    try {
        der::validate(der);
    } catch (const Error&) {
        invalid("opaque attribute is not DER");
    }
    auto* t = static_cast<ASN1_TYPE*>(decode_item(der, ASN1_ITEM_rptr(ASN1_ANY)));
    if (t == nullptr) invalid("opaque attribute cannot be decoded");
    return t;
}

}  // namespace vscard::pkcs15::asn1
