#pragma once
// The whole mounted tree (DESIGN §3), independent of FUSE: routes paths to the media (VSCs
// in the store, cards in the readers) and their areas, serves id/, follows lock state from
// the agent and cards from PC/SC. The FUSE adapter only translates.
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent_client.hpp"
#include "store/vsc_file.hpp"
#include "vfs/area_fs.hpp"
#include "vfs/card_session.hpp"

namespace vscard {

class CardWatch;

struct VfsAttr {
    std::uint64_t ino = 0;
    bool dir = false;
    std::uint32_t mode = 0;  // permission bits
    std::uint64_t size = 0;
    std::uint32_t nlink = 1;
    Timestamp mtime;
    Timestamp ctime;
};

// An open file of the mount.
struct VfsHandle {
    std::shared_ptr<AreaFs> area;  // null for id/ files
    std::shared_ptr<OpenFile> file;
    std::string fixed_content;   // id/ files: a snapshot taken at open
    bool direct_io = false;      // secret/: never in the page cache
    std::uint64_t ino_base = 0;  // inode numbers of the VSC and area it belongs to
};

// Where the mount gets the password of a target when it must unlock it.
class SecretSource {
public:
    virtual ~SecretSource() = default;
    virtual std::optional<SecureBytes> get(const std::string& target) = 0;
    virtual void forget(const std::string& target) = 0;  // it was wrong: never retry it
    virtual void touch(const std::string& target) = 0;   // still in use: reset the idle timer
};

struct VfsOptions {
    std::filesystem::path store;
    std::filesystem::path agent_socket;
    // Default: the agent at agent_socket, with its lock/unlock events followed.
    std::shared_ptr<SecretSource> secrets;
    // Follow the PC/SC readers (card/ shows the cards inserted); tests may hand cards in
    // through card_inserted() instead.
    bool pcsc = false;
    // Whose permission bits apply: the process's own user is the only one the kernel lets in.
    Caller caller = ::getuid() == 0 ? Caller::Superuser : Caller::Owner;
};

class Vfs {
public:
    explicit Vfs(VfsOptions options);
    ~Vfs();

    VfsAttr getattr(const std::string& path);
    // As getattr, but nullopt when a file or folder of an area does not exist.
    std::optional<VfsAttr> find(const std::string& path);
    std::vector<std::pair<std::string, VfsAttr>> readdir(const std::string& path);
    VfsAttr mkdir(const std::string& path, std::uint32_t mode);
    void rmdir(const std::string& path);
    void unlink(const std::string& path);
    void rename(const std::string& from, const std::string& to, bool no_replace);
    void chmod(const std::string& path, std::uint32_t mode);
    void set_mtime(const std::string& path, Timestamp mtime);
    void truncate(const std::string& path, std::uint64_t size);

    std::unique_ptr<VfsHandle> open(const std::string& path, int flags);
    std::unique_ptr<VfsHandle> create(const std::string& path, std::uint32_t mode, int flags);
    std::size_t read(VfsHandle& h, std::uint64_t offset, std::size_t size, char* out);
    std::size_t write(VfsHandle& h, std::uint64_t offset, const char* data, std::size_t size);
    void ftruncate(VfsHandle& h, std::uint64_t size);
    VfsAttr fgetattr(VfsHandle& h, const char* path);  // PATH may be null (unlinked)
    void flush(VfsHandle& h);
    void fsync(VfsHandle& h);
    void release(VfsHandle& h);

    void setxattr(const std::string& path, const std::string& name, const std::string& value,
                  int flags);
    std::string getxattr(const std::string& path, const std::string& name);
    std::vector<std::string> listxattr(const std::string& path);
    void removexattr(const std::string& path, const std::string& name);
    SpaceInfo statfs(const std::string& path);
    // access(2) (also what opening a folder needs: R_OK): MASK of R_OK, W_OK, X_OK or F_OK.
    void access(const std::string& path, int mask);

    // Told of every path whose kernel cache must go (lock, VSC removed).
    void set_invalidator(std::function<void(const std::vector<std::string>&)> invalidate);

    // Lock/unlock as the agent reports them ("vsc/NAME", "card/SERIAL").
    void agent_event(const std::string& target, bool unlocked);
    // A card came (card/SERIAL appears) or left its reader (it vanishes; open files fail
    // with EIO).
    void card_inserted(std::shared_ptr<CardSession> session);
    void card_removed(const std::string& reader);
    // Commits what is buffered and locks every VSC (unmount).
    void shutdown();

private:
    struct Medium;
    struct Vsc;
    struct Card;
    struct Route;
    Route route(const std::string& path);
    Route writable_route(const std::string& path);  // an area path, else EROFS/EACCES
    std::shared_ptr<Vsc> find_vsc(const std::string& name);
    std::shared_ptr<Card> find_card(const std::string& serial);
    // Cards formatted since they came show under their serial (NOW_PLEASE: a name was asked
    // for that no card has; else at most every 250 ms).
    void look_for_apps(bool now_please = false);
    void rescan();
    std::shared_ptr<AreaFs> area_of(Medium& medium, Area area);  // EACCES while locked
    std::shared_ptr<AreaFs> vsc_area(Vsc& vsc, Area area);       // caller holds vsc.mutex
    std::shared_ptr<AreaFs> card_area(Card& card, Area area);    // caller holds card.mutex
    bool area_open(Medium& medium, Area area);
    std::shared_ptr<AreaFs> open_area(Vsc& vsc, Area area, const VscKeys* keys);
    std::shared_ptr<AreaFs> open_card_area(Card& card, Area area,
                                           std::optional<SecureBytes> family_key = std::nullopt);
    // FRESH: ask the card for its PIN state now (not just when listing).
    std::map<std::string, std::string> id_files(Medium& medium, bool fresh = false);
    VfsAttr attr(const Medium& medium, Area area, const Attr& a);
    void lock_medium(Medium& medium, std::optional<Error> reason = std::nullopt);

    VfsOptions options_;
    std::mutex mutex_;  // guards vscs_, cards_ and unlocked_
    std::map<std::string, std::shared_ptr<Vsc>> vscs_;
    std::map<std::string, std::shared_ptr<Card>> cards_;  // by serial
    std::map<std::string, bool> unlocked_;                // targets the agent holds a secret for
    void invalidate(const std::vector<std::string>& paths);
    std::mutex invalidate_mutex_;
    std::function<void(const std::vector<std::string>&)> invalidate_;
    std::unique_ptr<AgentWatcher> watcher_;
    Timestamp started_;
    std::unique_ptr<CardWatch> card_watch_;  // last: its thread calls into the rest
};

}  // namespace vscard
