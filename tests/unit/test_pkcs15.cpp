// PKCS#15 codec: the vectors decode to the expected fields, re-encode byte for byte, and every
// structure survives an encode/decode round trip; directory files keep entries they do not
// model, stop at padding and pad on request.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "error.hpp"
#include "pkcs15/pkcs15.hpp"
#include "test_pkcs15_vectors.hpp"

namespace vscard::pkcs15 {
namespace {

using testing::bytes;
using testing::FileKind;
using testing::from_hex;
using testing::kVectors;

const testing::Vector& vec(std::string_view name) {
    for (const auto& v : kVectors)
        if (name == v.name) return v;
    throw std::logic_error("no vector " + std::string(name));
}

template <typename T>
T only(const Entries<T>& entries) {
    EXPECT_EQ(entries.size(), 1u);
    EXPECT_TRUE(std::holds_alternative<T>(entries.at(0)));
    return std::get<T>(entries.at(0));
}

Bytes concat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// ---- the vectors themselves ----------------------------------------------------------------

TEST(Pkcs15Vectors, AreValidDerForOpenSslAsn1parse) {
    char dir[] = "/tmp/vscard-p15-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    for (const auto& v : kVectors) {
        const std::string file = std::string(dir) + "/" + v.name + ".der";
        const Bytes der = bytes(v);
        std::ofstream(file, std::ios::binary)
            .write(reinterpret_cast<const char*>(der.data()),
                   static_cast<std::streamsize>(der.size()));
        const std::string cmd = "openssl asn1parse -inform DER -in '" + file + "' > /dev/null 2>&1";
        EXPECT_EQ(std::system(cmd.c_str()), 0) << v.name;
        std::remove(file.c_str());
    }
    rmdir(dir);
}

TEST(Pkcs15Vectors, ParseToTheExpectedEntriesAndComeBackByteForByte) {
    for (const auto& v : kVectors) {
        SCOPED_TRACE(v.name);
        const Bytes der = bytes(v);
        const testing::Outcome o = testing::run(v.kind, der);
        EXPECT_EQ(o.modelled, v.modelled);
        EXPECT_EQ(o.again, der);
        if (v.canonical) {
            EXPECT_EQ(o.fresh, der) << "our encoder differs from OpenSC's layout";
        }
    }
}

// ---- per structure -------------------------------------------------------------------------

TEST(Pkcs15Dir, Pkcs15ApplicationRecord) {
    const DirRecord r = only(parse_dir(bytes(vec("dir_pkcs15"))));
    EXPECT_EQ(r.aid, kPkcs15Aid);
    EXPECT_EQ(r.label, "vscard");
    EXPECT_EQ(r.path, from_hex("3F005015"));
    EXPECT_TRUE(r.ddo.empty());
}

TEST(Pkcs15Dir, DdoIsKeptAndUnknownRecordPreserved) {
    const Bytes file = concat({bytes(vec("dir_unknown")), bytes(vec("dir_other_ddo"))});
    auto entries = parse_dir(file);
    ASSERT_EQ(entries.size(), 2u);
    EXPECT_EQ(std::get<UnknownEntry>(entries[0]).der, bytes(vec("dir_unknown")));
    auto& other = std::get<DirRecord>(entries[1]);
    EXPECT_EQ(other.ddo, from_hex("300604043F005031"));
    other.label = "Renamed";
    auto again = parse_dir(serialize_dir(entries));
    EXPECT_EQ(std::get<UnknownEntry>(again[0]).der, bytes(vec("dir_unknown")));
    EXPECT_EQ(std::get<DirRecord>(again[1]).label, "Renamed");
    EXPECT_EQ(std::get<DirRecord>(again[1]).ddo, other.ddo);
}

TEST(Pkcs15Odf, AllDirectoryFileTypes) {
    const auto entries = objects_of(parse_odf(bytes(vec("odf"))));
    ASSERT_EQ(entries.size(), 6u);
    const DfType types[] = {DfType::AODF, DfType::PrKDF, DfType::PuKDF,
                            DfType::CDF,  DfType::DODF,  DfType::SKDF};
    for (std::size_t i = 0; i < entries.size(); ++i) {
        EXPECT_EQ(entries[i].type, types[i]);
        EXPECT_EQ(entries[i].path.to_hex(), "3F005015440" + std::to_string(i + 1));
    }
    Entries<OdfEntry> built;
    built.emplace_back(OdfEntry{DfType::TrustedCDF, Path::from_hex("4410"), {}});
    EXPECT_EQ(serialize_odf(built), from_hex("A506300404024410"));
}

TEST(Pkcs15TokenInfo, OpenScLayout) {
    const TokenInfo t = parse_token_info(bytes(vec("tokeninfo")));
    EXPECT_EQ(t.version, 0);
    EXPECT_EQ(t.serial_hex(), "0123456789abcdef");  // as pkcs15-tool prints it
    EXPECT_EQ(t.manufacturer_id, "vscard");
    EXPECT_EQ(t.label, "My card");
    EXPECT_EQ(t.token_flags, kTokenLoginRequired | kTokenPrnGeneration);
    EXPECT_TRUE(t.tail.empty());
}

TEST(Pkcs15TokenInfo, FieldsAfterTokenflagsSurviveAnEdit) {
    TokenInfo t = parse_token_info(bytes(vec("tokeninfo_tail")));
    EXPECT_EQ(t.tail, from_hex("1302656E860101"));
    EXPECT_FALSE(t.manufacturer_id.has_value());
    t.label = "Renamed card";
    t.token_flags = kTokenReadOnly;
    const TokenInfo again = parse_token_info(serialize_token_info(t));
    EXPECT_EQ(again, t);
}

TEST(Pkcs15TokenInfo, PaddingAfterTheSequence) {
    const Bytes der = bytes(vec("tokeninfo"));
    const Bytes padded = serialize_token_info(parse_token_info(der), Layout{64, 0xFF});
    ASSERT_EQ(padded.size(), 64u);
    EXPECT_EQ(parse_token_info(padded), parse_token_info(der));
    Bytes junk = der;
    junk.push_back(0x42);
    EXPECT_THROW(parse_token_info(junk), Error);
    try {
        serialize_token_info(parse_token_info(der), Layout{10, 0});
        FAIL() << "expected NoSpace";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::NoSpace);
    }
}

