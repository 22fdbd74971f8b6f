#include "card/fcp.hpp"

#include <string>

#include "error.hpp"

namespace vscard::card {

SecurityAttributes SecurityAttributes::decode(ByteView value) {
    if (value.size() != 3 && value.size() != 4)
        throw Error(ErrorKind::Invalid, "security attributes (tag 86) of " +
                                            std::to_string(value.size()) +
                                            " bytes; expected 3 or 4");
    SecurityAttributes a{Access::from_byte(value[0]), Access::from_byte(value[1]),
                         Access::from_byte(value[2])};
    if (value.size() == 4) a.use = Access::from_byte(value[3]);
    return a;
}

Bytes Fcp::encode(tlv::Tag tag) const {
    Bytes inner;
    if (size) tlv::append(inner, 0x80, tlv::encode_uint(*size, 2));
    if (total_size) tlv::append(inner, 0x81, tlv::encode_uint(*total_size, 2));
    if (descriptor) tlv::append(inner, 0x82, Bytes{*descriptor});
    if (fid) tlv::append(inner, 0x83, tlv::encode_uint(*fid, 2));
    if (df_name) tlv::append(inner, 0x84, *df_name);
    if (life_cycle) tlv::append(inner, 0x8A, Bytes{*life_cycle});
    if (security) tlv::append(inner, 0x86, security->encode());
    for (const auto& o : other) {
        Bytes e = o.encode();
        inner.insert(inner.end(), e.begin(), e.end());
    }
    return tlv::encode(tag, inner);
}

Fcp Fcp::parse(ByteView data) {
    tlv::Item top = tlv::parse_one(data);
    if (top.tag != 0x62 && top.tag != 0x6F)
        throw Error(ErrorKind::Invalid,
                    "not an FCP or FCI template (tag " + std::to_string(top.tag) + ")");
    Fcp f;
    for (const auto& item : tlv::parse_all(top.value)) {
        switch (item.tag) {
            case 0x80:
                f.size = tlv::decode_uint(item.value, 4);
                break;
            case 0x81:
                f.total_size = tlv::decode_uint(item.value, 4);
                break;
            case 0x82:
                if (item.value.empty() || item.value.size() > 6)
                    throw Error(ErrorKind::Invalid, "file descriptor (tag 82) of bad length");
                f.descriptor = item.value[0];
                break;
            case 0x83:
                if (item.value.size() != 2)
                    throw Error(ErrorKind::Invalid, "file identifier (tag 83) is not 2 bytes");
                f.fid = static_cast<std::uint16_t>(tlv::decode_uint(item.value, 2));
                break;
            case 0x84:
                if (item.value.empty() || item.value.size() > 16)
                    throw Error(ErrorKind::Invalid, "DF name (tag 84) is not 1 to 16 bytes");
                f.df_name = Bytes(item.value.begin(), item.value.end());
                break;
            case 0x8A:
                if (item.value.size() != 1)
                    throw Error(ErrorKind::Invalid, "life cycle (tag 8A) is not 1 byte");
                f.life_cycle = item.value[0];
                break;
            case 0x86:
                f.security = SecurityAttributes::decode(item.value);
                break;
            default: {
                // Kept raw (re-parsed as a tree so that encode() can write it back).
                const std::uint8_t* start = item.value.data() - item.header_size;
                Bytes raw(start, start + item.size());
                f.other.push_back(tlv::Node::parse(raw));
            }
        }
    }
    return f;
}

}  // namespace vscard::card
