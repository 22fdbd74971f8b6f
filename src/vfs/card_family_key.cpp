#include "vfs/card_family_key.hpp"

#include <cstring>

#include "crypto.hpp"
#include "error.hpp"

namespace vscard {
namespace {

constexpr std::string_view kMagic = "VSCFK\x01";
// The family key wrapped under the next PIN while the PIN changes (change_card_pin).
constexpr std::string_view kNextLabel = "family-key.next";

void put_be(Bytes& out, std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint64_t get_be(ByteView in, std::size_t& at, int bytes) {
    if (at + static_cast<std::size_t>(bytes) > in.size())
        throw Error(ErrorKind::Corrupt, "the card's family key object is truncated");
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | in[at++];
    return v;
}

}  // namespace

Bytes wrap_family_key(ByteView family_key, ByteView pin, std::string_view serial,
                      std::chrono::milliseconds kdf_target) {
    crypto::ScryptParams params = crypto::tune_scrypt(kdf_target);
    SecureBytes kek = crypto::scrypt(pin, params, crypto::kKeySize);
    Bytes out(kMagic.begin(), kMagic.end());
    put_be(out, params.n, 8);
    put_be(out, params.r, 4);
    put_be(out, params.p, 4);
    out.push_back(static_cast<std::uint8_t>(params.salt.size()));
    out.insert(out.end(), params.salt.begin(), params.salt.end());
    Bytes sealed = crypto::seal(kek, family_key, view_of(serial));
    out.insert(out.end(), sealed.begin(), sealed.end());
    return out;
}

SecureBytes unwrap_family_key(ByteView wrapped, ByteView pin, std::string_view serial) {
    if (wrapped.size() < kMagic.size() ||
        std::memcmp(wrapped.data(), kMagic.data(), kMagic.size()) != 0)
        throw Error(ErrorKind::Corrupt, "the card's family key object is not one vscard wrote");
    std::size_t at = kMagic.size();
    crypto::ScryptParams params;
    params.n = get_be(wrapped, at, 8);
    params.r = static_cast<std::uint32_t>(get_be(wrapped, at, 4));
    params.p = static_cast<std::uint32_t>(get_be(wrapped, at, 4));
    std::size_t salt = static_cast<std::size_t>(get_be(wrapped, at, 1));
    if (at + salt > wrapped.size() || params.n > (1ull << 24) || params.r > 64 || params.p > 16)
        throw Error(ErrorKind::Corrupt, "the card's family key object has impossible parameters");
    params.salt.assign(wrapped.begin() + static_cast<std::ptrdiff_t>(at),
                       wrapped.begin() + static_cast<std::ptrdiff_t>(at + salt));
    at += salt;
    SecureBytes kek = crypto::scrypt(pin, params, crypto::kKeySize);
    auto key = crypto::open(kek, wrapped.subspan(at), view_of(serial));
    if (!key || key->size() != crypto::kKeySize)
        throw Error(ErrorKind::WrongPassword,
                    "the card's family key does not open with its PIN (was the PIN changed "
                    "by another program?)");
    return std::move(*key);
}

SecureBytes card_family_key(pkcs15::CardApp& app, ByteView pin, bool create,
                            std::chrono::milliseconds kdf_target) {
    const std::string serial = app.serial();
    if (app.find(pkcs15::Area::Vscard, kFamilyKeyLabel)) {
        WipedBytes wrapped = app.read(pkcs15::Area::Vscard, kFamilyKeyLabel);
        try {
            return unwrap_family_key(wrapped, pin, serial);
        } catch (const Error& e) {
            // A PIN change interrupted after the PIN itself changed: the key is in the next
            // object, wrapped under the PIN the card has now.
            if (e.kind() != ErrorKind::WrongPassword || !app.find(pkcs15::Area::Vscard, kNextLabel))
                throw;
            WipedBytes next = app.read(pkcs15::Area::Vscard, kNextLabel);
            return unwrap_family_key(next, pin, serial);
        }
    }
    if (!create) throw Error(ErrorKind::NotFound, "card " + serial + " has no family key yet");
    SecureBytes key = crypto::random_key();
    set_card_family_key(app, key, pin, kdf_target);
    return key;
}

void set_card_family_key(pkcs15::CardApp& app, ByteView key, ByteView pin,
                         std::chrono::milliseconds kdf_target) {
    app.write(pkcs15::Area::Vscard, kFamilyKeyLabel,
              wrap_family_key(key, pin, app.serial(), kdf_target));
}

void change_card_pin(pkcs15::CardApp& app, ByteView old_pin, ByteView new_pin,
                     std::chrono::milliseconds kdf_target) {
    app.verify_pin(old_pin);
    std::optional<SecureBytes> family;
    if (app.find(pkcs15::Area::Vscard, kFamilyKeyLabel))
        family = card_family_key(app, old_pin, false);
    if (family)
        app.write(pkcs15::Area::Vscard, kNextLabel,
                  wrap_family_key(*family, new_pin, app.serial(), kdf_target));
    app.change_pin(old_pin, new_pin);
    if (family) app.rename(pkcs15::Area::Vscard, kNextLabel, kFamilyKeyLabel);
}

}  // namespace vscard
