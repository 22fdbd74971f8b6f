#include "secret_store.hpp"

#include <keyutils.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "agent_protocol.hpp"
#include "error.hpp"
#include "log.hpp"

namespace vscard::agent {
namespace {

// Only a process that possesses the keyring (this one: it is linked from our private session
// keyring) may see, read or change the keys; other processes of the same user may not even
// list them.
constexpr key_perm_t kKeyPerm =
    KEY_POS_VIEW | KEY_POS_READ | KEY_POS_WRITE | KEY_POS_SEARCH | KEY_POS_SETATTR;
constexpr key_perm_t kRingPerm = kKeyPerm | KEY_POS_LINK;

unsigned kernel_timeout(std::chrono::seconds ttl) {
    auto s = ttl.count();
    if (s < 1) s = 1;
    if (s > 0x7fffffff) s = 0x7fffffff;
    return static_cast<unsigned>(s);
}

class KeyringStore : public SecretStore {
public:
    KeyringStore() {
        // A fresh anonymous session keyring: no other process shares it, and it dies with us.
        session_ = keyctl_join_session_keyring(nullptr);
        if (session_ < 0) throw system_error("keyctl_join_session_keyring");
        if (keyctl_setperm(session_, kRingPerm) < 0) throw system_error("keyctl_setperm");
        ring_ = add_key("keyring", "vscard-agent", nullptr, 0, session_);
        if (ring_ < 0) throw system_error("add_key(keyring)");
        if (keyctl_setperm(ring_, kRingPerm) < 0) throw system_error("keyctl_setperm");
        // Some sandboxes allow keyrings but not keys: find out now, not at the first unlock.
        static const std::uint8_t probe[] = {0};
        put("vscard-agent:probe", ByteView(probe, 1), std::chrono::seconds(10));
        if (!get("vscard-agent:probe")) throw Error(ErrorKind::Io, "keyctl_read: key vanished");
        erase("vscard-agent:probe");
    }
    ~KeyringStore() override {
        clear();
        keyctl_invalidate(ring_);
    }

    std::string describe() const override {
        return "kernel keyring (key " + std::to_string(ring_) + ", possessor-only)";
    }

    void put(const std::string& target, ByteView secret, std::chrono::seconds ttl) override {
        // add_key updates a key of the same description in place, so a re-PUT keeps its id.
        key_serial_t id = add_key("user", target.c_str(), secret.data(), secret.size(), ring_);
        if (id < 0) {
            if (errno == EDQUOT)
                throw Error(ErrorKind::NoSpace,
                            "the kernel key quota of this user is exhausted "
                            "(see /proc/sys/kernel/keys/maxkeys and maxbytes)");
            throw system_error("cannot store the secret in the kernel keyring (add_key)");
        }
        keys_[target] = id;
        if (keyctl_setperm(id, kKeyPerm) < 0 || keyctl_set_timeout(id, kernel_timeout(ttl)) < 0) {
            int err = errno;
            erase(target);
            throw system_error("cannot protect the key in the kernel keyring", err);
        }
    }

    std::optional<SecureBytes> get(const std::string& target) override {
        auto it = keys_.find(target);
        if (it == keys_.end()) return std::nullopt;
        // Read straight into a locked buffer: keyctl_read_alloc would use plain malloc.
        SecureBytes buf(kMaxSecret);
        for (;;) {
            long n = keyctl_read(it->second, reinterpret_cast<char*>(buf.data()), buf.size());
            if (n < 0) {
                if (errno == EKEYEXPIRED || errno == EKEYREVOKED || errno == ENOKEY) {
                    keys_.erase(it);
                    return std::nullopt;
                }
                throw system_error("cannot read the key from the kernel keyring");
            }
            if (static_cast<std::size_t>(n) <= buf.size()) {
                buf.resize(static_cast<std::size_t>(n));  // shrinking keeps the buffer
                return buf;
            }
            buf = SecureBytes(static_cast<std::size_t>(n));
        }
    }

    void refresh(const std::string& target, std::chrono::seconds ttl) override {
        auto it = keys_.find(target);
        if (it != keys_.end()) keyctl_set_timeout(it->second, kernel_timeout(ttl));
    }

    void erase(const std::string& target) override {
        auto it = keys_.find(target);
        if (it == keys_.end()) return;
        // Invalidation makes the kernel destroy the payload at once, not at the next GC.
        if (keyctl_invalidate(it->second) < 0) {
            keyctl_revoke(it->second);
            keyctl_unlink(it->second, ring_);
        }
        keys_.erase(it);
    }

    void clear() override {
        while (!keys_.empty()) erase(keys_.begin()->first);
        keyctl_clear(ring_);
    }

private:
    key_serial_t session_ = -1;
    key_serial_t ring_ = -1;
    std::map<std::string, key_serial_t> keys_;
};

class MemoryStore : public SecretStore {
public:
    std::string describe() const override { return "locked memory of the agent"; }
    void put(const std::string& target, ByteView secret, std::chrono::seconds) override {
        secrets_[target] = secure_copy(secret);  // the old value is wiped when freed
    }
    std::optional<SecureBytes> get(const std::string& target) override {
        auto it = secrets_.find(target);
        if (it == secrets_.end()) return std::nullopt;
        return it->second;
    }
    void refresh(const std::string&, std::chrono::seconds) override {}
    void erase(const std::string& target) override { secrets_.erase(target); }
    void clear() override { secrets_.clear(); }

private:
    std::map<std::string, SecureBytes> secrets_;
};

}  // namespace

StoreChoice parse_store_choice(const std::string& text) {
    if (text.empty() || text == "auto") return StoreChoice::Auto;
    if (text == "keyring") return StoreChoice::Keyring;
    if (text == "memory") return StoreChoice::Memory;
    throw Error(ErrorKind::Usage,
                "VSCARD_AGENT_STORE must be auto, keyring or memory, not '" + text + "'");
}

std::unique_ptr<SecretStore> make_store(StoreChoice choice) {
    std::unique_ptr<SecretStore> store;
    if (choice == StoreChoice::Memory) {
        store = std::make_unique<MemoryStore>();
        log_line("secret store: " + store->describe() + " (chosen by VSCARD_AGENT_STORE)");
        return store;
    }
    try {
        store = std::make_unique<KeyringStore>();
    } catch (const Error& e) {
        if (choice == StoreChoice::Keyring)
            throw Error(ErrorKind::Unavailable,
                        std::string("the kernel refuses keyrings here: ") + e.what());
        store = std::make_unique<MemoryStore>();
        log_line("secret store: " + store->describe() +
                 " (kernel keyring unavailable: " + e.what() + ")");
        return store;
    }
    log_line("secret store: " + store->describe());
    return store;
}

}  // namespace vscard::agent
