// BER-TLV (ISO 7816-4) as cards send it: flat and nested parsing, re-encoding, FCP/FCI
// templates and security attributes.
#include <cstddef>
#include <cstdint>

#include "card/fcp.hpp"
#include "card/tlv.hpp"
#include "error.hpp"
#include "fuzz_util.hpp"

namespace {

using namespace vscard;
using namespace vscard::card;

template <typename Fn>
void attempt(Fn&& fn) {
    try {
        fn();
    } catch (const Error&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::Input in(data, size);
    tlv::ParseOptions options;
    const std::uint8_t mode = in.byte();
    options.allow_padding = (mode & 0x01) != 0;
    options.max_depth = mode >> 4;
    const ByteView rest = in.rest();

    attempt([&] {
        for (const tlv::Item& item : tlv::parse_all(rest, options))
            fuzz::check(item.size() <= rest.size(), "an item fits in its input");
    });
    attempt([&] {
        tlv::Reader reader(rest, options);
        while (auto item = reader.next()) {
            if (item->value.size() <= 8) tlv::decode_uint(item->value);
        }
    });
    attempt([&] { tlv::find(rest, 0x62, options); });
    attempt([&] {
        // Nodes re-encode to a form that parses back to the same tree.
        std::vector<tlv::Node> nodes = tlv::Node::parse_list(rest, options);
        for (const tlv::Node& n : nodes) {
            Bytes encoded = n.encode();
            tlv::Node again = tlv::Node::parse(encoded);
            fuzz::check(again.encode() == encoded, "node re-encoding is stable");
        }
    });
    attempt([&] {
        Fcp fcp = Fcp::parse(rest);
        fcp.is_df();
        fcp.is_transparent_ef();
        Bytes encoded = fcp.encode();
        Fcp again = Fcp::parse(encoded);
        fuzz::check(again.encode() == encoded, "FCP re-encoding is stable");
    });
    attempt([&] { SecurityAttributes::decode(rest); });
    return 0;
}
