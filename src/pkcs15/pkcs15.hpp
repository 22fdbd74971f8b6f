#pragma once
// PKCS#15 (ISO/IEC 7816-15) directory structures: parse and serialise EF.DIR, EF.ODF,
// EF.TokenInfo and the object directory files (AODF, DODF, CDF, PuKDF, PrKDF, SKDF), laid out
// the way OpenSC's encoders write them, so that pkcs15-tool reads what vscard writes and vscard
// reads what pkcs15-init wrote.
//
// Round trips: each directory entry remembers the bytes it was read from (`der`). Serialising
// writes those bytes back unchanged as long as the entry's fields still equal what they
// decoded to, so rewriting a file after adding or removing one entry leaves every other entry
// byte-for-byte intact. Entries of kinds we do not model (other key algorithms, direct values,
// biometric templates, extension fields, ...) are kept as UnknownEntry and written back as-is.
//
// Every parse_* takes the raw file contents (fuzzing entry points) and throws vscard::Error
// (ErrorKind::Corrupt) on malformed input, std::bad_alloc at most besides; DER is checked
// strictly (definite minimal lengths, nesting below 32 levels) before OpenSSL sees it.
// Serialising values that cannot be encoded (an OID that is not dotted decimal, an opaque
// field that is not DER) throws ErrorKind::Invalid, content too large for Layout::pad_to
// ErrorKind::NoSpace.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "secure_bytes.hpp"

namespace vscard::pkcs15 {

// ---- constants -----------------------------------------------------------------------------

// AID of the PKCS#15 application (RID A000000063 + "PKCS-15").
inline const Bytes kPkcs15Aid = {0xA0, 0x00, 0x00, 0x00, 0x63, 'P', 'K', 'C', 'S', '-', '1', '5'};
// Application name of vscard's own private data objects (key envelopes, family key); data
// objects of any other application (or none) are the user's files.
inline constexpr std::string_view kVscardAppName = "vscard";
// Labels of application vscard's objects that make up a card's secret area (key envelopes
// and their NAME.pub) start with this; the rest is the entry's name.
inline constexpr std::string_view kSecretLabelPrefix = "secret/";
// Longest label OpenSC accepts (its 255-byte buffer keeps a terminating NUL); a longer label
// makes OpenSC reject the whole directory file, so vscard never writes one.
inline constexpr std::size_t kMaxLabelBytes = 254;

// CommonObjectFlags
inline constexpr std::uint32_t kObjectPrivate = 1u << 0;
inline constexpr std::uint32_t kObjectModifiable = 1u << 1;
// PinFlags (bit n of the BIT STRING is 1u << n, as in OpenSC)
inline constexpr std::uint32_t kPinCaseSensitive = 1u << 0;
inline constexpr std::uint32_t kPinLocal = 1u << 1;
inline constexpr std::uint32_t kPinChangeDisabled = 1u << 2;
inline constexpr std::uint32_t kPinUnblockDisabled = 1u << 3;
inline constexpr std::uint32_t kPinInitialized = 1u << 4;
inline constexpr std::uint32_t kPinNeedsPadding = 1u << 5;
inline constexpr std::uint32_t kPinUnblockingPin = 1u << 6;
inline constexpr std::uint32_t kPinSoPin = 1u << 7;
// TokenFlags
inline constexpr std::uint32_t kTokenReadOnly = 1u << 0;
inline constexpr std::uint32_t kTokenLoginRequired = 1u << 1;
inline constexpr std::uint32_t kTokenPrnGeneration = 1u << 2;
inline constexpr std::uint32_t kTokenEidCompliant = 1u << 3;
// KeyUsageFlags
inline constexpr std::uint32_t kUsageEncrypt = 1u << 0;
inline constexpr std::uint32_t kUsageDecrypt = 1u << 1;
inline constexpr std::uint32_t kUsageSign = 1u << 2;
inline constexpr std::uint32_t kUsageSignRecover = 1u << 3;
inline constexpr std::uint32_t kUsageWrap = 1u << 4;
inline constexpr std::uint32_t kUsageUnwrap = 1u << 5;
inline constexpr std::uint32_t kUsageVerify = 1u << 6;
inline constexpr std::uint32_t kUsageVerifyRecover = 1u << 7;
inline constexpr std::uint32_t kUsageDerive = 1u << 8;
inline constexpr std::uint32_t kUsageNonRepudiation = 1u << 9;
// KeyAccessFlags
inline constexpr std::uint32_t kAccessSensitive = 1u << 0;
inline constexpr std::uint32_t kAccessExtractable = 1u << 1;
inline constexpr std::uint32_t kAccessAlwaysSensitive = 1u << 2;
inline constexpr std::uint32_t kAccessNeverExtractable = 1u << 3;
inline constexpr std::uint32_t kAccessLocal = 1u << 4;

// ---- common types --------------------------------------------------------------------------

// Path ::= SEQUENCE { efidOrPath OCTET STRING, index INTEGER OPT, length [0] INTEGER OPT }
// plus OpenSC's pathExtended [1] { aid [APPLICATION 15], path } for paths in another application.
struct Path {
    Bytes value;                         // a 2-byte FID, or FIDs from the MF / application DF
    std::optional<std::int64_t> index;   // offset of the object inside the file
    std::optional<std::int64_t> length;  // its length
    Bytes aid;                           // non-empty: encoded as pathExtended

