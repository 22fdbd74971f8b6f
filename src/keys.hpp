#pragma once
// Key entries of the secret area (DESIGN §3): importing PEM/DER private keys and the
// envelope format that carries a key between members of one card family.
#include <string>

#include "secure_bytes.hpp"

namespace vscard::keys {

enum class ContentKind {
    Empty,       // nothing written (yet)
    PrivateKey,  // PEM or DER private key: imported on commit
    Envelope,    // a vscard key envelope
    PublicKey,   // PEM public key (the NAME.pub beside an entry)
    Other,       // anything else: refused in secret/
};

ContentKind classify(ByteView content);

struct KeyEntry {
    Bytes envelope;           // the bytes a read of the entry returns; stable across reads
    std::string public_pem;   // content of NAME.pub
    std::string description;  // e.g. "RSA 2048", "EC P-256"
};

// Imports a PEM or DER private key (PKCS#8, PKCS#1 RSA or SEC1 EC; RSA 2048+ or EC
// P-256/P-384) and seals it into an envelope under the family key.
// Throws Error(Invalid) saying what is wrong (unsupported type or size, encrypted PEM, ...).
KeyEntry import_private_key(ByteView content, ByteView family_key);

// Checks that ENVELOPE is intact and belongs to this family; returns it with its public key.
// Throws Error(Invalid) naming the problem ("from another card family", "damaged", newer version).
KeyEntry check_envelope(ByteView envelope, ByteView family_key);

// Checks that CONTENT is a PEM public key (RSA or EC); throws Error(Invalid) otherwise.
void check_public_key(ByteView content);

}  // namespace vscard::keys
