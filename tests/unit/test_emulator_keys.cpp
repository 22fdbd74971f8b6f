// Keys on the card of vscard-emu: the USE condition of tag 86.
#include <gtest/gtest.h>

#include <string_view>

#include "card/apdu.hpp"
#include "card/fcp.hpp"
#include "error.hpp"

namespace vscard::card {
namespace {

const SecurityAttributes kKeyAccess{Access::never(), Access::pin(0x81), Access::pin(0x81),
                                    Access::pin(0x81)};
constexpr std::uint8_t kPinRef = 0x81;

Bytes h(std::string_view text) {
    return from_hex(text);
}

TEST(EmulatorKeys, SecurityAttributesTakeAFourthByteForUse) {
    const SecurityAttributes old{Access::always(), Access::pin(kPinRef), Access::never()};
    EXPECT_EQ(old.use, Access::never());
    EXPECT_EQ(old.encode(), h("00 81 FF"));
    EXPECT_EQ(SecurityAttributes::decode(h("00 81 FF")), old);
    EXPECT_EQ(SecurityAttributes::decode(h("00 81 FF FF")), old);  // an explicit "never"
    EXPECT_EQ(kKeyAccess.encode(), h("FF 81 81 81"));
    EXPECT_EQ(SecurityAttributes::decode(h("FF 81 81 81")), kKeyAccess);
    EXPECT_NE(SecurityAttributes::decode(h("FF 81 81 00")), kKeyAccess);
    for (const char* bad : {"", "00 81", "00 81 FF FF 00"})
        EXPECT_THROW(SecurityAttributes::decode(h(bad)), Error) << bad;

    // FCPs without a USE condition stay byte for byte what they were.
    Fcp f;
    f.size = 10;
    f.descriptor = kDescriptorTransparentEf;
    f.fid = 0x4410;
    f.security = old;
    EXPECT_EQ(f.encode(), h("62 10 80 02 00 0A 82 01 01 83 02 44 10 86 03 00 81 FF"));
    f.security = kKeyAccess;
    Bytes fcp = f.encode();
    EXPECT_EQ(fcp, h("62 11 80 02 00 0A 82 01 01 83 02 44 10 86 04 FF 81 81 81"));
    EXPECT_EQ(Fcp::parse(fcp).security, kKeyAccess);
    EXPECT_EQ(Fcp::parse(h("62 05 86 03 00 81 FF")).security->use, Access::never());
    EXPECT_THROW(Fcp::parse(h("62 07 86 05 00 81 FF FF FF")), Error);
}

}  // namespace
}  // namespace vscard::card
