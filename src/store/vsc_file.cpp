#include "store/vsc_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <set>

#include "error.hpp"
#include "locations.hpp"

namespace vscard {
namespace {

constexpr std::int64_t kApplicationId = 0x56534331;  // "VSC1"
constexpr std::size_t kUidSize = 16;
const std::string kKeysAad = "vscard-keys-v1";
const std::string kNodeAad = "vscard-node-v1";
const std::string kChunkAad = "vscard-chunk-v1";
const std::string kSecretStorageInfo = "vscard secret area storage v1";

constexpr std::uint64_t kRootIds[] = {1, 2, 3};  // public, private, secret
std::uint64_t root_id(Area area) {
    return kRootIds[static_cast<int>(area) - 1];
}

std::int64_t chunk_key(std::uint64_t content, std::uint64_t index) {
    if (content >= (1ull << 43) || index >= kMaxChunksPerFile)
        throw Error(ErrorKind::TooBig, "file too large");
    return static_cast<std::int64_t>(content << 20 | index);
}

void put_u64(Bytes& b, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

Bytes node_aad(ByteView uid, Area area, std::uint64_t id) {
    Bytes aad(kNodeAad.begin(), kNodeAad.end());
    aad.insert(aad.end(), uid.begin(), uid.end());
    aad.push_back(static_cast<std::uint8_t>(area));
    put_u64(aad, id);
    return aad;
}

Bytes chunk_aad(ByteView uid, Area area, std::uint64_t content, std::uint64_t index) {
    Bytes aad(kChunkAad.begin(), kChunkAad.end());
    aad.insert(aad.end(), uid.begin(), uid.end());
    aad.push_back(static_cast<std::uint8_t>(area));
    put_u64(aad, content);
    put_u64(aad, index);
    return aad;
}

Bytes keys_aad(ByteView uid) {
    Bytes aad(kKeysAad.begin(), kKeysAad.end());
    aad.insert(aad.end(), uid.begin(), uid.end());
    return aad;
}

void apply_pragmas(sql::Connection& db) {
    // journal_size_limit 0: when a fully checkpointed WAL restarts, SQLite truncates it (at
    // the first commit), so later frames extend the file. Frames are not page-aligned, and
    // writing them over an older WAL whose pages have left the page cache reads each page back
    // from disk first: with 8 MiB kept, each small commit after a restart paid such a read.
    // secure_delete off: freed pages only ever hold public data or ciphertext, and zeroing
    // them doubled the cost of deleting a large file.
    // mmap: large chunks span many pages, which mmap reads without a syscall each.
    // wal_autocheckpoint (256 MiB of 4 KiB pages): checkpoints run in the background once
    // writes pause (VscFile::checkpointer); this is only the bound for writes that never
    // pause. It is checked at every commit: at 128 MiB the second of two 64 MiB files written
    // back to back paid a whole checkpoint inside its own write.
    db.exec(
        "PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-8192;"
        "PRAGMA journal_size_limit=0; PRAGMA secure_delete=OFF;"
        "PRAGMA mmap_size=268435456; PRAGMA wal_autocheckpoint=65536;");
}

void set_header(sql::Connection& db, const std::string& key, std::int64_t value) {
    db.prepare("INSERT OR REPLACE INTO header(key, value) VALUES(?1, ?2)")
        .bind(1, key)
        .bind(2, value)
        .run();
}

void set_header(sql::Connection& db, const std::string& key, ByteView value) {
    db.prepare("INSERT OR REPLACE INTO header(key, value) VALUES(?1, ?2)")
        .bind(1, key)
        .bind(2, value)
        .run();
}

struct HeaderValue {
    bool present = false;
    std::int64_t integer = 0;
    Bytes blob;
};

HeaderValue get_header(sql::Connection& db, const std::string& key) {
    auto st = db.prepare("SELECT value, typeof(value) = 'integer' FROM header WHERE key = ?1");
    st.bind(1, key);
    HeaderValue v;
    if (st.step()) {
        v.present = true;
        if (st.integer(1))
            v.integer = st.integer(0);
        else {
            ByteView b = st.blob(0);
            v.blob.assign(b.begin(), b.end());
        }
    }
    return v;
}

[[noreturn]] void corrupt(const std::filesystem::path& path, const std::string& what) {
    throw Error(ErrorKind::Corrupt, path.string() + " " + what);
}

HeaderValue require_header(sql::Connection& db, const std::string& key) {
    HeaderValue v = get_header(db, key);
    if (!v.present) corrupt(db.path(), "is damaged: its header lacks '" + key + "'");
    return v;
}

crypto::ScryptParams read_kdf(sql::Connection& db) {
    crypto::ScryptParams p;
    p.n = static_cast<std::uint64_t>(require_header(db, "kdf.scrypt.n").integer);
    p.r = static_cast<std::uint32_t>(require_header(db, "kdf.scrypt.r").integer);
    p.p = static_cast<std::uint32_t>(require_header(db, "kdf.scrypt.p").integer);
    p.salt = require_header(db, "kdf.scrypt.salt").blob;
    if (p.n < 2 || (p.n & (p.n - 1)) != 0 || p.n > (1ull << 24) || p.r == 0 || p.r > 64 ||
        p.p == 0 || p.p > 64 || p.salt.size() < 16)
        corrupt(db.path(), "is damaged: its key-derivation parameters are invalid");
    return p;
}

void write_wrapped_keys(sql::Connection& db, ByteView uid, ByteView password,
                        const crypto::ScryptParams& params, const VscKeys& keys) {
    SecureBytes kek = crypto::scrypt(password, params, crypto::kKeySize);
    SecureBytes both(keys.private_key.begin(), keys.private_key.end());
    both.insert(both.end(), keys.family_key.begin(), keys.family_key.end());
    Bytes wrapped = crypto::seal(kek, both, keys_aad(uid));
    set_header(db, "kdf.scrypt.n", static_cast<std::int64_t>(params.n));
    set_header(db, "kdf.scrypt.r", static_cast<std::int64_t>(params.r));
    set_header(db, "kdf.scrypt.p", static_cast<std::int64_t>(params.p));
    set_header(db, "kdf.scrypt.salt", params.salt);
    set_header(db, "keys.wrapped", wrapped);
}

void fsync_path(const std::filesystem::path& path, bool must_exist) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (!must_exist && errno == ENOENT) return;
        throw system_error("cannot open " + path.string() + " to sync it");
    }
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) throw system_error("cannot sync " + path.string(), err);
}

