#include "keys.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/buffer.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crypto.hpp"
#include "error.hpp"

namespace vscard::keys {
namespace {

// Envelope layout (binary body inside the ASCII armor):
//   magic "VSCENV" | version u8 | flags u8 | key type u8 | key bits u16 (big-endian) |
//   object id [16] | crypto::seal(envelope key, PKCS#8 DER, aad = everything before it)
// The header is authenticated as AAD, so type, size and id cannot be altered unnoticed.
constexpr std::string_view kArmorBegin = "-----BEGIN VSCARD KEY ENVELOPE-----";
constexpr std::string_view kArmorEnd = "-----END VSCARD KEY ENVELOPE-----";
constexpr std::string_view kEnvelopeLabel = "VSCARD KEY ENVELOPE";
constexpr std::array<std::uint8_t, 6> kMagic = {'V', 'S', 'C', 'E', 'N', 'V'};
constexpr std::uint8_t kFormatVersion = 1;
constexpr std::size_t kObjectIdSize = 16;
constexpr std::size_t kVersionOffset = kMagic.size();
constexpr std::size_t kFlagsOffset = kVersionOffset + 1;
constexpr std::size_t kTypeOffset = kFlagsOffset + 1;
constexpr std::size_t kBitsOffset = kTypeOffset + 1;
constexpr std::size_t kObjectIdOffset = kBitsOffset + 2;
constexpr std::size_t kHeaderSize = kObjectIdOffset + kObjectIdSize;
constexpr std::string_view kEnvelopeInfo = "vscard key envelope v1";
constexpr std::size_t kArmorLineLength = 64;

// No key file comes near this; the bound keeps parsing of arbitrary writes cheap.
constexpr std::size_t kMaxKeyFileSize = 1 << 20;
constexpr unsigned kMinRsaBits = 2048;
constexpr unsigned kMaxRsaBits = 16384;  // OpenSSL's own limit for RSA operations

constexpr std::string_view kSupported =
    "vscard takes RSA keys of 2048 to 16384 bits and EC keys on P-256 or P-384";

enum class KeyType : std::uint8_t { Rsa = 1, EcP256 = 2, EcP384 = 3 };

struct PkeyDeleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct PkeyCtxDeleter {
    void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct BioDeleter {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct DecoderCtxDeleter {
    void operator()(OSSL_DECODER_CTX* c) const { OSSL_DECODER_CTX_free(c); }
};
struct EncoderCtxDeleter {
    void operator()(OSSL_ENCODER_CTX* c) const { OSSL_ENCODER_CTX_free(c); }
};
struct X509SigDeleter {
    void operator()(X509_SIG* s) const { X509_SIG_free(s); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;
using Bio = std::unique_ptr<BIO, BioDeleter>;
using DecoderCtx = std::unique_ptr<OSSL_DECODER_CTX, DecoderCtxDeleter>;
using EncoderCtx = std::unique_ptr<OSSL_ENCODER_CTX, EncoderCtxDeleter>;
using X509Sig = std::unique_ptr<X509_SIG, X509SigDeleter>;

// Decoders leave errors behind for every format they tried and rejected; those must not
// surface later in an unrelated call on this thread.
struct ErrorQueueGuard {
    ErrorQueueGuard() = default;
    ErrorQueueGuard(const ErrorQueueGuard&) = delete;
    ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
    ~ErrorQueueGuard() { ERR_clear_error(); }
};

[[noreturn]] void invalid(const std::string& message) {
    throw Error(ErrorKind::Invalid, message);
}

// Failures of OpenSSL itself on valid input (allocation, missing provider), not of the content.
[[noreturn]] void internal(const std::string& what) {
    unsigned long e = ERR_peek_last_error();
    std::string detail = "unknown OpenSSL error";
    if (e != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        detail = buf;
    }
    ERR_clear_error();
    throw Error(ErrorKind::Io, what + ": " + detail);
}

[[noreturn]] void damaged(std::string_view detail) {
    invalid("damaged key envelope (" + std::string(detail) +
            "); copy it again from the card or VSC it came from");
}

std::string_view as_text(ByteView bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

bool is_line_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_line_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_line_space(s.back())) s.remove_suffix(1);
    return s;
}

// ---- PEM scanning -------------------------------------------------------------------------

struct PemBlock {
    std::string_view label;
    std::string_view text;  // from "-----BEGIN" through the END line, or to the end if cut short
    bool complete = false;
};

bool valid_label_char(char c) {
    return c >= ' ' && c <= '~' && c != '-';
}

// Lists the "-----BEGIN LABEL-----" blocks in reading order. Text between blocks is ignored, as
// PEM readers do (openssl pkcs12 output puts "Bag Attributes" before the key). Linear in the
// input: scanning stops at the first block without an END line.
std::vector<PemBlock> pem_blocks(std::string_view s) {
    constexpr std::string_view kBegin = "-----BEGIN ";
    constexpr std::string_view kDashes = "-----";
    constexpr std::size_t kMaxLabel = 64;
    std::vector<PemBlock> blocks;
    std::size_t pos = 0;
    while (pos < s.size()) {
        std::size_t at = s.find(kBegin, pos);
        if (at == std::string_view::npos) break;
        pos = at + kBegin.size();
        if (at != 0 && s[at - 1] != '\n') continue;
        std::size_t label_end = pos;
        while (label_end < s.size() && label_end - pos <= kMaxLabel &&
               valid_label_char(s[label_end]))
            ++label_end;
        if (label_end == pos || label_end - pos > kMaxLabel ||
            s.substr(label_end, kDashes.size()) != kDashes)
            continue;
        PemBlock block;
        block.label = s.substr(pos, label_end - pos);
        const std::string end_line = "-----END " + std::string(block.label) + "-----";
        std::size_t end_at = s.find(end_line, label_end + kDashes.size());
        if (end_at == std::string_view::npos) {
            block.text = s.substr(at);
            blocks.push_back(block);
            break;
        }
        block.complete = true;
        block.text = s.substr(at, end_at + end_line.size() - at);
        blocks.push_back(block);
        pos = end_at + end_line.size();
    }
    return blocks;
}

bool is_private_key_label(std::string_view label) {
    return label.ends_with("PRIVATE KEY");
}
bool is_public_key_label(std::string_view label) {
    return label == "PUBLIC KEY" || label == "RSA PUBLIC KEY";
}

// ---- DER and key decoding -----------------------------------------------------------------

// The size (header and content) of the DER SEQUENCE D starts with; nullopt when D does not
// start with a complete one.
std::optional<std::size_t> der_sequence_size(ByteView d) {
    if (d.size() < 2 || d[0] != 0x30) return std::nullopt;
    std::size_t header = 2;
    std::size_t length = d[1];
    if (length & 0x80) {
        std::size_t n = length & 0x7f;
        if (n == 0 || n > 4 || d.size() < 2 + n) return std::nullopt;
        length = 0;
        for (std::size_t i = 0; i < n; ++i) length = (length << 8) | d[2 + i];
        header += n;
    }
    if (length > d.size() - header) return std::nullopt;
    return header + length;
}

// True when the input is exactly one DER SEQUENCE: a cheap filter before asking the decoders.
bool is_single_der_sequence(ByteView d) {
    std::optional<std::size_t> n = der_sequence_size(d);
    return n && *n == d.size();
}

// PKCS#8 EncryptedPrivateKeyInfo: AlgorithmIdentifier of a password-based scheme + OCTET STRING.
bool is_encrypted_pkcs8_der(ByteView d) {
    const unsigned char* p = d.data();
    X509Sig sig(d2i_X509_SIG(nullptr, &p, static_cast<long>(d.size())));
    if (!sig || p != d.data() + d.size()) return false;
    const X509_ALGOR* alg = nullptr;
    const ASN1_OCTET_STRING* data = nullptr;
    X509_SIG_get0(sig.get(), &alg, &data);
    const ASN1_OBJECT* oid = nullptr;
    X509_ALGOR_get0(&oid, nullptr, nullptr, alg);
    int nid = OBJ_obj2nid(oid);
    return nid == NID_pbes2 ||
           (nid != NID_undef && EVP_PBE_find(EVP_PBE_TYPE_OUTER, nid, nullptr, nullptr, nullptr));
}

// Never prompts: a key that needs a passphrase is refused before decoding, and this makes sure
// no decoder falls back to asking on the terminal of a daemon.
int refuse_passphrase(char*, std::size_t, std::size_t*, const OSSL_PARAM[], void*) {
    return 0;
}

Pkey decode_key(ByteView data, const char* input_type, const char* structure, int selection) {
    if (data.empty()) return nullptr;
    EVP_PKEY* raw = nullptr;
    DecoderCtx ctx(OSSL_DECODER_CTX_new_for_pkey(&raw, input_type, structure, nullptr, selection,
                                                 nullptr, nullptr));
    if (!ctx) return nullptr;
    OSSL_DECODER_CTX_set_passphrase_cb(ctx.get(), refuse_passphrase, nullptr);
    const unsigned char* p = data.data();
    std::size_t len = data.size();
    int ok = OSSL_DECODER_from_data(ctx.get(), &p, &len);
    Pkey pkey(raw);
    if (ok != 1) return nullptr;
    return pkey;
}

bool has_private_part(const EVP_PKEY* pkey) {
    const char* name = EVP_PKEY_is_a(pkey, "RSA") || EVP_PKEY_is_a(pkey, "RSA-PSS")
                           ? OSSL_PKEY_PARAM_RSA_D
                           : OSSL_PKEY_PARAM_PRIV_KEY;
    BIGNUM* secret = nullptr;
    bool ok = EVP_PKEY_get_bn_param(pkey, name, &secret) == 1;
    BN_clear_free(secret);
    if (ok) return true;
    // Ed25519 and friends hold the private key as an octet string; ask only for its size.
    std::size_t len = 0;
    return EVP_PKEY_get_octet_string_param(pkey, name, nullptr, 0, &len) == 1 && len > 0;
}

Pkey decode_private_key(ByteView data, const char* input_type, const char* structure = nullptr) {
    Pkey pkey = decode_key(data, input_type, structure, EVP_PKEY_KEYPAIR);
    // A public key decodes under the KEYPAIR selection too; it is not what we were given here.
    if (pkey && !has_private_part(pkey.get())) return nullptr;
    return pkey;
}

// ---- key properties -----------------------------------------------------------------------

struct KeyInfo {
    std::optional<KeyType> type;  // unset: not a kind vscard keeps
    unsigned bits = 0;
    std::string description;  // "RSA 2048", "EC P-256", "ED25519 (253 bits)", ...
};

KeyInfo key_info(const EVP_PKEY* pkey) {
    KeyInfo info;
    int bits = EVP_PKEY_get_bits(pkey);
    info.bits = bits > 0 ? static_cast<unsigned>(bits) : 0;
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        info.description = "RSA " + std::to_string(info.bits);
        if (info.bits >= kMinRsaBits && info.bits <= kMaxRsaBits) info.type = KeyType::Rsa;
        return info;
    }
    if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[80] = {};
        std::size_t len = 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &len) != 1 || len == 0) {
            info.description =
                "EC with explicit curve parameters (" + std::to_string(info.bits) + " bits)";
            return info;
        }
        int nid = OBJ_txt2nid(group);
        if (nid == NID_undef) nid = EC_curve_nist2nid(group);
        const char* nist = nid != NID_undef ? EC_curve_nid2nist(nid) : nullptr;
        info.description = std::string("EC ") + (nist ? nist : group);
        if (nid == NID_X9_62_prime256v1) {
            info.type = KeyType::EcP256;
        } else if (nid == NID_secp384r1) {
            info.type = KeyType::EcP384;
        } else {
            info.description += " (" + std::to_string(info.bits) + " bits)";
        }
        return info;
    }
    const char* name = EVP_PKEY_get0_type_name(pkey);
    info.description =
        std::string(name ? name : "unknown type") + " (" + std::to_string(info.bits) + " bits)";
    return info;
}

// ---- serialization ------------------------------------------------------------------------

SecureBytes bio_contents_secure(BIO* bio) {
    BUF_MEM* mem = nullptr;
    if (BIO_get_mem_ptr(bio, &mem) != 1 || !mem) internal("reading an OpenSSL memory buffer");
    const auto* data = reinterpret_cast<const std::uint8_t*>(mem->data);
    return SecureBytes(data, data + mem->length);
}

// Memory BIOs grow with BUF_MEM_grow_clean and free with OPENSSL_clear_free, so the plaintext
// DER is wiped when `bio` goes away.
SecureBytes pkcs8_der(EVP_PKEY* pkey) {
    // A P-256/P-384 key given with explicit curve parameters is stored with the curve's name,
    // the form cards and other tools expect.
    if (EVP_PKEY_is_a(pkey, "EC") &&
        EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_ENCODING,
                                       OSSL_PKEY_EC_ENCODING_GROUP) != 1)
        internal("naming the key's curve");
    EncoderCtx ctx(
        OSSL_ENCODER_CTX_new_for_pkey(pkey, EVP_PKEY_KEYPAIR, "DER", "PrivateKeyInfo", nullptr));
    if (!ctx || OSSL_ENCODER_CTX_get_num_encoders(ctx.get()) == 0)
        internal("no PKCS#8 encoder for this key");
    Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || OSSL_ENCODER_to_bio(ctx.get(), bio.get()) != 1)
        internal("encoding the key as PKCS#8");
    return bio_contents_secure(bio.get());
}

