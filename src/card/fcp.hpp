#pragma once
// File control parameters (ISO/IEC 7816-4 §7.4, template '62'), as SELECT returns them and
// CREATE FILE takes them. Supported: 80 (data size), 81 (total size), 82 (descriptor),
// 83 (file id), 84 (DF name), 8A (life cycle) and 86 in the compact form defined below;
// other objects are kept as they came.
#include <cstdint>
#include <optional>
#include <vector>

#include "card/tlv.hpp"
#include "secure_bytes.hpp"

namespace vscard::card {

inline constexpr std::uint16_t kMfFid = 0x3F00;
inline constexpr std::uint8_t kDescriptorTransparentEf = 0x01;
inline constexpr std::uint8_t kDescriptorDf = 0x38;
inline constexpr std::uint8_t kLifeCycleActivated = 0x05;

// One access condition: always, never, or after VERIFY of a PIN reference (the P2 byte of
// VERIFY, e.g. 0x81).
class Access {
public:
    static constexpr std::uint8_t kAlways = 0x00;
    static constexpr std::uint8_t kNever = 0xFF;

    constexpr Access() = default;
    static constexpr Access always() { return Access(kAlways); }
    static constexpr Access never() { return Access(kNever); }
    static constexpr Access pin(std::uint8_t reference) { return Access(reference); }
    static constexpr Access from_byte(std::uint8_t b) { return Access(b); }

    constexpr std::uint8_t byte() const { return byte_; }
    constexpr bool is_always() const { return byte_ == kAlways; }
    constexpr bool is_never() const { return byte_ == kNever; }
    constexpr bool is_pin() const { return !is_always() && !is_never(); }
    constexpr bool operator==(const Access&) const = default;

private:
    constexpr explicit Access(std::uint8_t b) : byte_(b) {}
    std::uint8_t byte_ = kAlways;
};

// Security attributes carried in tag 86 as three or four bytes, one Access each:
//   EF: READ BINARY, UPDATE BINARY (and GENERATE ASYMMETRIC KEY PAIR into it), DELETE FILE
//       (of this EF), USE (the key it holds, by PERFORM SECURITY OPERATION)
//   DF: (unused, 00), CREATE FILE inside this DF, DELETE FILE (of this DF), (unused, FF)
// The fourth byte is absent when USE is never: FCPs and card images written before it existed
// read the same, and files that hold no key keep their three-byte form.
struct SecurityAttributes {
    Access read;
    Access update;
    Access remove;
    Access use = Access::never();
    bool operator==(const SecurityAttributes&) const = default;
    Bytes encode() const {
        if (use.is_never()) return {read.byte(), update.byte(), remove.byte()};
        return {read.byte(), update.byte(), remove.byte(), use.byte()};
    }
    // Error(Invalid) unless VALUE has three or four bytes.
    static SecurityAttributes decode(ByteView value);
};

struct Fcp {
    std::optional<std::uint16_t> fid;            // 83
    std::optional<std::uint8_t> descriptor;      // 82, first byte
    std::optional<std::size_t> size;             // 80: bytes of data in a transparent EF
    std::optional<std::size_t> total_size;       // 81
    std::optional<Bytes> df_name;                // 84: DF name (AID), 1..16 bytes
    std::optional<std::uint8_t> life_cycle;      // 8A
    std::optional<SecurityAttributes> security;  // 86
    std::vector<tlv::Node> other;                // anything else, in order

    bool is_df() const { return descriptor && *descriptor == kDescriptorDf; }
    bool is_transparent_ef() const {
        return descriptor && (*descriptor & 0x80) == 0 && (*descriptor & 0x38) != 0x38 &&
               (*descriptor & 0x07) == 1;
    }

    // The '62' template (or, with TAG 0x6F, an FCI template holding the same objects).
    Bytes encode(tlv::Tag tag = 0x62) const;
    // Accepts a '62' (FCP) or '6F' (FCI) template; Error(Invalid) when malformed.
    static Fcp parse(ByteView data);
};

}  // namespace vscard::card
