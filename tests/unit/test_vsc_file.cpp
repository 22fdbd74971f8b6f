// The VSC file: creation, validation on open, passwords, encryption bindings, integrity check.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "crypto.hpp"
#include "error.hpp"
#include "store/vsc_file.hpp"
#include "store_test_util.hpp"
#include "vfs/area_fs.hpp"

namespace vscard {
namespace {

namespace fs = std::filesystem;
using testing::fast_kdf;
using testing::pattern;
using testing::read_all;
using testing::TempDir;
using testing::write_all;

const std::string kPassword = "correct horse battery";

ByteView sv(std::string_view s) {
    return view_of(s);
}

// Raw SQL on a VSC file, as a damaged or tampered file would look.
class RawDb {
public:
    explicit RawDb(const fs::path& path) {
        if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            nullptr) != SQLITE_OK)
            throw std::runtime_error("cannot open " + path.string());
    }
    ~RawDb() { sqlite3_close_v2(db_); }
    void exec(const std::string& sql) {
        char* err = nullptr;
        if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
            std::string msg = err ? err : "?";
            sqlite3_free(err);
            throw std::runtime_error(sql + ": " + msg);
        }
    }
    std::int64_t integer(const std::string& sql) {
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
            throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
        std::int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_finalize(st);
        return v;
    }
    std::string blob(const std::string& sql) {
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
            throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
        std::string v;
        if (sqlite3_step(st) == SQLITE_ROW)
            v.assign(static_cast<const char*>(sqlite3_column_blob(st, 0)),
                     static_cast<std::size_t>(sqlite3_column_bytes(st, 0)));
        sqlite3_finalize(st);
        return v;
    }
    std::string text(const std::string& sql) {
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
            throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
        std::string v;
        if (sqlite3_step(st) == SQLITE_ROW) {
            auto p = sqlite3_column_text(st, 0);
            if (p) v = reinterpret_cast<const char*>(p);
        }
        sqlite3_finalize(st);
        return v;
    }

private:
    sqlite3* db_ = nullptr;
};

class VscFileTest : public ::testing::Test {
protected:
    fs::path store() const { return dir_.path() / "store"; }

    fs::path create(const std::string& name, const std::string& password = kPassword) {
        VscFile::CreateOptions options;
        options.kdf = fast_kdf();
        return VscFile::create(store(), name, view_of(password), options);
    }

    // Writes files into an area through the filesystem logic.
    static void put(VscFile& file, Area area, const VscKeys& keys,
                    const std::vector<std::pair<std::string, std::string>>& files) {
        AreaFs fs(file.area(area, &keys), area);
        for (const auto& [name, data] : files) {
            auto h = fs.create({name}, 0644, false);
            fs.write(*h, 0, data.data(), data.size());
            fs.release(*h);
        }
    }
    static std::string get(VscFile& file, Area area, const VscKeys& keys, const std::string& name) {
        AreaFs fs(file.area(area, &keys), area);
        auto h = fs.open({name}, false, false);
        std::string out(static_cast<std::size_t>(fs.fgetattr(*h).size), '\0');
        out.resize(fs.read(*h, 0, out.size(), out.data()));
        fs.release(*h);
        return out;
    }
    // Waits up to 10 s for FILE's background checkpoints to number N.
    static bool checkpoints_reached(VscFile& file, std::uint64_t n) {
        for (int i = 0; i < 200 && file.checkpoints() < n; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return file.checkpoints() >= n;
    }
    static NodeRow row_named(AreaStore& store, const std::string& name) {
        for (auto& row : store.load())
            if (row.meta.name == name) return row;
        throw std::runtime_error("no row " + name);
    }

    // A VSC holding two private files "a" and "b" (two chunks each) and a public one.
    fs::path populated(const std::string& name) {
        fs::path path = create(name);
        auto file = VscFile::open(path);
        VscKeys keys = file->unlock(view_of(kPassword));
        put(*file, Area::Private, keys,
            {{"a", pattern(kVscChunkSize + 100, 1)}, {"b", pattern(kVscChunkSize + 200, 2)}});
        put(*file, Area::Public, keys, {{"pub", "public text"}});
        return path;
    }

    static void expect_corrupt_open(const fs::path& path, const std::string& mention = "") {
        try {
            VscFile::open(path);
            ADD_FAILURE() << "opened " << path;
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::Corrupt) << e.what();
            EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(mention), std::string::npos) << e.what();
        }
    }

    std::vector<std::string> store_entries() const {
        std::vector<std::string> out;
        for (const auto& e : fs::directory_iterator(store())) out.push_back(e.path().filename());
        std::sort(out.begin(), out.end());
        return out;
    }

    TempDir dir_;
};