std::string public_pem(EVP_PKEY* pkey) {
    Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey) != 1) internal("encoding the public key");
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    if (len <= 0 || !data) internal("encoding the public key");
    return std::string(data, static_cast<std::size_t>(len));
}

// ---- armor --------------------------------------------------------------------------------

Bytes armor(ByteView body) {
    std::string b64(4 * ((body.size() + 2) / 3) + 1, '\0');  // EVP_EncodeBlock adds a NUL
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), body.data(),
                            static_cast<int>(body.size()));
    b64.resize(static_cast<std::size_t>(n));
    std::string out;
    out.reserve(kArmorBegin.size() + kArmorEnd.size() + b64.size() + b64.size() / 64 + 4);
    out.append(kArmorBegin).push_back('\n');
    for (std::size_t i = 0; i < b64.size(); i += kArmorLineLength)
        out.append(b64, i, kArmorLineLength).push_back('\n');
    out.append(kArmorEnd).push_back('\n');
    return Bytes(out.begin(), out.end());
}

bool is_base64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

// Accepts any line breaking and surrounding blank space (users paste envelopes), but only the
// canonical base64 of a body: no stray characters, no non-zero padding bits.
Bytes unarmor(ByteView envelope) {
    if (envelope.size() > kMaxKeyFileSize) damaged("far too large");
    std::string_view text = trim(as_text(envelope));
    if (!text.starts_with(kArmorBegin)) damaged("no BEGIN VSCARD KEY ENVELOPE line");
    if (!text.ends_with(kArmorEnd) || text.size() < kArmorBegin.size() + kArmorEnd.size() + 2)
        damaged("no END VSCARD KEY ENVELOPE line; cut short?");
    std::string_view inner =
        text.substr(kArmorBegin.size(), text.size() - kArmorBegin.size() - kArmorEnd.size());
    if ((inner.front() != '\n' && inner.front() != '\r') || inner.back() != '\n')
        damaged("armor lines run into the body");
    std::string b64;
    b64.reserve(inner.size());
    std::size_t padding = 0;
    for (char c : inner) {
        if (is_line_space(c)) continue;
        if (c == '=') {
            ++padding;
        } else if (!is_base64_char(c) || padding > 0) {
            damaged("not base64");
        }
        b64.push_back(c);
    }
    if (b64.empty() || b64.size() % 4 != 0 || padding > 2) damaged("not base64");
    Bytes body(b64.size() / 4 * 3);
    int n = EVP_DecodeBlock(body.data(), reinterpret_cast<const unsigned char*>(b64.data()),
                            static_cast<int>(b64.size()));
    if (n < 0 || static_cast<std::size_t>(n) < padding) damaged("not base64");
    body.resize(static_cast<std::size_t>(n) - padding);
    std::string canonical(4 * ((body.size() + 2) / 3) + 1, '\0');
    int m = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(canonical.data()), body.data(),
                            static_cast<int>(body.size()));
    canonical.resize(static_cast<std::size_t>(m));
    if (canonical != b64) damaged("not base64");
    return body;
}

