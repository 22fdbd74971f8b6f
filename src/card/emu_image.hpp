#pragma once
// The content of an emulated card (vscard-emu): file tree, PIN objects, memory size and
// serial, and its image file. The file format is versioned and validated on load:
//
//   magic "VSCARDEM" | version u16 BE (1) | flags u16 BE (0) | body length u32 BE | body |
//   SHA-256 of everything before it (32 bytes)
//
// The body is BER-TLV (private-class tags):
//   E1 card { C1 capacity, C2 serial, E2 MF, E3 pin... }
//   E2 file { C3 fid, C4 descriptor, C5 DF name, C6 life cycle, C7 security (3 or 4
//             bytes, as tag 86 in card/fcp.hpp), C8 data (EF), E2 child... }
//   E3 pin  { C9 reference, CA value, CB max tries, CC tries left,
//             CD PUK, CE PUK max tries, CF PUK tries left }
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "card/fcp.hpp"
#include "secure_bytes.hpp"

namespace vscard::card::emu {

inline constexpr std::uint16_t kImageVersion = 1;
inline constexpr std::size_t kDefaultCapacity = 64 * 1024;
inline constexpr std::size_t kMinCapacity = 1024;
inline constexpr std::size_t kMaxCapacity = 64 * 1024 * 1024;
// Card memory taken by each file's header and each PIN object, besides EF content.
inline constexpr std::size_t kFileOverhead = 32;
inline constexpr std::size_t kPinOverhead = 32;
inline constexpr std::size_t kMaxEfSize = 0x8000;  // READ/UPDATE BINARY offsets have 15 bits
inline constexpr std::size_t kMaxDfDepth = 8;      // DF levels below the MF
inline constexpr std::size_t kMaxPinSize = 64;
inline constexpr std::size_t kSerialSize = 8;

struct File {
    std::uint16_t fid = 0;
    bool df = false;
    Bytes df_name;  // DFs only; empty when the DF has no name
    std::uint8_t life_cycle = kLifeCycleActivated;
    SecurityAttributes security;
    Bytes data;  // EF content; its size is the file size
    File* parent = nullptr;
    std::vector<std::unique_ptr<File>> children;

    File* child(std::uint16_t id) const;
    std::size_t depth() const;      // 0 for the MF
    std::size_t footprint() const;  // card memory of this file and everything below it
    std::unique_ptr<File> clone(File* new_parent) const;
};

struct Pin {
    std::uint8_t reference = 0;
    SecureBytes value;
    std::uint8_t max_tries = 3;
    std::uint8_t tries_left = 3;
    SecureBytes puk;  // empty: no PUK
    std::uint8_t puk_max_tries = 3;
    std::uint8_t puk_tries_left = 3;
};

struct CardImage {
    std::size_t capacity = kDefaultCapacity;
    Bytes serial;
    std::unique_ptr<File> mf;
    std::map<std::uint8_t, Pin> pins;

    // A card holding only the MF (create: always; delete: never), with a random serial.
    static CardImage blank(std::size_t capacity = kDefaultCapacity);
    CardImage clone() const;

    std::size_t used() const;
    std::size_t available() const { return used() >= capacity ? 0 : capacity - used(); }

    Bytes serialize() const;
    // Error(Corrupt) with the reason when DATA is not a valid image.
    static CardImage deserialize(ByteView data);
};

// Writes the image atomically (temporary file, fsync, rename, fsync of the directory), 0600.
void save_image(const std::filesystem::path& path, const CardImage& image);
// Error(NotFound) when PATH does not exist; Error(Corrupt) naming PATH when it is damaged.
CardImage load_image(const std::filesystem::path& path);

}  // namespace vscard::card::emu
