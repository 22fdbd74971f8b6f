#pragma once
// Helpers shared by the store and filesystem unit tests.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "crypto.hpp"
#include "error.hpp"

namespace vscard::testing {

// A private directory removed with everything in it when the test ends.
class TempDir {
public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "vscard-unit-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

// Deterministic content without zero bytes, so a zero read back always means a hole.
inline std::string pattern(std::size_t size, std::uint32_t seed) {
    std::string s(size, '\0');
    std::uint32_t x = seed * 2654435761u + 12345u;
    for (auto& c : s) {
        x = x * 1664525u + 1013904223u;
        c = static_cast<char>(1 + (x >> 24) % 255);
    }
    return s;
}

// Scrypt parameters that make creating and unlocking a VSC take milliseconds.
inline crypto::ScryptParams fast_kdf() {
    crypto::ScryptParams p;
    p.n = 1024;
    p.r = 8;
    p.p = 1;
    p.salt = Bytes(16, 0x5a);
    return p;
}

inline std::string read_all(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_all(const std::filesystem::path& path, std::string_view data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

}  // namespace vscard::testing

// Expects the statement (the trailing arguments) to throw vscard::Error of KIND with ERRNO.
#define EXPECT_VSC_ERROR(expected_kind, expected_errno, ...)                       \
    do {                                                                           \
        try {                                                                      \
            __VA_ARGS__;                                                           \
            ADD_FAILURE() << "no error from: " #__VA_ARGS__;                       \
        } catch (const ::vscard::Error& vsc_error_) {                              \
            EXPECT_EQ(vsc_error_.kind(), (expected_kind))                          \
                << #__VA_ARGS__ << ": " << vsc_error_.what();                      \
            EXPECT_EQ(vsc_error_.errno_value(), (expected_errno)) << #__VA_ARGS__; \
        }                                                                          \
    } while (0)
