// pkcs15::CardApp's key store: private keys in never-readable key files named by PrKDF
// entries, their public keys beside them (PuKDF), and the card using them (DESIGN §5).
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <set>

#include "error.hpp"
#include "pkcs15/card_app.hpp"
#include "pkcs15/card_app_state.hpp"

namespace vscard::pkcs15 {
namespace {

using card::Access;
using card::SecurityAttributes;

struct PkeyDeleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

// What the key store records of a key, from its public key.
struct KeyFacts {
    bool rsa = true;
    std::int64_t bits = 0;  // RSA modulus length, EC field size
    Bytes id;               // SHA-1 of the SubjectPublicKeyInfo
};

KeyFacts facts_of(ByteView spki) {
    const unsigned char* p = spki.data();
    std::unique_ptr<EVP_PKEY, PkeyDeleter> pkey(
        d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
    if (!pkey || p != spki.data() + spki.size())
        throw Error(ErrorKind::Invalid, "not a public key (SubjectPublicKeyInfo DER expected)");
    KeyFacts f;
    if (EVP_PKEY_is_a(pkey.get(), "RSA"))
        f.rsa = true;
    else if (EVP_PKEY_is_a(pkey.get(), "EC"))
        f.rsa = false;
    else
        throw Error(ErrorKind::Invalid, "the card keeps RSA and EC keys only");
    f.bits = EVP_PKEY_get_bits(pkey.get());
    f.id.resize(EVP_MAX_MD_SIZE);
    unsigned int n = 0;
    if (EVP_Digest(spki.data(), spki.size(), f.id.data(), &n, EVP_sha1(), nullptr) != 1)
        throw Error(ErrorKind::Io, "OpenSSL could not hash the public key");
    f.id.resize(n);
    return f;
}

struct KeyAt {
    std::size_t dir;
    std::size_t entry;
};

Entries<KeyObject> entries_of(const DirFile& f) {
    return f.type == DfType::PrKDF ? parse_prkdf(f.content) : parse_pukdf(f.content);
}

Bytes serialized(DfType type, const Entries<KeyObject>& entries) {
    return type == DfType::PrKDF ? serialize_prkdf(entries) : serialize_pukdf(entries);
}

// The first entry of a directory file of TYPE that MATCHES.
template <typename Match>
std::optional<KeyAt> find_entry(const CardApp::State& s, DfType type, Match matches) {
    for (std::size_t i = 0; i < s.dirs.size(); ++i) {
        if (s.dirs[i].type != type) continue;
        const Entries<KeyObject> entries = entries_of(s.dirs[i]);
        for (std::size_t j = 0; j < entries.size(); ++j)
            if (const auto* k = std::get_if<KeyObject>(&entries[j]); k && matches(*k))
                return KeyAt{i, j};
    }
    return std::nullopt;
}

std::optional<KeyAt> private_entry(const CardApp::State& s, std::string_view label) {
    return find_entry(s, DfType::PrKDF,
                      [&](const KeyObject& k) { return k.common.label == label; });
}

// The PrKDF entry of key LABEL; NotFound when the card has none.
KeyAt existing_key(const CardApp::State& s, std::string_view label) {
    if (auto at = private_entry(s, label)) return *at;
    throw Error(ErrorKind::NotFound, "the card has no key named '" + std::string(label) + "'");
}

std::optional<KeyAt> public_entry(const CardApp::State& s, const Bytes& id) {
    return find_entry(s, DfType::PuKDF, [&](const KeyObject& k) { return k.id == id; });
}

KeyObject key_at(const CardApp::State& s, const KeyAt& at) {
    return std::get<KeyObject>(entries_of(s.dirs[at.dir])[at.entry]);
}

// Commits directory file DIR with its entries changed by EDIT.
template <typename Edit>
void edit_dir(CardApp::State& s, std::size_t dir, Edit edit) {
    Entries<KeyObject> next = entries_of(s.dirs[dir]);
    edit(next);
    commit_dir(s, s.dirs[dir], serialized(s.dirs[dir].type, next));
}

void erase_at(Entries<KeyObject>& entries, std::size_t i) {
    entries.erase(entries.begin() + static_cast<long>(i));
}

// A new file in the application holding CONTENT (or SIZE zero bytes for the card to fill),
// nothing referencing it yet (nor OTHER_NEW_FILE, made for the same key); the new file is left
// current.
Path new_file(CardApp::State& s, const SecurityAttributes& access, ByteView content,
              std::size_t size, const std::optional<Path>& other_new_file = std::nullopt) {
    card::FileSpec spec;
    spec.size = std::max(size, content.size());
    spec.access = access;
    std::set<std::uint16_t> taken;
    if (other_new_file) taken.insert(last_fid(other_new_file->value));
    Path p = app_file_path(s, create_in_app(s, spec, kFirstKeyFid, kLastKeyFid, taken));
    try {
        if (!content.empty()) s.iso.update_binary(0, content);
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::Io) delete_quietly(s, p);
        throw;
    }
    return p;
}

SecurityAttributes key_file_access(const PinObject& pin) {
    const Access p = Access::pin(static_cast<std::uint8_t>(*pin.reference));
    return {Access::never(), p, p, p};
}

// Room a key file needs for the PKCS#8 DER of a key the card generates.
std::size_t generated_key_room(card::GeneratedKeyType type, unsigned rsa_bits) {
    switch (type) {
        case card::GeneratedKeyType::Rsa:
            return rsa_bits / 8 * 5 + 256;  // n, d, p, q, dp, dq, qinv and DER framing
        case card::GeneratedKeyType::EcP256:
        case card::GeneratedKeyType::EcP384:
            return 256;
    }
    return 0;
}

KeyObject private_entry_for(std::string_view label, const KeyFacts& f, const PinObject& pin,
                            Path key_file, bool generated) {
    KeyObject k;
    k.kind = f.rsa ? KeyKind::PrivateRsa : KeyKind::PrivateEc;
    k.common.label = std::string(label);
    k.common.flags = kObjectPrivate | kObjectModifiable;
    k.common.auth_id = pin.auth_id;
    k.id = f.id;
    k.usage = f.rsa ? kUsageSign | kUsageDecrypt : kUsageSign;
    k.access_flags = kAccessSensitive;
    if (generated)
        k.access_flags |= kAccessAlwaysSensitive | kAccessNeverExtractable | kAccessLocal;
    k.path = std::move(key_file);
    k.key_size = f.bits;
    return k;
}

KeyObject public_entry_for(std::string_view label, const KeyFacts& f, Path file) {
    KeyObject k;
    k.kind = f.rsa ? KeyKind::PublicRsa : KeyKind::PublicEc;
    k.common.label = std::string(label);
    k.common.flags = kObjectModifiable;
    k.id = f.id;
    k.usage = f.rsa ? kUsageVerify | kUsageEncrypt : kUsageVerify;
    k.path = std::move(file);
    if (f.rsa) k.key_size = f.bits;
    return k;
}

// Steps 2 and 3 of every key write, once the key file KEY_FILE holds the key: the public key
// file and its PuKDF entry, then the PrKDF entry (the commit point; it replaces REPLACED),
// then what the replaced key leaves behind.
void commit_key(CardApp::State& s, const PinObject& pin, std::string_view label,
                const KeyFacts& facts, ByteView spki, Path key_file, bool generated,
                const std::optional<KeyAt>& replaced) {
    const std::optional<PinObject> pin_opt = pin;
    std::optional<Path> pub_file;
    std::optional<std::size_t> pukdf;
    auto undo = [&] {
        if (pukdf)
            edit_dir(s, *pukdf, [&](Entries<KeyObject>& e) {
                for (std::size_t i = e.size(); i-- > 0;)
                    if (const auto* k = std::get_if<KeyObject>(&e[i]);
                        k && k->id == facts.id && k->path.value == pub_file->value)
                        erase_at(e, i);
            });
        if (pub_file) delete_quietly(s, *pub_file);
        delete_quietly(s, key_file);
    };
    std::optional<KeyObject> old;
    if (replaced) old = key_at(s, *replaced);
    try {
        const std::size_t pudir = writable_dir(s, DfType::PuKDF, pin_opt);
        const Access w = write_access(s.dirs[pudir], pin_opt);
        pub_file = new_file(s, {Access::always(), w, w}, spki, 0, key_file);
        edit_dir(s, pudir, [&](Entries<KeyObject>& e) {
            e.push_back(public_entry_for(label, facts, *pub_file));
        });
        pukdf = pudir;
        KeyObject entry = private_entry_for(label, facts, pin, key_file, generated);
        if (replaced) {
            edit_dir(s, replaced->dir, [&](Entries<KeyObject>& e) { e[replaced->entry] = entry; });
        } else {
            edit_dir(s, writable_dir(s, DfType::PrKDF, pin_opt),
                     [&](Entries<KeyObject>& e) { e.push_back(entry); });
        }
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::Io) undo();
        throw;
    }
    s.content[path_key(*pub_file)] = WipedBytes(spki.begin(), spki.end());
    if (!old) return;
    // What the replaced key leaves behind: its public key entry and both files.
    if (auto pub = public_entry(s, old->id)) {
        const Path old_pub = key_at(s, *pub).path;
        edit_dir(s, pub->dir, [&](Entries<KeyObject>& e) { erase_at(e, pub->entry); });
        forget_file(s, old_pub);
    }
    forget_file(s, old->path);
}

bool in_key_range(const Path& p) {
    const std::uint16_t fid = last_fid(p.value);
    return p.aid.empty() && fid >= kFirstKeyFid && fid <= kLastKeyFid;
}

// Key writes start from the key directories as on the card now (another program, vscardctl
// beside the mount, may have changed them since they were read), and finish what a write cut
// short left: a public key entry of vscard's whose private key never got its PrKDF entry.
void prepare_key_write(CardApp::State& s) {
    for (auto& f : s.dirs)
        if ((f.type == DfType::PrKDF || f.type == DfType::PuKDF) && f.writable) reread_dir(s, f);
    std::set<Bytes> ids;
    for (const auto& f : s.dirs)
        if (f.type == DfType::PrKDF)
            for (const auto& e : entries_of(f))
                if (const auto* k = std::get_if<KeyObject>(&e)) ids.insert(k->id);
    for (std::size_t i = 0; i < s.dirs.size(); ++i) {
        if (s.dirs[i].type != DfType::PuKDF || !s.dirs[i].writable) continue;
        std::vector<Path> stray;
        Entries<KeyObject> next = entries_of(s.dirs[i]);
        std::erase_if(next, [&](const Entry<KeyObject>& e) {
            const auto* k = std::get_if<KeyObject>(&e);
            if (!k || ids.count(k->id) || !in_key_range(k->path)) return false;
            stray.push_back(k->path);
            return true;
        });
        if (stray.empty()) continue;
        commit_dir(s, s.dirs[i], serialize_pukdf(next));
        for (const auto& p : stray) forget_file(s, p);
    }
}

}  // namespace

