// Key entries of secret/: import of PEM/DER private keys, the envelope format, classification.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "crypto.hpp"
#include "error.hpp"
#include "keys.hpp"
#include "secure_bytes.hpp"

namespace vscard {
namespace {

using keys::ContentKind;

struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

Bytes bio_bytes(BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    return Bytes(data, data + len);
}

// Runs `write` on a fresh memory BIO and returns what it wrote.
Bytes written(const std::function<int(BIO*)>& write) {
    Bio bio(BIO_new(BIO_s_mem()));
    if (write(bio.get()) != 1) {
        ADD_FAILURE() << "OpenSSL could not write the test key";
        return {};
    }
    return bio_bytes(bio.get());
}

std::string text(ByteView b) {
    return std::string(b.begin(), b.end());
}
Bytes bytes(std::string_view s) {
    return Bytes(s.begin(), s.end());
}

Bytes pem_pkcs8(EVP_PKEY* k) {
    return written([&](BIO* b) {
        return PEM_write_bio_PKCS8PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
    });
}
Bytes pem_traditional(EVP_PKEY* k) {
    return written([&](BIO* b) {
        return PEM_write_bio_PrivateKey_traditional(b, k, nullptr, nullptr, 0, nullptr, nullptr);
    });
}
Bytes der_pkcs8(EVP_PKEY* k) {
    return written([&](BIO* b) {
        return i2d_PKCS8PrivateKey_bio(b, k, nullptr, nullptr, 0, nullptr, nullptr);
    });
}
Bytes der_traditional(EVP_PKEY* k) {
    unsigned char* der = nullptr;
    int len = i2d_PrivateKey(k, &der);
    EXPECT_GT(len, 0);
    Bytes out(der, der + std::max(len, 0));
    OPENSSL_clear_free(der, static_cast<std::size_t>(std::max(len, 0)));
    return out;
}
Bytes pem_pkcs8_encrypted(EVP_PKEY* k) {
    return written([&](BIO* b) {
        return PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_256_cbc(), "secret", 6, nullptr,
                                             nullptr);
    });
}
Bytes pem_traditional_encrypted(EVP_PKEY* k) {
    static unsigned char pass[] = "secret";
    return written([&](BIO* b) {
        return PEM_write_bio_PrivateKey_traditional(b, k, EVP_aes_256_cbc(), pass, 6, nullptr,
                                                    nullptr);
    });
}
Bytes der_pkcs8_encrypted(EVP_PKEY* k) {
    return written([&](BIO* b) {
        return i2d_PKCS8PrivateKey_bio(b, k, EVP_aes_256_cbc(), "secret", 6, nullptr, nullptr);
    });
}
std::string pem_public(EVP_PKEY* k) {
    return text(written([&](BIO* b) { return PEM_write_bio_PUBKEY(b, k); }));
}
Bytes der_public(EVP_PKEY* k) {
    return written([&](BIO* b) { return i2d_PUBKEY_bio(b, k); });
}
// PKCS#1 "RSA PUBLIC KEY", through the encoder since PEM_write_bio_RSAPublicKey is deprecated.
std::string pem_rsa_public_pkcs1(EVP_PKEY* k) {
    return text(written([&](BIO* b) {
        OSSL_ENCODER_CTX* ctx =
            OSSL_ENCODER_CTX_new_for_pkey(k, EVP_PKEY_PUBLIC_KEY, "PEM", "type-specific", nullptr);
        int ok = ctx ? OSSL_ENCODER_to_bio(ctx, b) : 0;
        OSSL_ENCODER_CTX_free(ctx);
        return ok;
    }));
}

Bytes decode_base64(std::string_view b64) {
    Bytes out(b64.size() / 4 * 3 + 3);
    int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(b64.data()),
                            static_cast<int>(b64.size()));
    EXPECT_GE(n, 0);
    std::size_t pad = 0;
    while (pad < b64.size() && b64[b64.size() - 1 - pad] == '=') ++pad;
    out.resize(static_cast<std::size_t>(std::max(n, 0)) - pad);
    return out;
}

