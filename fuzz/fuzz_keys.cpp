// Key import in secret/: content classification, PEM/DER private key import and envelope
// checking under a fixed family key, and public keys (NAME.pub).
#include <cstddef>
#include <cstdint>

#include "error.hpp"
#include "fuzz_util.hpp"
#include "keys.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace vscard;
    const ByteView in(data, size);
    // The family key of the seed envelopes (fuzz/make_corpus.cpp).
    const Bytes family(32, 0x42);
    keys::classify(in);
    try {
        keys::KeyEntry entry = keys::import_private_key(in, family);
        // What an import returns is an envelope that checks under the same key.
        keys::KeyEntry checked = keys::check_envelope(entry.envelope, family);
        fuzz::check(checked.public_pem == entry.public_pem, "envelope keeps the public key");
    } catch (const Error&) {
    }
    try {
        keys::KeyEntry entry = keys::check_envelope(in, family);
        fuzz::check(entry.envelope.size() == size, "a checked envelope is the input");
    } catch (const Error&) {
    }
    try {
        keys::check_public_key(in);
    } catch (const Error&) {
    }
    return 0;
}