void forget_file(CardApp::State& s, const Path& p) {
    s.content.erase(path_key(p));
    s.sizes.erase(path_key(p));
    if (!p.value.empty()) delete_quietly(s, p);
}

std::optional<KeyObject> CardApp::private_key(std::string_view label) const {
    const auto at = private_entry(*s_, label);
    if (!at) return std::nullopt;
    return key_at(*s_, *at);
}

std::optional<Bytes> CardApp::public_key(std::string_view label) {
    s_->check_usable();
    const auto key = private_key(label);
    if (!key) return std::nullopt;
    const auto pub = public_entry(*s_, key->id);
    if (!pub) return std::nullopt;
    const Path p = key_at(*s_, *pub).path;
    if (p.value.empty() && p.aid.empty()) return std::nullopt;
    WipedBytes data;
    guarded(*s_, [&] { data = s_->read_cached(p); });
    return Bytes(data.begin(), data.end());
}

void CardApp::import_key(std::string_view label, ByteView pkcs8, ByteView spki) {
    check_label(label);
    const KeyFacts facts = facts_of(spki);
    const auto pin_opt = user_pin();
    const PinObject& pin = user_pin_of(pin_opt);
    guarded(*s_, [&] {
        prepare_key_write(*s_);
        const auto old = private_entry(*s_, label);
        if (old && key_at(*s_, *old).id == facts.id) return;  // that very key is there
        // 1. the key, in a file nothing references yet and nobody can read
        Path key_file = [&] {
            card::Iso7816::KeyMaterial secret(s_->iso);
            return new_file(*s_, key_file_access(pin), pkcs8, 0);
        }();
        commit_key(*s_, pin, label, facts, spki, std::move(key_file), false, old);
    });
}