std::string encode_base64(ByteView body) {
    std::string b64(4 * ((body.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), body.data(),
                            static_cast<int>(body.size()));
    b64.resize(static_cast<std::size_t>(n));
    return b64;
}

// The base64 characters between the armor lines, without line breaks.
std::string armored_base64(ByteView envelope) {
    std::string s = text(envelope);
    std::size_t start = s.find('\n') + 1;
    std::size_t end = s.find("-----END");
    std::string b64;
    for (char c : s.substr(start, end - start))
        if (c != '\n') b64.push_back(c);
    return b64;
}

Bytes envelope_body(ByteView envelope) {
    return decode_base64(armored_base64(envelope));
}

Bytes rearmor(ByteView body) {
    std::string b64 = encode_base64(body);
    std::string out = "-----BEGIN VSCARD KEY ENVELOPE-----\n";
    for (std::size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
    out += "-----END VSCARD KEY ENVELOPE-----\n";
    return bytes(out);
}

// Opens an envelope the way the format documents it: HKDF of the family key, header as AAD.
std::optional<SecureBytes> open_envelope(ByteView envelope, ByteView family) {
    Bytes body = envelope_body(envelope);
    if (body.size() < 27) return std::nullopt;
    return crypto::open(crypto::hkdf(family, "vscard key envelope v1"),
                        ByteView(body.data() + 27, body.size() - 27), ByteView(body.data(), 27));
}

bool contains(ByteView haystack, ByteView needle) {
    return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) !=
           haystack.end();
}

// Runs `f`, which must throw Error(Invalid) with a one-line message and leave OpenSSL's
// error queue empty; returns the message.
std::string invalid_message(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Invalid) << e.what();
        EXPECT_EQ(e.errno_value(), EINVAL);
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        EXPECT_EQ(ERR_peek_error(), 0ul) << "OpenSSL error queue left dirty";
        return e.what();
    }
    ADD_FAILURE() << "no error thrown";
    return {};
}

bool has(const std::string& message, std::string_view part) {
    return message.find(part) != std::string::npos;
}

class Keys : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        rsa2048_ = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048});
        rsa1024_ = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{1024});
        p256_ = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
        p384_ = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
        p521_ = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521");
        ed25519_ = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
        ASSERT_TRUE(rsa2048_ && rsa1024_ && p256_ && p384_ && p521_ && ed25519_);
    }
    static void TearDownTestSuite() {
        for (EVP_PKEY* k : {rsa2048_, rsa1024_, p256_, p384_, p521_, ed25519_}) EVP_PKEY_free(k);
    }
    void SetUp() override { ERR_clear_error(); }

    struct Supported {
        EVP_PKEY* key;
        const char* description;
    };
    static std::vector<Supported> supported() {
        return {{rsa2048_, "RSA 2048"}, {p256_, "EC P-256"}, {p384_, "EC P-384"}};
    }

    static inline EVP_PKEY* rsa2048_ = nullptr;
    static inline EVP_PKEY* rsa1024_ = nullptr;
    static inline EVP_PKEY* p256_ = nullptr;
    static inline EVP_PKEY* p384_ = nullptr;
    static inline EVP_PKEY* p521_ = nullptr;
    static inline EVP_PKEY* ed25519_ = nullptr;

    SecureBytes family_ = crypto::random_key();
};

// ---- import and round trip -----------------------------------------------------------------

TEST_F(Keys, ImportsSupportedKeysInEveryEncoding) {
    for (const Supported& s : supported()) {
        const std::map<std::string, Bytes> encodings = {
            {"PEM PKCS#8", pem_pkcs8(s.key)},
            {"PEM traditional", pem_traditional(s.key)},
            {"DER PKCS#8", der_pkcs8(s.key)},
            {"DER traditional", der_traditional(s.key)},
        };
        for (const auto& [name, content] : encodings) {
            SCOPED_TRACE(std::string(s.description) + ", " + name);
            EXPECT_EQ(keys::classify(content), ContentKind::PrivateKey);
            keys::KeyEntry entry = keys::import_private_key(content, family_);
            EXPECT_EQ(entry.description, s.description);
            EXPECT_EQ(entry.public_pem, pem_public(s.key));
            EXPECT_EQ(ERR_peek_error(), 0ul);

            EXPECT_EQ(keys::classify(entry.envelope), ContentKind::Envelope);
            keys::KeyEntry checked = keys::check_envelope(entry.envelope, family_);
            EXPECT_EQ(checked.envelope, entry.envelope);
            EXPECT_EQ(checked.public_pem, entry.public_pem);
            EXPECT_EQ(checked.description, s.description);
            EXPECT_NO_THROW(keys::check_public_key(view_of(checked.public_pem)));
        }
    }
}

