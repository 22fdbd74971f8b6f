#pragma once
// Keys for the tests of on-card keys, made and checked by OpenSSL directly (not through
// keys::PrivateKey, which the card uses): PKCS#8 encoding, signature verification against a
// SubjectPublicKeyInfo, PKCS#1 encryption.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <functional>
#include <memory>

#include "secure_bytes.hpp"

namespace vscard::testing {

struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// Made once per test program: RSA key generation takes a while.
inline EVP_PKEY* test_rsa_key() {
    static Pkey key(EVP_RSA_gen(2048));
    return key.get();
}
inline EVP_PKEY* test_ec_key() {
    static Pkey key(EVP_EC_gen("P-256"));
    return key.get();
}

// PrivateKeyInfo DER of KEY.
inline Bytes pkcs8_of(EVP_PKEY* key) {
    std::unique_ptr<PKCS8_PRIV_KEY_INFO, void (*)(PKCS8_PRIV_KEY_INFO*)> info(
        EVP_PKEY2PKCS8(key), PKCS8_PRIV_KEY_INFO_free);
    if (!info) return {};
    unsigned char* der = nullptr;
    int len = i2d_PKCS8_PRIV_KEY_INFO(info.get(), &der);
    if (len <= 0) return {};
    Bytes out(der, der + len);
    OPENSSL_clear_free(der, static_cast<std::size_t>(len));
    return out;
}

// SubjectPublicKeyInfo DER of KEY.
inline Bytes spki_of(EVP_PKEY* key) {
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(key, &der);
    if (len <= 0) return {};
    Bytes out(der, der + len);
    OPENSSL_free(der);
    return out;
}

inline Pkey public_key_of(ByteView spki) {
    const unsigned char* p = spki.data();
    Pkey key(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
    if (key && p != spki.data() + spki.size()) key.reset();
    return key;
}

inline Bytes sha256(ByteView data) {
    Bytes out(32);
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
    return out;
}

// The DigestInfo of SHA-256 over DATA, as a PKCS#1 v1.5 signature covers it.
inline Bytes digest_info_sha256(ByteView data) {
    Bytes out{0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
              0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    Bytes h = sha256(data);
    out.insert(out.end(), h.begin(), h.end());
    return out;
}

// Verifies SIGNATURE (DER for ECDSA) over SHA-256 of MESSAGE with the public key.
inline bool verify_sha256(EVP_PKEY* key, ByteView message, ByteView signature) {
    MdCtx ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1)
        return false;
    return EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                            message.size()) == 1;
}

// r || s (each half of RS) as the DER ECDSA-Sig-Value OpenSSL verifies.
inline Bytes ecdsa_der(ByteView rs) {
    if (rs.empty() || rs.size() % 2) return {};
    const int n = static_cast<int>(rs.size() / 2);
    ECDSA_SIG* sig = ECDSA_SIG_new();
    BIGNUM* r = BN_bin2bn(rs.data(), n, nullptr);
    BIGNUM* s = BN_bin2bn(rs.data() + n, n, nullptr);
    ECDSA_SIG_set0(sig, r, s);
    unsigned char* der = nullptr;
    int len = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    if (len <= 0) return {};
    Bytes out(der, der + len);
    OPENSSL_free(der);
    return out;
}

// RSA encryption of MESSAGE with PADDING (RSA_PKCS1_PADDING or RSA_NO_PADDING).
inline Bytes rsa_encrypt(EVP_PKEY* key, ByteView message, int padding = RSA_PKCS1_PADDING) {
    PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
    std::size_t len = 0;
    if (!ctx || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), padding) != 1 ||
        EVP_PKEY_encrypt(ctx.get(), nullptr, &len, message.data(), message.size()) != 1)
        return {};
    Bytes out(len);
    if (EVP_PKEY_encrypt(ctx.get(), out.data(), &len, message.data(), message.size()) != 1)
        return {};
    out.resize(len);
    return out;
}

// A cryptogram of a 2048-bit RSA KEY that decrypts to signature padding (block type 1) where
// encryption padding (type 2) belongs: a PKCS#1 v1.5 decryption fails, always.
inline Bytes mispadded_cryptogram(EVP_PKEY* key) {
    Bytes block(256, 0xFF);
    block[0] = 0x00;
    block[1] = 0x01;
    block[200] = 0x00;
    return rsa_encrypt(key, block, RSA_NO_PADDING);
}

}  // namespace vscard::testing
