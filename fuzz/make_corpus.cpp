// Writes the seed corpus of the fuzz targets (fuzz/make_corpus.sh runs it): real inputs made
// by the product's own encoders, so the fuzzers start from what cards, VSC files, agents and
// users actually produce. Usage: vscard-fuzz-corpus OUTPUT_DIR
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent_protocol.hpp"
#include "card/apdu.hpp"
#include "card/emu_image.hpp"
#include "card/emulator.hpp"
#include "card/iso7816.hpp"
#include "card/personalize.hpp"
#include "error.hpp"
#include "keys.hpp"
#include "pkcs15/card_app.hpp"
#include "store/vsc_file.hpp"

namespace {

using namespace vscard;
using namespace vscard::card;
namespace fs = std::filesystem;

constexpr std::string_view kPin = "1234";
constexpr std::string_view kVscPassword = "fuzz password";  // fuzz_vsc_file.cpp
const Bytes kFamilyKey(32, 0x42);                           // fuzz_keys.cpp

fs::path g_out;

void put(const std::string& target, const std::string& name, ByteView content) {
    fs::create_directories(g_out / target);
    std::ofstream f(g_out / target / ("seed-" + name), std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(content.data()),
            static_cast<std::streamsize>(content.size()));
    if (!f) throw Error(ErrorKind::Io, "cannot write seed " + target + "/" + name);
}

void put_u16(Bytes& out, std::size_t v) {
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v));
}

void put_part(Bytes& out, ByteView part) {
    put_u16(out, part.size());
    out.insert(out.end(), part.begin(), part.end());
}

// The emulator behind a link that records every command and answer.
class RecordingLink : public Transmitter {
public:
    explicit RecordingLink(Emulator& e) : emu_(e) {}
    Bytes transmit(ByteView command) override {
        Bytes answer = emu_.process(command);
        commands.emplace_back(command.begin(), command.end());
        answers.push_back(answer);
        return answer;
    }
    std::vector<Bytes> commands;
    std::vector<Bytes> answers;

private:
    Emulator& emu_;
};

// A formatted card with public, private and vscard objects, and the APDUs of making it.
struct Session {
    Emulator emu{emu::CardImage::blank(16 * 1024)};
    RecordingLink link{emu};
    std::size_t format_commands = 0;

    Session() {
        EmulatorPersonalizer p;
        pkcs15::FormatOptions options;
        options.caps = caps_from_atr(emu.atr());
        pkcs15::CardApp app = pkcs15::format(link, p, "Fuzz card", view_of(kPin), options);
        format_commands = link.commands.size();
        app.verify_pin(view_of(kPin));
        app.write(pkcs15::Area::Public, "notes/readme.txt", view_of(std::string_view("hello")));
        app.write(pkcs15::Area::Private, "secret.txt", view_of(std::string_view("private")));
        app.mkdir(pkcs15::Area::Private, "empty/");
        app.read(pkcs15::Area::Public, "notes/readme.txt");
        app.rename(pkcs15::Area::Public, "notes/readme.txt", "notes/README");
        app.remove(pkcs15::Area::Private, "secret.txt");
    }
};

void visit_files(const emu::File& f, const std::function<void(const emu::File&)>& fn) {
    fn(f);
    for (const auto& c : f.children) visit_files(*c, fn);
}

void apdu_seeds(const Session& s) {
    // mode, command, response, exchange(command) against the recorded answers.
    for (std::size_t i = 0; i < s.link.commands.size(); i += 7) {
        const Bytes& cmd = s.link.commands[i];
        Bytes seed{0x06};
        put_part(seed, cmd);
        put_part(seed, s.link.answers[i]);
        ParsedCommand p = parse_command(cmd);
        seed.insert(seed.end(), {p.apdu.cla, p.apdu.ins, p.apdu.p1, p.apdu.p2});
        put_part(seed, p.apdu.data);
        put_u16(seed, p.apdu.ne);
        seed.push_back(0xFF);  // chunk
        put_part(seed, s.link.answers[i]);
        put("apdu", "session-" + std::to_string(i), seed);
    }
    // GET RESPONSE and wrong Le rounds.
    Bytes seed{0x00};
    put_part(seed, CommandApdu(0x00, 0xB0, 0x00, 0x00, {}, 0x10).encode());
    put_part(seed, Bytes{0x61, 0x04});
    seed.insert(seed.end(), {0x00, 0xB0, 0x00, 0x00});
    put_part(seed, Bytes{});
    put_u16(seed, 0x10);
    seed.push_back(0xFF);
    put_part(seed, Bytes{0x6C, 0x08});
    put_part(seed, Bytes{1, 2, 3, 4, 0x61, 0x04});
    put_part(seed, Bytes{5, 6, 7, 8, 0x90, 0x00});
    put("apdu", "get-response", seed);
}