void check_family_key(ByteView family_key) {
    if (family_key.empty()) invalid("no card family key: unlock the card or VSC first");
}

SecureBytes envelope_key(ByteView family_key) {
    return crypto::hkdf(family_key, kEnvelopeInfo);
}

Bytes seal_envelope(const SecureBytes& der, KeyType type, unsigned bits, ByteView family_key) {
    Bytes header(kHeaderSize);
    std::copy(kMagic.begin(), kMagic.end(), header.begin());
    header[kVersionOffset] = kFormatVersion;
    header[kFlagsOffset] = 0;
    header[kTypeOffset] = static_cast<std::uint8_t>(type);
    header[kBitsOffset] = static_cast<std::uint8_t>(bits >> 8);
    header[kBitsOffset + 1] = static_cast<std::uint8_t>(bits & 0xff);
    crypto::random_bytes(header.data() + kObjectIdOffset, kObjectIdSize);
    Bytes body = header;  // separate copy: `header` is the AAD while `body` grows
    crypto::seal_append(envelope_key(family_key), der, header, body);
    return armor(body);
}

// ---- reading private keys -----------------------------------------------------------------

constexpr std::string_view kDecryptPem =
    "this private key is protected by a passphrase and vscard does not ask for one here; "
    "decrypt a copy first (openssl pkey -in key.pem -out plain.pem), write plain.pem here, "
    "then delete plain.pem";