// ---- create and open -----------------------------------------------------------------------

TEST_F(VscFileTest, CreateOpenRoundTrip) {
    VscFile::CreateOptions options;
    options.kdf = fast_kdf();
    options.assigned_card = "CARD-0042";
    fs::path path = VscFile::create(store(), "mine", view_of(kPassword), options);
    EXPECT_EQ(path, VscFile::path_for(store(), "mine"));
    EXPECT_EQ(path, store() / "mine.vsc");
    auto file = VscFile::open(path);
    EXPECT_EQ(file->name(), "mine");
    EXPECT_EQ(file->path(), path);
    EXPECT_EQ(file->assigned_card(), "CARD-0042");
    EXPECT_EQ(file->uid().size(), 16u);
    EXPECT_EQ(file->uid_hex().size(), 32u);

    fs::path other = create("other");
    EXPECT_NE(VscFile::open(other)->uid_hex(), file->uid_hex());
    EXPECT_EQ(VscFile::open(other)->assigned_card(), "");

    // Every area starts as an empty folder; the public one needs no keys.
    VscKeys keys = file->unlock(view_of(kPassword));
    for (Area area : {Area::Public, Area::Private, Area::Secret}) {
        AreaFs fs(file->area(area, &keys), area);
        EXPECT_TRUE(fs.readdir({}).empty());
        EXPECT_EQ(fs.getattr({}).mode, area == Area::Public ? 0755u : 0700u);
    }
    EXPECT_NO_THROW(AreaFs(file->area(Area::Public, nullptr), Area::Public));
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, file->area(Area::Private, nullptr));
    EXPECT_VSC_ERROR(ErrorKind::Locked, EACCES, file->area(Area::Secret, nullptr));
}