TEST_F(Keys, TraditionalPemUsesTheExpectedLabels) {
    EXPECT_TRUE(has(text(pem_traditional(rsa2048_)), "-----BEGIN RSA PRIVATE KEY-----"));
    EXPECT_TRUE(has(text(pem_traditional(p256_)), "-----BEGIN EC PRIVATE KEY-----"));
    EXPECT_TRUE(has(text(pem_pkcs8(p256_)), "-----BEGIN PRIVATE KEY-----"));
}

TEST_F(Keys, AcceptsPemWithParametersPreambleOrCrlf) {
    Bytes params = written([&](BIO* b) { return PEM_write_bio_Parameters(b, p256_); });
    ASSERT_TRUE(has(text(params), "-----BEGIN EC PARAMETERS-----"));
    std::string with_params = "\n  \n" + text(params) + text(pem_traditional(p256_));
    std::string bag =
        "Bag Attributes\n    localKeyID: 01 02 03\nKey Attributes: <No Attributes>\n" +
        text(pem_pkcs8(p384_));
    std::string cert_then_key = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" +
                                text(pem_pkcs8(rsa2048_));
    std::string crlf;
    for (char c : text(pem_pkcs8(p256_))) {
        if (c == '\n') crlf += '\r';
        crlf += c;
    }
    const std::vector<std::pair<std::string, const char*>> cases = {
        {with_params, "EC P-256"},
        {bag, "EC P-384"},
        {cert_then_key, "RSA 2048"},
        {crlf, "EC P-256"},
    };
    for (const auto& [content, description] : cases) {
        SCOPED_TRACE(content.substr(0, 40));
        EXPECT_EQ(keys::classify(view_of(content)), ContentKind::PrivateKey);
        keys::KeyEntry entry = keys::import_private_key(view_of(content), family_);
        EXPECT_EQ(entry.description, description);
    }
}

TEST_F(Keys, RefusesUnsupportedTypesAndSizes) {
    struct Case {
        EVP_PKEY* key;
        const char* names;
    };
    for (const Case& c :
         {Case{rsa1024_, "RSA 1024"}, Case{p521_, "EC P-521"}, Case{ed25519_, "ED25519"}}) {
        for (const Bytes& content : {pem_pkcs8(c.key), der_pkcs8(c.key)}) {
            SCOPED_TRACE(c.names);
            EXPECT_EQ(keys::classify(content), ContentKind::PrivateKey);
            std::string message =
                invalid_message([&] { keys::import_private_key(content, family_); });
            EXPECT_TRUE(has(message, c.names)) << message;
            // Says what would be accepted instead.
            EXPECT_TRUE(has(message, "2048")) << message;
            EXPECT_TRUE(has(message, "P-256")) << message;
        }
    }
}

TEST_F(Keys, RefusesEncryptedKeysWithDecryptHint) {
    const std::vector<std::pair<std::string, Bytes>> cases = {
        {"PEM PKCS#8", pem_pkcs8_encrypted(p256_)},
        {"PEM traditional", pem_traditional_encrypted(rsa2048_)},
        {"DER PKCS#8", der_pkcs8_encrypted(p384_)},
    };
    ASSERT_TRUE(has(text(cases[0].second), "ENCRYPTED PRIVATE KEY"));
    ASSERT_TRUE(has(text(cases[1].second), "Proc-Type: 4,ENCRYPTED"));
    for (const auto& c : cases) {
        SCOPED_TRACE(c.first);
        const Bytes& content = c.second;
        EXPECT_EQ(keys::classify(content), ContentKind::PrivateKey);
        std::string message = invalid_message([&] { keys::import_private_key(content, family_); });
        EXPECT_TRUE(has(message, "passphrase")) << message;
        EXPECT_TRUE(has(message, "openssl pkey")) << message;
        EXPECT_TRUE(has(message, "plain.pem")) << message;
    }
}

TEST_F(Keys, RefusesWhatIsNotAPrivateKey) {
    const std::vector<std::pair<std::string, Bytes>> cases = {
        {"empty", {}},
        {"text", bytes("hello\n")},
        {"public PEM", bytes(pem_public(p256_))},
        {"public DER", der_public(p256_)},
        {"cut short",
         [&] {
             Bytes b = pem_pkcs8(p256_);
             b.resize(b.size() / 2);
             return b;
         }()},
        {"garbage in PEM", bytes("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")},
        {"OpenSSH", bytes("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n"
                          "-----END OPENSSH PRIVATE KEY-----\n")},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.first);
        const Bytes& content = c.second;
        std::string message = invalid_message([&] { keys::import_private_key(content, family_); });
        EXPECT_FALSE(message.empty());
    }
}

