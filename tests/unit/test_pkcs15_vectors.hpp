#pragma once
// DER test vectors for the PKCS#15 codec, one directory file (or file entry) each.
//
// They are laid out as OpenSC 0.23 writes these structures (libopensc c_asn1_* tables and
// encoders: pkcs15.c, dir.c, pkcs15-pin.c, pkcs15-data.c, pkcs15-cert.c, pkcs15-prkey.c,
// pkcs15-pubkey.c, pkcs15-skey.c): optional fields only when set, named-bit BIT STRINGs without
// trailing zero bits, BOOLEANs only when not their DEFAULT, the default OpenSC profile paths
// (3F00 5015 44xx). Vectors with `canonical == false` contain valid DER that an encoder would
// write differently (the standard's explicit CommonSecretKeyAttributes) or alternatives the
// codec keeps opaque; they must still come back byte for byte from a parsed file.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "pkcs15/pkcs15.hpp"
#include "secure_bytes.hpp"

namespace vscard::pkcs15::testing {

enum class FileKind { Dir, Odf, TokenInfo, Aodf, Dodf, Cdf, Prkdf, Pukdf, Skdf };

struct Vector {
    const char* name;
    FileKind kind;
    const char* hex;
    std::size_t modelled;  // entries the codec models (the rest are UnknownEntry)
    bool canonical;        // a fresh encoding of the parsed fields gives the same bytes
};

inline constexpr Vector kVectors[] = {
    // EF.DIR: the PKCS#15 application as pkcs15-init writes it (AID, label, path 3F00 5015).
    {"dir_pkcs15", FileKind::Dir, "611C4F0CA000000063504B43532D3135500676736361726451043F005015", 1,
     true},
    // Another application with a DDO (kept opaque) ...
    {"dir_other_ddo", FileKind::Dir,
     "611F4F08A00000000310100150094F74686572206170707308300604043F005031", 1, true},
    // ... and one with a command-to-perform [APPLICATION 18] the codec does not model.
    {"dir_unknown", FileKind::Dir, "61154F06D27600012401520B00A4040006D27600012401", 0, false},
    // EF.ODF: AODF, PrKDF, PuKDF, CDF, DODF, SKDF.
    {"odf", FileKind::Odf,
     "A80A300804063F0050154401A00A300804063F0050154402A10A300804063F0050154403"
     "A40A300804063F0050154404A70A300804063F0050154405A30A300804063F0050154406",
     6, true},
    // dataObjects given as `objects [0]` instead of a path.
    {"odf_unknown", FileKind::Odf, "A704A0023000", 0, false},
    // TokenInfo v1: serial 0123456789ABCDEF, manufacturer "vscard", label [0] "My card",
    // tokenflags loginRequired|prnGeneration.
    {"tokeninfo", FileKind::TokenInfo,
     "302202010004080123456789ABCDEF0C0676736361726480074D79206361726403020560", 1, true},
    // ... with preferredLanguage "en" and an unknown [6] after tokenflags (kept as tail).
    {"tokeninfo_tail", FileKind::TokenInfo, "30180201000403C0FFEE8004436172640301001302656E860101",
     1, true},
    // AODF: user PIN authId 01, flags local|initialized|needs-padding, ascii-numeric 4..8,
    // stored 8, reference 0x81, pad 0xFF, path 3F00 5015.
    {"aodf_user_pin", FileKind::Aodf,
     "3038300E0C08557365722050494E030206403003040101A121301F0302024C0A01010201"
     "04020108020108800200810401FF300604043F005015",
     1, true},
    // SO PIN authId 02 (protected by itself), flags case-sensitive|local|initialized|soPin.
    {"aodf_so_pin", FileKind::Aodf,
     "303B301D0C145365637572697479204F6666696365722050494E03020640040102300304"
     "0102A1153013030200C90A0101020106020108800102040100",
     1, true},
    // authKey [1] alternative: kept opaque.
    {"aodf_authkey", FileKind::Aodf, "A118300A0C0841757468206B65793003040103A1053003040104", 0,
     false},
    // DODF: public user file "notes/todo.txt" (modifiable).
    {"dodf_public", FileKind::Dodf,
     "302430140C0E6E6F7465732F746F646F2E747874030206403000A10A300804063F005015"
     "4501",
     1, true},
    // private user file "diary", authId 01.
    {"dodf_private", FileKind::Dodf,
     "301E300E0C056469617279030206C00401013000A10A300804063F0050154502", 1, true},
    // vscard's family key: private, application "vscard".
    {"dodf_vscard", FileKind::Dodf,
     "302B30130C0A66616D696C792D6B6579030206C004010130080C06767363617264A10A30"
     "0804063F0050154503",
     1, true},
    // pkcs15-init style object with applicationName and applicationOID 1.2.3.4.5, path with
    // index 0 and length 256.
    {"dodf_opensc_oid", FileKind::Dodf,
     "303D30120C10446174612066726F6D204F70656E534330180C10706B637331352D696E69"
     "74207465737406042A030405A10D300B0402451002010080020100",
     1, true},
    // userConsent 1 and accessControlRules (read with authId 01), kept opaque.
    {"dodf_acl", FileKind::Dodf,
     "302F301F0C08776974682061636C03020640040101020101300930070302078004010130"
     "00A10A300804063F0050154504",
     1, true},
    // externalIDO [0] alternative: kept opaque.
    {"dodf_external", FileKind::Dodf, "A018300A0C0865787465726E616C3000A1083006300404024511", 0,
     false},
    // CDF: certificate id 45 at 3F00 5015 4545.
    {"cdf_cert", FileKind::Cdf,
     "3022300D0C0B43657274696669636174653003040145A10C300A300804063F0050154545", 1, true},
    // CA certificate: authority TRUE, subject, issuer [0], serialNumber 0x1234.
    {"cdf_ca", FileKind::Cdf,
     "304A30040C02434130060401460101FFA13A3038300804063F005015454630123110300E"
     "06035504030C0754657374204341A01430123110300E06035504030C0754657374204341"
     "02021234",
     1, true},
    // certificate given as a direct value: kept opaque.
    {"cdf_direct", FileKind::Cdf, "301730080C064469726563743003040147A1063004A0023000", 0, false},
    // PrKDF: RSA 2048, private, authId 01, id 45, usage decrypt|sign|signRecover|unwrap,
    // access sensitive|alwaysSensitive|neverExtractable|local, keyReference 1.
    {"prkdf_rsa", FileKind::Prkdf,
     "303830140C0B50726976617465204B6579030206C0040101300E04014503020274030203"
     "B8020101A110300E300804063F0050154B0102020800",
     1, true},
    // EC key [0]: usage sign|nonRepudiation, native FALSE, algReference {2, 3}, subject name
    // in CommonPrivateKeyAttributes, fieldSize 256.
    {"prkdf_ec", FileKind::Prkdf,
     "A057300F0C064543206B6579030206C0040101301A0401460303062040010100030203B8"
     "020102A106020102020103A016301430123110300E06035504030C0754657374204341A1"
     "10300E300804063F0050154B0202020100",
     1, true},
    // DSA key [2]: kept opaque.
    {"prkdf_dsa", FileKind::Prkdf, "A21A30050C03445341300704014703020520A1083006300404024B03", 0,
     false},
    // PuKDF: RSA 2048 public key, usage verify.
    {"pukdf_rsa", FileKind::Pukdf,
     "302D30100C0A5075626C6963204B657903020640300704014503020102A110300E300804"
     "063F0050154C0102020800",
     1, true},
    // EC public key [0].
    {"pukdf_ec", FileKind::Pukdf,
     "A024300B0C094543207075626C6963300704014603020102A10C300A300804063F005015"
     "4C02",
     1, true},
    // SKDF: generic (AES) key, keyLen 128 in OpenSC's [0] { INTEGER } layout, keyReference 3.
    {"skdf_aes", FileKind::Skdf,
     "303230100C07414553206B6579030206C0040101300A040150030206C0020103A0040202"
     "0080A10C300A300804063F0050154D01",
     1, true},
    // des3Key [4] with the standard's [0] { SEQUENCE { keyLen } } and no path.
    {"skdf_des3_spec", FileKind::Skdf,
     "A41D30060C04334445533007040151030206C0A0063004020200C0A1023000", 1, false},
};

inline Bytes from_hex(std::string_view hex) {
    auto nibble = [](char c) -> std::uint8_t {
        if (c >= '0' && c <= '9') return static_cast<std::uint8_t>(c - '0');
        if (c >= 'a' && c <= 'f') return static_cast<std::uint8_t>(c - 'a' + 10);
        return static_cast<std::uint8_t>(c - 'A' + 10);
    };
    Bytes out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<std::uint8_t>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
    return out;
}

inline Bytes bytes(const Vector& v) {
    return from_hex(v.hex);
}

// What a file kind's parser and serialiser make of some bytes.
struct Outcome {
    std::size_t modelled = 0;
    std::size_t unknown = 0;
    Bytes again;  // serialised as parsed (original bytes of unchanged entries)
    Bytes fresh;  // serialised after forgetting the original bytes
};

template <typename T>
Entries<T> forget_der(Entries<T> entries) {
    for (auto& e : entries)
        if (T* t = std::get_if<T>(&e)) t->der.clear();
    return entries;
}

template <typename T, typename Serialize>
Outcome outcome_of(const Entries<T>& entries, Serialize serialize) {
    Outcome o;
    for (const auto& e : entries) (std::holds_alternative<T>(e) ? o.modelled : o.unknown)++;
    o.again = serialize(entries, Layout{});
    o.fresh = serialize(forget_der(entries), Layout{});
    return o;
}

// Parses `data` as a `kind` file and serialises it back; throws what the codec throws.
inline Outcome run(FileKind kind, ByteView data) {
    switch (kind) {
        case FileKind::Dir:
            return outcome_of(parse_dir(data), serialize_dir);
        case FileKind::Odf:
            return outcome_of(parse_odf(data), serialize_odf);
        case FileKind::Aodf:
            return outcome_of(parse_aodf(data), serialize_aodf);
        case FileKind::Dodf:
            return outcome_of(parse_dodf(data), serialize_dodf);
        case FileKind::Cdf:
            return outcome_of(parse_cdf(data), serialize_cdf);
        case FileKind::Prkdf:
            return outcome_of(parse_prkdf(data), serialize_prkdf);
        case FileKind::Pukdf:
            return outcome_of(parse_pukdf(data), serialize_pukdf);
        case FileKind::Skdf:
            return outcome_of(parse_skdf(data), serialize_skdf);
        case FileKind::TokenInfo:
            break;
    }
    Outcome o;
    o.modelled = 1;
    o.again = o.fresh = serialize_token_info(parse_token_info(data));
    return o;
}

// Only the parsing half of run().
inline void parse_only(FileKind kind, ByteView data) {
    switch (kind) {
        case FileKind::Dir:
            parse_dir(data);
            return;
        case FileKind::Odf:
            parse_odf(data);
            return;
        case FileKind::TokenInfo:
            parse_token_info(data);
            return;
        case FileKind::Aodf:
            parse_aodf(data);
            return;
        case FileKind::Dodf:
            parse_dodf(data);
            return;
        case FileKind::Cdf:
            parse_cdf(data);
            return;
        case FileKind::Prkdf:
            parse_prkdf(data);
            return;
        case FileKind::Pukdf:
            parse_pukdf(data);
            return;
        case FileKind::Skdf:
            parse_skdf(data);
            return;
    }
}

inline constexpr FileKind kAllKinds[] = {FileKind::Dir,   FileKind::Odf,   FileKind::TokenInfo,
                                         FileKind::Aodf,  FileKind::Dodf,  FileKind::Cdf,
                                         FileKind::Prkdf, FileKind::Pukdf, FileKind::Skdf};

}  // namespace vscard::pkcs15::testing
