// Keys on the card of vscard-emu, driven directly: the USE condition in tag 86 and in the image,
// key files that sign and decipher but never read out, MANAGE SECURITY ENVIRONMENT, PERFORM
// SECURITY OPERATION, GENERATE ASYMMETRIC KEY PAIR, long data and answers, and the log.
// Signatures are checked by OpenSSL against the public key.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "card/apdu.hpp"
#include "card/emulator.hpp"
#include "card/fcp.hpp"
#include "card/iso7816.hpp"
#include "card/tlv.hpp"
#include "card_link.hpp"
#include "error.hpp"
#include "key_test_util.hpp"
#include "keys.hpp"

namespace vscard::card {
namespace {

using namespace vscard::testing;

const Bytes kPin = from_hex("31 32 33 34 FF FF FF FF");
constexpr std::uint8_t kPinRef = 0x81;
const SecurityAttributes kKeyAccess{Access::never(), Access::pin(kPinRef), Access::pin(kPinRef),
                                    Access::pin(kPinRef)};
const Bytes kKeyPath = from_hex("3F00 5015 4410");
constexpr std::size_t kKeyFileSize = 1400;  // room for an RSA-2048 PKCS#8
const Bytes kMessage = from_hex("54 68 65 20 6D 65 73 73 61 67 65");

Bytes h(std::string_view text) {
    return from_hex(text);
}

Bytes cat(ByteView a, ByteView b) {
    Bytes out(a.begin(), a.end());
    out.insert(out.end(), b.begin(), b.end());
    return out;
}

CommandApdu create_ef(std::uint16_t fid, std::size_t size, SecurityAttributes sec) {
    Fcp f;
    f.fid = fid;
    f.descriptor = kDescriptorTransparentEf;
    f.size = size;
    f.security = sec;
    return CommandApdu(0x00, ins::kCreateFile, 0, 0, f.encode());
}

CommandApdu select_path(ByteView path) {
    return CommandApdu(0x00, ins::kSelect, 0x08, 0x0C, Bytes(path.begin() + 2, path.end()));
}

CommandApdu update(std::size_t offset, ByteView data) {
    return CommandApdu(0x00, ins::kUpdateBinary, static_cast<std::uint8_t>(offset >> 8),
                       static_cast<std::uint8_t>(offset), Bytes(data.begin(), data.end()));
}

CommandApdu read(std::size_t offset, std::size_t ne) {
    return CommandApdu(0x00, ins::kReadBinary, static_cast<std::uint8_t>(offset >> 8),
                       static_cast<std::uint8_t>(offset), {}, ne);
}

CommandApdu verify_pin() {
    return CommandApdu(0x00, ins::kVerify, 0x00, kPinRef, kPin);
}

CommandApdu mse(std::uint8_t tmpl, ByteView path, std::uint8_t algorithm) {
    Bytes data;
    tlv::append(data, 0x81, path);
    tlv::append(data, 0x80, Bytes{algorithm});
    return CommandApdu(0x00, ins::kManageSecurityEnvironment, 0x41, tmpl, data);
}

CommandApdu mse_raw(std::uint8_t tmpl, Bytes data) {
    return CommandApdu(0x00, ins::kManageSecurityEnvironment, 0x41, tmpl, std::move(data));
}

CommandApdu sign(ByteView data) {
    return CommandApdu(0x00, ins::kPerformSecurityOperation, 0x9E, 0x9A,
                       Bytes(data.begin(), data.end()), 256);
}

CommandApdu decipher(ByteView cryptogram, std::uint8_t indicator = 0x00) {
    return CommandApdu(0x00, ins::kPerformSecurityOperation, 0x80, 0x86,
                       cat(Bytes{indicator}, cryptogram), 256);
}

CommandApdu generate(Bytes data) {
    return CommandApdu(0x00, ins::kGenerateAsymmetricKeyPair, 0x00, 0x00, std::move(data), 65536);
}

// A card with PIN 81, DF 5015 and the key EF 4410 (read never, the rest after the PIN).
struct KeyCard {
    Emulator emu;
    explicit KeyCard(EmulatorOptions o = {}) : emu(emu::CardImage::blank(), o) {
        EmulatorOptions plain;
        Emulator setup(emu::CardImage::blank(), plain);
        Bytes pin_data;
        tlv::append(pin_data, 0x81, kPin);
        auto ok = [&](const CommandApdu& c) { EXPECT_EQ(setup.process(c).sw, sw::kOk); };
        ok(CommandApdu(0x80, 0x24, 0x00, kPinRef, pin_data));
        Fcp df;
        df.fid = 0x5015;
        df.descriptor = kDescriptorDf;
        df.security = SecurityAttributes{Access::always(), Access::always(), Access::always()};
        ok(CommandApdu(0x00, ins::kCreateFile, 0, 0, df.encode()));
        ok(create_ef(0x4410, kKeyFileSize, kKeyAccess));
        emu.replace_image(setup.image().clone());
    }
    ResponseApdu tx(const CommandApdu& c) { return emu.process(c); }
    std::uint16_t sw(const CommandApdu& c) { return tx(c).sw; }
    // Writes DER into the key EF (after VERIFY), as a client imports a key.
    void import(ByteView der) {
        ASSERT_EQ(sw(verify_pin()), sw::kOk);
        ASSERT_EQ(sw(select_path(kKeyPath)), sw::kOk);
        ASSERT_EQ(sw(update(0, der)), sw::kOk);
    }
    const emu::File& key_file() const { return *emu.image().mf->child(0x5015)->child(0x4410); }
};

std::size_t der_size(ByteView der) {
    tlv::Item item = tlv::parse_all(der, {.allow_padding = true}).at(0);
    return item.size();
}

TEST(EmulatorKeys, SecurityAttributesTakeAFourthByteForUse) {
    const SecurityAttributes old{Access::always(), Access::pin(kPinRef), Access::never()};
    EXPECT_EQ(old.use, Access::never());
    EXPECT_EQ(old.encode(), h("00 81 FF"));
    EXPECT_EQ(SecurityAttributes::decode(h("00 81 FF")), old);
    EXPECT_EQ(SecurityAttributes::decode(h("00 81 FF FF")), old);  // an explicit "never"
    EXPECT_EQ(kKeyAccess.encode(), h("FF 81 81 81"));
    EXPECT_EQ(SecurityAttributes::decode(h("FF 81 81 81")), kKeyAccess);
    EXPECT_NE(SecurityAttributes::decode(h("FF 81 81 00")), kKeyAccess);
    for (const char* bad : {"", "00 81", "00 81 FF FF 00"})
        EXPECT_THROW(SecurityAttributes::decode(h(bad)), Error) << bad;

    // FCPs without a USE condition stay byte for byte what they were.
    Fcp f;
    f.size = 10;
    f.descriptor = kDescriptorTransparentEf;
    f.fid = 0x4410;
    f.security = old;
    EXPECT_EQ(f.encode(), h("62 10 80 02 00 0A 82 01 01 83 02 44 10 86 03 00 81 FF"));
    f.security = kKeyAccess;
    Bytes fcp = f.encode();
    EXPECT_EQ(fcp, h("62 11 80 02 00 0A 82 01 01 83 02 44 10 86 04 FF 81 81 81"));
    EXPECT_EQ(Fcp::parse(fcp).security, kKeyAccess);
    EXPECT_EQ(Fcp::parse(h("62 05 86 03 00 81 FF")).security->use, Access::never());
    EXPECT_THROW(Fcp::parse(h("62 07 86 05 00 81 FF FF FF")), Error);
}

TEST(EmulatorKeys, CreateFileAndSelectCarryTheUseCondition) {
    KeyCard card;
    EXPECT_EQ(card.key_file().security, kKeyAccess);
    ResponseApdu r = card.tx(CommandApdu(0x00, ins::kSelect, 0x08, 0x04, h("50 15 44 10"), 256));
    ASSERT_EQ(r.sw, sw::kOk);
    EXPECT_EQ(Fcp::parse(r.data).security, kKeyAccess);
    // CREATE FILE without tag 86: everything allowed but USE.
    Fcp f;
    f.fid = 0x4411;
    f.descriptor = kDescriptorTransparentEf;
    f.size = 4;
    ASSERT_EQ(card.sw(select_path(h("3F00 5015"))), sw::kOk);
    ASSERT_EQ(card.sw(CommandApdu(0x00, ins::kCreateFile, 0, 0, f.encode())), sw::kOk);
    const emu::File& plain = *card.emu.image().mf->child(0x5015)->child(0x4411);
    EXPECT_TRUE(plain.security.read.is_always());
    EXPECT_TRUE(plain.security.use.is_never());
}

// The sizes of the security objects (C7) of all files in a serialized image, MF first.
std::vector<std::size_t> security_sizes(ByteView image) {
    ByteView body = image.subspan(16, image.size() - 16 - 32);  // header, SHA-256
    tlv::Node card = tlv::Node::parse(body, {.allow_padding = false, .max_depth = 16});
    std::vector<std::size_t> out;
    std::function<void(const tlv::Node&)> walk = [&](const tlv::Node& n) {
        for (const auto& c : n.children) {
            if (c.tag == 0xC7) out.push_back(c.value.size());
            if (c.tag == 0xE2) walk(c);
        }
    };
    walk(card);
    return out;
}

TEST(EmulatorKeys, ImageRoundTripWithAKeyFile) {
    KeyCard card;
    card.import(pkcs8_of(test_ec_key()));
    const Bytes saved = card.emu.image().serialize();
    // MF, DF 5015, key EF 4410: only the key EF has a USE condition, so four bytes.
    EXPECT_EQ(security_sizes(saved), (std::vector<std::size_t>{3, 3, 4}));
    const Bytes four = h("C7 04 FF 81 81 81");
    EXPECT_NE(std::search(saved.begin(), saved.end(), four.begin(), four.end()), saved.end());
    emu::CardImage back = emu::CardImage::deserialize(saved);
    EXPECT_EQ(back.serialize(), saved);
    EXPECT_EQ(back.mf->child(0x5015)->child(0x4410)->security, kKeyAccess);

    // The reloaded card signs with the key.
    KeyCard again;
    again.emu.replace_image(std::move(back));
    ASSERT_EQ(again.sw(verify_pin()), sw::kOk);
    ASSERT_EQ(again.sw(mse(0xB6, kKeyPath, kAlgorithmEcdsa)), sw::kOk);
    ResponseApdu r = again.tx(sign(sha256(kMessage)));
    ASSERT_EQ(r.sw, sw::kOk);
    Pkey pub = public_key_of(spki_of(test_ec_key()));
    EXPECT_TRUE(verify_sha256(pub.get(), kMessage, ecdsa_der(r.data)));

    // Without a key EF the image is what it was before USE existed: three bytes everywhere.
    ASSERT_EQ(again.sw(select_path(kKeyPath)), sw::kOk);
    ASSERT_EQ(again.sw(CommandApdu(0x00, ins::kDeleteFile, 0, 0)), sw::kOk);
    const Bytes keyless = again.emu.image().serialize();
    EXPECT_EQ(security_sizes(keyless), (std::vector<std::size_t>{3, 3}));
    EXPECT_EQ(emu::CardImage::deserialize(keyless).serialize(), keyless);
}

struct KeyCase {
    const char* name;
    EVP_PKEY* (*key)();
    std::uint8_t algorithm;
    std::size_t signature_size;
};

const KeyCase kCases[] = {
    {"RSA-2048", test_rsa_key, kAlgorithmRsaPkcs1, 256},
    {"EC P-256", test_ec_key, kAlgorithmEcdsa, 64},
};

Bytes to_be_signed(const KeyCase& c, ByteView message) {
    return c.algorithm == kAlgorithmRsaPkcs1 ? digest_info_sha256(message) : sha256(message);
}

bool signature_verifies(const KeyCase& c, ByteView spki, ByteView message, ByteView signature) {
    Pkey pub = public_key_of(spki);
    if (!pub) return false;
    if (c.algorithm == kAlgorithmRsaPkcs1) return verify_sha256(pub.get(), message, signature);
    return verify_sha256(pub.get(), message, ecdsa_der(signature));
}

TEST(EmulatorKeys, ImportedKeysSignButNeverReadOut) {
    for (const KeyCase& c : kCases) {
        SCOPED_TRACE(c.name);
        KeyCard card;
        const Bytes der = pkcs8_of(c.key());
        ASSERT_FALSE(der.empty());
        card.import(der);
        EXPECT_EQ(card.sw(read(0, 16)), sw::kSecurityNotSatisfied);  // PIN verified, still not
        EXPECT_EQ(Bytes(card.key_file().data.begin(),
                        card.key_file().data.begin() + static_cast<long>(der.size())),
                  der);
        // MSE needs no PIN; with or without the MF in the path.
        card.emu.reset();
        EXPECT_EQ(card.sw(mse(0xB6, h("5015 4410"), c.algorithm)), sw::kOk);
        ASSERT_EQ(card.sw(mse(0xB6, kKeyPath, c.algorithm)), sw::kOk);
        EXPECT_EQ(card.sw(sign(to_be_signed(c, kMessage))), sw::kSecurityNotSatisfied);
        ASSERT_EQ(card.sw(verify_pin()), sw::kOk);
        ResponseApdu r = card.tx(sign(to_be_signed(c, kMessage)));
        ASSERT_EQ(r.sw, sw::kOk);
        ASSERT_EQ(r.data.size(), c.signature_size);
        const Bytes spki = spki_of(c.key());
        EXPECT_TRUE(signature_verifies(c, spki, kMessage, r.data));
        EXPECT_FALSE(signature_verifies(c, spki, h("00"), r.data));
        Bytes tampered = r.data;
        tampered[tampered.size() / 2] ^= 0x01;
        EXPECT_FALSE(signature_verifies(c, spki, kMessage, tampered));
        // Forgetting the PIN locks the key again.
        ASSERT_EQ(card.sw(CommandApdu(0x00, ins::kVerify, 0xFF, kPinRef)), sw::kOk);
        EXPECT_EQ(card.sw(sign(to_be_signed(c, kMessage))), sw::kSecurityNotSatisfied);
        ASSERT_EQ(card.sw(select_path(kKeyPath)), sw::kOk);
        EXPECT_EQ(card.sw(read(0, 16)), sw::kSecurityNotSatisfied);
    }
}

TEST(EmulatorKeys, RsaSignsAnyBytesUpToTheModulusLess11) {
    KeyCard card;
    card.import(pkcs8_of(test_rsa_key()));
    ASSERT_EQ(card.sw(mse(0xB6, kKeyPath, kAlgorithmRsaPkcs1)), sw::kOk);
    const Bytes longest(245, 0x5A);
    ResponseApdu r = card.tx(sign(longest));
    ASSERT_EQ(r.sw, sw::kOk);
    // Recover the padded block with the public key: 00 01 FF.. 00 data.
    PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, test_rsa_key(), nullptr));
    ASSERT_EQ(EVP_PKEY_verify_recover_init(ctx.get()), 1);
    ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING), 1);
    Bytes recovered(256);
    std::size_t len = recovered.size();
    ASSERT_EQ(
        EVP_PKEY_verify_recover(ctx.get(), recovered.data(), &len, r.data.data(), r.data.size()),
        1);
    recovered.resize(len);
    EXPECT_EQ(recovered, longest);
    EXPECT_EQ(card.sw(sign(Bytes(246, 0x5A))), sw::kWrongLength);
    EXPECT_EQ(card.sw(sign({})), sw::kWrongLength);
}

