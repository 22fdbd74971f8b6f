// Object directory files: AODF (PINs), DODF (data objects), CDF (certificates), PrKDF, PuKDF
// and SKDF (keys). Field order and presence rules follow OpenSC's encoders: optional fields
// are written only when set, BOOLEANs only when they differ from their DEFAULT.
#include <string>
#include <utility>

#include "pkcs15/codec.hpp"

namespace vscard::pkcs15 {

using namespace asn1;
using detail::invalid;

namespace {

// A Name or access-control SEQUENCE given as DER: its contents as SEQUENCE OF ANY.
STACK_OF(ASN1_TYPE) * sequence_stack(ByteView der, const char* what) {
    der::Element e;
    try {
        der::validate(der);
        e = der::read(der);
    } catch (const Error&) {
        invalid(std::string(what) + " is not DER");
    }
    if (e.cls != 0 || e.tag != 16) invalid(std::string(what) + " is not a SEQUENCE");
    return new_any_stack(e.content);
}

// ---- AODF ----------------------------------------------------------------------------------

std::optional<PinObject> decode_pin(ByteView der) {
    auto v = decode<P15_PIN_OBJ>(der, ASN1_ITEM_rptr(P15_PIN_OBJ));
    if (!v || v->subclass != nullptr) return std::nullopt;
    auto common = detail::common_from(v->common);
    const P15_PIN_ATTR* a = v->attrs;
    const auto flags = bits_of(a->flags);
    const auto type = enum_of(a->type);
    const auto min = int_of(a->min_length);
    const auto stored = int_of(a->stored_length);
    if (!common || !flags || !type || !min || !stored) return std::nullopt;
    PinObject p;
    p.common = std::move(*common);
    p.auth_id = bytes_of(v->klass->auth_id);
    p.pin_flags = *flags;
    p.pin_type = *type;
    p.min_length = *min;
    p.stored_length = *stored;
    if (a->max_length != nullptr && !(p.max_length = int_of(a->max_length))) return std::nullopt;
    if (a->reference != nullptr && !(p.reference = int_of(a->reference))) return std::nullopt;
    if (a->pad_char != nullptr) {
        const Bytes pad = bytes_of(a->pad_char);
        if (pad.size() != 1) return std::nullopt;
        p.pad_char = pad[0];
    }
    if (a->last_change != nullptr) p.last_pin_change = string_of(a->last_change);
    if (a->path != nullptr && !(p.path = detail::path_from(a->path))) return std::nullopt;
    return p;
}

Bytes encode_pin(const PinObject& p) {
    auto v = make<P15_PIN_OBJ>(ASN1_ITEM_rptr(P15_PIN_OBJ));
    detail::fill_common(v->common, p.common);
    set_octets(v->klass->auth_id, p.auth_id);
    P15_PIN_ATTR* a = v->attrs;
    set_bits(a->flags, p.pin_flags);
    set_enum(a->type, p.pin_type);
    set_int(a->min_length, p.min_length);
    set_int(a->stored_length, p.stored_length);
    if (p.max_length) a->max_length = new_int(*p.max_length);
    if (p.reference) a->reference = new_int(*p.reference);
    if (p.pad_char) {
        const std::uint8_t c = *p.pad_char;
        a->pad_char = new_octets(ByteView(&c, 1));
    }
    if (p.last_pin_change) {
        a->last_change = ASN1_GENERALIZEDTIME_new();
        if (a->last_change == nullptr) throw std::bad_alloc();
        set_octets(a->last_change, view_of(*p.last_pin_change));
    }
    if (p.path) {
        a->path = static_cast<P15_PATH*>(new_item(ASN1_ITEM_rptr(P15_PATH)));
        detail::fill_path(a->path, *p.path);
    }
    return encode_item(v.get(), ASN1_ITEM_rptr(P15_PIN_OBJ));
}

// ---- DODF ----------------------------------------------------------------------------------

std::optional<DataObject> decode_data(ByteView der) {
    auto v = decode<P15_DATA_OBJ>(der, ASN1_ITEM_rptr(P15_DATA_OBJ));
    if (!v || v->subclass != nullptr) return std::nullopt;
    auto common = detail::common_from(v->common);
    auto oid = oid_of(v->klass->app_oid);
    auto path = detail::path_from(v->value);
    if (!common || !oid || !path) return std::nullopt;
    DataObject d;
    d.common = std::move(*common);
    d.app_name = string_of(v->klass->app_name);
    d.app_oid = std::move(*oid);
    d.path = std::move(*path);
    return d;
}

Bytes encode_data(const DataObject& d) {
    auto v = make<P15_DATA_OBJ>(ASN1_ITEM_rptr(P15_DATA_OBJ));
    detail::fill_common(v->common, d.common);
    if (!d.app_name.empty()) v->klass->app_name = new_utf8(d.app_name);
    if (!d.app_oid.empty()) v->klass->app_oid = new_oid(d.app_oid);
    detail::fill_path(v->value, d.path);
    return encode_item(v.get(), ASN1_ITEM_rptr(P15_DATA_OBJ));
}

// ---- CDF -----------------------------------------------------------------------------------

std::optional<CertObject> decode_cert(ByteView der) {
    auto v = decode<P15_CERT_OBJ>(der, ASN1_ITEM_rptr(P15_CERT_OBJ));
    if (!v || v->subclass != nullptr) return std::nullopt;
    auto common = detail::common_from(v->common);
    auto path = detail::path_from(v->attrs->value);
    if (!common || !path) return std::nullopt;
    CertObject c;
    c.common = std::move(*common);
    c.id = bytes_of(v->klass->id);
    c.authority = v->klass->authority != 0;
    c.path = std::move(*path);
    const P15_X509_ATTR* a = v->attrs;
    if (a->subject != nullptr) c.subject = der::wrap(0x30, contents_of(a->subject));
    if (a->issuer != nullptr) c.issuer = der::wrap(0x30, contents_of(a->issuer));
    if (a->serial != nullptr) c.serial = encode_item(a->serial, ASN1_ITEM_rptr(ASN1_INTEGER));
    return c;
}

Bytes encode_cert(const CertObject& c) {
    auto v = make<P15_CERT_OBJ>(ASN1_ITEM_rptr(P15_CERT_OBJ));
    detail::fill_common(v->common, c.common);
    set_octets(v->klass->id, c.id);
    v->klass->authority = c.authority ? 0xFF : 0;  // DER TRUE; FALSE is the default, omitted
    P15_X509_ATTR* a = v->attrs;
    detail::fill_path(a->value, c.path);
    if (!c.subject.empty()) a->subject = sequence_stack(c.subject, "certificate subject");
    if (!c.issuer.empty()) a->issuer = sequence_stack(c.issuer, "certificate issuer");
    if (!c.serial.empty()) {
        try {
            der::validate(c.serial);
        } catch (const Error&) {
            invalid("certificate serial is not DER");
        }
        a->serial = static_cast<ASN1_INTEGER*>(decode_item(c.serial, ASN1_ITEM_rptr(ASN1_INTEGER)));
        if (a->serial == nullptr) invalid("certificate serial is not an INTEGER");
    }
    return encode_item(v.get(), ASN1_ITEM_rptr(P15_CERT_OBJ));
}

// ---- keys ----------------------------------------------------------------------------------

Bytes integer_der(std::int64_t v) {
    Owned<ASN1_INTEGER> i(new_int(v), ItemDeleter{ASN1_ITEM_rptr(ASN1_INTEGER)});
    return encode_item(i.get(), ASN1_ITEM_rptr(ASN1_INTEGER));
}

bool is_secret(KeyKind k) {
    return k == KeyKind::SecretGeneric || k == KeyKind::SecretDes || k == KeyKind::SecretDes2 ||
           k == KeyKind::SecretDes3;
}

// keyLen from CommonSecretKeyAttributes: OpenSC writes [0] { INTEGER }, the standard's
// explicit form is [0] { SEQUENCE { INTEGER } }; both are read.
std::optional<std::int64_t> secret_key_length(const STACK_OF(ASN1_TYPE) * sub, bool& ok) {
    ok = true;
    if (sub == nullptr || sk_ASN1_TYPE_num(sub) == 0) return std::nullopt;
    ok = false;
    if (sk_ASN1_TYPE_num(sub) != 1) return std::nullopt;
    const ASN1_TYPE* t = sk_ASN1_TYPE_value(sub, 0);
    if (t->type == V_ASN1_INTEGER) {
        auto len = int_of(t->value.integer);
        ok = len.has_value();
        return len;
    }
    if (t->type != V_ASN1_SEQUENCE) return std::nullopt;
    const Bytes seq = der_of(t);
    auto inner = decode<STACK_OF(ASN1_TYPE)>(seq, ASN1_ITEM_rptr(ASN1_SEQUENCE_ANY));
    if (!inner || sk_ASN1_TYPE_num(inner.get()) != 1) return std::nullopt;
    const ASN1_TYPE* i = sk_ASN1_TYPE_value(inner.get(), 0);
    if (i->type != V_ASN1_INTEGER) return std::nullopt;
    auto len = int_of(i->value.integer);
    ok = len.has_value();
    return len;
}

// Common part of every key object: CommonObjectAttributes, CommonKeyAttributes, [0].
template <typename Obj>
std::optional<KeyObject> key_base_from(const Obj* o, KeyKind kind) {
    auto common = detail::common_from(o->common);
    const P15_CKA* k = o->klass;
    const auto usage = bits_of(k->usage);
    const auto access = bits_of(k->access_flags);
    if (!common || !usage || !access) return std::nullopt;
    KeyObject key;
    key.kind = kind;
    key.common = std::move(*common);
    key.id = bytes_of(k->id);
    key.usage = *usage;
    key.native = k->native != 0;
    key.access_flags = *access;
    if (k->key_reference != nullptr && !(key.key_reference = int_of(k->key_reference)))
        return std::nullopt;
    if (k->alg_refs != nullptr) {
        for (int i = 0; i < sk_ASN1_INTEGER_num(k->alg_refs); ++i) {
            const auto ref = int_of(sk_ASN1_INTEGER_value(k->alg_refs, i));
            if (!ref) return std::nullopt;
            key.alg_references.push_back(*ref);
        }
    }
    if (is_secret(kind)) {
        bool ok = false;
        key.key_size = secret_key_length(o->subclass, ok);
        if (!ok) return std::nullopt;
    } else if (o->subclass != nullptr) {
        key.subclass = contents_of(o->subclass);
        if (key.subclass.empty()) return std::nullopt;  // "[0] {}" would not come back
    }
    return key;
}

template <typename Obj>
void fill_key_base(Obj* o, const KeyObject& key) {
    detail::fill_common(o->common, key.common);
    P15_CKA* k = o->klass;
    set_octets(k->id, key.id);
    set_bits(k->usage, key.usage);
    k->native = key.native ? 0xFF : 0;  // TRUE is the default and then omitted
    if (key.access_flags != 0) k->access_flags = new_bits(key.access_flags);
    if (key.key_reference) k->key_reference = new_int(*key.key_reference);
    if (!key.alg_references.empty()) {
        k->alg_refs = sk_ASN1_INTEGER_new_null();
        if (k->alg_refs == nullptr) throw std::bad_alloc();
        for (std::int64_t ref : key.alg_references) {
            ASN1_INTEGER* i = new_int(ref);
            if (sk_ASN1_INTEGER_push(k->alg_refs, i) <= 0) {
                ASN1_INTEGER_free(i);
                throw std::bad_alloc();
            }
        }
    }
    if (is_secret(key.kind)) {
        if (!key.subclass.empty()) invalid("secret keys carry their length in key_size");
        // OpenSC's layout of CommonSecretKeyAttributes: [0] { INTEGER keyLen }.
        if (key.key_size) o->subclass = new_any_stack(integer_der(*key.key_size));
    } else if (!key.subclass.empty()) {
        o->subclass = new_any_stack(key.subclass);
    }
}

void set_key_info(ASN1_TYPE*& dst, const KeyObject& key) {
    if (!key.key_info.empty()) dst = new_any(key.key_info);
}

std::optional<KeyObject> rsa_from(const P15_RSA_OBJ* o, KeyKind kind) {
    auto key = key_base_from(o, kind);
    auto path = detail::path_from(o->attrs->value);
    auto bits = int_of(o->attrs->modulus_length);
    if (!key || !path || !bits) return std::nullopt;
    key->path = std::move(*path);
    key->key_size = *bits;
    key->key_info = der_of(o->attrs->key_info);
    return key;
}

P15_RSA_OBJ* new_rsa(const KeyObject& key) {
    if (!key.key_size) invalid("an RSA key needs its modulus length");
    auto o = make<P15_RSA_OBJ>(ASN1_ITEM_rptr(P15_RSA_OBJ));
    fill_key_base(o.get(), key);
    detail::fill_path(o->attrs->value, key.path);
    set_int(o->attrs->modulus_length, *key.key_size);
    set_key_info(o->attrs->key_info, key);
    return o.release();
}

// ---- PrKDF ----

std::optional<KeyObject> decode_prkey(ByteView der) {
    auto v = decode<P15_PRKEY>(der, ASN1_ITEM_rptr(P15_PRKEY));
    if (!v) return std::nullopt;
    if (v->type == 0) return rsa_from(v->d.rsa, KeyKind::PrivateRsa);
    if (v->type != 1) return std::nullopt;
    const P15_EC_PRK_OBJ* o = v->d.ec;
    auto key = key_base_from(o, KeyKind::PrivateEc);
    auto path = detail::path_from(o->attrs->value);
    if (!key || !path) return std::nullopt;
    key->path = std::move(*path);
    if (o->attrs->field_size != nullptr && !(key->key_size = int_of(o->attrs->field_size)))
        return std::nullopt;
    key->key_info = der_of(o->attrs->key_info);
    return key;
}

Bytes encode_prkey(const KeyObject& key) {
    auto v = make<P15_PRKEY>(ASN1_ITEM_rptr(P15_PRKEY));
    if (key.kind == KeyKind::PrivateRsa) {
        v->type = 0;
        v->d.rsa = new_rsa(key);
    } else if (key.kind == KeyKind::PrivateEc) {
        v->type = 1;
        v->d.ec = static_cast<P15_EC_PRK_OBJ*>(new_item(ASN1_ITEM_rptr(P15_EC_PRK_OBJ)));
        fill_key_base(v->d.ec, key);
        detail::fill_path(v->d.ec->attrs->value, key.path);
        if (key.key_size) v->d.ec->attrs->field_size = new_int(*key.key_size);
        set_key_info(v->d.ec->attrs->key_info, key);
    } else {
        invalid("only private RSA and EC keys belong in a PrKDF");
    }
    return encode_item(v.get(), ASN1_ITEM_rptr(P15_PRKEY));
}

// ---- PuKDF ----

std::optional<KeyObject> decode_pukey(ByteView der) {
    auto v = decode<P15_PUKEY>(der, ASN1_ITEM_rptr(P15_PUKEY));
    if (!v) return std::nullopt;
    if (v->type == 0) return rsa_from(v->d.rsa, KeyKind::PublicRsa);
    if (v->type != 1) return std::nullopt;
    const P15_EC_PUK_OBJ* o = v->d.ec;
    auto key = key_base_from(o, KeyKind::PublicEc);
    auto path = detail::path_from(o->attrs->value);
    if (!key || !path) return std::nullopt;
    key->path = std::move(*path);
    key->key_info = der_of(o->attrs->key_info);
    return key;
}

Bytes encode_pukey(const KeyObject& key) {
    auto v = make<P15_PUKEY>(ASN1_ITEM_rptr(P15_PUKEY));
    if (key.kind == KeyKind::PublicRsa) {
        v->type = 0;
        v->d.rsa = new_rsa(key);
    } else if (key.kind == KeyKind::PublicEc) {
        if (key.key_size) invalid("a public EC key entry has no field size");
        v->type = 1;
        v->d.ec = static_cast<P15_EC_PUK_OBJ*>(new_item(ASN1_ITEM_rptr(P15_EC_PUK_OBJ)));
        fill_key_base(v->d.ec, key);
        detail::fill_path(v->d.ec->attrs->value, key.path);
        set_key_info(v->d.ec->attrs->key_info, key);
    } else {
        invalid("only public RSA and EC keys belong in a PuKDF");
    }
    return encode_item(v.get(), ASN1_ITEM_rptr(P15_PUKEY));
}

// ---- SKDF ----

constexpr KeyKind kSecretKinds[] = {KeyKind::SecretGeneric, KeyKind::SecretDes, KeyKind::SecretDes2,
                                    KeyKind::SecretDes3};

P15_SKEY_OBJ*& skey_slot(P15_SKEY* v, int type) {
    switch (type) {
        case 0:
            return v->d.generic;
        case 1:
            return v->d.des;
        case 2:
            return v->d.des2;
        default:
            return v->d.des3;
    }
}

std::optional<KeyObject> decode_skey(ByteView der) {
    auto v = decode<P15_SKEY>(der, ASN1_ITEM_rptr(P15_SKEY));
    if (!v || v->type < 0 || v->type > 3) return std::nullopt;
    const P15_SKEY_OBJ* o = skey_slot(v.get(), v->type);
    auto key = key_base_from(o, kSecretKinds[v->type]);
    if (!key) return std::nullopt;
    if (o->attrs->value != nullptr) {
        auto path = detail::path_from(o->attrs->value);
        if (!path) return std::nullopt;
        key->path = std::move(*path);
    }
    return key;
}

Bytes encode_skey(const KeyObject& key) {
    int type = -1;
    for (int i = 0; i < 4; ++i)
        if (kSecretKinds[i] == key.kind) type = i;
    if (type < 0) invalid("only secret keys belong in an SKDF");
    if (!key.key_info.empty()) invalid("a secret key entry has no keyInfo");
    auto v = make<P15_SKEY>(ASN1_ITEM_rptr(P15_SKEY));
    v->type = type;
    P15_SKEY_OBJ*& o = skey_slot(v.get(), type);
    o = static_cast<P15_SKEY_OBJ*>(new_item(ASN1_ITEM_rptr(P15_SKEY_OBJ)));
    fill_key_base(o, key);
    if (key.path != Path{}) {
        o->attrs->value = static_cast<P15_PATH*>(new_item(ASN1_ITEM_rptr(P15_PATH)));
        detail::fill_path(o->attrs->value, key.path);
    }
    return encode_item(v.get(), ASN1_ITEM_rptr(P15_SKEY));
}

}  // namespace

Entries<PinObject> parse_aodf(ByteView file) {
    return detail::parse_entries<PinObject>(file, decode_pin);
}
Entries<DataObject> parse_dodf(ByteView file) {
    return detail::parse_entries<DataObject>(file, decode_data);
}
Entries<CertObject> parse_cdf(ByteView file) {
    return detail::parse_entries<CertObject>(file, decode_cert);
}
Entries<KeyObject> parse_prkdf(ByteView file) {
    return detail::parse_entries<KeyObject>(file, decode_prkey);
}
Entries<KeyObject> parse_pukdf(ByteView file) {
    return detail::parse_entries<KeyObject>(file, decode_pukey);
}
Entries<KeyObject> parse_skdf(ByteView file) {
    return detail::parse_entries<KeyObject>(file, decode_skey);
}

Bytes serialize_aodf(const Entries<PinObject>& entries, Layout layout) {
    return detail::serialize_entries(entries, layout, "EF.AODF", decode_pin, encode_pin);
}
Bytes serialize_dodf(const Entries<DataObject>& entries, Layout layout) {
    return detail::serialize_entries(entries, layout, "EF.DODF", decode_data, encode_data);
}
Bytes serialize_cdf(const Entries<CertObject>& entries, Layout layout) {
    return detail::serialize_entries(entries, layout, "EF.CDF", decode_cert, encode_cert);
}
Bytes serialize_prkdf(const Entries<KeyObject>& entries, Layout layout) {
    return detail::serialize_entries(entries, layout, "EF.PrKDF", decode_prkey, encode_prkey);
}
Bytes serialize_pukdf(const Entries<KeyObject>& entries, Layout layout) {
    return detail::serialize_entries(entries, layout, "EF.PuKDF", decode_pukey, encode_pukey);
}
Bytes serialize_skdf(const Entries<KeyObject>& entries, Layout layout) {
    return detail::serialize_entries(entries, layout, "EF.SKDF", decode_skey, encode_skey);
}

Bytes encode_entry(const PinObject& pin) {
    return encode_pin(pin);
}
Bytes encode_entry(const DataObject& data) {
    return encode_data(data);
}
Bytes encode_entry(const CertObject& cert) {
    return encode_cert(cert);
}
Bytes encode_entry(const KeyObject& key) {
    switch (key.kind) {
        case KeyKind::PrivateRsa:
        case KeyKind::PrivateEc:
            return encode_prkey(key);
        case KeyKind::PublicRsa:
        case KeyKind::PublicEc:
            return encode_pukey(key);
        default:
            return encode_skey(key);
    }
}

}  // namespace vscard::pkcs15
