#pragma once
// The only place that talks to OpenSSL's EVP API for symmetric crypto and key derivation.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "secure_bytes.hpp"

namespace vscard::crypto {

inline constexpr std::size_t kKeySize = 32;    // AES-256
inline constexpr std::size_t kNonceSize = 12;  // GCM IV
inline constexpr std::size_t kTagSize = 16;
inline constexpr std::size_t kSealOverhead = kNonceSize + kTagSize;

void random_bytes(std::uint8_t* out, std::size_t n);
Bytes random(std::size_t n);
SecureBytes random_key();

struct ScryptParams {
    std::uint64_t n = 1u << 15;
    std::uint32_t r = 8;
    std::uint32_t p = 1;
    Bytes salt;
};

// scrypt via EVP_KDF. Throws Error(Invalid) on parameters OpenSSL refuses.
SecureBytes scrypt(ByteView password, const ScryptParams& params, std::size_t out_len);

// Picks the largest power-of-two N (r=8, p=1) whose derivation takes at most about `target`
// on this machine, with a fresh random salt. Never below 2^14.
ScryptParams tune_scrypt(std::chrono::milliseconds target);

// HKDF-SHA256 to separate keys for distinct purposes.
SecureBytes hkdf(ByteView key, std::string_view info, std::size_t out_len = kKeySize);

// AES-256-GCM with a random nonce: returns nonce || ciphertext || tag.
Bytes seal(ByteView key, ByteView plaintext, ByteView aad);
// Appends the sealed form to `out` (avoids a copy on hot paths).
void seal_append(ByteView key, ByteView plaintext, ByteView aad, Bytes& out);
// Returns nullopt when the data was modified, the key is wrong or the AAD differs.
std::optional<SecureBytes> open(ByteView key, ByteView sealed, ByteView aad);
// Same, decrypting into a caller buffer of size sealed.size() - kSealOverhead.
bool open_into(ByteView key, ByteView sealed, ByteView aad, std::uint8_t* out);

std::string hex(ByteView bytes);

}  // namespace vscard::crypto
