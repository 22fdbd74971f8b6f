#pragma once
// Byte buffers for secrets and for plaintext, wiped with OPENSSL_cleanse before they are
// freed (also when a vector grows).
#include <openssl/crypto.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string_view>
#include <vector>

namespace vscard {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

// Secrets (keys, passwords, PINs) live in OpenSSL's secure heap: one locked, never-dumped
// arena set up by init_secure_heap(), wiped on free. When the arena is full (or was never
// set up) they fall back to the normal heap, still wiped on free.
template <typename T>
struct SecureAllocator {
    using value_type = T;
    SecureAllocator() noexcept = default;
    template <typename U>
    SecureAllocator(const SecureAllocator<U>&) noexcept {}

    T* allocate(std::size_t n) {
        void* p = CRYPTO_secure_malloc(n * sizeof(T), nullptr, 0);
        if (!p) p = OPENSSL_malloc(n * sizeof(T));
        if (!p) throw std::bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (CRYPTO_secure_allocated(p))
            CRYPTO_secure_clear_free(p, n * sizeof(T), nullptr, 0);
        else
            OPENSSL_clear_free(p, n * sizeof(T));
    }
    template <typename U>
    bool operator==(const SecureAllocator<U>&) const noexcept {
        return true;
    }
};

// Bulk plaintext (file content, object metadata): wiped when freed, but not locked; locking
// every buffer would cost two system calls each and exceed RLIMIT_MEMLOCK. The daemons are
// not dumpable, so what stays unlocked can only reach swap.
template <typename T>
struct WipingAllocator {
    using value_type = T;
    WipingAllocator() noexcept = default;
    template <typename U>
    WipingAllocator(const WipingAllocator<U>&) noexcept {}

    T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
    void deallocate(T* p, std::size_t n) noexcept {
        OPENSSL_cleanse(p, n * sizeof(T));
        std::allocator<T>().deallocate(p, n);
    }
    template <typename U>
    bool operator==(const WipingAllocator<U>&) const noexcept {
        return true;
    }
};

// Sets up the secure heap; call once at the start of every program that handles secrets.
inline void init_secure_heap() {
    CRYPTO_secure_malloc_init(1 << 20, 32);
}

using SecureBytes = std::vector<std::uint8_t, SecureAllocator<std::uint8_t>>;
using WipedBytes = std::vector<std::uint8_t, WipingAllocator<std::uint8_t>>;

// Wipes B when it goes out of scope (unless WIPE is false): for plain buffers that held a
// secret on its way somewhere else.
struct WipeOnExit {
    Bytes& b;
    bool wipe = true;
    explicit WipeOnExit(Bytes& bytes, bool wipe_it = true) : b(bytes), wipe(wipe_it) {}
    WipeOnExit(const WipeOnExit&) = delete;
    WipeOnExit& operator=(const WipeOnExit&) = delete;
    ~WipeOnExit() {
        if (wipe) OPENSSL_cleanse(b.data(), b.size());
    }
};

inline SecureBytes secure_copy(ByteView v) {
    return SecureBytes(v.begin(), v.end());
}
inline SecureBytes secure_from(std::string_view s) {
    return SecureBytes(reinterpret_cast<const std::uint8_t*>(s.data()),
                       reinterpret_cast<const std::uint8_t*>(s.data()) + s.size());
}
inline WipedBytes wiped_from(std::string_view s) {
    return WipedBytes(reinterpret_cast<const std::uint8_t*>(s.data()),
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