TEST_F(Keys, RefusesInconsistentKeyPair) {
    // An EC private key whose public point belongs to another key.
    Pkey other(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    BIGNUM* priv = nullptr;
    ASSERT_EQ(EVP_PKEY_get_bn_param(p256_, OSSL_PKEY_PARAM_PRIV_KEY, &priv), 1);
    unsigned char pub[65];
    std::size_t pub_len = 0;
    ASSERT_EQ(EVP_PKEY_get_octet_string_param(other.get(), OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub,
                                              &pub_len),
              1);
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, pub_len);
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    EVP_PKEY* raw = nullptr;
    ASSERT_EQ(EVP_PKEY_fromdata_init(ctx), 1);
    ASSERT_EQ(EVP_PKEY_fromdata(ctx, &raw, EVP_PKEY_KEYPAIR, params), 1);
    Pkey mixed(raw);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(priv);

    std::string message =
        invalid_message([&] { keys::import_private_key(pem_traditional(mixed.get()), family_); });
    EXPECT_TRUE(has(message, "do not match")) << message;
}

TEST_F(Keys, RefusesEmptyFamilyKey) {
    invalid_message([&] { keys::import_private_key(pem_pkcs8(p256_), {}); });
}

// ---- envelope format -----------------------------------------------------------------------

TEST_F(Keys, EnvelopeIsArmoredText) {
    keys::KeyEntry entry = keys::import_private_key(pem_pkcs8(rsa2048_), family_);
    std::string s = text(entry.envelope);
    EXPECT_TRUE(s.starts_with("-----BEGIN VSCARD KEY ENVELOPE-----\n"));
    EXPECT_TRUE(s.ends_with("\n-----END VSCARD KEY ENVELOPE-----\n"));
    std::size_t start = s.find('\n') + 1;
    std::size_t end = s.find("-----END");
    std::string_view body(s.data() + start, end - start);
    std::size_t lines = 0;
    for (std::size_t pos = 0; pos < body.size(); ++lines) {
        std::size_t nl = body.find('\n', pos);
        ASSERT_NE(nl, std::string_view::npos);
        EXPECT_LE(nl - pos, 64u);
        if (nl + 1 < body.size()) {
            EXPECT_EQ(nl - pos, 64u) << "only the last line is short";
        }
        pos = nl + 1;
    }
    EXPECT_GT(lines, 10u);
}

TEST_F(Keys, EnvelopeHeaderAndSealedKeyAreAsSpecified) {
    const std::vector<std::tuple<EVP_PKEY*, std::uint8_t, unsigned>> cases = {
        {rsa2048_, 1, 2048}, {p256_, 2, 256}, {p384_, 3, 384}};
    for (const auto& [key, type, bits] : cases) {
        keys::KeyEntry entry = keys::import_private_key(pem_traditional(key), family_);
        Bytes body = envelope_body(entry.envelope);
        ASSERT_GT(body.size(), 27u + crypto::kSealOverhead);
        EXPECT_EQ(text(ByteView(body.data(), 6)), "VSCENV");
        EXPECT_EQ(body[6], 1) << "format version";
        EXPECT_EQ(body[7], 0) << "flags";
        EXPECT_EQ(body[8], type);
        EXPECT_EQ(unsigned{body[9]} << 8 | body[10], bits);
        // The documented derivation opens it, and what is inside is the key as PKCS#8 DER.
        std::optional<SecureBytes> der = open_envelope(entry.envelope, family_);
        ASSERT_TRUE(der.has_value());
        Bytes expected = der_pkcs8(key);
        EXPECT_TRUE(std::equal(der->begin(), der->end(), expected.begin(), expected.end()));
    }
}

TEST_F(Keys, StoresExplicitCurveParametersAsNamedCurve) {
    Pkey explicit_key(EVP_PKEY_dup(p256_));
    ASSERT_EQ(EVP_PKEY_set_utf8_string_param(explicit_key.get(), OSSL_PKEY_PARAM_EC_ENCODING,
                                             OSSL_PKEY_EC_ENCODING_EXPLICIT),
              1);
    Bytes pem = pem_traditional(explicit_key.get());
    ASSERT_GT(pem.size(), pem_traditional(p256_).size()) << "parameters not explicit";
    keys::KeyEntry entry = keys::import_private_key(pem, family_);
    EXPECT_EQ(entry.description, "EC P-256");
    EXPECT_EQ(entry.public_pem, pem_public(p256_));
    std::optional<SecureBytes> der = open_envelope(entry.envelope, family_);
    ASSERT_TRUE(der.has_value());
    Bytes named = der_pkcs8(p256_);
    EXPECT_TRUE(std::equal(der->begin(), der->end(), named.begin(), named.end()));
}