TEST(EmulatorKeys, NoEnvironmentNoOperation) {
    KeyCard card;
    card.import(pkcs8_of(test_rsa_key()));
    const Bytes digest_info = digest_info_sha256(kMessage);
    EXPECT_EQ(card.sw(sign(digest_info)), sw::kConditionsNotSatisfied);
    ASSERT_EQ(card.sw(mse(0xB6, kKeyPath, kAlgorithmRsaPkcs1)), sw::kOk);
    // The signature environment does not serve DECIPHER.
    EXPECT_EQ(card.sw(decipher(Bytes(256, 0x01))), sw::kConditionsNotSatisfied);
    EXPECT_EQ(card.sw(sign(digest_info)), sw::kOk);
    // Reset and power cycle forget the environment (and the PIN).
    card.emu.reset();
    ASSERT_EQ(card.sw(verify_pin()), sw::kOk);
    EXPECT_EQ(card.sw(sign(digest_info)), sw::kConditionsNotSatisfied);
    ASSERT_EQ(card.sw(mse(0xB6, kKeyPath, kAlgorithmRsaPkcs1)), sw::kOk);
    card.emu.power_off();
    card.emu.power_on();
    ASSERT_EQ(card.sw(verify_pin()), sw::kOk);
    EXPECT_EQ(card.sw(sign(digest_info)), sw::kConditionsNotSatisfied);
    // Other P1-P2.
    EXPECT_EQ(card.sw(CommandApdu(0x00, ins::kPerformSecurityOperation, 0x9E, 0x9B, h("00"))),
              sw::kWrongP1P2);
}