constexpr std::string_view kDecryptDer =
    "this private key is protected by a passphrase and vscard does not ask for one here; "
    "decrypt a copy first (openssl pkey -inform DER -in key.der -out plain.pem), write "
    "plain.pem here, then delete plain.pem";

Pkey load_private_key(ByteView content) {
    if (content.empty()) invalid("no key given: write a PEM or DER private key");
    if (content.size() > kMaxKeyFileSize) invalid("far too large to be a private key");
    if (is_single_der_sequence(content)) {
        if (is_encrypted_pkcs8_der(content)) invalid(std::string(kDecryptDer));
        if (Pkey pkey = decode_private_key(content, "DER")) return pkey;
        invalid("not a private key OpenSSL can read (DER must be PKCS#8, PKCS#1 RSA or SEC1 EC)");
    }
    for (const PemBlock& block : pem_blocks(as_text(content))) {
        if (block.label == kEnvelopeLabel)
            invalid("this is a vscard key envelope, not a private key");
        if (!is_private_key_label(block.label)) continue;
        const std::string label(block.label);
        if (label == "ENCRYPTED PRIVATE KEY" ||
            block.text.find("Proc-Type: 4,ENCRYPTED") != std::string_view::npos)
            invalid(std::string(kDecryptPem));
        if (label == "OPENSSH PRIVATE KEY")
            invalid(
                "OpenSSH-format private keys are not supported; convert a copy first "
                "(ssh-keygen -p -N '' -m PKCS8 -f COPY) and write that");
        if (!block.complete)
            invalid("the PEM private key is cut short: no -----END " + label + "----- line");
        if (Pkey pkey = decode_private_key(view_of(block.text), "PEM")) return pkey;
        invalid("the PEM block " + label +
                " is damaged or not a private key OpenSSL can read; check the file");
    }
    invalid(
        "not a private key: expected PEM (-----BEGIN PRIVATE KEY-----) or DER "
        "(PKCS#8, PKCS#1 RSA or SEC1 EC)");
}

}  // namespace