TEST_F(Keys, EachImportHasItsOwnIdAndNonce) {
    Bytes pem = pem_pkcs8(p256_);
    keys::KeyEntry a = keys::import_private_key(pem, family_);
    keys::KeyEntry b = keys::import_private_key(pem, family_);
    EXPECT_NE(a.envelope, b.envelope);
    Bytes body_a = envelope_body(a.envelope);
    Bytes body_b = envelope_body(b.envelope);
    EXPECT_NE(Bytes(body_a.begin() + 11, body_a.begin() + 27),
              Bytes(body_b.begin() + 11, body_b.begin() + 27));
    EXPECT_EQ(a.public_pem, b.public_pem);
}

TEST_F(Keys, PlaintextKeyDoesNotAppearInEnvelope) {
    for (const Supported& s : supported()) {
        SCOPED_TRACE(s.description);
        Bytes pkcs8 = der_pkcs8(s.key);
        keys::KeyEntry entry = keys::import_private_key(pem_pkcs8(s.key), family_);
        Bytes body = envelope_body(entry.envelope);
        // Not the DER, nor any 16-byte window of it, in the binary body or the text.
        for (std::size_t i = 0; i + 16 <= pkcs8.size(); i += 8) {
            ByteView window(pkcs8.data() + i, 16);
            ASSERT_FALSE(contains(body, window)) << "offset " << i;
            ASSERT_FALSE(contains(entry.envelope, window)) << "offset " << i;
        }
        // Nor the base64 lines of the PEM it came from.
        std::string pem = text(pem_pkcs8(s.key));
        std::size_t line_start = pem.find('\n') + 1;
        std::string line = pem.substr(line_start, 64);
        EXPECT_FALSE(has(text(entry.envelope), line));
        // Nor the private scalar / exponent on its own.
        BIGNUM* secret = nullptr;
        const char* param =
            EVP_PKEY_is_a(s.key, "RSA") ? OSSL_PKEY_PARAM_RSA_D : OSSL_PKEY_PARAM_PRIV_KEY;
        ASSERT_EQ(EVP_PKEY_get_bn_param(s.key, param, &secret), 1);
        Bytes secret_bytes(static_cast<std::size_t>(BN_num_bytes(secret)));
        BN_bn2bin(secret, secret_bytes.data());
        BN_clear_free(secret);
        EXPECT_FALSE(contains(body, ByteView(secret_bytes.data(), 16)));
    }
}

// ---- envelope checks -----------------------------------------------------------------------

TEST_F(Keys, EnvelopeIsStableAcrossChecks) {
    keys::KeyEntry entry = keys::import_private_key(pem_pkcs8(p384_), family_);
    keys::KeyEntry first = keys::check_envelope(entry.envelope, family_);
    keys::KeyEntry second = keys::check_envelope(first.envelope, family_);
    EXPECT_EQ(first.envelope, entry.envelope);
    EXPECT_EQ(second.envelope, entry.envelope);
    EXPECT_EQ(second.public_pem, entry.public_pem);
}

TEST_F(Keys, EnvelopeToleratesSurroundingBlankSpace) {
    keys::KeyEntry entry = keys::import_private_key(pem_pkcs8(p256_), family_);
    std::string s = text(entry.envelope);
    std::string crlf;
    for (char c : s) {
        if (c == '\n') crlf += '\r';
        crlf += c;
    }
    std::string no_final_newline = s.substr(0, s.size() - 1);
    for (const std::string& variant : {"\n  " + s + "\n\n", crlf, no_final_newline}) {
        keys::KeyEntry checked = keys::check_envelope(view_of(variant), family_);
        EXPECT_EQ(text(checked.envelope), variant) << "returned unchanged";
        EXPECT_EQ(checked.public_pem, entry.public_pem);
    }
}