TEST(EmulatorKeys, ManageSecurityEnvironmentChecksItsData) {
    KeyCard card;
    card.import(pkcs8_of(test_ec_key()));
    EXPECT_EQ(card.sw(mse(0xB6, h("3F00 5015 4499"), kAlgorithmEcdsa)), sw::kReferenceNotFound);
    EXPECT_EQ(card.sw(mse(0xB6, h("4410"), kAlgorithmEcdsa)), sw::kReferenceNotFound);
    EXPECT_EQ(card.sw(mse(0xB6, h("3F00 5015"), kAlgorithmEcdsa)), sw::kReferenceNotFound);
    EXPECT_EQ(card.sw(mse(0xB6, h("3F00"), kAlgorithmEcdsa)), sw::kReferenceNotFound);
    EXPECT_EQ(card.sw(mse(0xB6, h("3F00 5015 44"), kAlgorithmEcdsa)), sw::kWrongData);
    EXPECT_EQ(card.sw(mse(0xB6, kKeyPath, 0x07)), sw::kWrongData);
    EXPECT_EQ(card.sw(mse(0xB8, kKeyPath, kAlgorithmEcdsa)), sw::kWrongData);  // sign only
    EXPECT_EQ(card.sw(mse_raw(0xB6, h("81 06 3F 00 50 15 44 10"))), sw::kWrongData);
    EXPECT_EQ(card.sw(mse_raw(0xB6, h("80 01 04"))), sw::kWrongData);
    EXPECT_EQ(card.sw(mse_raw(0xB6, h("80 02 00 04 81 04 50 15 44 10"))), sw::kWrongData);
    EXPECT_EQ(card.sw(mse_raw(0xB6, h("80 01 04 81 04 50 15 44 10 84 01 01"))), sw::kWrongData);
    EXPECT_EQ(card.sw(mse_raw(0xB6, h("80 01 04 81 04 50 15 44 10 80 01 04"))), sw::kWrongData);
    EXPECT_EQ(card.sw(mse_raw(0xB6, h("80 05 04"))), sw::kWrongData);  // malformed TLV
    EXPECT_EQ(card.sw(mse_raw(0xB6, {})), sw::kWrongData);
    EXPECT_EQ(card.sw(CommandApdu(0x00, 0x22, 0x81, 0xB6, h("80 01 04 81 04 50 15 44 10"))),
              sw::kWrongP1P2);
    EXPECT_EQ(card.sw(CommandApdu(0x00, 0x22, 0x41, 0xA4, h("80 01 04 81 04 50 15 44 10"))),
              sw::kWrongP1P2);
    // The order of the objects does not matter.
    ASSERT_EQ(card.sw(mse_raw(0xB6, h("80 01 04 81 04 50 15 44 10"))), sw::kOk);
    EXPECT_EQ(card.sw(sign(sha256(kMessage))), sw::kOk);
    // A failed SET leaves no key chosen.
    EXPECT_EQ(card.sw(mse(0xB6, h("5015 4499"), kAlgorithmEcdsa)), sw::kReferenceNotFound);
    EXPECT_EQ(card.sw(sign(sha256(kMessage))), sw::kConditionsNotSatisfied);
    // The EF gone after MSE: the key is not found.
    ASSERT_EQ(card.sw(mse(0xB6, kKeyPath, kAlgorithmEcdsa)), sw::kOk);
    ASSERT_EQ(card.sw(select_path(kKeyPath)), sw::kOk);
    ASSERT_EQ(card.sw(CommandApdu(0x00, ins::kDeleteFile, 0, 0)), sw::kOk);
    EXPECT_EQ(card.sw(sign(sha256(kMessage))), sw::kReferenceNotFound);
}