TEST_F(VscFileTest, FileIsPrivateToItsOwner) {
    fs::path path = create("mine");
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    ASSERT_EQ(::stat(store().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);

    // An existing store directory open to others is made private.
    ASSERT_EQ(::chmod(store().c_str(), 0755), 0);
    create("second");
    ASSERT_EQ(::stat(store().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(VscFileTest, CreateIsAtomic) {
    fs::path path = create("mine");
    const std::string before = read_all(path);
    EXPECT_VSC_ERROR(ErrorKind::Exists, EEXIST, create("mine"));
    EXPECT_EQ(read_all(path), before);
    EXPECT_EQ(store_entries(), std::vector<std::string>{"mine.vsc"});

    // A failure half-way (parameters the KDF refuses) leaves nothing behind.
    VscFile::CreateOptions bad;
    bad.kdf = fast_kdf();
    bad.kdf->n = 1000;  // not a power of two
    EXPECT_THROW(VscFile::create(store(), "half", view_of(kPassword), bad), Error);
    EXPECT_EQ(store_entries(), std::vector<std::string>{"mine.vsc"});

    VscFile::CreateOptions options;
    options.kdf = fast_kdf();
    EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, VscFile::create(store(), "nopw", {}, options));
    EXPECT_EQ(store_entries(), std::vector<std::string>{"mine.vsc"});
}

TEST_F(VscFileTest, InvalidNamesAreRefused) {
    for (const std::string& name :
         {std::string(), std::string(".hidden"), std::string("a/b"), std::string("a b"),
          std::string("caf\xc3\xa9"), std::string(65, 'a'), std::string("a\0b", 3),
          std::string("../x"), std::string("x*")}) {
        EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, VscFile::validate_name(name));
        EXPECT_VSC_ERROR(ErrorKind::Invalid, EINVAL, create(name));
    }
    EXPECT_NO_THROW(VscFile::validate_name(std::string(64, 'a')));
    EXPECT_NO_THROW(VscFile::validate_name("Card-01_b.2"));
    EXPECT_FALSE(fs::exists(store()) && !store_entries().empty());
}

TEST_F(VscFileTest, HeaderOfFormatOne) {
    fs::path path = create("kat");
    RawDb db(path);
    EXPECT_EQ(db.integer("PRAGMA application_id"), 0x56534331);
    EXPECT_EQ(db.integer("PRAGMA user_version"), 1);
    EXPECT_EQ(db.text("PRAGMA journal_mode"), "wal");
    EXPECT_EQ(db.integer("SELECT value FROM header WHERE key = 'format'"), 1);
    EXPECT_EQ(db.text("SELECT typeof(value) FROM header WHERE key = 'format'"), "integer");
    EXPECT_EQ(db.integer("SELECT value FROM header WHERE key = 'features'"), 0);
    EXPECT_EQ(db.integer("SELECT value FROM header WHERE key = 'kdf.scrypt.n'"), 1024);
    EXPECT_EQ(db.integer("SELECT value FROM header WHERE key = 'kdf.scrypt.r'"), 8);
    EXPECT_EQ(db.integer("SELECT value FROM header WHERE key = 'kdf.scrypt.p'"), 1);
    EXPECT_EQ(db.blob("SELECT value FROM header WHERE key = 'kdf.scrypt.salt'"),
              std::string(16, '\x5a'));
    EXPECT_EQ(db.blob("SELECT value FROM header WHERE key = 'uid'").size(), 16u);
    EXPECT_EQ(db.blob("SELECT value FROM header WHERE key = 'name'"), "kat");
    // Two 32-byte keys sealed with AES-GCM: nonce, ciphertext, tag.
    EXPECT_EQ(db.blob("SELECT value FROM header WHERE key = 'keys.wrapped'").size(),
              crypto::kSealOverhead + 2 * crypto::kKeySize);
    EXPECT_EQ(db.integer("SELECT count(*) FROM nodes"), 3);
    for (int area = 1; area <= 3; ++area)
        EXPECT_EQ(db.integer("SELECT area FROM nodes WHERE id = " + std::to_string(area)), area);
    // The public root is stored in clear, the others are sealed.
    std::string root = db.blob("SELECT meta FROM nodes WHERE id = 1");
    NodeMeta meta = NodeMeta::parse(view_of(root));
    EXPECT_EQ(meta.kind, NodeKind::Dir);
    EXPECT_EQ(meta.parent, 0u);
    EXPECT_EQ(meta.mode, 0755u);
    EXPECT_THROW(NodeMeta::parse(view_of(db.blob("SELECT meta FROM nodes WHERE id = 2"))), Error);
}

TEST_F(VscFileTest, OpenMissingFile) {
    EXPECT_VSC_ERROR(ErrorKind::NotFound, ENOENT, VscFile::open(dir_.path() / "none.vsc"));
}

// ---- passwords -----------------------------------------------------------------------------

TEST_F(VscFileTest, UnlockWithRightAndWrongPassword) {
    fs::path path = create("mine");
    const std::string before = read_all(path);
    {
        auto file = VscFile::open(path);
        VscKeys keys = file->unlock(view_of(kPassword));
        EXPECT_EQ(keys.private_key.size(), crypto::kKeySize);
        EXPECT_EQ(keys.family_key.size(), crypto::kKeySize);
        EXPECT_VSC_ERROR(ErrorKind::WrongPassword, EACCES, file->unlock(sv("wrong")));
        EXPECT_VSC_ERROR(ErrorKind::WrongPassword, EACCES, file->unlock({}));
        VscKeys again = file->unlock(view_of(kPassword));
        EXPECT_EQ(again.private_key, keys.private_key);
        EXPECT_EQ(again.family_key, keys.family_key);
    }
    EXPECT_EQ(read_all(path), before);
}

TEST_F(VscFileTest, ChangePassword) {
    fs::path path = create("mine");
    {
        auto file = VscFile::open(path);
        VscKeys keys = file->unlock(view_of(kPassword));
        put(*file, Area::Private, keys, {{"secret.txt", "private data"}});
    }
    const std::string before = read_all(path);
    {
        auto file = VscFile::open(path);
        EXPECT_VSC_ERROR(
            ErrorKind::WrongPassword, EACCES,
            file->change_password(sv("wrong"), sv("new"), std::chrono::milliseconds(1)));
        EXPECT_VSC_ERROR(
            ErrorKind::Invalid, EINVAL,
            file->change_password(view_of(kPassword), {}, std::chrono::milliseconds(1)));
    }
    EXPECT_EQ(read_all(path), before);
    {
        auto file = VscFile::open(path);
        file->change_password(view_of(kPassword), sv("new password"), std::chrono::milliseconds(1));
    }
    auto file = VscFile::open(path);
    EXPECT_VSC_ERROR(ErrorKind::WrongPassword, EACCES, file->unlock(view_of(kPassword)));
    VscKeys keys = file->unlock(sv("new password"));
    EXPECT_EQ(get(*file, Area::Private, keys, "secret.txt"), "private data");
}

// ---- validation on open --------------------------------------------------------------------

TEST_F(VscFileTest, RandomBytesAreRefused) {
    fs::create_directories(store());
    fs::path path = store() / "random.vsc";
    Bytes noise = crypto::random(8192);
    write_all(path, std::string(noise.begin(), noise.end()));
    expect_corrupt_open(path);
}

TEST_F(VscFileTest, EmptyFileIsRefused) {
    fs::create_directories(store());
    fs::path path = store() / "empty.vsc";
    write_all(path, "");
    expect_corrupt_open(path);
}

TEST_F(VscFileTest, DirectoryIsRefused) {
    fs::create_directories(store() / "dir.vsc");
    expect_corrupt_open(store() / "dir.vsc");
}

TEST_F(VscFileTest, TruncatedFileIsRefused) {
    fs::path path = populated("full");
    const std::string whole = read_all(path);
    ASSERT_GT(whole.size(), 3u * 4096);
    ASSERT_FALSE(fs::exists(path.string() + "-wal"));
    for (std::size_t cut : {whole.size() / 2, std::size_t{4096}}) {
        SCOPED_TRACE("cut at " + std::to_string(cut));
        fs::path cut_path = store() / ("cut" + std::to_string(cut) + ".vsc");
        write_all(cut_path, std::string_view(whole).substr(0, cut));
        expect_corrupt_open(cut_path);
    }
}

TEST_F(VscFileTest, ForeignSqliteDatabaseIsRefused) {
    fs::create_directories(store());
    fs::path path = store() / "foreign.vsc";
    {
        RawDb db(path);
        db.exec("CREATE TABLE t(x); INSERT INTO t VALUES(1);");
    }
    expect_corrupt_open(path, "not a vscard");
}

TEST_F(VscFileTest, ForeignDatabaseWithOurApplicationIdIsRefused) {
    fs::create_directories(store());
    fs::path path = store() / "impostor.vsc";
    {
        RawDb db(path);
        db.exec("PRAGMA application_id = 1448297265; CREATE TABLE t(x);");
    }
    expect_corrupt_open(path);
}

TEST_F(VscFileTest, NewerFormatIsRefusedWithUpgradeHint) {
    fs::path path = create("newer");
    RawDb(path).exec("UPDATE header SET value = 2 WHERE key = 'format'");
    expect_corrupt_open(path, "upgrade");
}

TEST_F(VscFileTest, UnknownFeatureIsRefused) {
    fs::path path = create("feature");
    RawDb(path).exec("UPDATE header SET value = 4 WHERE key = 'features'");
    expect_corrupt_open(path, "upgrade");
}

TEST_F(VscFileTest, MissingHeaderValueIsRefused) {
    fs::path path = create("nouid");
    RawDb(path).exec("DELETE FROM header WHERE key = 'uid'");
    expect_corrupt_open(path, "uid");
}

TEST_F(VscFileTest, FileOfAnotherUserIsRefused) {
    if (::geteuid() != 0) GTEST_SKIP() << "changing a file's owner needs root";
    fs::path path = create("theirs");
    ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
    try {
        VscFile::open(path);
        ADD_FAILURE() << "opened a file of another user";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Locked) << e.what();
        EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos);
    }
}