TEST_F(Keys, EnvelopeOfAnotherFamilyIsRefused) {
    keys::KeyEntry entry = keys::import_private_key(pem_pkcs8(p256_), family_);
    SecureBytes other = crypto::random_key();
    std::string message = invalid_message([&] { keys::check_envelope(entry.envelope, other); });
    EXPECT_TRUE(has(message, "another card family")) << message;
    EXPECT_TRUE(has(message, "its VSCs")) << message;
}

TEST_F(Keys, EveryFlippedBitIsRefused) {
    for (EVP_PKEY* key : {p256_, rsa2048_}) {
        keys::KeyEntry entry = keys::import_private_key(pem_pkcs8(key), family_);
        // Leave out only the final newline: turning it into other blank space is harmless.
        for (std::size_t i = 0; i + 1 < entry.envelope.size(); ++i) {
            for (int bit = 0; bit < 8; ++bit) {
                Bytes bad = entry.envelope;
                bad[i] ^= static_cast<std::uint8_t>(1u << bit);
                try {
                    keys::check_envelope(bad, family_);
                    ADD_FAILURE() << "accepted with byte " << i << " bit " << bit << " flipped";
                } catch (const Error& e) {
                    EXPECT_EQ(e.kind(), ErrorKind::Invalid);
                }
            }
        }
    }
    EXPECT_EQ(ERR_peek_error(), 0ul);
}

TEST_F(Keys, NonCanonicalBase64IsRefused) {
    // A body whose length leaves unused bits in its last base64 character: setting them
    // would decode to the same bytes, so it must be refused explicitly.
    keys::KeyEntry entry;
    Bytes body;
    do {
        entry = keys::import_private_key(pem_pkcs8(p256_), family_);
        body = envelope_body(entry.envelope);
    } while (body.size() % 3 == 0);
    std::string s = text(entry.envelope);
    std::size_t pad = s.find('=');
    ASSERT_NE(pad, std::string::npos);
    std::string b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::size_t value = b64.find(s[pad - 1]);
    s[pad - 1] = b64[value | 1];  // an unused low bit
    ASSERT_NE(text(entry.envelope), s);
    std::string message = invalid_message([&] { keys::check_envelope(view_of(s), family_); });
    EXPECT_TRUE(has(message, "damaged key envelope")) << message;
}

TEST_F(Keys, TruncatedEnvelopeIsRefused) {
    keys::KeyEntry entry = keys::import_private_key(pem_pkcs8(p256_), family_);
    for (std::size_t n = 0; n + 1 < entry.envelope.size(); ++n) {
        ByteView cut(entry.envelope.data(), n);
        EXPECT_THROW(keys::check_envelope(cut, family_), Error) << n;
    }
    // A whole base64 line missing, armor intact.
    std::string s = text(entry.envelope);
    std::size_t first = s.find('\n') + 1;
    std::string missing_line = s.substr(0, first) + s.substr(s.find('\n', first) + 1);
    std::string message =
        invalid_message([&] { keys::check_envelope(view_of(missing_line), family_); });
    EXPECT_TRUE(has(message, "damaged")) << message;
}

TEST_F(Keys, BadArmorMessagesSayDamaged) {
    keys::KeyEntry entry = keys::import_private_key(pem_pkcs8(p256_), family_);
    std::string s = text(entry.envelope);
    std::string no_end = s.substr(0, s.find("-----END"));
    std::string bad_char = s;
    bad_char[40] = '*';
    for (const std::string& bad : {no_end, bad_char,
                                   std::string("-----BEGIN VSCARD KEY ENVELOPE-----\n"
                                               "-----END VSCARD KEY ENVELOPE-----\n"),
                                   std::string("junk\n") + s}) {
        std::string message = invalid_message([&] { keys::check_envelope(view_of(bad), family_); });
        EXPECT_TRUE(has(message, "damaged key envelope")) << message;
    }
}

TEST_F(Keys, NewerFormatVersionAsksForUpgrade) {
    keys::KeyEntry entry = keys::import_private_key(pem_pkcs8(p256_), family_);
    Bytes body = envelope_body(entry.envelope);
    body[6] = 2;
    std::string message = invalid_message([&] { keys::check_envelope(rearmor(body), family_); });
    EXPECT_TRUE(has(message, "newer vscard")) << message;
    EXPECT_TRUE(has(message, "upgrade")) << message;
}