    static Path from_hex(std::string_view hex);  // "3F0050154401"; throws Invalid
    std::string to_hex() const;                  // uppercase hex of `value`
    bool operator==(const Path&) const = default;
};

// An entry kept verbatim: a CHOICE alternative or an encoding this codec does not model.
struct UnknownEntry {
    Bytes der;
    bool operator==(const UnknownEntry&) const = default;
};

template <typename T>
using Entry = std::variant<T, UnknownEntry>;
template <typename T>
using Entries = std::vector<Entry<T>>;

// The modelled entries of a directory file, in file order.
template <typename T>
std::vector<T> objects_of(const Entries<T>& entries) {
    std::vector<T> out;
    for (const auto& e : entries)
        if (const T* t = std::get_if<T>(&e)) out.push_back(*t);
    return out;
}

// How a directory file is written back: `pad_to` > 0 fills up to that many bytes with
// `pad_byte` (a file of fixed size on the card); content longer than pad_to is NoSpace.
struct Layout {
    std::size_t pad_to = 0;
    std::uint8_t pad_byte = 0x00;
};

// ---- EF.DIR --------------------------------------------------------------------------------

// [APPLICATION 1] { aid [APP 15], label [APP 16] OPT, path [APP 17] OPT, ddo [APP 19] OPT }
struct DirRecord {
    Bytes aid;
    std::optional<std::string> label;
    Bytes path;  // empty: absent (select by AID)
    Bytes ddo;   // contents of the discretionary data object, kept opaque; empty: absent
    Bytes der;
    bool operator==(const DirRecord&) const = default;
};
Entries<DirRecord> parse_dir(ByteView file);
Bytes serialize_dir(const Entries<DirRecord>& entries, Layout layout = {});

// ---- EF.ODF --------------------------------------------------------------------------------

enum class DfType : std::uint8_t {
    PrKDF = 0,
    PuKDF = 1,
    TrustedPuKDF = 2,
    SKDF = 3,
    CDF = 4,
    TrustedCDF = 5,
    UsefulCDF = 6,
    DODF = 7,
    AODF = 8,
};
struct OdfEntry {
    DfType type = DfType::DODF;
    Path path;
    Bytes der;
    bool operator==(const OdfEntry&) const = default;
};
Entries<OdfEntry> parse_odf(ByteView file);
Bytes serialize_odf(const Entries<OdfEntry>& entries, Layout layout = {});

// ---- EF.TokenInfo --------------------------------------------------------------------------

struct TokenInfo {
    std::int64_t version = 0;  // v1 is 0
    Bytes serial_number;
    std::optional<std::string> manufacturer_id;
    std::optional<std::string> label;  // [0]
    std::uint32_t token_flags = 0;
    // The fields after tokenflags (seInfo, supportedAlgorithms, lastUpdate, extensions ...)
    // exactly as read; written back unchanged.
    Bytes tail;