// ---- what the encryption binds -------------------------------------------------------------

TEST_F(VscFileTest, PrivateDataIsNotStoredInClear) {
    fs::path path = create("clear");
    {
        auto file = VscFile::open(path);
        VscKeys keys = file->unlock(view_of(kPassword));
        put(*file, Area::Private, keys, {{"hidden-name-7391", "hidden-data-5618"}});
        put(*file, Area::Public, keys, {{"visible-name-2846", "visible-data-9934"}});
    }
    const std::string raw = read_all(path);
    EXPECT_EQ(raw.find("hidden-name-7391"), std::string::npos);
    EXPECT_EQ(raw.find("hidden-data-5618"), std::string::npos);
    EXPECT_NE(raw.find("visible-name-2846"), std::string::npos);
    EXPECT_NE(raw.find("visible-data-9934"), std::string::npos);
}

TEST_F(VscFileTest, PrivateRowMovedToSecretAreaIsDetected) {
    fs::path path = populated("moved");
    std::uint64_t id;
    {
        auto file = VscFile::open(path);
        VscKeys keys = file->unlock(view_of(kPassword));
        id = row_named(*file->area(Area::Private, &keys), "a").id;
    }
    RawDb(path).exec("UPDATE nodes SET area = 3 WHERE id = " + std::to_string(id));
    auto file = VscFile::open(path);
    VscKeys keys = file->unlock(view_of(kPassword));
    EXPECT_VSC_ERROR(ErrorKind::Corrupt, EIO, file->area(Area::Secret, &keys)->load());
    EXPECT_VSC_ERROR(ErrorKind::Corrupt, EIO,
                     AreaFs(file->area(Area::Secret, &keys), Area::Secret));
    IntegrityReport report = file->check(&keys);
    EXPECT_FALSE(report.ok());
    bool mentions_secret = false;
    for (const auto& p : report.problems) mentions_secret |= p.rfind("secret", 0) == 0;
    EXPECT_TRUE(mentions_secret);
}