ContentKind classify(ByteView content) {
    if (content.empty()) return ContentKind::Empty;
    if (content.size() > kMaxKeyFileSize) return ContentKind::Other;
    ErrorQueueGuard guard;
    if (is_single_der_sequence(content)) {
        if (is_encrypted_pkcs8_der(content) || decode_private_key(content, "DER"))
            return ContentKind::PrivateKey;
    }
    for (const PemBlock& block : pem_blocks(as_text(content))) {
        if (block.label == kEnvelopeLabel) return ContentKind::Envelope;
        if (is_private_key_label(block.label)) return ContentKind::PrivateKey;
        if (is_public_key_label(block.label)) return ContentKind::PublicKey;
    }
    return ContentKind::Other;
}

KeyEntry import_private_key(ByteView content, ByteView family_key) {
    ErrorQueueGuard guard;
    check_family_key(family_key);
    Pkey pkey = load_private_key(content);
    KeyInfo info = key_info(pkey.get());
    if (!info.type)
        invalid("unsupported key: " + info.description + "; " + std::string(kSupported));
    PkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
    if (!check) internal("checking the private key");
    if (EVP_PKEY_pairwise_check(check.get()) != 1)
        invalid("the " + info.description +
                " private key is damaged: its private and public parts do not match");
    SecureBytes der = pkcs8_der(pkey.get());
    KeyEntry entry;
    entry.envelope = seal_envelope(der, *info.type, info.bits, family_key);
    entry.public_pem = public_pem(pkey.get());
    entry.description = std::move(info.description);
    return entry;
}