// The persistence of one area inside a VSC file.
class VscAreaStore final : public AreaStore {
public:
    VscAreaStore(std::shared_ptr<VscFile> file, Area area, std::optional<SecureBytes> key)
        : file_(std::move(file)), area_(area), key_(std::move(key)) {}

    std::vector<NodeRow> load() override {
        std::vector<NodeRow> rows;
        auto db = file_->connection();
        auto st = db->prepare("SELECT id, meta FROM nodes WHERE area = ?1");
        st.bind(1, static_cast<std::int64_t>(area_));
        while (st.step()) {
            NodeRow row;
            row.id = static_cast<std::uint64_t>(st.integer(0));
            ByteView stored = st.blob(1);
            if (key_) {
                auto plain = crypto::open(*key_, stored, node_aad(file_->uid(), area_, row.id));
                if (!plain)
                    corrupt(file_->path(), "is damaged: object " + std::to_string(row.id) +
                                               " of the " + area_name(area_) +
                                               " area fails authentication");
                row.meta = parse_meta(*plain, row.id);
            } else {
                row.meta = parse_meta(stored, row.id);
            }
            rows.push_back(std::move(row));
        }
        return rows;
    }

    std::uint64_t allocate_id() override { return file_->allocate_id(); }

    void apply(const AreaChange& change) override {
        // Object rows are sealed before taking the write lock. Chunks are sealed one at a time
        // inside the transaction, into one buffer: sealing a large change beforehand meant a
        // second copy of all of it in fresh memory, whose page faults cost twice the AES-GCM
        // itself (a 64 KiB chunk seals in about 20 us).
        std::vector<Bytes> metas;
        metas.reserve(change.upserts.size());
        for (const auto& row : change.upserts) metas.push_back(seal_meta(row));
        Bytes sealed;

        std::lock_guard lock(file_->write_mutex());
        auto db = file_->connection();
        sql::Transaction txn(*db);
        for (std::size_t i = 0; i < change.upserts.size(); ++i) {
            db->prepare("INSERT OR REPLACE INTO nodes(id, area, meta) VALUES(?1, ?2, ?3)")
                .bind(1, static_cast<std::int64_t>(change.upserts[i].id))
                .bind(2, static_cast<std::int64_t>(area_))
                .bind(3, metas[i])
                .run();
        }
        for (auto id : change.deleted_nodes) {
            db->prepare("DELETE FROM nodes WHERE id = ?1 AND area = ?2")
                .bind(1, static_cast<std::int64_t>(id))
                .bind(2, static_cast<std::int64_t>(area_))
                .run();
        }
        for (auto [content, from] : change.dropped_chunks) {
            db->prepare("DELETE FROM chunks WHERE id >= ?1 AND id < ?2 AND area = ?3")
                .bind(1, chunk_key(content, std::min(from, kMaxChunksPerFile)))
                .bind(2, chunk_key(content + 1, 0))
                .bind(3, static_cast<std::int64_t>(area_))
                .run();
        }
        for (const auto& c : change.chunks) {
            db->prepare("INSERT OR REPLACE INTO chunks(id, area, data) VALUES(?1, ?2, ?3)")
                .bind(1, chunk_key(c.content, c.index))
                .bind(2, static_cast<std::int64_t>(area_))
                .bind(3, seal_chunk(c, sealed))
                .run();
        }
        txn.commit();
        file_->wrote();
    }