TEST_F(VscFileTest, SwappedMetadataIsDetected) {
    fs::path path = populated("swapmeta");
    std::uint64_t a, b;
    {
        auto file = VscFile::open(path);
        VscKeys keys = file->unlock(view_of(kPassword));
        auto store = file->area(Area::Private, &keys);
        a = row_named(*store, "a").id;
        b = row_named(*store, "b").id;
    }
    {
        RawDb db(path);
        const std::string ia = std::to_string(a), ib = std::to_string(b);
        const std::string meta_b = db.blob("SELECT meta FROM nodes WHERE id = " + ib);
        ASSERT_FALSE(meta_b.empty());
        db.exec("CREATE TEMP TABLE saved AS SELECT id, meta FROM nodes WHERE id IN (" + ia + "," +
                ib +
                ");"
                "UPDATE nodes SET meta = (SELECT meta FROM saved WHERE saved.id = " +
                ib + ") WHERE id = " + ia +
                ";"
                "UPDATE nodes SET meta = (SELECT meta FROM saved WHERE saved.id = " +
                ia + ") WHERE id = " + ib + ";");
        EXPECT_EQ(db.blob("SELECT meta FROM nodes WHERE id = " + ia), meta_b);
    }
    auto file = VscFile::open(path);
    VscKeys keys = file->unlock(view_of(kPassword));
    // Both rows are sealed under the same key and area: only the bound object id tells.
    EXPECT_VSC_ERROR(ErrorKind::Corrupt, EIO, file->area(Area::Private, &keys)->load());
    EXPECT_FALSE(file->check(&keys).ok());
    // The public area is untouched and still usable.
    EXPECT_EQ(get(*file, Area::Public, keys, "pub"), "public text");
}