namespace {

struct Opened {
    Pkey pkey;
    SecureBytes der;
    KeyInfo info;
};

Opened open_sealed(ByteView envelope, ByteView family_key) {
    check_family_key(family_key);
    Bytes body = unarmor(envelope);
    if (body.size() < kHeaderSize + crypto::kSealOverhead + 1) damaged("too short");
    if (!std::equal(kMagic.begin(), kMagic.end(), body.begin())) damaged("not a vscard envelope");
    std::uint8_t version = body[kVersionOffset];
    if (version == 0) damaged("format version 0");
    if (version > kFormatVersion)
        invalid("this key envelope was made by a newer vscard (format version " +
                std::to_string(version) + "); upgrade vscard to import it");
    ByteView header(body.data(), kHeaderSize);
    ByteView sealed(body.data() + kHeaderSize, body.size() - kHeaderSize);
    std::optional<SecureBytes> der = crypto::open(envelope_key(family_key), sealed, header);
    if (!der)
        invalid(
            "this key envelope belongs to another card family (or is damaged); it can only be "
            "imported into the card it came from or its VSCs");
    // The header is authentic from here on: what we do not know was written by a newer vscard.
    std::uint8_t flags = body[kFlagsOffset];
    std::uint8_t type = body[kTypeOffset];
    unsigned bits = (unsigned{body[kBitsOffset]} << 8) | body[kBitsOffset + 1];
    if (flags != 0 || type < static_cast<std::uint8_t>(KeyType::Rsa) ||
        type > static_cast<std::uint8_t>(KeyType::EcP384))
        invalid("this key envelope uses features of a newer vscard; upgrade vscard to import it");
    Pkey pkey = decode_private_key(*der, "DER", "PrivateKeyInfo");
    if (!pkey) damaged("unreadable key inside");
    KeyInfo info = key_info(pkey.get());
    if (!info.type || static_cast<std::uint8_t>(*info.type) != type || info.bits != bits)
        damaged("key inside does not match its header");
    return {std::move(pkey), std::move(*der), std::move(info)};
}

Bytes spki_der(EVP_PKEY* pkey) {
    unsigned char* out = nullptr;
    int n = i2d_PUBKEY(pkey, &out);
    if (n <= 0 || !out) internal("encoding the public key");
    Bytes der(out, out + n);
    OPENSSL_free(out);
    return der;
}

}  // namespace

KeyEntry check_envelope(ByteView envelope, ByteView family_key) {
    ErrorQueueGuard guard;
    Opened opened = open_sealed(envelope, family_key);
    KeyEntry entry;
    entry.envelope.assign(envelope.begin(), envelope.end());
    entry.public_pem = public_pem(opened.pkey.get());
    entry.description = std::move(opened.info.description);
    return entry;
}

OpenedKey open_envelope(ByteView envelope, ByteView family_key) {
    ErrorQueueGuard guard;
    Opened opened = open_sealed(envelope, family_key);
    return {std::move(opened.der), spki_der(opened.pkey.get()), std::move(opened.info.description)};
}

std::string public_pem_of_spki(ByteView spki) {
    ErrorQueueGuard guard;
    const unsigned char* p = spki.data();
    Pkey pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
    if (!pkey || p != spki.data() + spki.size() ||
        (!EVP_PKEY_is_a(pkey.get(), "RSA") && !EVP_PKEY_is_a(pkey.get(), "EC")))
        invalid("the card's public key is not an RSA or EC SubjectPublicKeyInfo");
    return public_pem(pkey.get());
}

Bytes sha256(ByteView data) {
    Bytes md(32);
    unsigned int n = 0;
    if (EVP_Digest(data.data(), data.size(), md.data(), &n, EVP_sha256(), nullptr) != 1)
        internal("hashing with SHA-256");
    return md;
}

Bytes sha256_digest_info(ByteView hash) {
    // DigestInfo ::= SEQUENCE { AlgorithmIdentifier sha256 (with NULL), OCTET STRING hash }
    static constexpr std::array<std::uint8_t, 19> kPrefix = {
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
        0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    if (hash.size() != 32) invalid("a SHA-256 hash has 32 bytes");
    Bytes info(kPrefix.size() + hash.size());
    std::copy(kPrefix.begin(), kPrefix.end(), info.begin());
    std::copy(hash.begin(), hash.end(), info.begin() + kPrefix.size());
    return info;
}

Bytes ecdsa_signature_der(ByteView rs) {
    if (rs.empty() || rs.size() % 2 != 0) invalid("an ECDSA signature r || s of odd length");
    const int half = static_cast<int>(rs.size() / 2);
    std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(ECDSA_SIG_new(), ECDSA_SIG_free);
    BIGNUM* r = BN_bin2bn(rs.data(), half, nullptr);
    BIGNUM* s = BN_bin2bn(rs.data() + half, half, nullptr);
    if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
        BN_free(r);
        BN_free(s);
        internal("encoding an ECDSA signature");
    }
    unsigned char* out = nullptr;
    int n = i2d_ECDSA_SIG(sig.get(), &out);
    if (n <= 0 || !out) internal("encoding an ECDSA signature");
    Bytes der(out, out + n);
    OPENSSL_free(out);
    return der;
}

