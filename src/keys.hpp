#pragma once
// Key entries of the secret area (DESIGN §3): importing PEM/DER private keys and the
// envelope format that carries a key between members of one card family; and private keys
// put to use where they are kept (the emulated card's key files).
#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "secure_bytes.hpp"

namespace vscard::keys {

enum class ContentKind {
    Empty,       // nothing written (yet)
    PrivateKey,  // PEM or DER private key: imported on commit
    Envelope,    // a vscard key envelope
    PublicKey,   // PEM public key (the NAME.pub beside an entry)
    Other,       // anything else: refused in secret/
};

ContentKind classify(ByteView content);

struct KeyEntry {
    Bytes envelope;           // the bytes a read of the entry returns; stable across reads
    std::string public_pem;   // content of NAME.pub
    std::string description;  // e.g. "RSA 2048", "EC P-256"
};

// Imports a PEM or DER private key (PKCS#8, PKCS#1 RSA or SEC1 EC; RSA 2048+ or EC
// P-256/P-384) and seals it into an envelope under the family key.
// Throws Error(Invalid) saying what is wrong (unsupported type or size, encrypted PEM, ...).
KeyEntry import_private_key(ByteView content, ByteView family_key);

// Checks that ENVELOPE is intact and belongs to this family; returns it with its public key.
// Throws Error(Invalid) naming the problem ("from another card family", "damaged", newer version).
KeyEntry check_envelope(ByteView envelope, ByteView family_key);

// The key an envelope carries, for a card's own key store: its PKCS#8 DER and its public key
// as SubjectPublicKeyInfo DER. Throws as check_envelope().
struct OpenedKey {
    SecureBytes pkcs8;
    Bytes spki;
    std::string description;
};
OpenedKey open_envelope(ByteView envelope, ByteView family_key);

// PEM of a SubjectPublicKeyInfo DER (the NAME.pub of a key a card generated).
// Throws Error(Invalid) when SPKI is not an RSA or EC public key.
std::string public_pem_of_spki(ByteView spki);

// SHA-256 of DATA.
Bytes sha256(ByteView data);
// The DigestInfo of a SHA-256 HASH: what an RSA key signs with PKCS#1 v1.5.
Bytes sha256_digest_info(ByteView hash);
// An ECDSA signature given as r || s (as cards answer) in DER, as OpenSSL verifies it.
// Error(Invalid) when RS is empty or of odd length.
Bytes ecdsa_signature_der(ByteView rs);

// Checks that CONTENT is a PEM public key (RSA or EC); throws Error(Invalid) otherwise.
void check_public_key(ByteView content);

// A private key in memory for signing and decrypting, as a card holding it does: RSA of
// kRsaMinBits..kRsaMaxBits (PKCS#1 v1.5) or EC on P-256/P-384 (ECDSA). OpenSSL wipes it
// when it is freed.
class PrivateKey {
public:
    enum class Type : std::uint8_t { Rsa = 1, EcP256 = 2, EcP384 = 3 };
    static constexpr unsigned kRsaMinBits = 2048;
    static constexpr unsigned kRsaMaxBits = 4096;

    // A PKCS#8 PrivateKeyInfo DER, followed by nothing but zero bytes (the padding up to the
    // size of the file holding it). nullopt when it is anything else, or a key of another
    // type or size.
    static std::optional<PrivateKey> from_pkcs8(ByteView der);
    // A fresh key: RSA of BITS (e = 65537; Error(Invalid) outside the sizes above), or EC.
    static PrivateKey generate_rsa(unsigned bits);
    static PrivateKey generate_ec(Type curve);

    Type type() const { return type_; }
    bool is_rsa() const { return type_ == Type::Rsa; }
    // RSA: the modulus size; EC: the size of one field element (of r and of s).
    std::size_t size() const { return size_; }

    SecureBytes pkcs8() const;  // PrivateKeyInfo DER
    Bytes public_key() const;   // SubjectPublicKeyInfo DER
    // RSA: PKCS#1 v1.5 block type 1 over DATA as given (a DigestInfo, or any 1 to size() - 11
    // bytes). Error(Invalid) for a length out of that range or an EC key.
    Bytes sign_pkcs1(ByteView data) const;
    // EC: ECDSA over HASH (1 to 64 bytes, already hashed) as r || s, each size() bytes,
    // big-endian. Error(Invalid) for a length out of that range or an RSA key.
    Bytes sign_ecdsa(ByteView hash) const;
    // RSA: PKCS#1 v1.5 (type 2) decryption of a CRYPTOGRAM of size() bytes; nullopt when its
    // padding is wrong. Error(Invalid) for another length or an EC key.
    std::optional<SecureBytes> decrypt_pkcs1(ByteView cryptogram) const;

private:
    struct Free {
        void operator()(EVP_PKEY* k) const;
    };
    PrivateKey(std::unique_ptr<EVP_PKEY, Free> pkey, Type type, std::size_t size)
        : pkey_(std::move(pkey)), type_(type), size_(size) {}
    // nullopt for a key of another type or size.
    static std::optional<PrivateKey> wrap(std::unique_ptr<EVP_PKEY, Free> pkey);

    std::unique_ptr<EVP_PKEY, Free> pkey_;
    Type type_;
    std::size_t size_;
};

}  // namespace vscard::keys