TEST_F(VscFileTest, SwappedChunksAreDetected) {
    fs::path path = populated("swapchunks");
    std::uint64_t ca, cb;
    {
        auto file = VscFile::open(path);
        VscKeys keys = file->unlock(view_of(kPassword));
        auto store = file->area(Area::Private, &keys);
        ca = row_named(*store, "a").meta.content;
        cb = row_named(*store, "b").meta.content;
        ASSERT_TRUE(file->check(&keys).ok());
    }
    {
        RawDb db(path);
        const std::string a = std::to_string(ca), b = std::to_string(cb);
        db.exec(
            "CREATE TEMP TABLE saved AS SELECT id >> 20 AS content, data FROM chunks WHERE "
            "id & 1048575 = 0 AND id >> 20 IN (" +
            a + "," + b +
            ");"
            "UPDATE chunks SET data = (SELECT data FROM saved WHERE saved.content = " +
            b + ") WHERE id = " + a +
            " << 20;"
            "UPDATE chunks SET data = (SELECT data FROM saved WHERE saved.content = " +
            a + ") WHERE id = " + b + " << 20;");
    }
    auto file = VscFile::open(path);
    VscKeys keys = file->unlock(view_of(kPassword));
    auto store = file->area(Area::Private, &keys);
    WipedBytes out;
    EXPECT_VSC_ERROR(ErrorKind::Corrupt, EIO, store->read_chunk(ca, 0, out));
    EXPECT_VSC_ERROR(ErrorKind::Corrupt, EIO, store->read_chunk(cb, 0, out));
    EXPECT_TRUE(store->read_chunk(ca, 1, out));  // untouched chunks still read
    EXPECT_EQ(out.size(), 100u);
    // Through the filesystem the damage is an I/O error, not wrong data.
    AreaFs fs(store, Area::Private);
    auto h = fs.open({"a"}, false, false);
    char buf[16];
    EXPECT_VSC_ERROR(ErrorKind::Corrupt, EIO, fs.read(*h, 0, sizeof buf, buf));
    fs.release(*h);
    IntegrityReport report = file->check(&keys);
    EXPECT_FALSE(report.ok());
    ASSERT_FALSE(report.problems.empty());
    EXPECT_NE(report.problems[0].find("private"), std::string::npos) << report.problems[0];
}

// Cards of one family share the secret area's key, so only the bound uid tells their rows
// apart.
TEST_F(VscFileTest, SecretRowCopiedBetweenCardsOfOneFamilyIsDetected) {
    VscFile::CreateOptions options;
    options.kdf = fast_kdf();
    options.family_key = crypto::random_key();
    fs::path from = VscFile::create(store(), "from", sv(kPassword), options);
    fs::path to = VscFile::create(store(), "to", sv(kPassword), options);
    std::uint64_t id, content;
    {
        auto file = VscFile::open(from);
        VscKeys keys = file->unlock(sv(kPassword));
        auto secret = file->area(Area::Secret, &keys);
        id = secret->allocate_id();
        content = secret->allocate_id();
        AreaChange change;
        NodeRow row;
        row.id = id;
        row.meta.parent = 3;  // the secret root
        row.meta.name = "key";
        row.meta.content = content;
        row.meta.size = 5;
        change.upserts.push_back(row);
        change.chunks.push_back({content, 0, wiped_from("bytes")});
        secret->apply(change);
    }
    {
        RawDb db(to);
        db.exec("ATTACH DATABASE '" + from.string() +
                "' AS src;"
                "INSERT INTO nodes SELECT * FROM src.nodes WHERE id = " +
                std::to_string(id) +
                ";"
                "INSERT INTO chunks SELECT * FROM src.chunks WHERE id >> 20 = " +
                std::to_string(content) + ";");
    }
    auto file = VscFile::open(to);
    VscKeys keys = file->unlock(sv(kPassword));
    auto secret = file->area(Area::Secret, &keys);
    EXPECT_VSC_ERROR(ErrorKind::Corrupt, EIO, secret->load());
    WipedBytes out;
    EXPECT_VSC_ERROR(ErrorKind::Corrupt, EIO, secret->read_chunk(content, 0, out));
    EXPECT_FALSE(file->check(&keys).ok());
    // The original still reads.
    auto original = VscFile::open(from);
    VscKeys original_keys = original->unlock(sv(kPassword));
    EXPECT_EQ(original->area(Area::Secret, &original_keys)->load().size(), 2u);
    ASSERT_TRUE(original->area(Area::Secret, &original_keys)->read_chunk(content, 0, out));
    EXPECT_EQ(std::string(out.begin(), out.end()), "bytes");
}

// ---- background checkpoint -----------------------------------------------------------------

