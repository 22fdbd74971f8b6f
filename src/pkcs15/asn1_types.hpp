#pragma once
// OpenSSL ASN.1 template types for the PKCS#15 structures (internal to src/pkcs15).
//
// The C structs mirror the ASN.1 of ISO/IEC 7816-15 as OpenSC encodes it. Parts that vscard
// does not interpret but must keep (access control rules, subclass attributes, keyInfo, DDO)
// are SEQUENCE OF ANY / ANY, which OpenSSL re-encodes from the bytes it read.
#include <openssl/asn1.h>
#include <openssl/asn1t.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "secure_bytes.hpp"

namespace vscard::pkcs15::asn1 {

// ---- structures ----------------------------------------------------------------------------

struct P15_PATH_EXT {
    ASN1_OCTET_STRING* aid;  // [APPLICATION 15]
    ASN1_OCTET_STRING* path;
};
struct P15_PATH {
    ASN1_OCTET_STRING* path;  // OPTIONAL since OpenSC accepts pathExtended instead
    ASN1_INTEGER* index;
    ASN1_INTEGER* length;  // [0]
    P15_PATH_EXT* ext;     // [1]
};

struct P15_DIR_RECORD {
    ASN1_OCTET_STRING* aid;     // [APPLICATION 15]
    ASN1_UTF8STRING* label;     // [APPLICATION 16]
    ASN1_OCTET_STRING* path;    // [APPLICATION 17]
    STACK_OF(ASN1_TYPE) * ddo;  // [APPLICATION 19] contents
};

struct P15_ODF_ENTRY {
    int type;  // alternative index == context tag
    union {
        P15_PATH* prkdf;
        P15_PATH* pukdf;
        P15_PATH* trusted_pukdf;
        P15_PATH* skdf;
        P15_PATH* cdf;
        P15_PATH* trusted_cdf;
        P15_PATH* useful_cdf;
        P15_PATH* dodf;
        P15_PATH* aodf;
    } d;
};

// version, serialNumber, manufacturerID, label [0], tokenflags; the rest stays raw.
struct P15_TOKEN_INFO {
    ASN1_INTEGER* version;
    ASN1_OCTET_STRING* serial;
    ASN1_UTF8STRING* manufacturer;
    ASN1_UTF8STRING* label;
    ASN1_BIT_STRING* flags;
};

struct P15_COA {
    ASN1_UTF8STRING* label;
    ASN1_BIT_STRING* flags;
    ASN1_OCTET_STRING* auth_id;
    ASN1_INTEGER* user_consent;
    STACK_OF(ASN1_TYPE) * acl;
};

// DODF
struct P15_CDOA {
    ASN1_UTF8STRING* app_name;
    ASN1_OBJECT* app_oid;
};
struct P15_DATA_OBJ {
    P15_COA* common;
    P15_CDOA* klass;
    STACK_OF(ASN1_TYPE) * subclass;  // [0]
    P15_PATH* value;                 // [1] EXPLICIT, the `indirect path` alternative
};

// AODF
struct P15_CAOA {
    ASN1_OCTET_STRING* auth_id;
};
struct P15_PIN_ATTR {
    ASN1_BIT_STRING* flags;
    ASN1_ENUMERATED* type;
    ASN1_INTEGER* min_length;
    ASN1_INTEGER* stored_length;
    ASN1_INTEGER* max_length;
    ASN1_INTEGER* reference;  // [0]
    ASN1_OCTET_STRING* pad_char;
    ASN1_GENERALIZEDTIME* last_change;
    P15_PATH* path;
};
struct P15_PIN_OBJ {
    P15_COA* common;
    P15_CAOA* klass;
    STACK_OF(ASN1_TYPE) * subclass;
    P15_PIN_ATTR* attrs;  // [1] EXPLICIT
};

// CDF
struct P15_CCA {
    ASN1_OCTET_STRING* id;
    ASN1_BOOLEAN authority;  // DEFAULT FALSE
};
struct P15_X509_ATTR {
    P15_PATH* value;
    STACK_OF(ASN1_TYPE) * subject;
    STACK_OF(ASN1_TYPE) * issuer;  // [0] EXPLICIT
    ASN1_INTEGER* serial;
};
struct P15_CERT_OBJ {
    P15_COA* common;
    P15_CCA* klass;
    STACK_OF(ASN1_TYPE) * subclass;
    P15_X509_ATTR* attrs;
};

// PrKDF, PuKDF, SKDF
struct P15_CKA {
    ASN1_OCTET_STRING* id;
    ASN1_BIT_STRING* usage;
    ASN1_BOOLEAN native;  // DEFAULT TRUE
    ASN1_BIT_STRING* access_flags;
    ASN1_INTEGER* key_reference;
    STACK_OF(ASN1_INTEGER) * alg_refs;  // [1]
};
struct P15_RSA_ATTR {  // private and public RSA keys have the same shape
    P15_PATH* value;
    ASN1_INTEGER* modulus_length;
    ASN1_TYPE* key_info;
};
struct P15_EC_PRK_ATTR {
    P15_PATH* value;
    ASN1_INTEGER* field_size;
    ASN1_TYPE* key_info;
};
struct P15_EC_PUK_ATTR {
    P15_PATH* value;
    ASN1_TYPE* key_info;
};
struct P15_SKEY_ATTR {
    P15_PATH* value;
};
struct P15_RSA_OBJ {
    P15_COA* common;
    P15_CKA* klass;
    STACK_OF(ASN1_TYPE) * subclass;
    P15_RSA_ATTR* attrs;
};
struct P15_EC_PRK_OBJ {
    P15_COA* common;
    P15_CKA* klass;
    STACK_OF(ASN1_TYPE) * subclass;
    P15_EC_PRK_ATTR* attrs;
};
struct P15_EC_PUK_OBJ {
    P15_COA* common;
    P15_CKA* klass;
    STACK_OF(ASN1_TYPE) * subclass;
    P15_EC_PUK_ATTR* attrs;
};
struct P15_SKEY_OBJ {
    P15_COA* common;
    P15_CKA* klass;
    STACK_OF(ASN1_TYPE) * subclass;
    P15_SKEY_ATTR* attrs;
};
struct P15_PRKEY {  // CHOICE { privateRSAKey, privateECKey [0] }
    int type;
    union {
        P15_RSA_OBJ* rsa;
        P15_EC_PRK_OBJ* ec;
    } d;
};
struct P15_PUKEY {  // CHOICE { publicRSAKey, publicECKey [0] }
    int type;
    union {
        P15_RSA_OBJ* rsa;
        P15_EC_PUK_OBJ* ec;
    } d;
};
struct P15_SKEY {  // CHOICE { genericSecretKey, desKey [2], des2Key [3], des3Key [4] }
    int type;
    union {
        P15_SKEY_OBJ* generic;
        P15_SKEY_OBJ* des;
        P15_SKEY_OBJ* des2;
        P15_SKEY_OBJ* des3;
    } d;
};

DECLARE_ASN1_ITEM(P15_PATH_EXT)
DECLARE_ASN1_ITEM(P15_PATH)
DECLARE_ASN1_ITEM(P15_DIR_RECORD)
DECLARE_ASN1_ITEM(P15_DIR_ENTRY)  // [APPLICATION 1] IMPLICIT P15_DIR_RECORD
DECLARE_ASN1_ITEM(P15_ODF_ENTRY)
DECLARE_ASN1_ITEM(P15_TOKEN_INFO)
DECLARE_ASN1_ITEM(P15_COA)
DECLARE_ASN1_ITEM(P15_CDOA)
DECLARE_ASN1_ITEM(P15_DATA_OBJ)
DECLARE_ASN1_ITEM(P15_CAOA)
DECLARE_ASN1_ITEM(P15_PIN_ATTR)
DECLARE_ASN1_ITEM(P15_PIN_OBJ)
DECLARE_ASN1_ITEM(P15_CCA)
DECLARE_ASN1_ITEM(P15_X509_ATTR)
DECLARE_ASN1_ITEM(P15_CERT_OBJ)
DECLARE_ASN1_ITEM(P15_CKA)
DECLARE_ASN1_ITEM(P15_RSA_ATTR)
DECLARE_ASN1_ITEM(P15_EC_PRK_ATTR)
DECLARE_ASN1_ITEM(P15_EC_PUK_ATTR)
DECLARE_ASN1_ITEM(P15_SKEY_ATTR)
DECLARE_ASN1_ITEM(P15_RSA_OBJ)
DECLARE_ASN1_ITEM(P15_EC_PRK_OBJ)
DECLARE_ASN1_ITEM(P15_EC_PUK_OBJ)
DECLARE_ASN1_ITEM(P15_SKEY_OBJ)
DECLARE_ASN1_ITEM(P15_PRKEY)
DECLARE_ASN1_ITEM(P15_PUKEY)
DECLARE_ASN1_ITEM(P15_SKEY)

// ---- ownership and the d2i/i2d boundary ----------------------------------------------------

struct ItemDeleter {
    const ASN1_ITEM* it;
    void operator()(void* p) const { ASN1_item_free(static_cast<ASN1_VALUE*>(p), it); }
};
template <typename T>
using Owned = std::unique_ptr<T, ItemDeleter>;

// A fresh value with its mandatory members allocated (ASN1_item_new); throws bad_alloc.
void* new_item(const ASN1_ITEM* it);
template <typename T>
Owned<T> make(const ASN1_ITEM* it) {
    return Owned<T>(static_cast<T*>(new_item(it)), ItemDeleter{it});
}

// d2i of one complete DER element (already validated by der::validate). Returns nullptr when
// the bytes do not match the template or leave bytes over; never throws for bad input.
void* decode_item(ByteView der, const ASN1_ITEM* it);
template <typename T>
Owned<T> decode(ByteView der, const ASN1_ITEM* it) {
    return Owned<T>(static_cast<T*>(decode_item(der, it)), ItemDeleter{it});
}

// i2d; throws Error(Invalid) when OpenSSL refuses to encode (a value out of its range).
Bytes encode_item(const void* value, const ASN1_ITEM* it);

// ---- primitive conversions -----------------------------------------------------------------
// Readers return nullopt for values the C++ model cannot hold (integers beyond int64, flag
// bits above 31, pad characters of more than one byte ...); callers then keep the entry raw.

Bytes bytes_of(const ASN1_STRING* s);
std::string string_of(const ASN1_STRING* s);
std::optional<std::int64_t> int_of(const ASN1_INTEGER* i);
std::optional<std::int64_t> enum_of(const ASN1_ENUMERATED* e);
std::optional<std::uint32_t> bits_of(const ASN1_BIT_STRING* b);
std::optional<std::string> oid_of(const ASN1_OBJECT* o);

ASN1_OCTET_STRING* new_octets(ByteView v);
ASN1_UTF8STRING* new_utf8(std::string_view s);
ASN1_INTEGER* new_int(std::int64_t v);
ASN1_BIT_STRING* new_bits(std::uint32_t v);
ASN1_OBJECT* new_oid(const std::string& dotted);  // throws Invalid
void set_octets(ASN1_STRING* s, ByteView v);
void set_int(ASN1_INTEGER* i, std::int64_t v);
void set_enum(ASN1_ENUMERATED* e, std::int64_t v);
void set_bits(ASN1_BIT_STRING* b, std::uint32_t v);

// SEQUENCE OF ANY <-> the concatenated DER of its elements.
Bytes contents_of(const STACK_OF(ASN1_TYPE) * elements);
STACK_OF(ASN1_TYPE) * new_any_stack(ByteView contents);  // throws Invalid
// ANY <-> its DER.
Bytes der_of(const ASN1_TYPE* any);
ASN1_TYPE* new_any(ByteView der);  // throws Invalid

}  // namespace vscard::pkcs15::asn1
