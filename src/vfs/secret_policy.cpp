#include "vfs/secret_policy.hpp"

#include "error.hpp"
#include "keys.hpp"
#include "log.hpp"

namespace vscard {

void SecretKeyPolicy::on_commit(const std::string& name, WipedBytes& content) {
    try {
        switch (keys::classify(content)) {
            case keys::ContentKind::Empty:
                return;
            case keys::ContentKind::PublicKey:
                keys::check_public_key(content);
                return;
            case keys::ContentKind::Envelope:
                keys::check_envelope(content, family_key_);
                return;
            case keys::ContentKind::PrivateKey: {
                keys::KeyEntry entry = keys::import_private_key(content, family_key_);
                log_line("secret/" + name + ": imported " + entry.description + " key");
                content.assign(entry.envelope.begin(), entry.envelope.end());
                return;
            }
            case keys::ContentKind::Other:
                throw Error(ErrorKind::Invalid,
                            "not a key: secret/ takes PEM or DER private keys (RSA 2048+, EC "
                            "P-256/P-384), vscard key envelopes and public keys");
        }
    } catch (const Error& e) {
        // close(2) can only say EINVAL: the log says why.
        log_line("secret/" + name + " refused: " + e.what());
        throw;
    }
}

void SecretKeyPolicy::check_start(ByteView first_bytes) {
    // Every accepted form starts with PEM armor ('-') or a DER SEQUENCE (0x30).
    for (std::uint8_t b : first_bytes) {
        if (b == ' ' || b == '\t' || b == '\r' || b == '\n') continue;
        if (b == '-' || b == 0x30) return;
        break;
    }
    if (first_bytes.empty()) return;
    log_line("refused a write into secret/: not a key");
    throw Error(ErrorKind::Invalid, "not a key");
}

std::vector<std::pair<std::string, std::string>> SecretKeyPolicy::siblings(const std::string& name,
                                                                           ByteView content) {
    if (keys::classify(content) != keys::ContentKind::Envelope) return {};
    keys::KeyEntry entry = keys::check_envelope(content, family_key_);
    return {{name + ".pub", entry.public_pem}};
}

}  // namespace vscard