void check_public_key(ByteView content) {
    ErrorQueueGuard guard;
    constexpr std::string_view kHowTo =
        "expected a PEM public key (-----BEGIN PUBLIC KEY-----, as written by "
        "openssl pkey -in key.pem -pubout)";
    if (content.size() > kMaxKeyFileSize) invalid("far too large to be a public key");
    std::optional<PemBlock> found;
    for (const PemBlock& block : pem_blocks(as_text(content))) {
        // NAME.pub is readable without the key's protection: never let a private key in there.
        if (is_private_key_label(block.label))
            invalid("this holds a private key, not a public key; " + std::string(kHowTo));
        if (!found && is_public_key_label(block.label)) found = block;
    }
    if (!found) invalid("not a public key; " + std::string(kHowTo));
    if (!found->complete)
        invalid("the PEM public key is cut short: no -----END " + std::string(found->label) +
                "----- line");
    Pkey pkey = decode_key(view_of(found->text), "PEM", nullptr, EVP_PKEY_PUBLIC_KEY);
    if (!pkey) invalid("the PEM public key is damaged; " + std::string(kHowTo));
    if (!EVP_PKEY_is_a(pkey.get(), "RSA") && !EVP_PKEY_is_a(pkey.get(), "EC")) {
        const char* name = EVP_PKEY_get0_type_name(pkey.get());
        invalid("unsupported public key type " + std::string(name ? name : "unknown") +
                "; only RSA and EC public keys are kept beside key entries");
    }
}

// ---- private keys in use ------------------------------------------------------------------

namespace {

template <typename Setup>
Pkey generate_key(const char* algorithm, Setup setup) {
    PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, algorithm, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || !setup(ctx.get()) ||
        EVP_PKEY_generate(ctx.get(), &raw) != 1)
        internal(std::string("generating an ") + algorithm + " key");
    return Pkey(raw);
}

// A context for one operation with KEY, set up by INIT (EVP_PKEY_sign_init, ...).
PkeyCtx operation(EVP_PKEY* key, int (*init)(EVP_PKEY_CTX*), const char* what) {
    PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
    if (!ctx || init(ctx.get()) != 1) internal(what);
    return ctx;
}

}  // namespace

void PrivateKey::Free::operator()(EVP_PKEY* k) const {
    EVP_PKEY_free(k);
}

std::optional<PrivateKey> PrivateKey::wrap(std::unique_ptr<EVP_PKEY, Free> pkey) {
    KeyInfo info = key_info(pkey.get());
    if (!info.type) return std::nullopt;
    const auto type = static_cast<Type>(*info.type);
    if (type == Type::Rsa && (info.bits < kRsaMinBits || info.bits > kRsaMaxBits))
        return std::nullopt;
    return PrivateKey(std::move(pkey), type, (info.bits + 7) / 8);
}

std::optional<PrivateKey> PrivateKey::from_pkcs8(ByteView der) {
    ErrorQueueGuard guard;
    std::optional<std::size_t> n = der_sequence_size(der);
    if (!n) return std::nullopt;
    ByteView padding = der.subspan(*n);
    if (std::any_of(padding.begin(), padding.end(), [](std::uint8_t b) { return b != 0; }))
        return std::nullopt;
    Pkey pkey = decode_private_key(der.first(*n), "DER", "PrivateKeyInfo");
    if (!pkey) return std::nullopt;
    return wrap(std::unique_ptr<EVP_PKEY, Free>(pkey.release()));
}

PrivateKey PrivateKey::generate_rsa(unsigned bits) {
    if (bits < kRsaMinBits || bits > kRsaMaxBits)
        invalid("RSA keys have " + std::to_string(kRsaMinBits) + " to " +
                std::to_string(kRsaMaxBits) + " bits, not " + std::to_string(bits));
    ErrorQueueGuard guard;
    Pkey pkey = generate_key("RSA", [&](EVP_PKEY_CTX* ctx) {
        return EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, static_cast<int>(bits)) == 1;
    });
    std::optional<PrivateKey> key = wrap(std::unique_ptr<EVP_PKEY, Free>(pkey.release()));
    if (!key) internal("generating an RSA key");
    return std::move(*key);
}

