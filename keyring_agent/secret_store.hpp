#pragma once
// Where the agent keeps secrets: the kernel key retention service when the kernel lets us,
// else the agent's own locked memory. Expiry bookkeeping lives in the server; a store only
// holds bytes (the keyring store also gives each key a kernel timeout as a backstop, so a
// frozen agent still loses its secrets).
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "secure_bytes.hpp"

namespace vscard::agent {

class SecretStore {
public:
    virtual ~SecretStore() = default;
    virtual std::string describe() const = 0;
    // Stores or replaces TARGET's secret; TTL bounds how long the store may keep it.
    virtual void put(const std::string& target, ByteView secret, std::chrono::seconds ttl) = 0;
    // nullopt when the store no longer has it (e.g. the kernel expired the key).
    virtual std::optional<SecureBytes> get(const std::string& target) = 0;
    virtual void refresh(const std::string& target, std::chrono::seconds ttl) = 0;
    virtual void erase(const std::string& target) = 0;
    virtual void clear() = 0;
};

enum class StoreChoice { Auto, Keyring, Memory };

// Parses "auto", "keyring" or "memory" (the VSCARD_AGENT_STORE debugging switch).
StoreChoice parse_store_choice(const std::string& text);

// Auto falls back to memory when the kernel refuses keyrings and logs which store is used;
// Keyring throws Error(Unavailable) in that case.
std::unique_ptr<SecretStore> make_store(StoreChoice choice);

}  // namespace vscard::agent
