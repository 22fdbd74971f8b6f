#pragma once
// Byte buffers for secrets: memory is locked against swapping where the system allows and
// wiped with OPENSSL_cleanse before it is freed (also when a vector grows).
#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <string_view>
#include <vector>

#include <openssl/crypto.h>

namespace vscard {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

template <typename T>
struct SecureAllocator {
    using value_type = T;
    SecureAllocator() noexcept = default;
    template <typename U>
    SecureAllocator(const SecureAllocator<U>&) noexcept {}

    T* allocate(std::size_t n) {
        T* p = static_cast<T*>(::operator new(n * sizeof(T)));
        ::mlock(p, n * sizeof(T));  // best effort: RLIMIT_MEMLOCK may refuse
        return p;
    }
    void deallocate(T* p, std::size_t n) noexcept {
        OPENSSL_cleanse(p, n * sizeof(T));
        ::munlock(p, n * sizeof(T));
        ::operator delete(p);
    }
    template <typename U>
    bool operator==(const SecureAllocator<U>&) const noexcept {
        return true;
    }
};

using SecureBytes = std::vector<std::uint8_t, SecureAllocator<std::uint8_t>>;

inline SecureBytes secure_copy(ByteView v) { return SecureBytes(v.begin(), v.end()); }
inline SecureBytes secure_from(std::string_view s) {
    return SecureBytes(reinterpret_cast<const std::uint8_t*>(s.data()),
                       reinterpret_cast<const std::uint8_t*>(s.data()) + s.size());
}
inline ByteView view_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
template <typename Container>
ByteView view_of(const Container& c) {
    return {reinterpret_cast<const std::uint8_t*>(c.data()), c.size()};
}

// Wipes any buffer in place (for std::string and friends that cannot use the allocator).
template <typename Container>
void wipe(Container& c) {
    if (!c.empty()) OPENSSL_cleanse(c.data(), c.size() * sizeof(c[0]));
    c.clear();
}

}  // namespace vscard