TEST(EmulatorKeys, KeyFileContentAndDataLengthAreChecked) {
    KeyCard card;
    ASSERT_EQ(card.sw(verify_pin()), sw::kOk);
    // An empty (all zeros) key EF.
    ASSERT_EQ(card.sw(mse(0xB6, kKeyPath, kAlgorithmEcdsa)), sw::kOk);
    EXPECT_EQ(card.sw(sign(sha256(kMessage))), sw::kWrongData);
    // A key of the other type than the algorithm.
    card.import(pkcs8_of(test_rsa_key()));
    EXPECT_EQ(card.sw(sign(sha256(kMessage))), sw::kWrongData);
    ASSERT_EQ(card.sw(mse(0xB8, kKeyPath, kAlgorithmRsaPkcs1)), sw::kOk);
    ASSERT_EQ(card.sw(mse(0xB6, kKeyPath, kAlgorithmRsaPkcs1)), sw::kOk);
    EXPECT_EQ(card.sw(sign(digest_info_sha256(kMessage))), sw::kOk);
    // Something else than zeros after the key.
    const Bytes der = pkcs8_of(test_rsa_key());
    ASSERT_EQ(card.sw(select_path(kKeyPath)), sw::kOk);
    ASSERT_EQ(card.sw(update(der.size() + 10, h("01"))), sw::kOk);
    EXPECT_EQ(card.sw(sign(digest_info_sha256(kMessage))), sw::kWrongData);
    EXPECT_EQ(card.sw(decipher(rsa_encrypt(test_rsa_key(), kMessage))), sw::kWrongData);
    ASSERT_EQ(card.sw(update(der.size() + 10, h("00"))), sw::kOk);
    // Not DER any more.
    ASSERT_EQ(card.sw(update(0, h("31"))), sw::kOk);
    EXPECT_EQ(card.sw(sign(digest_info_sha256(kMessage))), sw::kWrongData);
    ASSERT_EQ(card.sw(update(0, h("30 82 FF"))), sw::kOk);
    EXPECT_EQ(card.sw(sign(digest_info_sha256(kMessage))), sw::kWrongData);

    // Keys of a kind the card does not hold: RSA below 2048 bits, EC on another curve.
    const Pkey rsa1024(EVP_RSA_gen(1024));
    const Pkey p521(EVP_EC_gen("P-521"));
    for (EVP_PKEY* other : {rsa1024.get(), p521.get()}) {
        KeyCard odd;
        odd.import(pkcs8_of(other));
        const bool rsa = EVP_PKEY_is_a(other, "RSA");
        ASSERT_EQ(odd.sw(mse(0xB6, kKeyPath, rsa ? kAlgorithmRsaPkcs1 : kAlgorithmEcdsa)), sw::kOk);
        EXPECT_EQ(odd.sw(sign(rsa ? digest_info_sha256(kMessage) : sha256(kMessage))),
                  sw::kWrongData);
    }

    KeyCard ec;
    ec.import(pkcs8_of(test_ec_key()));
    ASSERT_EQ(ec.sw(mse(0xB6, kKeyPath, kAlgorithmRsaPkcs1)), sw::kOk);
    EXPECT_EQ(ec.sw(sign(digest_info_sha256(kMessage))), sw::kWrongData);
    ASSERT_EQ(ec.sw(mse(0xB8, kKeyPath, kAlgorithmRsaPkcs1)), sw::kOk);
    EXPECT_EQ(ec.sw(decipher(Bytes(64, 0x01))), sw::kWrongData);
    ASSERT_EQ(ec.sw(mse(0xB6, kKeyPath, kAlgorithmEcdsa)), sw::kOk);
    EXPECT_EQ(ec.sw(sign({})), sw::kWrongLength);
    EXPECT_EQ(ec.sw(sign(Bytes(65, 0x01))), sw::kWrongLength);
    ResponseApdu r = ec.tx(sign(Bytes(64, 0x01)));  // a SHA-512 hash
    EXPECT_EQ(r.sw, sw::kOk);
    EXPECT_EQ(r.data.size(), 64u);
}