void emulator_seeds(const Session& s) {
    Bytes format{0x80, 0x00};
    for (std::size_t i = 0; i < s.format_commands; ++i) put_part(format, s.link.commands[i]);
    Bytes blank{0x00, 0x00};
    for (std::size_t i = 0; i < s.format_commands; ++i) put_part(blank, s.link.commands[i]);
    put("emulator", "format", blank);
    Bytes use{0x80, 0x00};
    for (std::size_t i = s.format_commands; i < s.link.commands.size(); ++i)
        put_part(use, s.link.commands[i]);
    put("emulator", "session", use);
    Bytes image{0xFF};
    Bytes saved = s.emu.image().serialize();
    image.insert(image.end(), saved.begin(), saved.end());
    put("emulator", "image", image);
}

// A session with keys on a blank card: a key EF written with UPDATE BINARY, MANAGE SECURITY
// ENVIRONMENT, signatures, a refused DECIPHER, and an EC key pair generated on the card.
void emulator_key_seeds() {
    constexpr std::uint8_t kRef = 0x81;
    const SecurityAttributes key_access{Access::never(), Access::pin(kRef), Access::pin(kRef),
                                        Access::pin(kRef)};
    const Bytes imported = from_hex("3F00 5015 4410");
    const Bytes generated = from_hex("3F00 5015 4411");
    Emulator emu(emu::CardImage::blank(8 * 1024));  // as fuzz_emulator's blank card
    RecordingLink link(emu);
    Iso7816 iso(link, caps_from_atr(emu.atr()));
    EmulatorPersonalizer().set_pin(iso, kRef, view_of(kPin), {}, 3);
    iso.create_file(FileSpec{0x5015, true, 0, {}, {}});
    iso.create_file(FileSpec{0x4410, false, 256, {}, key_access});
    iso.verify(kRef, view_of(kPin));
    SecureBytes der = keys::PrivateKey::generate_ec(keys::PrivateKey::Type::EcP256).pkcs8();
    iso.update_binary(0, der);
    iso.transmit(CommandApdu(0x00, ins::kReadBinary, 0x00, 0x00, {}, 256));  // 6982
    iso.set_security_environment(SecurityTemplate::Signature, imported, kAlgorithmEcdsa);
    iso.compute_signature(Bytes(32, 0x11));
    iso.set_security_environment(SecurityTemplate::Confidentiality, imported, kAlgorithmRsaPkcs1);
    Bytes cryptogram(65, 0x00);  // padding indicator and 64 bytes: an EC key answers 6A80
    cryptogram[1] = 0x01;
    iso.transmit(CommandApdu(0x00, ins::kPerformSecurityOperation, 0x80, 0x86, cryptogram, 256));
    iso.create_file(FileSpec{0x4411, false, 256, {}, key_access});
    iso.generate_key_pair(GeneratedKeyType::EcP384);
    iso.set_security_environment(SecurityTemplate::Signature, generated, kAlgorithmEcdsa);
    iso.compute_signature(Bytes(48, 0x22));
    Bytes seed{0x00, 0x00};
    for (const Bytes& c : link.commands) put_part(seed, c);
    put("emulator", "keys", seed);
}

void card_file_seeds(const Session& s) {
    int n = 0;
    visit_files(*s.emu.image().mf, [&](const emu::File& f) {
        const std::string name =
            std::to_string(n++) + "-" +
            to_hex(Bytes{static_cast<std::uint8_t>(f.fid >> 8), static_cast<std::uint8_t>(f.fid)},
                   "");
        if (!f.df && !f.data.empty()) put("pkcs15", name, f.data);
    });
    // FCPs and answers as the card sends them (TLV), with the parse mode byte first.
    for (std::size_t i = 0; i < s.link.answers.size(); i += 5) {
        const Bytes& a = s.link.answers[i];
        if (a.size() <= 2) continue;
        Bytes seed{static_cast<std::uint8_t>(i & 0x01 ? 0x81 : 0xF0)};
        seed.insert(seed.end(), a.begin(), a.end() - 2);
        put("tlv", "answer-" + std::to_string(i), seed);
    }
}

// Records of (answer number, byte offset, xor value) for fuzz_card_app: none, and a few
// single corruptions spread over the session.
void card_app_seeds() {
    put("card_app", "none", Bytes{0x00, 0x00, 0x00, 0x00});
    for (std::uint8_t n = 0; n < 48; n += 6)
        put("card_app", "answer-" + std::to_string(n), Bytes{n, 0x00, 0x02, 0x01});
    put("card_app", "truncated", Bytes{0x03, 0xFF, 0xFF, 0x81});
    Bytes many;  // room for the fuzzer to grow inputs: 32 records that change nothing
    for (std::uint8_t n = 0; n < 64; n += 2) many.insert(many.end(), {n, 0x00, n, 0x00});
    put("card_app", "many", many);
}