TEST_F(Keys, UnknownFlagsOrTypeInAuthenticEnvelopeAskForUpgrade) {
    keys::KeyEntry entry = keys::import_private_key(pem_pkcs8(p256_), family_);
    Bytes body = envelope_body(entry.envelope);
    SecureBytes envelope_key = crypto::hkdf(family_, "vscard key envelope v1");
    std::optional<SecureBytes> der = crypto::open(
        envelope_key, ByteView(body.data() + 27, body.size() - 27), ByteView(body.data(), 27));
    ASSERT_TRUE(der.has_value());
    for (std::size_t offset : {7u, 8u}) {
        Bytes header(body.begin(), body.begin() + 27);
        header[offset] = 0x40;
        Bytes resealed = header;
        crypto::seal_append(envelope_key, *der, header, resealed);
        std::string message =
            invalid_message([&] { keys::check_envelope(rearmor(resealed), family_); });
        EXPECT_TRUE(has(message, "newer vscard")) << message;
    }
}

TEST_F(Keys, HeaderThatDisagreesWithKeyIsRefused) {
    keys::KeyEntry entry = keys::import_private_key(pem_pkcs8(p256_), family_);
    Bytes body = envelope_body(entry.envelope);
    SecureBytes envelope_key = crypto::hkdf(family_, "vscard key envelope v1");
    std::optional<SecureBytes> der = crypto::open(
        envelope_key, ByteView(body.data() + 27, body.size() - 27), ByteView(body.data(), 27));
    ASSERT_TRUE(der.has_value());
    Bytes header(body.begin(), body.begin() + 27);
    header[8] = 3;  // claims P-384
    header[10] = 384 & 0xff;
    header[9] = 384 >> 8;
    Bytes resealed = header;
    crypto::seal_append(envelope_key, *der, header, resealed);
    std::string message =
        invalid_message([&] { keys::check_envelope(rearmor(resealed), family_); });
    EXPECT_TRUE(has(message, "damaged")) << message;
}

// An envelope written by format version 1, kept so that later versions keep reading it.
// Family key: bytes 0x00..0x1f. Key: EC P-256.
constexpr std::string_view kV1Fixture =
    "-----BEGIN VSCARD KEY ENVELOPE-----\n"
    "VlNDRU5WAQACAQAADXMC7sPBr62gP+aT9ntTPGXww7sdxJrjf7TSb2PX66lFiCNm\n"
    "85DOcfK9dMSFGOCCJjf62VlV7c1vrvOS6zdqANVnF+y4d7jeoLcijhypSsyf58eU\n"
    "fIC1gNpxvm4qUcIveWdPLh+a9MHUJ5XRXBdLxDJYEk5zv53dUUPa+VLpgtZuQ22B\n"
    "LmA2vmUPQIQbHxCMD3eB9MilW78WAit6U9TnH5RKC0vp85eAI96XxVqNo4Oqncp2\n"
    "Hg==\n"
    "-----END VSCARD KEY ENVELOPE-----\n";
constexpr std::string_view kV1FixturePublic =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEmEcDxa8DsZWBCg8Is8xm+6B1K0er\n"
    "Hsv+jqjPOr+3yaqYpIwfOa9AdxzoAX6j8ZuV/MGsS8ORJ+LjCzZPDcXYfQ==\n"
    "-----END PUBLIC KEY-----\n";

TEST_F(Keys, ReadsVersion1Fixture) {
    Bytes family(32);
    for (std::size_t i = 0; i < family.size(); ++i) family[i] = static_cast<std::uint8_t>(i);
    keys::KeyEntry entry = keys::check_envelope(view_of(kV1Fixture), family);
    EXPECT_EQ(entry.description, "EC P-256");
    EXPECT_EQ(entry.public_pem, kV1FixturePublic);
    EXPECT_EQ(text(entry.envelope), kV1Fixture);
}

// ---- classify ------------------------------------------------------------------------------