TEST(Pkcs15Aodf, UserAndSoPin) {
    const PinObject user = only(parse_aodf(bytes(vec("aodf_user_pin"))));
    EXPECT_EQ(user.common.label, "User PIN");
    EXPECT_EQ(user.common.flags, kObjectModifiable);
    EXPECT_EQ(user.auth_id, from_hex("01"));
    EXPECT_EQ(user.pin_flags, kPinLocal | kPinInitialized | kPinNeedsPadding);
    EXPECT_EQ(user.pin_type, static_cast<std::int64_t>(PinType::AsciiNumeric));
    EXPECT_EQ(user.min_length, 4);
    EXPECT_EQ(user.stored_length, 8);
    EXPECT_EQ(user.max_length, 8);
    EXPECT_EQ(user.reference, 0x81);
    EXPECT_EQ(user.pad_char, 0xFF);
    ASSERT_TRUE(user.path.has_value());
    EXPECT_EQ(user.path->to_hex(), "3F005015");

    const PinObject so = only(parse_aodf(bytes(vec("aodf_so_pin"))));
    EXPECT_EQ(so.common.auth_id, from_hex("02"));
    EXPECT_EQ(so.pin_flags, kPinCaseSensitive | kPinLocal | kPinInitialized | kPinSoPin);
    EXPECT_FALSE(so.max_length.has_value());
    EXPECT_EQ(so.reference, 2);
    EXPECT_EQ(so.pad_char, 0x00);
    EXPECT_FALSE(so.path.has_value());
}

TEST(Pkcs15Dodf, UserFilesAndVscardObjects) {
    const DataObject pub = only(parse_dodf(bytes(vec("dodf_public"))));
    EXPECT_EQ(pub.common.label, "notes/todo.txt");
    EXPECT_FALSE(pub.common.is_private());
    EXPECT_TRUE(pub.common.is_modifiable());
    EXPECT_TRUE(pub.common.auth_id.empty());
    EXPECT_TRUE(pub.app_name.empty());
    EXPECT_EQ(pub.path.to_hex(), "3F0050154501");

    const DataObject priv = only(parse_dodf(bytes(vec("dodf_private"))));
    EXPECT_TRUE(priv.common.is_private());
    EXPECT_EQ(priv.common.auth_id, from_hex("01"));
    EXPECT_FALSE(priv.is_vscard_internal());

    const DataObject fam = only(parse_dodf(bytes(vec("dodf_vscard"))));
    EXPECT_TRUE(fam.is_vscard_internal());
    DataObject made =
        make_vscard_object("family-key", from_hex("01"), Path::from_hex("3F0050154503"));
    made.der = fam.der;
    EXPECT_EQ(made, fam);
    EXPECT_EQ(encode_entry(made), bytes(vec("dodf_vscard")));
}