    bool read_chunk(std::uint64_t content, std::uint64_t index, WipedBytes& out) override {
        auto db = file_->connection();
        auto st = db->prepare("SELECT data FROM chunks WHERE id = ?1 AND area = ?2");
        st.bind(1, chunk_key(content, index)).bind(2, static_cast<std::int64_t>(area_));
        if (!st.step()) return false;
        ByteView stored = st.blob(0);
        if (!key_) {
            // resize + memcpy: assign() from a range copies byte by byte with this allocator.
            out.resize(stored.size());
            if (!stored.empty()) std::memcpy(out.data(), stored.data(), stored.size());
            return true;
        }
        if (stored.size() < crypto::kSealOverhead) bad_chunk(content, index);
        out.resize(stored.size() - crypto::kSealOverhead);
        if (!crypto::open_into(*key_, stored, chunk_aad(file_->uid(), area_, content, index),
                               out.data()))
            bad_chunk(content, index);
        return true;
    }

    std::optional<std::size_t> read_chunk_into(std::uint64_t content, std::uint64_t index,
                                               std::uint8_t* out) override {
        auto db = file_->connection();
        auto st = db->prepare("SELECT data FROM chunks WHERE id = ?1 AND area = ?2");
        st.bind(1, chunk_key(content, index)).bind(2, static_cast<std::int64_t>(area_));
        if (!st.step()) return std::nullopt;
        ByteView stored = st.blob(0);
        std::size_t overhead = key_ ? crypto::kSealOverhead : 0;
        if (stored.size() < overhead || stored.size() - overhead > kVscChunkSize)
            bad_chunk(content, index);
        if (!key_) {
            if (!stored.empty()) std::memcpy(out, stored.data(), stored.size());
        } else if (!crypto::open_into(*key_, stored, chunk_aad(file_->uid(), area_, content, index),
                                      out)) {
            bad_chunk(content, index);
        }
        return stored.size() - overhead;
    }

    void drop_unreferenced(const std::vector<std::uint64_t>& live_contents) override {
        std::set<std::uint64_t> live(live_contents.begin(), live_contents.end());
        std::vector<std::uint64_t> dead;
        {
            auto db = file_->connection();
            auto st = db->prepare("SELECT DISTINCT id >> 20 FROM chunks WHERE area = ?1");
            st.bind(1, static_cast<std::int64_t>(area_));
            while (st.step()) {
                auto content = static_cast<std::uint64_t>(st.integer(0));
                if (!live.count(content)) dead.push_back(content);
            }
        }
        if (dead.empty()) return;
        AreaChange change;
        for (auto content : dead) change.dropped_chunks.emplace_back(content, 0);
        apply(change);
    }

    std::size_t chunk_size() const override { return kVscChunkSize; }
    void sync() override { file_->sync(); }