TEST(EmulatorKeys, RsaDecipher) {
    KeyCard card;
    card.import(pkcs8_of(test_rsa_key()));
    ASSERT_EQ(card.sw(mse(0xB8, kKeyPath, kAlgorithmRsaPkcs1)), sw::kOk);
    const Bytes secret = h("00 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF 10 20 30 40");
    const Bytes cryptogram = rsa_encrypt(test_rsa_key(), secret);
    ASSERT_EQ(cryptogram.size(), 256u);
    ResponseApdu r = card.tx(decipher(cryptogram));
    ASSERT_EQ(r.sw, sw::kOk);
    EXPECT_EQ(r.data, secret);
    EXPECT_EQ(card.sw(decipher(cryptogram, 0x81)), sw::kWrongData);  // padding indicator
    EXPECT_EQ(card.sw(CommandApdu(0x00, 0x2A, 0x80, 0x86, {}, 256)), sw::kWrongData);
    EXPECT_EQ(card.sw(decipher(ByteView(cryptogram).first(255))), sw::kWrongLength);
    EXPECT_EQ(card.sw(decipher(cat(cryptogram, h("00")))), sw::kWrongLength);
    // Signature padding (type 1) where encryption padding (type 2) belongs.
    const Bytes wrong = mispadded_cryptogram(test_rsa_key());
    ASSERT_EQ(wrong.size(), 256u);
    EXPECT_EQ(card.sw(decipher(wrong)), sw::kWrongData);
    // Still works after the error; and not without the PIN.
    EXPECT_EQ(card.tx(decipher(cryptogram)).data, secret);
    ASSERT_EQ(card.sw(CommandApdu(0x00, ins::kVerify, 0xFF, kPinRef)), sw::kOk);
    EXPECT_EQ(card.sw(decipher(cryptogram)), sw::kSecurityNotSatisfied);
}

