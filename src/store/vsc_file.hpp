#pragma once
// One virtual smart card on disk: NAME.vsc, an SQLite database (WAL) holding the header,
// the wrapped area keys and one row per object and per content chunk (DESIGN §4).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "crypto.hpp"
#include "store/sqlite.hpp"
#include "vfs/node.hpp"

namespace vscard {

inline constexpr std::int64_t kVscFormatVersion = 1;
inline constexpr std::int64_t kVscKnownFeatures = 0;
inline constexpr std::size_t kVscChunkSize = 64 * 1024;

// The unwrapped keys of a VSC: held only while it is unlocked.
struct VscKeys {
    SecureBytes private_key;  // encrypts the private area
    SecureBytes family_key;   // the card family's secret-area key (DESIGN §5)
};

struct IntegrityReport {
    std::uint64_t nodes_checked = 0;
    std::uint64_t chunks_checked = 0;
    std::vector<std::string> problems;  // empty when the file is sound
    bool ok() const { return problems.empty(); }
};

class VscFile : public std::enable_shared_from_this<VscFile> {
public:
    struct CreateOptions {
        std::optional<std::string> assigned_card;
        std::chrono::milliseconds kdf_target{250};
        std::optional<crypto::ScryptParams> kdf;  // fixed parameters (tests), else tuned
        std::optional<SecureBytes> family_key;    // shared with the assigned card, else random
    };

    // NAME: letters, digits, '.', '_', '-', not starting with '.', at most 64 bytes.
    static void validate_name(const std::string& name);
    static std::filesystem::path path_for(const std::filesystem::path& store,
                                          const std::string& name);

    // Creates STORE/NAME.vsc (mode 0600) atomically: it appears complete or not at all.
    static std::filesystem::path create(const std::filesystem::path& store, const std::string& name,
                                        ByteView password, const CreateOptions& options);
    // Opens and validates the header; throws Error(Corrupt) naming the file when it is not a
    // VSC, is damaged, or was written by a newer version.
    static std::shared_ptr<VscFile> open(const std::filesystem::path& path);

    ~VscFile();

    const std::filesystem::path& path() const { return path_; }
    const std::string& name() const { return name_; }
    const std::string& uid_hex() const { return uid_hex_; }
    ByteView uid() const { return uid_; }
    const std::string& assigned_card() const { return assigned_card_; }

    // Throws Error(WrongPassword) and changes nothing when PASSWORD is wrong.
    VscKeys unlock(ByteView password) const;
    // Rewraps the area keys under NEW_PASSWORD; data stays as it is.
    void change_password(ByteView old_password, ByteView new_password,
                         std::chrono::milliseconds kdf_target = std::chrono::milliseconds(250));

    // The persistence of one area; KEYS are required for private and secret.
    std::shared_ptr<AreaStore> area(Area area, const VscKeys* keys);

    // Database integrity plus every object row and chunk decrypted and authenticated (for
    // the areas whose keys are given).
    IntegrityReport check(const VscKeys* keys);

    // Makes everything committed so far durable on disk.
    void sync();

    // Connections are pooled so readers run in parallel; writers serialise on SQLite's lock.
    class Lease {
    public:
        Lease(VscFile& owner, std::unique_ptr<sql::Connection> conn)
            : owner_(owner), conn_(std::move(conn)) {}
        ~Lease() { owner_.release(std::move(conn_)); }
        sql::Connection& operator*() { return *conn_; }
        sql::Connection* operator->() { return conn_.get(); }

    private:
        VscFile& owner_;
        std::unique_ptr<sql::Connection> conn_;
    };
    Lease connection();
    std::uint64_t allocate_id() { return next_id_.fetch_add(1); }
    std::mutex& write_mutex() { return write_mutex_; }
    // Called after each committed write: wakes the background checkpointer.
    void wrote();
    // How many background checkpoints have copied the whole WAL back (for tests).
    std::uint64_t checkpoints() const { return checkpoints_.load(); }

private:
    explicit VscFile(std::filesystem::path path);
    void load_header();
    void release(std::unique_ptr<sql::Connection> conn);
    std::unique_ptr<sql::Connection> new_connection();

    std::filesystem::path path_;
    std::string name_;
    Bytes uid_;
    std::string uid_hex_;
    std::string assigned_card_;
    std::mutex pool_mutex_;
    std::vector<std::unique_ptr<sql::Connection>> pool_;
    std::mutex write_mutex_;

    // Copying the WAL back into the main file happens in the background once writes pause,
    // not inside the commit that happens to cross a threshold: a large write then costs one
    // pass over the disk on its critical path instead of two.
    void checkpointer();
    // Pages of deleted objects go back to the filesystem, in steps, while the file is idle
    // (files made with auto_vacuum=INCREMENTAL): on SQLite's free list they would make every
    // later page allocation scan it (a 64 MiB write took a fifth longer with the pages of an
    // earlier one free), and the file would never shrink.
    void release_free_pages(sql::Connection& db);
    std::mutex checkpoint_mutex_;
    std::condition_variable checkpoint_cv_;
    std::chrono::steady_clock::time_point last_write_{};
    // When a connection was last leased (any read or write), in steady_clock ticks.
    std::atomic<std::chrono::steady_clock::rep> last_use_{0};
    bool unsaved_ = false;  // WAL frames not yet checkpointed
    bool stopping_ = false;
    std::atomic<std::uint64_t> checkpoints_{0};
    std::thread checkpoint_thread_;
    std::atomic<std::uint64_t> next_id_{16};
};

}  // namespace vscard