TEST_F(Keys, ClassifiesEachKind) {
    keys::KeyEntry entry = keys::import_private_key(pem_pkcs8(p256_), family_);
    EXPECT_EQ(keys::classify({}), ContentKind::Empty);
    EXPECT_EQ(keys::classify(entry.envelope), ContentKind::Envelope);
    EXPECT_EQ(keys::classify(view_of("  \n" + text(entry.envelope))), ContentKind::Envelope);
    EXPECT_EQ(keys::classify(view_of(entry.public_pem)), ContentKind::PublicKey);
    EXPECT_EQ(keys::classify(view_of(pem_rsa_public_pkcs1(rsa2048_))), ContentKind::PublicKey);
    EXPECT_EQ(keys::classify(pem_traditional(rsa2048_)), ContentKind::PrivateKey);
    EXPECT_EQ(keys::classify(der_traditional(p384_)), ContentKind::PrivateKey);
    EXPECT_EQ(keys::classify(view_of(std::string_view("hello world\n"))), ContentKind::Other);
    EXPECT_EQ(keys::classify(der_public(p256_)), ContentKind::Other);
    EXPECT_EQ(keys::classify(der_public(rsa2048_)), ContentKind::Other);
    EXPECT_EQ(keys::classify(der_public(ed25519_)), ContentKind::Other);
    EXPECT_EQ(keys::classify(view_of(std::string_view(
                  "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))),
              ContentKind::Other);
    EXPECT_EQ(keys::classify(Bytes(2 << 20, 'A')), ContentKind::Other);
    EXPECT_EQ(ERR_peek_error(), 0ul);
}

TEST_F(Keys, ClassifySurvivesRandomAndMutatedInput) {
    std::mt19937 rng(20240601);
    auto random_bytes = [&](std::size_t n) {
        Bytes b(n);
        for (auto& x : b) x = static_cast<std::uint8_t>(rng());
        return b;
    };
    for (int i = 0; i < 2000; ++i) {
        Bytes b = random_bytes(rng() % 512 + 1);
        EXPECT_EQ(keys::classify(b), ContentKind::Other);
        // Random content inside a well-formed outer DER SEQUENCE reaches the decoders.
        Bytes der = {0x30, 0x81, static_cast<std::uint8_t>(b.size() % 200 + 1)};
        der.resize(3 + der[2]);
        std::copy_n(b.begin(), std::min<std::size_t>(b.size(), der[2]), der.begin() + 3);
        EXPECT_EQ(keys::classify(der), ContentKind::Other);
    }
    std::vector<Bytes> seeds = {pem_pkcs8(p256_),           der_pkcs8(rsa2048_),
                                der_traditional(p256_),     pem_traditional(rsa2048_),
                                pem_pkcs8_encrypted(p256_), der_pkcs8_encrypted(p256_)};
    seeds.push_back(keys::import_private_key(pem_pkcs8(p256_), family_).envelope);
    for (const Bytes& seed : seeds) {
        for (std::size_t n = 0; n < seed.size(); n += 7)
            (void)keys::classify(ByteView(seed.data(), n));
        for (int i = 0; i < 300; ++i) {
            Bytes m = seed;
            for (int j = 0, flips = static_cast<int>(rng() % 4) + 1; j < flips; ++j)
                m[rng() % m.size()] = static_cast<std::uint8_t>(rng());
            (void)keys::classify(m);
        }
    }
    EXPECT_EQ(ERR_peek_error(), 0ul);
}

// ---- public keys ---------------------------------------------------------------------------

TEST_F(Keys, AcceptsRsaAndEcPublicKeys) {
    EXPECT_NO_THROW(keys::check_public_key(view_of(pem_public(rsa2048_))));
    EXPECT_NO_THROW(keys::check_public_key(view_of(pem_public(p256_))));
    EXPECT_NO_THROW(keys::check_public_key(view_of(pem_public(p521_))));
    std::string pkcs1 = pem_rsa_public_pkcs1(rsa2048_);
    ASSERT_TRUE(has(pkcs1, "-----BEGIN RSA PUBLIC KEY-----"));
    EXPECT_NO_THROW(keys::check_public_key(view_of(pkcs1)));
    EXPECT_EQ(ERR_peek_error(), 0ul);
}

TEST_F(Keys, RefusesOtherPublicKeyContent) {
    std::string ed = pem_public(ed25519_);
    std::string message = invalid_message([&] { keys::check_public_key(view_of(ed)); });
    EXPECT_TRUE(has(message, "ED25519")) << message;

    message = invalid_message([&] { keys::check_public_key(pem_pkcs8(p256_)); });
    EXPECT_TRUE(has(message, "private key")) << message;

    std::string cut = pem_public(p256_).substr(0, 60);
    invalid_message([&] { keys::check_public_key(view_of(cut)); });
    invalid_message([&] { keys::check_public_key(der_public(p256_)); });
    invalid_message([&] { keys::check_public_key({}); });
    invalid_message([&] {
        keys::check_public_key(view_of(
            std::string_view("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")));
    });
}

}  // namespace
}  // namespace vscard