Bytes CardApp::generate_key(std::string_view label, card::GeneratedKeyType type,
                            unsigned rsa_bits) {
    check_label(label);
    const auto pin_opt = user_pin();
    const PinObject& pin = user_pin_of(pin_opt);
    Bytes spki;
    guarded(*s_, [&] {
        prepare_key_write(*s_);
        if (private_entry(*s_, label))
            throw Error(ErrorKind::Exists, "the card has a key named '" + std::string(label) + "'");
        Path key_file = new_file(*s_, key_file_access(pin), {}, generated_key_room(type, rsa_bits));
        KeyFacts facts;
        try {
            spki = s_->iso.generate_key_pair(type, rsa_bits);  // the new file is current
            facts = facts_of(spki);
        } catch (const Error& e) {
            if (e.kind() != ErrorKind::Io) delete_quietly(*s_, key_file);
            throw;
        }
        commit_key(*s_, pin, label, facts, spki, std::move(key_file), true, std::nullopt);
    });
    return spki;
}

void CardApp::remove_key(std::string_view label) {
    guarded(*s_, [&] {
        prepare_key_write(*s_);
        const KeyAt at = existing_key(*s_, label);
        const KeyObject key = key_at(*s_, at);
        edit_dir(*s_, at.dir, [&](Entries<KeyObject>& e) { erase_at(e, at.entry); });
        if (const auto pub = public_entry(*s_, key.id)) {
            const Path pub_file = key_at(*s_, *pub).path;
            edit_dir(*s_, pub->dir, [&](Entries<KeyObject>& e) { erase_at(e, pub->entry); });
            forget_file(*s_, pub_file);
        }
        forget_file(*s_, key.path);
    });
}