    SpaceInfo space() override {
        struct statvfs sv {};
        if (::statvfs(file_->path().parent_path().c_str(), &sv) != 0)
            throw system_error("statfs " + file_->path().parent_path().string());
        return {static_cast<std::uint64_t>(sv.f_blocks) * sv.f_frsize,
                static_cast<std::uint64_t>(sv.f_bavail) * sv.f_frsize};
    }

    std::string describe() const override { return "vsc/" + file_->name(); }

private:
    NodeMeta parse_meta(ByteView plain, std::uint64_t id) {
        try {
            return NodeMeta::parse(plain);
        } catch (const Error& e) {
            corrupt(file_->path(),
                    std::string("is damaged: object ") + std::to_string(id) + ": " + e.what());
        }
    }

    [[noreturn]] void bad_chunk(std::uint64_t content, std::uint64_t index) {
        corrupt(file_->path(), "is damaged: data block " + std::to_string(index) + " of stream " +
                                   std::to_string(content) + " in the " + area_name(area_) +
                                   " area fails authentication");
    }

    Bytes seal_meta(const NodeRow& row) {
        WipedBytes plain = row.meta.serialize();
        if (!key_) return Bytes(plain.begin(), plain.end());
        return crypto::seal(*key_, plain, node_aad(file_->uid(), area_, row.id));
    }

    // What is stored for C: its plaintext in the public area, else sealed into BUFFER.
    ByteView seal_chunk(const ChunkWrite& c, Bytes& buffer) {
        if (!key_) return c.data;
        buffer.clear();
        crypto::seal_append(*key_, c.data, chunk_aad(file_->uid(), area_, c.content, c.index),
                            buffer);
        return buffer;
    }

    std::shared_ptr<VscFile> file_;
    Area area_;
    std::optional<SecureBytes> key_;
};

}  // namespace

void VscFile::validate_name(const std::string& name) {
    bool ok = !name.empty() && name.size() <= 64 && name[0] != '.';
    for (char c : name)
        ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-');
    if (!ok)
        throw Error(ErrorKind::Invalid,
                    "invalid VSC name '" + name +
                        "': use up to 64 letters, digits, '.', '_' or '-', not starting with '.'");
}

std::filesystem::path VscFile::path_for(const std::filesystem::path& store,
                                        const std::string& name) {
    return store / (name + ".vsc");
}

std::filesystem::path VscFile::create(const std::filesystem::path& store, const std::string& name,
                                      ByteView password, const CreateOptions& options) {
    validate_name(name);
    if (password.empty()) throw Error(ErrorKind::Invalid, "the password must not be empty");
    ensure_private_dir(store);
    const auto final_path = path_for(store, name);
    if (std::filesystem::exists(final_path))
        throw Error(ErrorKind::Exists,
                    "a VSC named '" + name + "' already exists (" + final_path.string() + ")");

    Bytes tag = crypto::random(6);
    const auto temp_path = store / ("." + name + ".vsc.creating-" + crypto::hex(tag));
    int fd = ::open(temp_path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) throw system_error("cannot create " + temp_path.string());
    ::close(fd);

    try {
        VscKeys keys{crypto::random_key(),
                     options.family_key ? *options.family_key : crypto::random_key()};
        crypto::ScryptParams kdf =
            options.kdf ? *options.kdf : crypto::tune_scrypt(options.kdf_target);
        Bytes uid = crypto::random(kUidSize);
        {
            sql::Connection db(temp_path, false);
            // Before the first table: see release_free_pages().
            db.exec("PRAGMA auto_vacuum=INCREMENTAL");
            db.exec("PRAGMA journal_mode=DELETE");
            sql::Transaction txn(db);
            db.exec(
                "PRAGMA application_id = 1448297265;"
                "PRAGMA user_version = 1;"
                "CREATE TABLE header(key TEXT PRIMARY KEY, value BLOB NOT NULL);"
                "CREATE TABLE nodes(id INTEGER PRIMARY KEY, area INTEGER NOT NULL,"
                "                   meta BLOB NOT NULL);"
                // id = content << 20 | index: one B-tree, no separate index to update.
                "CREATE TABLE chunks(id INTEGER PRIMARY KEY, area INTEGER NOT NULL,"
                "                    data BLOB NOT NULL);");
            set_header(db, "format", kVscFormatVersion);
            set_header(db, "features", kVscKnownFeatures);
            set_header(db, "uid", uid);
            set_header(db, "name", view_of(name));
            set_header(db, "created", Timestamp::now().sec);
            if (options.assigned_card)
                set_header(db, "assigned_card", view_of(*options.assigned_card));
            write_wrapped_keys(db, uid, password, kdf, keys);
            txn.commit();
            db.exec("PRAGMA journal_mode=WAL");
        }
        // Area roots are written through the normal path, encrypted like every other object.
        auto file = open(temp_path);
        for (Area area : {Area::Public, Area::Private, Area::Secret}) {
            auto store_of_area = file->area(area, &keys);
            AreaChange change;
            NodeRow root;
            root.id = root_id(area);
            root.meta.kind = NodeKind::Dir;
            root.meta.mode = area == Area::Public ? 0755 : 0700;
            root.meta.mtime = root.meta.ctime = Timestamp::now();
            change.upserts.push_back(root);
            store_of_area->apply(change);
        }
        file->sync();
        file.reset();
        if (::renameat2(AT_FDCWD, temp_path.c_str(), AT_FDCWD, final_path.c_str(),
                        RENAME_NOREPLACE) != 0)
            throw system_error("cannot create " + final_path.string());
        fsync_path(store, true);
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove(temp_path, ec);
        std::filesystem::remove(temp_path.string() + "-wal", ec);
        std::filesystem::remove(temp_path.string() + "-shm", ec);
        throw;
    }
    return final_path;
}