struct GenerateCase {
    const char* name;
    Bytes data;
    std::uint8_t algorithm;
    int bits;
    std::size_t signature_size;
};

TEST(EmulatorKeys, GenerateKeyPairsThatSign) {
    const GenerateCase cases[] = {
        {"EC P-256", h("80 01 02"), kAlgorithmEcdsa, 256, 64},
        {"EC P-384", h("80 01 03"), kAlgorithmEcdsa, 384, 96},
        {"RSA default", h("80 01 01"), kAlgorithmRsaPkcs1, 2048, 256},
        {"RSA 2048", h("80 01 01 81 02 08 00"), kAlgorithmRsaPkcs1, 2048, 256},
    };
    for (const GenerateCase& c : cases) {
        SCOPED_TRACE(c.name);
        KeyCard card;
        ASSERT_EQ(card.sw(verify_pin()), sw::kOk);
        ASSERT_EQ(card.sw(select_path(kKeyPath)), sw::kOk);
        card.emu.take_changed();
        ResponseApdu r = card.tx(generate(c.data));
        ASSERT_EQ(r.sw, sw::kOk);
        EXPECT_TRUE(card.emu.take_changed());
        const Bytes spki = r.data;
        Pkey pub = public_key_of(spki);
        ASSERT_TRUE(pub);
        EXPECT_EQ(EVP_PKEY_get_bits(pub.get()), c.bits);
        EXPECT_EQ(EVP_PKEY_is_a(pub.get(), c.algorithm == kAlgorithmEcdsa ? "EC" : "RSA"), 1);
        // The EF holds the key's PKCS#8 DER, then zeros; it still cannot be read.
        const Bytes& content = card.key_file().data;
        ASSERT_EQ(content.size(), kKeyFileSize);
        const std::size_t n = der_size(content);
        EXPECT_TRUE(std::all_of(content.begin() + static_cast<long>(n), content.end(),
                                [](std::uint8_t b) { return b == 0; }));
        std::optional<keys::PrivateKey> key =
            keys::PrivateKey::from_pkcs8(ByteView(content).first(n));
        ASSERT_TRUE(key);
        EXPECT_EQ(key->public_key(), spki);
        EXPECT_EQ(card.sw(read(0, 16)), sw::kSecurityNotSatisfied);

        ASSERT_EQ(card.sw(mse(0xB6, kKeyPath, c.algorithm)), sw::kOk);
        const bool rsa = c.algorithm == kAlgorithmRsaPkcs1;
        r = card.tx(sign(rsa ? digest_info_sha256(kMessage) : sha256(kMessage)));
        ASSERT_EQ(r.sw, sw::kOk);
        ASSERT_EQ(r.data.size(), c.signature_size);
        EXPECT_TRUE(verify_sha256(pub.get(), kMessage, rsa ? r.data : ecdsa_der(r.data)));
        EXPECT_FALSE(verify_sha256(pub.get(), h("01"), rsa ? r.data : ecdsa_der(r.data)));

        // A second generation replaces the key.
        ASSERT_EQ(card.sw(select_path(kKeyPath)), sw::kOk);
        ResponseApdu again = card.tx(generate(c.data));
        ASSERT_EQ(again.sw, sw::kOk);
        EXPECT_NE(again.data, spki);
    }
}