    std::string serial_hex() const;  // lowercase hex, as OpenSC 0.23 (pkcs15-tool) shows it
    bool operator==(const TokenInfo&) const = default;
};
TokenInfo parse_token_info(ByteView file);
Bytes serialize_token_info(const TokenInfo& info, Layout layout = {});

// ---- objects -------------------------------------------------------------------------------

struct CommonObjectAttributes {
    std::string label;  // empty: absent (as OpenSC writes it)
    std::uint32_t flags = 0;
    Bytes auth_id;  // the PIN protecting the object; empty: absent
    std::optional<std::int64_t> user_consent;
    Bytes access_control_rules;  // DER of the SEQUENCE, opaque; empty: absent

    bool is_private() const { return (flags & kObjectPrivate) != 0; }
    bool is_modifiable() const { return (flags & kObjectModifiable) != 0; }
    bool operator==(const CommonObjectAttributes&) const = default;
};

enum class PinType : std::int64_t {
    Bcd = 0,
    AsciiNumeric = 1,
    Utf8 = 2,
    HalfNibbleBcd = 3,
    Iso9564 = 4
};

// AODF: the `pin` alternative of AuthenticationType.
struct PinObject {
    CommonObjectAttributes common;
    Bytes auth_id;  // this PIN's own id, referenced by the objects it protects
    std::uint32_t pin_flags = 0;
    std::int64_t pin_type = static_cast<std::int64_t>(PinType::AsciiNumeric);
    std::int64_t min_length = 0;
    std::int64_t stored_length = 0;
    std::optional<std::int64_t> max_length;
    std::optional<std::int64_t> reference;  // [0] pinReference: P2 of VERIFY
    std::optional<std::uint8_t> pad_char;
    std::optional<std::string> last_pin_change;  // GeneralizedTime text
    std::optional<Path> path;                    // DF the PIN lives in
    Bytes der;
    bool operator==(const PinObject&) const = default;
};
Entries<PinObject> parse_aodf(ByteView file);
Bytes serialize_aodf(const Entries<PinObject>& entries, Layout layout = {});

// DODF: the `opaqueDO` alternative of DataType, value given by path. A file of the mount is a
// data object whose application is not kVscardAppName; it belongs to the private area when
// common.is_private() (common.auth_id then names the PIN to VERIFY), to the public one else.
struct DataObject {
    CommonObjectAttributes common;
    std::string app_name;  // applicationName; empty: absent
    std::string app_oid;   // applicationOID, dotted decimal; empty: absent
    Path path;
    Bytes der;