void CardApp::rename_key(std::string_view from, std::string_view to) {
    check_label(to);
    guarded(*s_, [&] {
        prepare_key_write(*s_);
        const KeyAt at = existing_key(*s_, from);
        if (from == to) return;
        if (private_entry(*s_, to))
            throw Error(ErrorKind::Exists, "the card has a key named '" + std::string(to) + "'");
        const Bytes id = key_at(*s_, at).id;
        edit_dir(*s_, at.dir, [&](Entries<KeyObject>& e) {
            std::get<KeyObject>(e[at.entry]).common.label = std::string(to);
        });
        if (const auto pub = public_entry(*s_, id))
            edit_dir(*s_, pub->dir, [&](Entries<KeyObject>& e) {
                std::get<KeyObject>(e[pub->entry]).common.label = std::string(to);
            });
    });
}

Bytes CardApp::sign(std::string_view label, ByteView data) {
    s_->check_usable();
    const KeyObject key = key_at(*s_, existing_key(*s_, label));
    const Bytes path = s_->absolute(key.path);
    if (path.empty())
        throw Error(ErrorKind::NotSupported,
                    "key '" + std::string(label) + "' has no file path vscard can address");
    const std::uint8_t algorithm =
        key.kind == KeyKind::PrivateRsa ? card::kAlgorithmRsaPkcs1 : card::kAlgorithmEcdsa;
    Bytes signature;
    guarded(*s_, [&] {
        s_->iso.set_security_environment(card::SecurityTemplate::Signature, path, algorithm);
        signature = s_->iso.compute_signature(data);
    });
    return signature;
}

}  // namespace vscard::pkcs15
