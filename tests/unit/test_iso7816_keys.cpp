// The client side of on-card keys (Iso7816: MANAGE SECURITY ENVIRONMENT, COMPUTE DIGITAL
// SIGNATURE, DECIPHER, GENERATE ASYMMETRIC KEY PAIR) against the in-process emulator, with
// extended length and with a short-only card that answers everything by GET RESPONSE; and the
// errors a caller sees. Signatures are checked by OpenSSL against the public key.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "card/emulator.hpp"
#include "card/iso7816.hpp"
#include "card/personalize.hpp"
#include "card_link.hpp"
#include "error.hpp"
#include "key_test_util.hpp"

namespace vscard::card {
namespace {

using namespace vscard::testing;

constexpr std::uint8_t kRef = 0x81;
const Bytes kPin = from_hex("31 32 33 34");
const Bytes kKeyPath = from_hex("3F00 5015 4410");
const Bytes kMessage = from_hex("68 65 6C 6C 6F");
const SecurityAttributes kKeyAccess{Access::never(), Access::pin(kRef), Access::pin(kRef),
                                    Access::pin(kRef)};

// A card with PIN 81 and DF 5015 holding the key EF 4410 of SIZE bytes.
struct Rig {
    Emulator emu;
    EmulatorLink link{emu};
    Iso7816 iso;

    explicit Rig(EmulatorOptions o = {}, std::size_t size = 1400)
        : emu(emu::CardImage::blank(), o), iso(link, caps_from_atr(emu.atr())) {
        EmulatorPersonalizer().set_pin(iso, kRef, kPin, {}, 3);
        iso.create_file(FileSpec{0x5015, true, 0, {}, {}});
        iso.create_file(FileSpec{0x4410, false, size, {}, kKeyAccess});
        emu.reset();
    }
    void import(ByteView der) {
        iso.verify(kRef, kPin);
        iso.select_path(kKeyPath);
        iso.update_binary(0, der);
    }
};

ErrorKind kind_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.kind();
    }
    ADD_FAILURE() << "no error";
    return ErrorKind::Io;
}

EmulatorOptions short_card() {
    EmulatorOptions o;
    o.extended = false;
    o.t0_responses = true;
    return o;
}

class Iso7816Keys : public ::testing::TestWithParam<bool> {
protected:
    EmulatorOptions options() const { return GetParam() ? short_card() : EmulatorOptions{}; }
};

TEST_P(Iso7816Keys, ImportedRsaKeySignsAndDeciphers) {
    Rig rig(options());
    rig.import(pkcs8_of(test_rsa_key()));
    EXPECT_EQ(kind_of([&] { rig.iso.read_binary(0, 16); }), ErrorKind::Locked);
    rig.iso.set_security_environment(SecurityTemplate::Signature, kKeyPath, kAlgorithmRsaPkcs1);
    Bytes signature = rig.iso.compute_signature(digest_info_sha256(kMessage));
    ASSERT_EQ(signature.size(), 256u);
    Pkey pub = public_key_of(spki_of(test_rsa_key()));
    EXPECT_TRUE(verify_sha256(pub.get(), kMessage, signature));
    EXPECT_FALSE(verify_sha256(pub.get(), from_hex("00"), signature));

    rig.iso.set_security_environment(SecurityTemplate::Confidentiality, kKeyPath,
                                     kAlgorithmRsaPkcs1);
    const Bytes secret(32, 0x3C);
    WipedBytes plain = rig.iso.decipher(rsa_encrypt(test_rsa_key(), secret));
    EXPECT_EQ(Bytes(plain.begin(), plain.end()), secret);
    EXPECT_EQ(kind_of([&] { rig.iso.decipher(mispadded_cryptogram(test_rsa_key())); }),
              ErrorKind::Invalid);
}

TEST_P(Iso7816Keys, ImportedEcKeySigns) {
    Rig rig(options());
    rig.import(pkcs8_of(test_ec_key()));
    rig.iso.set_security_environment(SecurityTemplate::Signature, from_hex("5015 4410"),
                                     kAlgorithmEcdsa);
    Bytes rs = rig.iso.compute_signature(sha256(kMessage));
    ASSERT_EQ(rs.size(), 64u);
    Pkey pub = public_key_of(spki_of(test_ec_key()));
    EXPECT_TRUE(verify_sha256(pub.get(), kMessage, ecdsa_der(rs)));
}