VscFile::VscFile(std::filesystem::path path) : path_(std::move(path)) {}

VscFile::~VscFile() {
    {
        std::lock_guard lock(checkpoint_mutex_);
        stopping_ = true;
    }
    checkpoint_cv_.notify_all();
    if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
    if (unsaved_) {
        try {
            auto db = connection();
            db->exec("PRAGMA wal_checkpoint(TRUNCATE)");
        } catch (const Error&) {
            // The WAL stays; SQLite replays it on the next open.
        }
    }
}

void VscFile::wrote() {
    std::lock_guard lock(checkpoint_mutex_);
    last_write_ = std::chrono::steady_clock::now();
    bool was_idle = !unsaved_;
    unsaved_ = true;
    if (!checkpoint_thread_.joinable())
        checkpoint_thread_ = std::thread([this] { checkpointer(); });
    // A checkpointer already counting down wakes at its deadline and finds the later write
    // itself: waking it at every commit would cost a thread switch per commit.
    if (was_idle) checkpoint_cv_.notify_all();
}

void VscFile::checkpointer() {
    using Clock = std::chrono::steady_clock;
    constexpr auto kQuiet = std::chrono::milliseconds(300);
    // A checkpoint competes for the disk with whoever reads the file: it waits until reads
    // pause too, but no longer than this after the last write.
    constexpr auto kMaxDeferral = std::chrono::seconds(10);
    std::unique_lock lock(checkpoint_mutex_);
    while (!stopping_) {
        if (!unsaved_) {
            checkpoint_cv_.wait(lock);
            continue;
        }
        Clock::time_point last_use{Clock::duration(last_use_.load(std::memory_order_relaxed))};
        auto due = std::min(std::max(last_write_, last_use) + kQuiet, last_write_ + kMaxDeferral);
        if (Clock::now() < due) {
            checkpoint_cv_.wait_until(lock, due);
            continue;
        }
        unsaved_ = false;
        lock.unlock();
        try {
            auto db = connection();
            release_free_pages(*db);
            // PASSIVE never blocks readers or writers; what it cannot copy now waits.
            auto st = db->prepare("PRAGMA wal_checkpoint(PASSIVE)");
            bool complete = st.step() && st.integer(0) == 0 && st.integer(1) == st.integer(2);
            if (complete) {
                ++checkpoints_;
            } else {
                std::lock_guard again(checkpoint_mutex_);
                unsaved_ = true;
                last_write_ = std::chrono::steady_clock::now();
            }
        } catch (const Error&) {
            std::lock_guard again(checkpoint_mutex_);
            unsaved_ = true;
            last_write_ = std::chrono::steady_clock::now();
        }
        lock.lock();
    }
}