TEST(EmulatorKeys, GenerateRefusals) {
    KeyCard card;
    ASSERT_EQ(card.sw(verify_pin()), sw::kOk);
    ASSERT_EQ(card.sw(select_path(h("3F00 5015"))), sw::kOk);
    const Bytes pattern(100, 0xA5);
    ASSERT_EQ(card.sw(create_ef(0x4411, pattern.size(), kKeyAccess)), sw::kOk);
    ASSERT_EQ(card.sw(update(0, pattern)), sw::kOk);
    card.emu.take_changed();
    const emu::File& small = *card.emu.image().mf->child(0x5015)->child(0x4411);
    // Too small for a P-256 PKCS#8: nothing written.
    EXPECT_EQ(card.sw(generate(h("80 01 02"))), sw::kNotEnoughMemory);
    EXPECT_EQ(small.data, pattern);
    EXPECT_FALSE(card.emu.take_changed());
    // Malformed or unknown requests.
    for (const char* bad :
         {"", "80 01 04", "80 01 00", "80 02 00 02", "81 02 08 00", "80 01 01 81 02 04 00",
          "80 01 01 81 02 08 01", "80 01 01 81 01 08", "80 01 02 81 02 08 00", "80 01 02 80 01 02",
          "80 01 02 84 01 01", "80 05 02"})
        EXPECT_EQ(card.sw(generate(h(bad))), sw::kWrongData) << bad;
    EXPECT_EQ(card.sw(CommandApdu(0x00, 0x46, 0x80, 0x00, h("80 01 02"), 256)), sw::kWrongP1P2);
    EXPECT_EQ(small.data, pattern);
    // Without the PIN the EF's UPDATE condition is not met.
    ASSERT_EQ(card.sw(CommandApdu(0x00, ins::kVerify, 0xFF, kPinRef)), sw::kOk);
    ASSERT_EQ(card.sw(select_path(kKeyPath)), sw::kOk);
    EXPECT_EQ(card.sw(generate(h("80 01 02"))), sw::kSecurityNotSatisfied);
    EXPECT_TRUE(std::all_of(card.key_file().data.begin(), card.key_file().data.end(),
                            [](std::uint8_t b) { return b == 0; }));
    // No current EF: a DF selected, or nothing after a reset.
    ASSERT_EQ(card.sw(verify_pin()), sw::kOk);
    ASSERT_EQ(card.sw(select_path(h("3F00 5015"))), sw::kOk);
    EXPECT_EQ(card.sw(generate(h("80 01 02"))), sw::kNoCurrentEf);
    card.emu.reset();
    EXPECT_EQ(card.sw(generate(h("80 01 02"))), sw::kNoCurrentEf);
    EXPECT_FALSE(card.emu.take_changed());
}