    bool is_vscard_internal() const { return app_name == kVscardAppName; }
    bool operator==(const DataObject&) const = default;
};
Entries<DataObject> parse_dodf(ByteView file);
Bytes serialize_dodf(const Entries<DataObject>& entries, Layout layout = {});

// CDF: the `x509Certificate` alternative, value given by path.
struct CertObject {
    CommonObjectAttributes common;
    Bytes id;
    bool authority = false;
    Bytes subject;  // DER Name, opaque; empty: absent
    Bytes issuer;   // DER Name ([0]); empty: absent
    Bytes serial;   // DER of the serialNumber INTEGER; empty: absent
    Path path;
    Bytes der;
    bool operator==(const CertObject&) const = default;
};
Entries<CertObject> parse_cdf(ByteView file);
Bytes serialize_cdf(const Entries<CertObject>& entries, Layout layout = {});

// PrKDF, PuKDF and SKDF entries share one shape.
enum class KeyKind : std::uint8_t {
    PrivateRsa,     // PrKDF privateRSAKey
    PrivateEc,      // PrKDF privateECKey [0]
    PublicRsa,      // PuKDF publicRSAKey
    PublicEc,       // PuKDF publicECKey [0]
    SecretGeneric,  // SKDF genericSecretKey (AES and the like)
    SecretDes,      // SKDF desKey [2]
    SecretDes2,     // SKDF des2Key [3]
    SecretDes3,     // SKDF des3Key [4]
};
struct KeyObject {
    KeyKind kind = KeyKind::PrivateRsa;
    CommonObjectAttributes common;
    Bytes id;
    std::uint32_t usage = 0;
    bool native = true;
    std::uint32_t access_flags = 0;
    std::optional<std::int64_t> key_reference;
    std::vector<std::int64_t> alg_references;  // [1] algReference (ISO 7816-15)
    // Contents of [0] subClassAttributes (CommonPrivate/PublicKeyAttributes: subjectName ...),
    // opaque. Secret keys keep their keyLen in key_size instead.
    Bytes subclass;
    Path path;  // empty value for a secret key: no path (key referenced by key_reference)
    // RSA: modulusLength (bits, required); private EC: fieldSize (OpenSC's extension);
    // secret: keyLen (bits). Absent otherwise.
    std::optional<std::int64_t> key_size;
    Bytes key_info;  // keyInfo element DER, opaque; empty: absent
    Bytes der;
    bool operator==(const KeyObject&) const = default;
};
Entries<KeyObject> parse_prkdf(ByteView file);
Entries<KeyObject> parse_pukdf(ByteView file);
Entries<KeyObject> parse_skdf(ByteView file);
// The kind of each modelled entry must belong to the file (Invalid otherwise).
Bytes serialize_prkdf(const Entries<KeyObject>& entries, Layout layout = {});
Bytes serialize_pukdf(const Entries<KeyObject>& entries, Layout layout = {});
Bytes serialize_skdf(const Entries<KeyObject>& entries, Layout layout = {});

// Encoding of one entry as it would be written now (for size checks before a card write).
Bytes encode_entry(const PinObject& pin);
Bytes encode_entry(const DataObject& data);
Bytes encode_entry(const CertObject& cert);
Bytes encode_entry(const KeyObject& key);

// ---- vscard's own objects ------------------------------------------------------------------

// A private, modifiable data object of application "vscard" (key envelope, family key).
DataObject make_vscard_object(std::string label, Bytes auth_id, Path path);

// ---- labels as paths in the mount ----------------------------------------------------------
//
// A data object's label is its path below its area, folders separated by '/': "dir/sub/file".
// A label ending in '/' ("dir/sub/") names a folder of its own (an empty folder's marker).
// Every label maps to a safe relative path; each component is a valid file name:
//   - a component is written as is, except that these bytes become "%HH" (two uppercase hex
//     digits): 0x00-0x1F, 0x7F, '/', and every byte that is not part of well-formed UTF-8;
//   - '%' becomes "%25" only where it would otherwise be read as an escape, i.e. when followed
//     by two uppercase hex digits naming a byte of the escapable set {0x00-0x1F, '%', '.',
//     '/', 0x7F, 0x80-0xFF}, or by '~', or when it is a whole component on its own;
//     so "100%.txt" and "%41" stay as they are;
//   - a label that is not a clean folder path (empty, or with an empty, "." or ".." component,
//     e.g. "/etc/x", "a//b", "../x") becomes one file at the top of the area, its '/' escaped:
//     "../x" -> "..%2Fx", "" -> "%" (the one name decoding to the empty label);
//   - a component that would be "." or ".." is written "%2E" / "%2E.";
//   - a component longer than 255 bytes after escaping is cut and ends in "%~" + 16 hex
//     digits of a SHA-256 of the component; such a name cannot be mapped back (look it up).
// label_to_path never fails. path_to_label is its inverse: it accepts only the canonical
// form (Invalid otherwise, e.g. "a%2Fb" or an empty component) and labels of at most
// kMaxLabelBytes bytes (NameTooLong).
std::string label_to_path(std::string_view label);
std::string path_to_label(std::string_view path);

// Runs every parser over `data`, swallowing vscard::Error: an entry point for fuzzers.
void parse_everything(ByteView data);

}  // namespace vscard::pkcs15
