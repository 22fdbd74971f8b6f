// Known-answer and misuse tests for the symmetric primitives in crypto.hpp.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "crypto.hpp"
#include "error.hpp"
#include "secure_bytes.hpp"

namespace vscard {
namespace {

Bytes from_hex(std::string_view hex) {
    auto nibble = [](char c) -> std::uint8_t {
        if (c >= '0' && c <= '9') return static_cast<std::uint8_t>(c - '0');
        if (c >= 'a' && c <= 'f') return static_cast<std::uint8_t>(c - 'a' + 10);
        if (c >= 'A' && c <= 'F') return static_cast<std::uint8_t>(c - 'A' + 10);
        ADD_FAILURE() << "bad hex digit " << c;
        return 0;
    };
    Bytes out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<std::uint8_t>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
    return out;
}

std::string hex(ByteView bytes) {
    return crypto::hex(bytes);
}

Bytes concat(ByteView a, ByteView b, ByteView c = {}) {
    Bytes out(a.begin(), a.end());
    out.insert(out.end(), b.begin(), b.end());
    out.insert(out.end(), c.begin(), c.end());
    return out;
}

// ---- scrypt: RFC 7914 §12 ------------------------------------------------------------------

TEST(CryptoScrypt, Rfc7914EmptyPasswordAndSalt) {
    crypto::ScryptParams params;
    params.n = 16;
    params.r = 1;
    params.p = 1;
    SecureBytes out = crypto::scrypt({}, params, 64);
    EXPECT_EQ(hex(out),
              "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
              "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906");
}

TEST(CryptoScrypt, Rfc7914PasswordNaCl) {
    crypto::ScryptParams params;
    params.n = 1024;
    params.r = 8;
    params.p = 16;
    params.salt = Bytes{'N', 'a', 'C', 'l'};
    SecureBytes out = crypto::scrypt(view_of(std::string_view("password")), params, 64);
    EXPECT_EQ(hex(out),
              "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
              "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
}

TEST(CryptoScrypt, RefusesInvalidParameters) {
    crypto::ScryptParams params;
    params.n = 1000;  // not a power of two
    params.salt = crypto::random(16);
    try {
        crypto::scrypt(view_of(std::string_view("pw")), params, 32);
        FAIL() << "scrypt accepted N=1000";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Invalid);
    }
    EXPECT_EQ(ERR_peek_error(), 0ul);
}

TEST(CryptoScrypt, TuneNeverGoesBelowFloor) {
    crypto::ScryptParams params = crypto::tune_scrypt(std::chrono::milliseconds(0));
    EXPECT_EQ(params.n, std::uint64_t{1} << 14);
    EXPECT_EQ(params.r, 8u);
    EXPECT_EQ(params.p, 1u);
    EXPECT_EQ(params.salt.size(), 16u);
}

TEST(CryptoScrypt, TuneGivesPowerOfTwoAndFreshSalt) {
    crypto::ScryptParams a = crypto::tune_scrypt(std::chrono::milliseconds(100));
    crypto::ScryptParams b = crypto::tune_scrypt(std::chrono::milliseconds(100));
    for (const auto& params : {a, b}) {
        EXPECT_GE(params.n, std::uint64_t{1} << 14);
        EXPECT_LE(params.n, std::uint64_t{1} << 22);
        EXPECT_EQ(params.n & (params.n - 1), 0u) << params.n;
        EXPECT_EQ(params.salt.size(), 16u);
    }
    EXPECT_NE(a.salt, b.salt);
}

// ---- HKDF-SHA256: RFC 5869 -----------------------------------------------------------------

// crypto::hkdf takes no salt, so the vector with an empty salt (RFC 5869 A.3) is the one that
// applies: an absent salt means HashLen zero bytes.
TEST(CryptoHkdf, Rfc5869Case3NoSaltNoInfo) {
    Bytes ikm(22, 0x0b);
    SecureBytes okm = crypto::hkdf(ikm, "", 42);
    EXPECT_EQ(hex(okm),
              "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
              "9d201395faa4b61a96c8");
}

// Reference HKDF built from HMAC-SHA256 (RFC 5869 §2) with the zero salt, to check the
// non-empty info strings the code actually uses.
Bytes reference_hkdf(ByteView ikm, std::string_view info, std::size_t len) {
    std::uint8_t zero_salt[32] = {};
    std::uint8_t prk[32];
    unsigned prk_len = 0;
    HMAC(EVP_sha256(), zero_salt, sizeof zero_salt, ikm.data(), ikm.size(), prk, &prk_len);
    Bytes okm;
    Bytes t;
    for (std::uint8_t counter = 1; okm.size() < len; ++counter) {
        Bytes input = concat(t, view_of(info));
        input.push_back(counter);
        t.resize(32);
        unsigned t_len = 0;
        HMAC(EVP_sha256(), prk, prk_len, input.data(), input.size(), t.data(), &t_len);
        okm.insert(okm.end(), t.begin(), t.end());
    }
    okm.resize(len);
    return okm;
}

TEST(CryptoHkdf, MatchesReferenceWithInfo) {
    Bytes ikm = from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    for (std::string_view info : {"vscard key envelope v1", "a", "area key"}) {
        for (std::size_t len :
             {std::size_t{16}, std::size_t{32}, std::size_t{33}, std::size_t{100}}) {
            SecureBytes okm = crypto::hkdf(ikm, info, len);
            EXPECT_EQ(hex(okm), hex(reference_hkdf(ikm, info, len))) << info << " " << len;
        }
    }
}

TEST(CryptoHkdf, DefaultsToKeySizeAndSeparatesPurposes) {
    SecureBytes key = crypto::random_key();
    SecureBytes a = crypto::hkdf(key, "purpose a");
    SecureBytes b = crypto::hkdf(key, "purpose b");
    EXPECT_EQ(a.size(), crypto::kKeySize);
    EXPECT_NE(a, b);
    EXPECT_EQ(a, crypto::hkdf(key, "purpose a"));
}

// ---- AES-256-GCM ---------------------------------------------------------------------------

struct GcmVector {
    const char* name;
    const char* key;
    const char* iv;
    const char* plaintext;
    const char* aad;
    const char* ciphertext;
    const char* tag;
};

// McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13 to 16 (AES-256,
// 96-bit IV), as in NIST's GCM specification.
const GcmVector kGcmVectors[] = {
    {"case 13", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"case 14", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "00000000000000000000000000000000", "",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"case 15", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"case 16", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

// seal() picks its own nonce, so the vectors are checked on the opening side, with the
// sealed form built as nonce || ciphertext || tag.
TEST(CryptoGcm, OpensKnownAnswerVectors) {
    for (const GcmVector& v : kGcmVectors) {
        Bytes key = from_hex(v.key);
        Bytes sealed = concat(from_hex(v.iv), from_hex(v.ciphertext), from_hex(v.tag));
        Bytes aad = from_hex(v.aad);
        std::optional<SecureBytes> plain = crypto::open(key, sealed, aad);
        ASSERT_TRUE(plain.has_value()) << v.name;
        EXPECT_EQ(hex(*plain), v.plaintext) << v.name;

        Bytes out(sealed.size() - crypto::kSealOverhead);
        ASSERT_TRUE(crypto::open_into(key, sealed, aad, out.data())) << v.name;
        EXPECT_EQ(hex(out), v.plaintext) << v.name;
    }
}

TEST(CryptoGcm, VectorTamperingDetected) {
    const GcmVector& v = kGcmVectors[3];
    Bytes key = from_hex(v.key);
    Bytes sealed = concat(from_hex(v.iv), from_hex(v.ciphertext), from_hex(v.tag));
    Bytes aad = from_hex(v.aad);
    for (std::size_t i = 0; i < sealed.size(); ++i) {
        Bytes bad = sealed;
        bad[i] ^= 0x01;
        EXPECT_FALSE(crypto::open(key, bad, aad).has_value()) << "byte " << i;
    }
    for (std::size_t i = 0; i < aad.size(); ++i) {
        Bytes bad = aad;
        bad[i] ^= 0x80;
        EXPECT_FALSE(crypto::open(key, sealed, bad).has_value()) << "aad byte " << i;
    }
    EXPECT_EQ(ERR_peek_error(), 0ul);
}

TEST(CryptoGcm, RoundTripVariousSizes) {
    SecureBytes key = crypto::random_key();
    for (std::size_t size : {0, 1, 15, 16, 17, 1000, 65536}) {
        for (std::string_view aad_text : {"", "vsc uid|area|object"}) {
            Bytes plain = crypto::random(size);
            ByteView aad = view_of(aad_text);
            Bytes sealed = crypto::seal(key, plain, aad);
            ASSERT_EQ(sealed.size(), size + crypto::kSealOverhead);
            std::optional<SecureBytes> opened = crypto::open(key, sealed, aad);
            ASSERT_TRUE(opened.has_value()) << size;
            EXPECT_TRUE(std::equal(opened->begin(), opened->end(), plain.begin(), plain.end()));
        }
    }
}

TEST(CryptoGcm, NonceIsFreshEachTime) {
    SecureBytes key = crypto::random_key();
    Bytes plain = crypto::random(32);
    Bytes a = crypto::seal(key, plain, {});
    Bytes b = crypto::seal(key, plain, {});
    EXPECT_NE(Bytes(a.begin(), a.begin() + crypto::kNonceSize),
              Bytes(b.begin(), b.begin() + crypto::kNonceSize));
    EXPECT_NE(a, b);
}

TEST(CryptoGcm, SealAppendKeepsPrefix) {
    SecureBytes key = crypto::random_key();
    Bytes prefix = {'h', 'e', 'a', 'd'};
    Bytes out = prefix;
    Bytes plain = crypto::random(40);
    crypto::seal_append(key, plain, prefix, out);
    ASSERT_EQ(out.size(), prefix.size() + plain.size() + crypto::kSealOverhead);
    EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), out.begin()));
    ByteView sealed(out.data() + prefix.size(), out.size() - prefix.size());
    std::optional<SecureBytes> opened = crypto::open(key, sealed, prefix);
    ASSERT_TRUE(opened.has_value());
    EXPECT_TRUE(std::equal(opened->begin(), opened->end(), plain.begin(), plain.end()));
}

TEST(CryptoGcm, AnyFlippedByteOrAadIsRejected) {
    SecureBytes key = crypto::random_key();
    Bytes plain = crypto::random(50);
    Bytes aad = crypto::random(20);
    Bytes sealed = crypto::seal(key, plain, aad);
    for (std::size_t i = 0; i < sealed.size(); ++i) {
        for (std::uint8_t mask : {0x01, 0x80, 0xff}) {
            Bytes bad = sealed;
            bad[i] ^= mask;
            EXPECT_FALSE(crypto::open(key, bad, aad).has_value()) << "byte " << i;
        }
    }
    for (std::size_t i = 0; i < aad.size(); ++i) {
        Bytes bad = aad;
        bad[i] ^= 0x01;
        EXPECT_FALSE(crypto::open(key, sealed, bad).has_value()) << "aad byte " << i;
    }
    Bytes longer = aad;
    longer.push_back(0);
    EXPECT_FALSE(crypto::open(key, sealed, longer).has_value());
    EXPECT_FALSE(crypto::open(key, sealed, ByteView(aad.data(), aad.size() - 1)).has_value());
    EXPECT_FALSE(crypto::open(key, sealed, {}).has_value());
    EXPECT_EQ(ERR_peek_error(), 0ul);
}

TEST(CryptoGcm, WrongKeyIsRejected) {
    SecureBytes key = crypto::random_key();
    SecureBytes other = crypto::random_key();
    Bytes sealed = crypto::seal(key, crypto::random(10), {});
    EXPECT_FALSE(crypto::open(other, sealed, {}).has_value());
    SecureBytes flipped = key;
    flipped[31] ^= 1;
    EXPECT_FALSE(crypto::open(flipped, sealed, {}).has_value());
}

TEST(CryptoGcm, KeyOfWrongSizeThrows) {
    Bytes short_key(16, 1);
    EXPECT_THROW(crypto::seal(short_key, crypto::random(4), {}), Error);
    Bytes sealed = crypto::seal(crypto::random_key(), crypto::random(4), {});
    EXPECT_THROW(crypto::open(short_key, sealed, {}), Error);
}

TEST(CryptoGcm, ShortInputIsRejected) {
    SecureBytes key = crypto::random_key();
    Bytes sealed = crypto::seal(key, {}, {});
    ASSERT_EQ(sealed.size(), crypto::kSealOverhead);
    for (std::size_t n = 0; n < crypto::kSealOverhead; ++n) {
        ByteView cut(sealed.data(), n);
        EXPECT_FALSE(crypto::open(key, cut, {}).has_value()) << n;
        std::uint8_t dummy = 0;
        EXPECT_FALSE(crypto::open_into(key, cut, {}, &dummy)) << n;
    }
}

TEST(CryptoGcm, EmptyPlaintextIsAuthenticated) {
    SecureBytes key = crypto::random_key();
    Bytes aad = {'x'};
    Bytes sealed = crypto::seal(key, {}, aad);
    std::optional<SecureBytes> opened = crypto::open(key, sealed, aad);
    ASSERT_TRUE(opened.has_value());
    EXPECT_TRUE(opened->empty());
    sealed.back() ^= 1;
    EXPECT_FALSE(crypto::open(key, sealed, aad).has_value());
    sealed.back() ^= 1;
    EXPECT_FALSE(crypto::open(key, sealed, {}).has_value());
}

// A failed open must not leave the unauthenticated plaintext in the caller's buffer.
TEST(CryptoGcm, OpenIntoWipesOutputOnFailure) {
    SecureBytes key = crypto::random_key();
    Bytes plain(64, 0x5a);
    Bytes sealed = crypto::seal(key, plain, {});
    sealed.back() ^= 1;
    Bytes out(plain.size(), 0xee);
    EXPECT_FALSE(crypto::open_into(key, sealed, {}, out.data()));
    EXPECT_NE(out, plain);
    EXPECT_EQ(out, Bytes(plain.size(), 0));
}

// ---- misc ----------------------------------------------------------------------------------

TEST(CryptoRandom, SizesAndDistinctness) {
    EXPECT_EQ(crypto::random(0).size(), 0u);
    EXPECT_EQ(crypto::random(33).size(), 33u);
    EXPECT_NE(crypto::random(32), crypto::random(32));
    SecureBytes k1 = crypto::random_key();
    SecureBytes k2 = crypto::random_key();
    EXPECT_EQ(k1.size(), crypto::kKeySize);
    EXPECT_NE(k1, k2);
}

TEST(CryptoHex, Lowercase) {
    Bytes b = {0x00, 0x0f, 0xa5, 0xff};
    EXPECT_EQ(crypto::hex(b), "000fa5ff");
    EXPECT_EQ(crypto::hex({}), "");
}

}  // namespace
}  // namespace vscard