TEST_P(Iso7816Keys, GeneratedKeysSign) {
    struct Case {
        GeneratedKeyType type;
        unsigned bits;
        std::uint8_t algorithm;
        int key_bits;
    };
    for (const Case& c : {Case{GeneratedKeyType::EcP256, 2048, kAlgorithmEcdsa, 256},
                          Case{GeneratedKeyType::EcP384, 2048, kAlgorithmEcdsa, 384},
                          Case{GeneratedKeyType::Rsa, 2048, kAlgorithmRsaPkcs1, 2048}}) {
        SCOPED_TRACE(static_cast<int>(c.type));
        Rig rig(options());
        rig.iso.verify(kRef, kPin);
        rig.iso.select_path(kKeyPath);
        const Bytes spki = rig.iso.generate_key_pair(c.type, c.bits);
        Pkey pub = public_key_of(spki);
        ASSERT_TRUE(pub);
        EXPECT_EQ(EVP_PKEY_get_bits(pub.get()), c.key_bits);
        rig.iso.set_security_environment(SecurityTemplate::Signature, kKeyPath, c.algorithm);
        const bool rsa = c.algorithm == kAlgorithmRsaPkcs1;
        Bytes sig =
            rig.iso.compute_signature(rsa ? digest_info_sha256(kMessage) : sha256(kMessage));
        EXPECT_TRUE(verify_sha256(pub.get(), kMessage, rsa ? sig : ecdsa_der(sig)));
    }
}

TEST_P(Iso7816Keys, ErrorsSayWhatIsWrong) {
    Rig rig(options());
    rig.import(pkcs8_of(test_ec_key()));
    // No environment yet.
    EXPECT_EQ(kind_of([&] { rig.iso.compute_signature(sha256(kMessage)); }), ErrorKind::Locked);
    // No key file at the path.
    try {
        rig.iso.set_security_environment(SecurityTemplate::Signature, from_hex("3F00 5015 4499"),
                                         kAlgorithmEcdsa);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::NotFound);
        EXPECT_NE(std::string(e.what()).find("3F00/5015/4499"), std::string::npos) << e.what();
    }
    EXPECT_EQ(kind_of([&] {
                  rig.iso.set_security_environment(SecurityTemplate::Signature, from_hex("3F00 50"),
                                                   kAlgorithmEcdsa);
              }),
              ErrorKind::Invalid);
    EXPECT_EQ(kind_of([&] {
                  rig.iso.set_security_environment(SecurityTemplate::Confidentiality, kKeyPath,
                                                   kAlgorithmEcdsa);
              }),
              ErrorKind::Invalid);
    // The PIN not verified.
    rig.iso.set_security_environment(SecurityTemplate::Signature, kKeyPath, kAlgorithmEcdsa);
    rig.iso.logout(kRef);
    try {
        rig.iso.compute_signature(sha256(kMessage));
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Locked);
        EXPECT_NE(std::string(e.what()).find("PIN required"), std::string::npos) << e.what();
    }
    EXPECT_EQ(kind_of([&] { rig.iso.generate_key_pair(GeneratedKeyType::EcP256); }),
              ErrorKind::Locked);
    // A key file too small for the key.
    Rig small(options(), 100);
    small.iso.verify(kRef, kPin);
    small.iso.select_path(kKeyPath);
    EXPECT_EQ(kind_of([&] { small.iso.generate_key_pair(GeneratedKeyType::EcP256); }),
              ErrorKind::NoSpace);
    EXPECT_EQ(kind_of([&] { small.iso.generate_key_pair(GeneratedKeyType::Rsa, 1024); }),
              ErrorKind::Invalid);
}

INSTANTIATE_TEST_SUITE_P(Cards, Iso7816Keys, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                             return info.param ? "ShortT0" : "Extended";
                         });

}  // namespace
}  // namespace vscard::card