// The APDU layer's exchange() against the emulator: chaining, 61xx and GET RESPONSE.
TEST(EmulatorKeys, LongDataByChainingAndAnswersByGetResponse) {
    EmulatorOptions o;
    o.extended = false;
    o.t0_responses = true;
    KeyCard card(o);
    vscard::testing::EmulatorLink link(card.emu);
    ExchangeOptions x;  // short APDUs: data over 255 bytes goes in a chain
    const Bytes der = pkcs8_of(test_rsa_key());
    ASSERT_EQ(exchange(link, verify_pin(), x).sw, sw::kOk);
    ASSERT_EQ(exchange(link, select_path(kKeyPath), x).sw, sw::kOk);
    ASSERT_EQ(exchange(link, update(0, der), x).sw, sw::kOk);
    ASSERT_EQ(exchange(link, mse(0xB8, kKeyPath, kAlgorithmRsaPkcs1), x).sw, sw::kOk);

    // By hand: 257 bytes of data in two parts; the answer is announced with 61xx.
    const Bytes secret(200, 0x77);
    const Bytes cryptogram = rsa_encrypt(test_rsa_key(), secret);
    std::vector<CommandApdu> parts = chain(decipher(cryptogram), 255);
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_EQ(card.sw(parts[0]), sw::kOk);
    ResponseApdu r = card.tx(parts[1]);
    ASSERT_EQ(r.sw, 0x61C8);
    EXPECT_TRUE(r.data.empty());
    r = card.tx(CommandApdu(0x00, ins::kGetResponse, 0, 0, {}, 0xC8));
    ASSERT_EQ(r.sw, sw::kOk);
    EXPECT_EQ(r.data, secret);
    // Through exchange().
    r = exchange(link, decipher(cryptogram), x);
    ASSERT_EQ(r.sw, sw::kOk);
    EXPECT_EQ(r.data, secret);

    ASSERT_EQ(exchange(link, mse(0xB6, kKeyPath, kAlgorithmRsaPkcs1), x).sw, sw::kOk);
    r = card.tx(sign(digest_info_sha256(kMessage)));
    ASSERT_EQ(r.sw, 0x6100);  // 256 bytes
    r = exchange(link, sign(digest_info_sha256(kMessage)), x);
    ASSERT_EQ(r.sw, sw::kOk);
    Pkey pub = public_key_of(spki_of(test_rsa_key()));
    EXPECT_TRUE(verify_sha256(pub.get(), kMessage, r.data));

    // A public key longer than Le.
    ASSERT_EQ(exchange(link, select_path(kKeyPath), x).sw, sw::kOk);
    CommandApdu gen = generate(h("80 01 02"));
    gen.ne = 16;
    r = exchange(link, gen, x);
    ASSERT_EQ(r.sw, sw::kOk);
    EXPECT_TRUE(public_key_of(r.data));
}

TEST(EmulatorKeys, ExtendedLengthCarriesLongDataAndAnswers) {
    KeyCard card;
    card.import(pkcs8_of(test_rsa_key()));
    ASSERT_EQ(card.sw(mse(0xB8, kKeyPath, kAlgorithmRsaPkcs1)), sw::kOk);
    const Bytes secret(100, 0x42);
    CommandApdu c = decipher(rsa_encrypt(test_rsa_key(), secret));
    c.ne = 65536;
    Bytes raw = c.encode(LengthForm::Extended);
    ResponseApdu r = ResponseApdu::parse(card.emu.process(ByteView(raw)));
    ASSERT_EQ(r.sw, sw::kOk);
    EXPECT_EQ(r.data, secret);
}

TEST(EmulatorKeys, KeyMaterialStaysOutOfTheLog) {
    KeyCard card;
    ASSERT_EQ(card.sw(verify_pin()), sw::kOk);
    const Bytes write = update(0, h("30 82 01 02 03")).encode();
    const Bytes plain_read = read(0, 4).encode();
    ASSERT_EQ(card.sw(select_path(h("3F00 5015"))), sw::kOk);
    EXPECT_FALSE(card.emu.is_secret(write));  // no current EF
    ASSERT_EQ(card.sw(create_ef(0x4411, 8, {Access::always(), Access::always(), Access::always()})),
              sw::kOk);
    EXPECT_FALSE(card.emu.is_secret(write));  // a readable EF
    ASSERT_EQ(card.sw(select_path(kKeyPath)), sw::kOk);
    EXPECT_TRUE(card.emu.is_secret(write));
    EXPECT_TRUE(card.emu.is_secret(Bytes{0x10, 0xD6, 0x00, 0x00, 0x01, 0x30}));  // chained
    EXPECT_FALSE(card.emu.is_secret(plain_read));
    EXPECT_TRUE(card.emu.is_secret(decipher(Bytes(256, 1)).encode()));
    EXPECT_FALSE(card.emu.is_secret(sign(Bytes(32, 1)).encode()));
    EXPECT_FALSE(card.emu.is_secret(h("00")));

    ApduLog log;
    log.enable();
    log.command(write, true);
    log.response(h("01 02 03 90 00"), true);
    log.command(write, false);
    std::vector<std::string> lines = log.lines();
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0], "apdu #1 > 00 D6 00 00 Lc=5 [key data withheld]");
    EXPECT_EQ(lines[1], "apdu #1 < [3 bytes withheld] 90 00");
    EXPECT_NE(lines[2].find("30 82 01 02 03"), std::string::npos);
    EXPECT_EQ(describe_response(h("90 00"), true), "90 00");
}

}  // namespace
}  // namespace vscard::card