TEST(Pkcs15Dodf, ApplicationOidIndexLengthAndAccessRules) {
    const DataObject d = only(parse_dodf(bytes(vec("dodf_opensc_oid"))));
    EXPECT_EQ(d.app_name, "pkcs15-init test");
    EXPECT_EQ(d.app_oid, "1.2.3.4.5");
    EXPECT_EQ(d.path.to_hex(), "4510");
    EXPECT_EQ(d.path.index, 0);
    EXPECT_EQ(d.path.length, 256);

    DataObject acl = only(parse_dodf(bytes(vec("dodf_acl"))));
    EXPECT_EQ(acl.common.user_consent, 1);
    EXPECT_EQ(acl.common.access_control_rules, from_hex("30093007030207800401"
                                                        "01"));
    acl.common.label = "renamed";  // a fresh encoding keeps the opaque parts
    const DataObject again = only(parse_dodf(encode_entry(acl)));
    EXPECT_EQ(again.common.access_control_rules, acl.common.access_control_rules);
    EXPECT_EQ(again.common.user_consent, 1);
    EXPECT_EQ(again.common.label, "renamed");
}

TEST(Pkcs15Cdf, CertificateAndAuthority) {
    const CertObject c = only(parse_cdf(bytes(vec("cdf_cert"))));
    EXPECT_EQ(c.common.label, "Certificate");
    EXPECT_EQ(c.id, from_hex("45"));
    EXPECT_FALSE(c.authority);
    EXPECT_EQ(c.path.to_hex(), "3F0050154545");

    const CertObject ca = only(parse_cdf(bytes(vec("cdf_ca"))));
    EXPECT_TRUE(ca.authority);
    EXPECT_EQ(ca.subject, ca.issuer);
    EXPECT_EQ(ca.subject.front(), 0x30);
    EXPECT_EQ(ca.serial, from_hex("02021234"));
}

TEST(Pkcs15Prkdf, RsaAndEcKeys) {
    const auto keys =
        objects_of(parse_prkdf(concat({bytes(vec("prkdf_rsa")), bytes(vec("prkdf_ec"))})));
    ASSERT_EQ(keys.size(), 2u);
    const KeyObject& rsa = keys[0];
    EXPECT_EQ(rsa.kind, KeyKind::PrivateRsa);
    EXPECT_EQ(rsa.common.label, "Private Key");
    EXPECT_TRUE(rsa.common.is_private());
    EXPECT_EQ(rsa.id, from_hex("45"));
    EXPECT_EQ(rsa.usage, kUsageDecrypt | kUsageSign | kUsageSignRecover | kUsageUnwrap);
    EXPECT_TRUE(rsa.native);
    EXPECT_EQ(rsa.access_flags,
              kAccessSensitive | kAccessAlwaysSensitive | kAccessNeverExtractable | kAccessLocal);
    EXPECT_EQ(rsa.key_reference, 1);
    EXPECT_EQ(rsa.key_size, 2048);
    EXPECT_EQ(rsa.path.to_hex(), "3F0050154B01");

    const KeyObject& ec = keys[1];
    EXPECT_EQ(ec.kind, KeyKind::PrivateEc);
    EXPECT_EQ(ec.usage, kUsageSign | kUsageNonRepudiation);
    EXPECT_FALSE(ec.native);
    EXPECT_EQ(ec.alg_references, (std::vector<std::int64_t>{2, 3}));
    EXPECT_EQ(ec.key_size, 256);
    EXPECT_FALSE(ec.subclass.empty());
}

TEST(Pkcs15Pukdf, RsaAndEcKeys) {
    const auto keys =
        objects_of(parse_pukdf(concat({bytes(vec("pukdf_rsa")), bytes(vec("pukdf_ec"))})));
    ASSERT_EQ(keys.size(), 2u);
    EXPECT_EQ(keys[0].kind, KeyKind::PublicRsa);
    EXPECT_EQ(keys[0].usage, kUsageVerify);
    EXPECT_EQ(keys[0].key_size, 2048);
    EXPECT_EQ(keys[1].kind, KeyKind::PublicEc);
    EXPECT_FALSE(keys[1].key_size.has_value());
    EXPECT_EQ(keys[1].path.to_hex(), "3F0050154C02");
    KeyObject wrong = keys[0];
    wrong.kind = KeyKind::PrivateRsa;
    Entries<KeyObject> file{wrong};
    EXPECT_THROW(serialize_pukdf(file), Error);
}

