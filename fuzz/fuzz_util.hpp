#pragma once
// Shared by the libFuzzer targets: splitting one input into parts, and invariant checks that
// abort (so libFuzzer keeps the input) with a message saying what broke.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "secure_bytes.hpp"

namespace vscard::fuzz {

// Reads a fuzz input front to back; every take never fails, it just returns less when the
// input runs out.
class Input {
public:
    Input(const std::uint8_t* data, std::size_t size) : rest_(data, size) {}

    bool empty() const { return rest_.empty(); }
    ByteView rest() const { return rest_; }

    std::uint8_t byte() {
        if (rest_.empty()) return 0;
        std::uint8_t b = rest_[0];
        rest_ = rest_.subspan(1);
        return b;
    }
    std::uint16_t u16() {
        std::uint16_t hi = byte();
        return static_cast<std::uint16_t>(hi << 8 | byte());
    }
    ByteView take(std::size_t n) {
        n = std::min(n, rest_.size());
        ByteView out = rest_.first(n);
        rest_ = rest_.subspan(n);
        return out;
    }
    // A part prefixed by its 16-bit big-endian length.
    ByteView part() { return take(u16()); }

private:
    ByteView rest_;
};

inline void check(bool ok, std::string_view what) {
    if (ok) return;
    std::fprintf(stderr, "fuzz invariant broken: %.*s\n", static_cast<int>(what.size()),
                 what.data());
    std::abort();
}

}  // namespace vscard::fuzz
