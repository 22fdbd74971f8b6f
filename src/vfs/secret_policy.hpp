#pragma once
// The secret area's rules: entries are private keys (imported into envelopes), envelopes of
// this card family, or public keys; anything else is refused.
#include "vfs/area_fs.hpp"

namespace vscard {

class SecretKeyPolicy final : public ContentPolicy {
public:
    explicit SecretKeyPolicy(SecureBytes family_key) : family_key_(std::move(family_key)) {}
    void on_commit(const std::string& name, WipedBytes& content) override;
    std::vector<std::pair<std::string, std::string>> siblings(const std::string& name,
                                                              ByteView content) override;
    std::uint64_t max_file_size() const override { return 1 << 20; }
    void check_start(ByteView first_bytes) override;

private:
    SecureBytes family_key_;
};

}  // namespace vscard