TEST(Pkcs15Skdf, GenericAndDes3Keys) {
    const KeyObject aes = only(parse_skdf(bytes(vec("skdf_aes"))));
    EXPECT_EQ(aes.kind, KeyKind::SecretGeneric);
    EXPECT_EQ(aes.key_size, 128);
    EXPECT_EQ(aes.key_reference, 3);
    EXPECT_EQ(aes.usage, kUsageEncrypt | kUsageDecrypt);
    EXPECT_EQ(aes.path.to_hex(), "3F0050154D01");

    const KeyObject des3 = only(parse_skdf(bytes(vec("skdf_des3_spec"))));
    EXPECT_EQ(des3.kind, KeyKind::SecretDes3);
    EXPECT_EQ(des3.key_size, 192);
    EXPECT_EQ(des3.path, Path{});
    // A fresh encoding uses OpenSC's [0] { INTEGER } layout and reads back the same.
    KeyObject fresh = only(parse_skdf(encode_entry(des3)));
    fresh.der = des3.der;
    EXPECT_EQ(fresh, des3);
}

// ---- round trips of structures built from scratch ------------------------------------------

template <typename T, typename Parse>
void expect_round_trip(const T& value, Parse parse) {
    const Bytes der = encode_entry(value);
    T back = only(parse(der));
    EXPECT_EQ(back.der, der);
    back.der.clear();
    EXPECT_EQ(back, value);
}

TEST(Pkcs15RoundTrip, EveryStructureFromScratch) {
    CommonObjectAttributes co;
    co.label = "Grüße/файл";
    co.flags = kObjectPrivate | kObjectModifiable;
    co.auth_id = from_hex("0102");
    co.user_consent = 3;
    co.access_control_rules = from_hex("3000");

    PinObject pin;
    pin.common = co;
    pin.auth_id = from_hex("AA");
    pin.pin_flags = kPinLocal | kPinUnblockingPin | (1u << 11);
    pin.pin_type = static_cast<std::int64_t>(PinType::Utf8);
    pin.min_length = 6;
    pin.stored_length = 12;
    pin.max_length = 64;
    pin.reference = 0x90;
    pin.pad_char = 0x20;
    pin.last_pin_change = "20240101120000Z";
    pin.path = Path{from_hex("3F00"), 4, 16, from_hex("A000000063504B43532D3135")};
    expect_round_trip(pin, parse_aodf);

    DataObject data;
    data.common = co;
    data.app_name = "an app";
    data.app_oid = "2.999.1";
    data.path = Path::from_hex("3F0050155001");
    expect_round_trip(data, parse_dodf);

    CertObject cert;
    cert.common = co;
    cert.id = from_hex("45");
    cert.authority = true;
    cert.subject = from_hex("3000");
    cert.issuer = from_hex("300B3109300706035504030C00");
    cert.serial = from_hex("020101");
    cert.path = Path::from_hex("4545");
    expect_round_trip(cert, parse_cdf);

    KeyObject key;
    key.common = co;
    key.id = from_hex("45");
    key.usage = kUsageSign | kUsageDecrypt;
    key.native = false;
    key.access_flags = kAccessSensitive;
    key.key_reference = 0;
    key.alg_references = {1, 300};
    key.subclass = from_hex("3000");
    key.path = Path::from_hex("4B01");
    key.key_info = from_hex("020105");
    for (KeyKind kind : {KeyKind::PrivateRsa, KeyKind::PrivateEc, KeyKind::PublicRsa}) {
        key.kind = kind;
        key.key_size = 3072;
        expect_round_trip(key, kind == KeyKind::PublicRsa ? parse_pukdf : parse_prkdf);
    }
    key.kind = KeyKind::PublicEc;
    key.key_size.reset();
    expect_round_trip(key, parse_pukdf);
    key.subclass.clear();
    key.key_info.clear();
    for (KeyKind kind :
         {KeyKind::SecretGeneric, KeyKind::SecretDes, KeyKind::SecretDes2, KeyKind::SecretDes3}) {
        key.kind = kind;
        key.key_size = 256;
        expect_round_trip(key, parse_skdf);
        key.path = Path{};
        key.key_size.reset();
        expect_round_trip(key, parse_skdf);
    }

    TokenInfo ti;
    ti.version = 1;
    ti.serial_number = from_hex("00FF");
    ti.manufacturer_id = "";
    ti.label = "x";
    ti.token_flags = kTokenEidCompliant;
    ti.tail = from_hex("A203020100");
    EXPECT_EQ(parse_token_info(serialize_token_info(ti)), ti);

    Entries<DirRecord> dir{DirRecord{kPkcs15Aid, "", {}, from_hex("0500"), {}}};
    auto back = parse_dir(serialize_dir(dir));
    std::get<DirRecord>(back[0]).der.clear();
    EXPECT_EQ(back, dir);
}

