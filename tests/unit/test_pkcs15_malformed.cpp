// Hostile input for the PKCS#15 codec: truncations, mutations, DER bombs. Every parser must
// either return or throw vscard::Error, and what it returns must serialise again.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <string>

#include "error.hpp"
#include "pkcs15/der.hpp"
#include "pkcs15/pkcs15.hpp"
#include "test_pkcs15_vectors.hpp"

namespace vscard::pkcs15 {
namespace {

using testing::FileKind;
using testing::from_hex;
using testing::kAllKinds;
using testing::kVectors;

// Parses `data` as `kind` and checks the outcome: Error, or a result that serialises back to
// the bytes it came from (up to padding) for directory files.
void exercise(FileKind kind, ByteView data) {
    try {
        testing::parse_only(kind, data);
    } catch (const Error&) {
        return;
    }
    // Whatever parses must serialise, both from the original bytes and afresh.
    testing::Outcome o;
    try {
        o = testing::run(kind, data);
    } catch (const Error& e) {
        ADD_FAILURE() << "parsed but cannot be written back: " << e.what();
        return;
    }
    if (kind == FileKind::TokenInfo) {
        EXPECT_EQ(testing::run(kind, o.again).again, o.again);
        return;
    }
    ASSERT_LE(o.again.size(), data.size());
    EXPECT_TRUE(std::equal(o.again.begin(), o.again.end(), data.begin()));
    // A fresh encoding of what was understood must parse again too.
    EXPECT_NO_THROW(testing::run(kind, o.fresh));
}

void expect_corrupt_everywhere(ByteView data) {
    for (FileKind kind : kAllKinds) {
        try {
            testing::run(kind, data);
            ADD_FAILURE() << "kind " << static_cast<int>(kind) << " accepted the input";
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::Corrupt);
        }
    }
}

TEST(Pkcs15Malformed, EveryTruncationOfEveryVectorIsRefused) {
    for (const auto& v : kVectors) {
        SCOPED_TRACE(v.name);
        const Bytes der = testing::bytes(v);
        // Where the file's entries end: a cut there is a shorter, valid directory file.
        std::set<std::size_t> boundaries;
        for (std::size_t at = 0; at < der.size();)
            boundaries.insert(at += der::read(ByteView(der).subspan(at)).whole.size());
        for (std::size_t n = 1; n < der.size(); ++n) {
            const ByteView cut(der.data(), n);
            if (boundaries.count(n) != 0) {
                EXPECT_NO_THROW(testing::run(v.kind, cut)) << "prefix of " << n << " bytes";
            } else {
                EXPECT_THROW(testing::run(v.kind, cut), Error) << "prefix of " << n << " bytes";
            }
        }
    }
}

TEST(Pkcs15Malformed, TruncatedMultiEntryFileKeepsOnlyWholeEntries) {
    const Bytes odf = testing::bytes(kVectors[3]);  // six entries of 12 bytes
    ASSERT_EQ(std::string(kVectors[3].name), "odf");
    for (std::size_t n = 0; n <= odf.size(); ++n) {
        const ByteView cut(odf.data(), n);
        if (n % 12 == 0) {
            EXPECT_EQ(parse_odf(cut).size(), n / 12);
        } else {
            EXPECT_THROW(parse_odf(cut), Error) << n;
        }
    }
}

TEST(Pkcs15Malformed, RandomMutationsNeverCrash) {
    std::mt19937 rng(20240611);
    for (const auto& v : kVectors) {
        SCOPED_TRACE(v.name);
        const Bytes der = testing::bytes(v);
        for (int round = 0; round < 400; ++round) {
            Bytes m = der;
            const int edits = 1 + static_cast<int>(rng() % 4);
            for (int e = 0; e < edits; ++e) {
                const std::size_t at = rng() % m.size();
                switch (rng() % 4) {
                    case 0:
                        m[at] = static_cast<std::uint8_t>(rng());
                        break;
                    case 1:
                        m[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
                        break;
                    case 2:
                        m.insert(m.begin() + static_cast<std::ptrdiff_t>(at),
                                 static_cast<std::uint8_t>(rng()));
                        break;
                    default:
                        if (m.size() > 1) m.erase(m.begin() + static_cast<std::ptrdiff_t>(at));
                }
            }
            for (FileKind kind : kAllKinds) exercise(kind, m);
            parse_everything(m);
        }
    }
}

TEST(Pkcs15Malformed, RandomBytesNeverCrash) {
    std::mt19937 rng(7);
    for (int round = 0; round < 2000; ++round) {
        Bytes m(rng() % 64);
        for (auto& b : m) b = static_cast<std::uint8_t>(rng());
        if (!m.empty() && round % 2 == 0) m[0] = 0x30;  // look like a SEQUENCE more often
        for (FileKind kind : kAllKinds) exercise(kind, m);
        parse_everything(m);
    }
}

Bytes nested(std::size_t depth) {
    Bytes inner = from_hex("0500");
    for (std::size_t i = 0; i < depth; ++i) {
        Bytes outer{0x30};
        const std::size_t n = inner.size();
        if (n < 0x80) {
            outer.push_back(static_cast<std::uint8_t>(n));
        } else if (n < 0x100) {
            outer.insert(outer.end(), {0x81, static_cast<std::uint8_t>(n)});
        } else if (n < 0x10000) {
            outer.insert(outer.end(),
                         {0x82, static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)});
        } else {
            outer.insert(outer.end(),
                         {0x83, static_cast<std::uint8_t>(n >> 16),
                          static_cast<std::uint8_t>(n >> 8), static_cast<std::uint8_t>(n)});
        }
        outer.insert(outer.end(), inner.begin(), inner.end());
        inner.swap(outer);
    }
    return inner;
}

TEST(Pkcs15Malformed, NestingTenThousandDeepIsRefused) {
    const Bytes bomb = nested(10000);
    expect_corrupt_everywhere(bomb);
    parse_everything(bomb);
    // Context-tagged nesting, as an entry of a directory file would look.
    Bytes ctx = nested(10000);
    ctx[0] = 0xA1;
    expect_corrupt_everywhere(ctx);
    EXPECT_NO_THROW(testing::run(FileKind::Dodf, nested(20)));  // shallow is fine (unknown)
}

TEST(Pkcs15Malformed, HugeAndBrokenLengthsAreRefused) {
    const char* cases[] = {
        "3084FFFFFFFF",            // length 0xFFFFFFFF
        "3084FFFFFFFF020100",      // ... with some content
        "308900000000000000000A",  // length of length 9
        "30850000000001020100",    // 5 length octets
        "30800201000000",          // indefinite length
        "A180300302010000",        // indefinite inside a context tag
        "30810302"
        "0100",  // non-minimal long form
        "3082000302"
        "0100",  // non-minimal, leading zero
        "3003020100"
        "30",              // trailing partial element
        "1F808001",        // high tag with a zero leading group
        "3F8F8F8F8F0100",  // high tag number over 4 groups
        "2403040100",      // constructed OCTET STRING (BER only)
        "1000",            // primitive SEQUENCE
        "3002"
        "0000",  // end-of-contents inside
    };
    for (const char* hex : cases) {
        SCOPED_TRACE(hex);
        expect_corrupt_everywhere(from_hex(hex));
        parse_everything(from_hex(hex));
    }
}

TEST(Pkcs15Malformed, ValidDerOfTheWrongShapeIsKeptOrRefused) {
    // Right DER, wrong structure: directory files keep it as an unknown entry, TokenInfo
    // refuses it. Nothing is lost on the way back.
    const Bytes odd = from_hex("3006020101020102");
    for (FileKind kind : kAllKinds) {
        if (kind == FileKind::TokenInfo) {
            EXPECT_THROW(testing::run(kind, odd), Error);
        } else {
            const testing::Outcome o = testing::run(kind, odd);
            EXPECT_EQ(o.unknown, 1u);
            EXPECT_EQ(o.again, odd);
        }
    }
    EXPECT_THROW(parse_token_info(from_hex("3000")), Error);
    EXPECT_THROW(parse_token_info(from_hex("300702010003020800")), Error);  // 8 unused bits
}

}  // namespace
}  // namespace vscard::pkcs15