void VscFile::release_free_pages(sql::Connection& db) {
    constexpr std::int64_t kMinPages = 256;  // 1 MiB: not worth a transaction below
    constexpr int kStepPages = 4096;         // 16 MiB per transaction, which blocks writers
    auto pragma = [&](const char* sql) {
        auto st = db.prepare(sql);
        return st.step() ? st.integer(0) : 0;
    };
    if (pragma("PRAGMA auto_vacuum") != 2) return;  // a file made before it was turned on
    const auto used_at = last_use_.load(std::memory_order_relaxed);
    // Until few pages are free, or a step frees none (which it should not).
    for (std::int64_t free_pages = pragma("PRAGMA freelist_count"), before = free_pages + 1;
         free_pages >= kMinPages && free_pages < before;
         before = free_pages, free_pages = pragma("PRAGMA freelist_count")) {
        {
            std::lock_guard write(write_mutex_);
            db.exec(("PRAGMA incremental_vacuum(" + std::to_string(kStepPages) + ")").c_str());
        }
        // Used again, or being closed: the rest waits for a later quiet moment.
        std::lock_guard again(checkpoint_mutex_);
        if (stopping_) break;
        if (last_use_.load(std::memory_order_relaxed) != used_at) {
            unsaved_ = true;
            break;
        }
    }
}

std::shared_ptr<VscFile> VscFile::open(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) throw Error(ErrorKind::NotFound, path.string() + " does not exist");
        throw system_error("cannot open " + path.string());
    }
    if (!S_ISREG(st.st_mode)) corrupt(path, "is not a regular file");
    if (st.st_uid != ::getuid())
        throw Error(ErrorKind::Locked, path.string() + " belongs to uid " +
                                           std::to_string(st.st_uid) +
                                           ", not to you; vscard only opens your own VSC files");
    if (st.st_size == 0)
        corrupt(path, "is empty (truncated); restore it from a backup, or remove it");
    std::shared_ptr<VscFile> file(new VscFile(path));
    file->load_header();
    return file;
}

void VscFile::load_header() {
    auto db = connection();
    {
        auto st = db->prepare("PRAGMA application_id");
        if (!st.step() || st.integer(0) != kApplicationId)
            corrupt(path_, "is not a vscard VSC file");
    }
    {
        // A database claiming our id without our tables is damaged (not an I/O failure).
        auto st = db->prepare(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
            "name IN ('header', 'nodes', 'chunks')");
        if (!st.step() || st.integer(0) != 3) corrupt(path_, "is damaged: its tables are missing");
    }
    HeaderValue format = require_header(*db, "format");
    if (format.integer > kVscFormatVersion)
        corrupt(path_, "was written by a newer vscard (format " + std::to_string(format.integer) +
                           ", this one reads " + std::to_string(kVscFormatVersion) +
                           "); upgrade vscard to open it");
    if (format.integer < 1) corrupt(path_, "is damaged: bad format version");
    HeaderValue features = require_header(*db, "features");
    if (features.integer & ~kVscKnownFeatures)
        corrupt(path_, "uses features this vscard does not know; upgrade vscard to open it");
    uid_ = require_header(*db, "uid").blob;
    if (uid_.size() != kUidSize) corrupt(path_, "is damaged: bad uid");
    uid_hex_ = crypto::hex(uid_);
    Bytes card = get_header(*db, "assigned_card").blob;
    assigned_card_.assign(card.begin(), card.end());
    read_kdf(*db);
    require_header(*db, "keys.wrapped");
    name_ = path_.stem().string();

    std::int64_t max_id = 0;
    {
        auto st = db->prepare("SELECT max(id) FROM nodes");
        if (st.step()) max_id = std::max(max_id, st.integer(0));
    }
    {
        auto st = db->prepare("SELECT max(id) >> 20 FROM chunks");
        if (st.step()) max_id = std::max(max_id, st.integer(0));
    }
    next_id_ = std::max<std::uint64_t>(16, static_cast<std::uint64_t>(max_id) + 1);
}

std::unique_ptr<sql::Connection> VscFile::new_connection() {
    auto conn = std::make_unique<sql::Connection>(path_, false);
    apply_pragmas(*conn);
    return conn;
}

VscFile::Lease VscFile::connection() {
    last_use_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                    std::memory_order_relaxed);
    {
        std::lock_guard lock(pool_mutex_);
        if (!pool_.empty()) {
            auto conn = std::move(pool_.back());
            pool_.pop_back();
            return Lease(*this, std::move(conn));
        }
    }
    return Lease(*this, new_connection());
}