TEST(Pkcs15RoundTrip, InvalidValuesAreRefused) {
    DataObject data;
    data.app_oid = "not.an.oid";
    EXPECT_THROW(encode_entry(data), Error);
    data.app_oid.clear();
    data.common.access_control_rules = from_hex("0400");
    EXPECT_THROW(encode_entry(data), Error);
    KeyObject rsa;
    rsa.kind = KeyKind::PrivateRsa;  // no modulus length
    EXPECT_THROW(encode_entry(rsa), Error);
    EXPECT_THROW(Path::from_hex("3F0"), Error);
    EXPECT_THROW(Path::from_hex("3G00"), Error);
}

// ---- directory files as a whole ------------------------------------------------------------

TEST(Pkcs15Files, UnknownEntriesSurviveAddingAndRemovingOurs) {
    const Bytes external = bytes(vec("dodf_external"));
    const Bytes acl = bytes(vec("dodf_acl"));
    const Bytes opensc = bytes(vec("dodf_opensc_oid"));
    const Bytes file = concat({bytes(vec("dodf_public")), external, acl, opensc});
    auto entries = parse_dodf(file);
    ASSERT_EQ(entries.size(), 4u);
    entries.erase(entries.begin());  // unlink notes/todo.txt
    DataObject added;
    added.common.label = "new/file";
    added.common.flags = kObjectModifiable;
    added.path = Path::from_hex("3F0050154510");
    entries.emplace_back(added);
    const Bytes written = serialize_dodf(entries, Layout{256, 0x00});
    EXPECT_EQ(written.size(), 256u);
    // Everything that was not ours to change is still there byte for byte, in order.
    const Bytes expected_prefix = concat({external, acl, opensc, encode_entry(added)});
    EXPECT_TRUE(std::equal(expected_prefix.begin(), expected_prefix.end(), written.begin()));
    const auto reread = parse_dodf(written);
    ASSERT_EQ(reread.size(), 4u);
    EXPECT_EQ(std::get<UnknownEntry>(reread[0]).der, external);
    EXPECT_EQ(std::get<DataObject>(reread[3]).common.label, "new/file");
}

TEST(Pkcs15Files, ParsingStopsAtPadding) {
    const Bytes odf = bytes(vec("odf"));
    for (std::uint8_t pad : {0x00, 0xFF}) {
        Bytes padded = odf;
        padded.resize(odf.size() + 40, pad);
        EXPECT_EQ(serialize_odf(parse_odf(padded)), odf);
        padded.push_back(0x30);  // whatever follows the padding is not read
        EXPECT_EQ(parse_odf(padded).size(), 6u);
    }
    EXPECT_TRUE(parse_odf({}).empty());
    EXPECT_TRUE(parse_aodf(Bytes(32, 0xFF)).empty());
}

TEST(Pkcs15Files, SerialisingPadsOrReportsNoSpace) {
    const auto entries = parse_odf(bytes(vec("odf")));
    const Bytes padded = serialize_odf(entries, Layout{100, 0xFF});
    ASSERT_EQ(padded.size(), 100u);
    EXPECT_EQ(padded.back(), 0xFF);
    try {
        serialize_odf(entries, Layout{71, 0x00});
        FAIL() << "expected NoSpace";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::NoSpace);
    }
    EXPECT_EQ(serialize_odf(entries, Layout{72, 0x00}), bytes(vec("odf")));
}

TEST(Pkcs15Files, UnknownEntriesMustBeOneDerElement) {
    for (const char* hex : {"", "30030201", "020100020100", "30800201000000"}) {
        Entries<DataObject> bad{UnknownEntry{from_hex(hex)}};
        EXPECT_THROW(serialize_dodf(bad), Error) << hex;
    }
    Entries<DataObject> padding_like{UnknownEntry{from_hex("FF00")}};
    EXPECT_THROW(serialize_dodf(padding_like), Error);
}

}  // namespace
}  // namespace vscard::pkcs15