// What is written reaches the main file in the background once the file is quiet. Reads
// postpone it, so that it does not compete with a reader for the disk.
TEST_F(VscFileTest, CheckpointWaitsUntilReadsPause) {
    using namespace std::chrono_literals;
    fs::path path = create("quiet");
    auto file = VscFile::open(path);
    VscKeys keys = file->unlock(view_of(kPassword));
    put(*file, Area::Public, keys, {{"x", pattern(3 * kVscChunkSize, 7)}});
    ASSERT_TRUE(checkpoints_reached(*file, 1)) << "no checkpoint after a write";
    auto store = file->area(Area::Public, nullptr);
    const std::uint64_t content = row_named(*store, "x").meta.content;

    put(*file, Area::Public, keys, {{"y", pattern(kVscChunkSize, 8)}});
    // Reads, one every millisecond, for 1.5 s: far longer than the 300 ms quiet time.
    WipedBytes out;
    for (auto end = std::chrono::steady_clock::now() + 1500ms;
         std::chrono::steady_clock::now() < end;) {
        ASSERT_TRUE(store->read_chunk(content, 0, out));
        std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(file->checkpoints(), 1u) << "a checkpoint ran while the file was being read";
    EXPECT_TRUE(checkpoints_reached(*file, 2)) << "no checkpoint once reads paused";
}

// Pages of deleted objects go back to the filesystem once the file is idle: the file shrinks,
// and later writes do not allocate from a long free list.
TEST_F(VscFileTest, FreedPagesAreReleasedWhenIdle) {
    fs::path path = create("shrinks");
    auto file = VscFile::open(path);
    VscKeys keys = file->unlock(view_of(kPassword));
    const std::string big = pattern(160 * kVscChunkSize, 9);  // 10 MiB
    put(*file, Area::Private, keys, {{"big", big}, {"small", "stays"}});
    ASSERT_TRUE(checkpoints_reached(*file, 1));
    const auto full_size = fs::file_size(path);
    ASSERT_GT(full_size, big.size());
    {
        AreaFs area(file->area(Area::Private, &keys), Area::Private);
        area.unlink({"big"});
    }
    ASSERT_TRUE(checkpoints_reached(*file, 2));
    EXPECT_LT(fs::file_size(path), full_size - big.size() * 9 / 10);
    {
        auto db = file->connection();
        auto st = db->prepare("PRAGMA freelist_count");
        ASSERT_TRUE(st.step());
        EXPECT_LT(st.integer(0), 256);
    }
    EXPECT_EQ(get(*file, Area::Private, keys, "small"), "stays");
    EXPECT_TRUE(file->check(&keys).ok());
}

// ---- integrity check -----------------------------------------------------------------------

TEST_F(VscFileTest, CheckOfHealthyFile) {
    fs::path path = populated("healthy");
    auto file = VscFile::open(path);
    VscKeys keys = file->unlock(view_of(kPassword));
    IntegrityReport full = file->check(&keys);
    EXPECT_TRUE(full.ok()) << (full.problems.empty() ? "" : full.problems[0]);
    EXPECT_EQ(full.nodes_checked, 6u);  // three roots, a, b, pub
    EXPECT_EQ(full.chunks_checked, 5u);
    IntegrityReport public_only = file->check(nullptr);
    EXPECT_TRUE(public_only.ok());
    EXPECT_EQ(public_only.nodes_checked, 2u);
}

TEST_F(VscFileTest, CheckReportsLostFolder) {
    fs::path path = create("lost");
    {
        auto file = VscFile::open(path);
        VscKeys keys = file->unlock(view_of(kPassword));
        AreaFs fs(file->area(Area::Public, &keys), Area::Public);
        fs.mkdir({"dir"}, 0755);
        auto h = fs.create({"dir", "f"}, 0644, true);
        fs.write(*h, 0, "x", 1);
        fs.release(*h);
    }
    std::uint64_t dir_id;
    {
        auto file = VscFile::open(path);
        dir_id = row_named(*file->area(Area::Public, nullptr), "dir").id;
    }
    RawDb(path).exec("DELETE FROM nodes WHERE id = " + std::to_string(dir_id));
    auto file = VscFile::open(path);
    IntegrityReport report = file->check(nullptr);
    ASSERT_FALSE(report.ok());
    EXPECT_NE(report.problems[0].find("no parent folder"), std::string::npos) << report.problems[0];
    EXPECT_VSC_ERROR(ErrorKind::Corrupt, EIO,
                     AreaFs(file->area(Area::Public, nullptr), Area::Public));
}

}  // namespace
}  // namespace vscard
