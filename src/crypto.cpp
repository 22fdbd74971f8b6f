#include "crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <memory>
#include <string>

#include "error.hpp"

namespace vscard::crypto {
namespace {

std::string openssl_error() {
    unsigned long e = ERR_get_error();
    if (e == 0) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

[[noreturn]] void fail(const std::string& what) {
    throw Error(ErrorKind::Io, what + ": " + openssl_error());
}

// Fetched once: EVP_CIPHER_fetch and EVP_KDF_fetch look up providers and are not free.
const EVP_CIPHER* aes_gcm() {
    static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    if (!cipher) fail("AES-256-GCM is not available");
    return cipher;
}

struct KdfDeleter {
    void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};
struct CipherCtxDeleter {
    void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

std::unique_ptr<EVP_KDF_CTX, KdfDeleter> kdf_ctx(const char* name) {
    EVP_KDF* kdf = EVP_KDF_fetch(nullptr, name, nullptr);
    if (!kdf) fail(std::string(name) + " is not available");
    EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (!ctx) fail("EVP_KDF_CTX_new");
    return std::unique_ptr<EVP_KDF_CTX, KdfDeleter>(ctx);
}

void check_key(ByteView key) {
    if (key.size() != kKeySize) throw Error(ErrorKind::Invalid, "AES-256 key must be 32 bytes");
}

}  // namespace

void random_bytes(std::uint8_t* out, std::size_t n) {
    if (RAND_bytes(out, static_cast<int>(n)) != 1) fail("RAND_bytes");
}

Bytes random(std::size_t n) {
    Bytes b(n);
    random_bytes(b.data(), n);
    return b;
}

SecureBytes random_key() {
    SecureBytes k(kKeySize);
    random_bytes(k.data(), k.size());
    return k;
}

SecureBytes scrypt(ByteView password, const ScryptParams& params, std::size_t out_len) {
    auto ctx = kdf_ctx("SCRYPT");
    uint64_t n = params.n;
    uint32_t r = params.r, p = params.p;
    // scrypt needs 128*N*r bytes; allow it explicitly (OpenSSL's default cap is 32 MiB).
    uint64_t maxmem = 128 * n * r * 2 + (1u << 20);
    OSSL_PARAM ps[] = {
        OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_PASSWORD, const_cast<std::uint8_t*>(password.data()), password.size()),
        OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_SALT, const_cast<std::uint8_t*>(params.salt.data()), params.salt.size()),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end()};
    SecureBytes out(out_len);
    if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), ps) != 1)
        throw Error(ErrorKind::Invalid, "scrypt derivation failed: " + openssl_error());
    return out;
}

ScryptParams tune_scrypt(std::chrono::milliseconds target) {
    ScryptParams params;
    params.salt = random(16);
    params.n = 1u << 14;
    const SecureBytes probe = secure_from("vscard-scrypt-tuning");
    // Time one derivation at 2^14 and scale: cost is linear in N.
    auto start = std::chrono::steady_clock::now();
    scrypt(probe, params, kKeySize);
    auto spent = std::chrono::steady_clock::now() - start;
    auto per_step = std::max<std::chrono::nanoseconds::rep>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(spent).count(), 1);
    auto budget = std::chrono::duration_cast<std::chrono::nanoseconds>(target).count();
    while (params.n < (1u << 22) && per_step * 2 <= budget) {
        params.n <<= 1;
        per_step *= 2;
    }
    return params;
}

SecureBytes hkdf(ByteView key, std::string_view info, std::size_t out_len) {
    auto ctx = kdf_ctx("HKDF");
    char digest[] = "SHA256";
    OSSL_PARAM ps[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
                       OSSL_PARAM_construct_octet_string(
                           OSSL_KDF_PARAM_KEY, const_cast<std::uint8_t*>(key.data()), key.size()),
                       OSSL_PARAM_construct_octet_string(
                           OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size()),
                       OSSL_PARAM_construct_end()};
    SecureBytes out(out_len);
    if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), ps) != 1) fail("HKDF derivation");
    return out;
}

void seal_append(ByteView key, ByteView plaintext, ByteView aad, Bytes& out) {
    check_key(key);
    std::size_t base = out.size();
    out.resize(base + kNonceSize + plaintext.size() + kTagSize);
    std::uint8_t* nonce = out.data() + base;
    std::uint8_t* body = nonce + kNonceSize;
    random_bytes(nonce, kNonceSize);
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    if (!ctx || EVP_EncryptInit_ex2(ctx.get(), aes_gcm(), key.data(), nonce, nullptr) != 1 ||
        (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(),
                                           static_cast<int>(aad.size())) != 1) ||
        (!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), body, &len, plaintext.data(),
                                                 static_cast<int>(plaintext.size())) != 1) ||
        EVP_EncryptFinal_ex(ctx.get(), body + plaintext.size(), &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, body + plaintext.size()) !=
            1)
        fail("AES-256-GCM encryption");
}

Bytes seal(ByteView key, ByteView plaintext, ByteView aad) {
    Bytes out;
    out.reserve(plaintext.size() + kSealOverhead);
    seal_append(key, plaintext, aad, out);
    return out;
}

bool open_into(ByteView key, ByteView sealed, ByteView aad, std::uint8_t* out) {
    check_key(key);
    if (sealed.size() < kSealOverhead) return false;
    const std::uint8_t* nonce = sealed.data();
    const std::uint8_t* body = nonce + kNonceSize;
    std::size_t body_len = sealed.size() - kSealOverhead;
    const std::uint8_t* tag = body + body_len;
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    if (!ctx || EVP_DecryptInit_ex2(ctx.get(), aes_gcm(), key.data(), nonce, nullptr) != 1)
        fail("AES-256-GCM decryption");
    if (!aad.empty() &&
        EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1)
        return false;
    if (body_len > 0 &&
        EVP_DecryptUpdate(ctx.get(), out, &len, body, static_cast<int>(body_len)) != 1)
        return false;
    if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize,
                            const_cast<std::uint8_t*>(tag)) != 1)
        return false;
    if (EVP_DecryptFinal_ex(ctx.get(), out + body_len, &len) != 1) {
        OPENSSL_cleanse(out, body_len);
        return false;
    }
    return true;
}

std::optional<SecureBytes> open(ByteView key, ByteView sealed, ByteView aad) {
    if (sealed.size() < kSealOverhead) return std::nullopt;
    SecureBytes out(sealed.size() - kSealOverhead);
    if (!open_into(key, sealed, aad, out.data())) return std::nullopt;
    return out;
}

std::string hex(ByteView bytes) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (auto b : bytes) {
        s.push_back(digits[b >> 4]);
        s.push_back(digits[b & 15]);
    }
    return s;
}

}  // namespace vscard::crypto