void agent_seeds() {
    using agent::Message;
    using agent::Op;
    std::vector<Message> all;
    Message put_msg = agent::request(Op::Put, "vsc/card");
    put_msg.secret = secure_copy(view_of(std::string_view("password")));
    put_msg.seconds = 900;
    all.push_back(put_msg);
    all.push_back(agent::request(Op::Get, "card/0011223344556677"));
    all.push_back(agent::request(Op::LockAll));
    Message secret;
    secret.op = Op::Secret;
    secret.secret = secure_copy(view_of(std::string_view("1234")));
    all.push_back(secret);
    Message entries;
    entries.op = Op::Entries;
    entries.entries.push_back({"vsc/a", std::chrono::seconds(60)});
    entries.entries.push_back({"vsc/b", std::chrono::seconds(0)});
    all.push_back(entries);
    all.push_back(agent::event("vsc/a", true));
    all.push_back(agent::error_reply(ErrorKind::WrongPassword, "wrong password"));
    Bytes stream{0x00};
    int n = 0;
    for (const Message& m : all) {
        SecureBytes frame = agent::encode(m);
        Bytes one{static_cast<std::uint8_t>(n % 2 ? 0x00 : 0x07)};
        one.insert(one.end(), frame.begin(), frame.end());
        put("agent_protocol", std::to_string(n++), one);
        stream.insert(stream.end(), frame.begin(), frame.end());
    }
    put("agent_protocol", "stream", stream);
}

std::string pem_of(EVP_PKEY* key, bool der) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    if (der)
        i2d_PrivateKey_bio(bio.get(), key);
    else
        PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(len));
}

void key_seeds() {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> ec(EVP_EC_gen("P-256"), EVP_PKEY_free);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> rsa(EVP_RSA_gen(2048), EVP_PKEY_free);
    if (!ec || !rsa) throw Error(ErrorKind::Io, "key generation failed");
    for (auto [name, key] : {std::pair{"ec", ec.get()}, std::pair{"rsa", rsa.get()}}) {
        for (bool der : {false, true}) {
            const std::string content = pem_of(key, der);
            put("keys", std::string(name) + (der ? ".der" : ".pem"), view_of(content));
            if (der) continue;
            keys::KeyEntry entry = keys::import_private_key(view_of(content), kFamilyKey);
            put("keys", std::string(name) + ".envelope", entry.envelope);
            put("keys", std::string(name) + ".pub", view_of(entry.public_pem));
        }
    }
}

void vsc_seeds() {
    std::string tmpl = (fs::temp_directory_path() / "vscard-corpus-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw Error(ErrorKind::Io, "mkdtemp failed");
    const fs::path dir = tmpl;
    VscFile::CreateOptions options;
    crypto::ScryptParams kdf;  // fast: the fuzzer unlocks on every run
    kdf.n = 1024;
    kdf.r = 8;
    kdf.p = 1;
    kdf.salt = Bytes(16, 0x5a);
    options.kdf = kdf;
    options.assigned_card = "0011223344556677";
    const fs::path empty = VscFile::create(dir, "empty", view_of(kVscPassword), options);
    const fs::path full = VscFile::create(dir, "full", view_of(kVscPassword), options);
    {
        auto vsc = VscFile::open(full);
        VscKeys keys = vsc->unlock(view_of(kVscPassword));
        for (Area area : {Area::Public, Area::Private}) {
            auto store = vsc->area(area, &keys);
            AreaChange change;
            NodeRow row;
            row.id = store->allocate_id();
            row.meta.parent = static_cast<std::uint64_t>(area);  // the area root
            row.meta.name = "file.txt";
            row.meta.size = 5;
            row.meta.content = store->allocate_id();
            row.meta.xattrs["user.a"] = "b";
            change.upserts.push_back(row);
            ChunkWrite chunk;
            chunk.content = row.meta.content;
            const std::string_view text = "hello";
            chunk.data.assign(text.begin(), text.end());
            change.chunks.push_back(std::move(chunk));
            store->apply(change);
        }
        vsc->sync();
    }
    for (const auto& [name, path] : {std::pair{"empty.vsc", empty}, std::pair{"full.vsc", full}}) {
        std::ifstream in(path, std::ios::binary);
        Bytes content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        put("vsc_file", name, content);
    }
    fs::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " OUTPUT_DIR\n";
        return 2;
    }
    g_out = argv[1];
    try {
        Session session;
        apdu_seeds(session);
        emulator_seeds(session);
        emulator_key_seeds();
        card_file_seeds(session);
        card_app_seeds();
        agent_seeds();
        key_seeds();
        vsc_seeds();
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