void VscFile::release(std::unique_ptr<sql::Connection> conn) {
    if (!conn) return;
    std::lock_guard lock(pool_mutex_);
    if (pool_.size() < 8) pool_.push_back(std::move(conn));
}

VscKeys VscFile::unlock(ByteView password) const {
    auto self = const_cast<VscFile*>(this);
    auto db = self->connection();
    crypto::ScryptParams kdf = read_kdf(*db);
    Bytes wrapped = require_header(*db, "keys.wrapped").blob;
    SecureBytes kek = crypto::scrypt(password, kdf, crypto::kKeySize);
    auto both = crypto::open(kek, wrapped, keys_aad(uid_));
    if (!both) throw Error(ErrorKind::WrongPassword, "wrong password for vsc/" + name_);
    if (both->size() != 2 * crypto::kKeySize) corrupt(path_, "is damaged: bad key block");
    VscKeys keys;
    keys.private_key.assign(both->begin(), both->begin() + crypto::kKeySize);
    keys.family_key.assign(both->begin() + crypto::kKeySize, both->end());
    return keys;
}

void VscFile::change_password(ByteView old_password, ByteView new_password,
                              std::chrono::milliseconds kdf_target) {
    if (new_password.empty()) throw Error(ErrorKind::Invalid, "the new password must not be empty");
    VscKeys keys = unlock(old_password);
    crypto::ScryptParams kdf = crypto::tune_scrypt(kdf_target);
    std::lock_guard lock(write_mutex_);
    auto db = connection();
    sql::Transaction txn(*db);
    write_wrapped_keys(*db, uid_, new_password, kdf, keys);
    txn.commit();
    sync();
}

std::shared_ptr<AreaStore> VscFile::area(Area area, const VscKeys* keys) {
    std::optional<SecureBytes> key;
    if (area != Area::Public) {
        if (!keys) throw Error(ErrorKind::Locked, "vsc/" + name_ + " is locked");
        key = area == Area::Private ? keys->private_key
                                    : crypto::hkdf(keys->family_key, kSecretStorageInfo);
    }
    return std::make_shared<VscAreaStore>(shared_from_this(), area, std::move(key));
}

void VscFile::sync() {
    // In WAL mode committed transactions sit in the -wal file; syncing it (and the main
    // file, which checkpoints write to) makes them survive a power cut.
    fsync_path(path_.string() + "-wal", false);
    fsync_path(path_, true);
}

IntegrityReport VscFile::check(const VscKeys* keys) {
    IntegrityReport report;
    {
        auto db = connection();
        auto st = db->prepare("PRAGMA integrity_check");
        while (st.step()) {
            std::string line = st.text(0);
            if (line != "ok") report.problems.push_back("database: " + line);
        }
    }
    if (!report.ok()) return report;
    for (Area area : {Area::Public, Area::Private, Area::Secret}) {
        if (area != Area::Public && !keys) continue;
        try {
            auto store = this->area(area, keys);
            auto rows = store->load();
            bool has_root = false;
            std::map<std::uint64_t, const NodeRow*> by_id;
            for (const auto& row : rows) by_id[row.id] = &row;
            for (const auto& row : rows) {
                ++report.nodes_checked;
                if (row.id == root_id(area)) {
                    has_root = true;
                    continue;
                }
                if (!by_id.count(row.meta.parent))
                    report.problems.push_back(std::string(area_name(area)) + ": object " +
                                              std::to_string(row.id) + " has no parent folder");
                if (row.meta.kind != NodeKind::File) continue;
                std::size_t chunks = (row.meta.size + kVscChunkSize - 1) / kVscChunkSize;
                WipedBytes buf;
                for (std::size_t i = 0; i < chunks; ++i) {
                    if (store->read_chunk(row.meta.content, i, buf)) ++report.chunks_checked;
                }
            }
            if (!has_root)
                report.problems.push_back(std::string(area_name(area)) +
                                          ": the area root is missing");
        } catch (const Error& e) {
            report.problems.push_back(std::string(area_name(area)) + ": " + e.what());
        }
    }
    return report;
}

}  // namespace vscard