PrivateKey PrivateKey::generate_ec(Type curve) {
    if (curve != Type::EcP256 && curve != Type::EcP384) invalid("not an EC curve");
    ErrorQueueGuard guard;
    Pkey pkey = generate_key("EC", [&](EVP_PKEY_CTX* ctx) {
        return EVP_PKEY_CTX_set_group_name(ctx, curve == Type::EcP256 ? "P-256" : "P-384") == 1;
    });
    std::optional<PrivateKey> key = wrap(std::unique_ptr<EVP_PKEY, Free>(pkey.release()));
    if (!key) internal("generating an EC key");
    return std::move(*key);
}

SecureBytes PrivateKey::pkcs8() const {
    ErrorQueueGuard guard;
    return pkcs8_der(pkey_.get());
}

Bytes PrivateKey::public_key() const {
    ErrorQueueGuard guard;
    int len = i2d_PUBKEY(pkey_.get(), nullptr);
    if (len <= 0) internal("encoding the public key");
    Bytes out(static_cast<std::size_t>(len));
    unsigned char* p = out.data();
    if (i2d_PUBKEY(pkey_.get(), &p) != len) internal("encoding the public key");
    return out;
}

Bytes PrivateKey::sign_pkcs1(ByteView data) const {
    if (!is_rsa()) invalid("PKCS#1 signatures need an RSA key");
    if (data.empty() || data.size() + 11 > size_)
        invalid("an RSA-" + std::to_string(size_ * 8) + " signature covers 1 to " +
                std::to_string(size_ - 11) + " bytes, not " + std::to_string(data.size()));
    ErrorQueueGuard guard;
    // No digest set: the data is padded with block type 1 as given (a DigestInfo, usually).
    PkeyCtx ctx = operation(pkey_.get(), EVP_PKEY_sign_init, "signing");
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) internal("signing");
    std::size_t len = size_;
    Bytes sig(len);
    if (EVP_PKEY_sign(ctx.get(), sig.data(), &len, data.data(), data.size()) != 1 || len != size_)
        internal("signing");
    return sig;
}

Bytes PrivateKey::sign_ecdsa(ByteView hash) const {
    if (is_rsa()) invalid("ECDSA signatures need an EC key");
    if (hash.empty() || hash.size() > 64)
        invalid("ECDSA signs a hash of 1 to 64 bytes, not " + std::to_string(hash.size()));
    ErrorQueueGuard guard;
    PkeyCtx ctx = operation(pkey_.get(), EVP_PKEY_sign_init, "signing");
    std::size_t len = 0;
    if (EVP_PKEY_sign(ctx.get(), nullptr, &len, hash.data(), hash.size()) != 1) internal("signing");
    Bytes der(len);
    if (EVP_PKEY_sign(ctx.get(), der.data(), &len, hash.data(), hash.size()) != 1)
        internal("signing");
    const unsigned char* p = der.data();
    std::unique_ptr<ECDSA_SIG, void (*)(ECDSA_SIG*)> sig(
        d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)), ECDSA_SIG_free);
    if (!sig) internal("reading the ECDSA signature");
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(sig.get(), &r, &s);
    Bytes out(2 * size_);
    const int n = static_cast<int>(size_);
    if (BN_bn2binpad(r, out.data(), n) != n || BN_bn2binpad(s, out.data() + size_, n) != n)
        internal("encoding the ECDSA signature");
    return out;
}

std::optional<SecureBytes> PrivateKey::decrypt_pkcs1(ByteView cryptogram) const {
    if (!is_rsa()) invalid("PKCS#1 decryption needs an RSA key");
    if (cryptogram.size() != size_)
        invalid("an RSA-" + std::to_string(size_ * 8) + " cryptogram has " + std::to_string(size_) +
                " bytes, not " + std::to_string(cryptogram.size()));
    ErrorQueueGuard guard;
    PkeyCtx ctx = operation(pkey_.get(), EVP_PKEY_decrypt_init, "decrypting");
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) internal("decrypting");
#ifdef OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION
    // A card reports bad padding rather than returning random bytes (OpenSSL 3.2 and later).
    unsigned int implicit = 0;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_uint(OSSL_ASYM_CIPHER_PARAM_IMPLICIT_REJECTION, &implicit),
        OSSL_PARAM_construct_end()};
    if (EVP_PKEY_CTX_set_params(ctx.get(), params) != 1) internal("decrypting");
#endif
    SecureBytes out(size_);
    std::size_t len = out.size();
    if (EVP_PKEY_decrypt(ctx.get(), out.data(), &len, cryptogram.data(), cryptogram.size()) != 1)
        return std::nullopt;
    out.resize(len);
    return out;
}

}  // namespace vscard::keys
