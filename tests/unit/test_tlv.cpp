// BER-TLV codec (ISO/IEC 7816-4 §5.2) and FCP templates: vectors, bounds, hostile input.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "card/apdu.hpp"
#include "card/fcp.hpp"
#include "card/tlv.hpp"
#include "error.hpp"

namespace vscard::card {
namespace {

using tlv::Node;

Bytes h(std::string_view text) {
    return from_hex(text);
}

void expect_invalid(ByteView data, tlv::ParseOptions options = {}) {
    try {
        Node::parse_list(data, options);
        ADD_FAILURE() << "accepted malformed BER-TLV " << to_hex(data);
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Invalid) << e.what();
    }
}

Bytes nested(std::size_t levels) {
    Bytes inner = h("80 01 00");
    for (std::size_t i = 0; i < levels; ++i) inner = tlv::encode(0xA1, inner);
    return inner;
}

TEST(Tlv, ParsesAnFcpTemplate) {
    // SELECT response of a 32-byte transparent EF 2F00 (ISO 7816-4 §7.4.3 objects).
    Bytes fcp = h("62 0E 80 02 00 20 82 01 01 83 02 2F 00 8A 01 05");
    Node n = Node::parse(fcp);
    EXPECT_EQ(n.tag, 0x62u);
    ASSERT_EQ(n.children.size(), 4u);
    EXPECT_EQ(n.child(0x83)->value, h("2F 00"));
    EXPECT_EQ(n.child(0x80)->value, h("00 20"));
    EXPECT_EQ(n.child(0x99), nullptr);
    EXPECT_EQ(n.encode(), fcp);
}

TEST(Tlv, MultiByteTags) {
    // 5F20 (cardholder name), 9F7F, a 3-byte and a 4-byte tag.
    Bytes data = h("5F 20 03 41 42 43  9F 7F 01 00  5F 81 01 00  5F 81 81 01 01 07");
    auto items = tlv::parse_all(data);
    ASSERT_EQ(items.size(), 4u);
    EXPECT_EQ(items[0].tag, 0x5F20u);
    EXPECT_EQ(Bytes(items[0].value.begin(), items[0].value.end()), h("41 42 43"));
    EXPECT_EQ(items[1].tag, 0x9F7Fu);
    EXPECT_EQ(items[2].tag, 0x5F8101u);
    EXPECT_EQ(items[3].tag, 0x5F818101u);
    EXPECT_EQ(items[3].header_size, 5u);
    EXPECT_EQ(tlv::encode_tag(0x5F20), h("5F 20"));
    EXPECT_EQ(tlv::encode_tag(0x5F818101), h("5F 81 81 01"));
    // A fifth tag byte is refused.
    expect_invalid(h("5F 81 81 81 01 00"));
}

TEST(Tlv, LongFormLengths) {
    EXPECT_EQ(tlv::encode_length(0x7F), h("7F"));
    EXPECT_EQ(tlv::encode_length(0x80), h("81 80"));
    EXPECT_EQ(tlv::encode_length(0xFF), h("81 FF"));
    EXPECT_EQ(tlv::encode_length(0x100), h("82 01 00"));
    EXPECT_EQ(tlv::encode_length(0x10000), h("83 01 00 00"));
    EXPECT_EQ(tlv::encode_length(0x1000000), h("84 01 00 00 00"));
    EXPECT_THROW(tlv::encode_length(0x100000000ULL), Error);

    for (std::size_t len : {0u, 1u, 127u, 128u, 255u, 256u, 70000u}) {
        Bytes value(len, 0x5A);
        Bytes enc = tlv::encode(0x04, value);
        tlv::Item item = tlv::parse_one(enc);
        EXPECT_EQ(item.value.size(), len);
        EXPECT_EQ(item.size(), enc.size());
    }
    // Non-minimal long form is BER-legal.
    EXPECT_EQ(tlv::parse_one(h("04 82 00 01 AA")).value.size(), 1u);
}

TEST(Tlv, MalformedInputIsInvalid) {
    expect_invalid(h("62"));                       // no length
    expect_invalid(h("62 05 82 01"));              // value shorter than the length
    expect_invalid(h("5F"));                       // truncated tag
    expect_invalid(h("82 82 01"));                 // truncated long length
    expect_invalid(h("04 80 00 00"));              // indefinite length
    expect_invalid(h("04 85 00 00 00 00 01 AA"));  // 5 length bytes
    expect_invalid(h("04 84 FF FF FF FF AA"));     // huge length, few bytes: no overflow
    expect_invalid(h("04 83 FF FF FF"));
    expect_invalid(h("00 01 AA"));                          // tag 00 without padding allowed
    expect_invalid(h("62 03 82 02 01"));                    // child runs past its parent
    EXPECT_THROW(tlv::parse_one(h("80 01 AA 80")), Error);  // trailing byte
    EXPECT_THROW(tlv::parse_one({}), Error);
}

TEST(Tlv, EveryTruncationIsRejected) {
    Bytes full =
        h("6F 1A 84 07 A0 00 00 00 63 50 4B A5 0F 5F 2D 02 65 6E 9F 7F 01 AA BF 0C 03 80 01 01");
    Node::parse(full);  // the whole is fine
    for (std::size_t n = 1; n < full.size(); ++n) {
        EXPECT_THROW(Node::parse(ByteView(full).first(n)), Error) << "prefix of " << n;
    }
}

TEST(Tlv, NestingDepthIsCapped) {
    EXPECT_NO_THROW(Node::parse(nested(tlv::kDefaultMaxDepth)));
    expect_invalid(nested(tlv::kDefaultMaxDepth + 1));
    // 100000 nested SEQUENCEs, each claiming the rest: far deeper than the stack would allow
    // if recursion were not capped.
    Bytes chain;
    for (int i = 0; i < 100000; ++i) {
        chain.push_back(0x30);
        chain.push_back(0x84);
        std::size_t rest = (100000 - i - 1) * 6;
        for (int s = 3; s >= 0; --s) chain.push_back(static_cast<std::uint8_t>(rest >> (8 * s)));
    }
    expect_invalid(chain);
    // Many siblings are no nesting.
    Bytes siblings;
    for (int i = 0; i < 100000; ++i) {
        siblings.push_back(0xA1);
        siblings.push_back(0x00);
    }
    EXPECT_EQ(Node::parse_list(siblings).size(), 100000u);
    tlv::ParseOptions shallow;
    shallow.max_depth = 2;
    expect_invalid(nested(3), shallow);
}

TEST(Tlv, PaddingBetweenObjects) {
    Bytes data = h("00 00 80 01 AA FF FF 81 00 00");
    tlv::ParseOptions pad;
    pad.allow_padding = true;
    auto items = tlv::parse_all(data, pad);
    ASSERT_EQ(items.size(), 2u);
    EXPECT_EQ(items[1].tag, 0x81u);
    EXPECT_TRUE(items[1].value.empty());
    expect_invalid(data);
}

TEST(Tlv, BuildersRefuseBadTags) {
    EXPECT_THROW(tlv::encode_tag(0), Error);
    EXPECT_THROW(tlv::encode_tag(0x1F), Error);    // says "more bytes follow"
    EXPECT_THROW(tlv::encode_tag(0x5F80), Error);  // last byte says "more"
    EXPECT_THROW(tlv::encode_tag(0x0101), Error);  // 2 bytes without the 1F marker
    EXPECT_THROW(tlv::primitive(0xA1, Bytes{}), Error);
    EXPECT_THROW(tlv::constructed(0x80, {}), Error);
}

TEST(Tlv, TreeRoundTripAndFind) {
    Node tree = tlv::constructed(
        0x70, {tlv::primitive(0x5F20, h("41 42")),
               tlv::constructed(0xA5, {tlv::primitive(0x80, h("01")), tlv::primitive(0x81, {})}),
               tlv::primitive(0x5F20, h("43"))});
    Bytes enc = tree.encode();
    Node back = Node::parse(enc);
    EXPECT_EQ(back.encode(), enc);
    EXPECT_EQ(back.child(0x5F20)->value, h("41 42"));  // the first of two
    ASSERT_NE(back.child(0xA5), nullptr);
    EXPECT_EQ(back.child(0xA5)->children.size(), 2u);
    auto found = tlv::find(tlv::parse_one(enc).value, 0xA5);
    ASSERT_TRUE(found);
    EXPECT_TRUE(found->constructed());
    EXPECT_FALSE(tlv::find(tlv::parse_one(enc).value, 0x99));
}

TEST(Tlv, Integers) {
    EXPECT_EQ(tlv::encode_uint(0), h("00"));
    EXPECT_EQ(tlv::encode_uint(0x20, 2), h("00 20"));
    EXPECT_EQ(tlv::encode_uint(0x12345), h("01 23 45"));
    EXPECT_EQ(tlv::decode_uint(h("01 23 45")), 0x12345u);
    EXPECT_THROW(tlv::decode_uint({}), Error);
    EXPECT_THROW(tlv::decode_uint(h("01 02 03"), 2), Error);
}

TEST(Tlv, RandomInputNeverCrashes) {
    std::mt19937 rng(7);
    int accepted = 0;
    for (int round = 0; round < 20000; ++round) {
        Bytes data(rng() % 24);
        for (auto& b : data) b = static_cast<std::uint8_t>(rng());
        try {
            Node::parse_list(data, {.allow_padding = (round & 1) != 0});
            ++accepted;
        } catch (const Error& e) {
            ASSERT_EQ(e.kind(), ErrorKind::Invalid);
        }
    }
    EXPECT_GT(accepted, 0);
}

TEST(Fcp, EncodeParseRoundTrip) {
    Fcp f;
    f.fid = 0x5015;
    f.descriptor = kDescriptorDf;
    f.df_name = h("A0 00 00 00 63 50 4B 43 53 2D 31 35");
    f.life_cycle = kLifeCycleActivated;
    f.security = SecurityAttributes{Access::always(), Access::pin(0x81), Access::never()};
    f.other.push_back(tlv::primitive(0x85, h("01 02")));
    Bytes enc = f.encode();
    EXPECT_EQ(enc[0], 0x62);
    Fcp back = Fcp::parse(enc);
    EXPECT_EQ(back.fid, f.fid);
    EXPECT_TRUE(back.is_df());
    EXPECT_FALSE(back.is_transparent_ef());
    EXPECT_EQ(back.df_name, f.df_name);
    EXPECT_EQ(back.security, f.security);
    ASSERT_EQ(back.other.size(), 1u);
    EXPECT_EQ(back.other[0].value, h("01 02"));
    EXPECT_EQ(back.encode(), enc);
    // The same objects in an FCI template.
    EXPECT_EQ(Fcp::parse(f.encode(0x6F)).fid, f.fid);
}

TEST(Fcp, TransparentEfAndBadFields) {
    Fcp ef = Fcp::parse(h("62 0E 80 02 00 20 82 01 01 83 02 2F 00 8A 01 05"));
    EXPECT_TRUE(ef.is_transparent_ef());
    EXPECT_EQ(ef.size, 32u);
    EXPECT_EQ(ef.fid, 0x2F00);
    EXPECT_FALSE(ef.security);
    EXPECT_THROW(Fcp::parse(h("62 04 83 01 2F 00")), Error);  // child overruns
    EXPECT_THROW(Fcp::parse(h("62 03 83 01 2F")), Error);     // 1-byte FID
    EXPECT_THROW(Fcp::parse(h("62 04 86 02 00 00")), Error);  // 2-byte security
    EXPECT_THROW(Fcp::parse(h("63 03 83 01 2F")), Error);     // not an FCP
    EXPECT_THROW(Fcp::parse(h("62 02 82 00")), Error);        // empty descriptor
}

}  // namespace
}  // namespace vscard::card
