// PKCS#15 directory files as a card holds them: every parser (EF.DIR, ODF, TokenInfo, AODF,
// DODF, CDF, PrKDF, PuKDF, SKDF) with a round trip through its serialiser, the strict DER
// reader, and the label <-> path mapping.
#include <cstddef>
#include <cstdint>

#include "error.hpp"
#include "fuzz_util.hpp"
#include "pkcs15/der.hpp"
#include "pkcs15/pkcs15.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace vscard;
    const ByteView in(data, size);
    pkcs15::parse_everything(in);
    try {
        pkcs15::der::validate(in);
        const pkcs15::der::Element e = pkcs15::der::read(in);
        if (e.constructed) pkcs15::der::children(e.content);
    } catch (const Error&) {
    }
    // A parsed file serialises to bytes that parse to the same entries.
    try {
        auto dodf = pkcs15::parse_dodf(in);
        Bytes out = pkcs15::serialize_dodf(dodf);
        fuzz::check(pkcs15::parse_dodf(out) == dodf, "DODF round trip");
    } catch (const Error&) {
    }
    try {
        auto aodf = pkcs15::parse_aodf(in);
        Bytes out = pkcs15::serialize_aodf(aodf);
        fuzz::check(pkcs15::parse_aodf(out) == aodf, "AODF round trip");
    } catch (const Error&) {
    }
    return 0;
}
