#include "store/sqlite.hpp"

#include "error.hpp"
#include "store/wal_vfs.hpp"

namespace vscard::sql {

Statement::Statement(Connection& db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

Statement::~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

Statement& Statement::bind(int index, std::int64_t value) {
    int rc = sqlite3_bind_int64(stmt_, index, value);
    if (rc != SQLITE_OK) db_.fail(rc, "bind");
    return *this;
}

Statement& Statement::bind(int index, ByteView blob) {
    // SQLITE_STATIC: the caller keeps the buffer alive until the statement has run.
    int rc = sqlite3_bind_blob64(stmt_, index, blob.empty() ? "" : (const void*)blob.data(),
                                 blob.size(), SQLITE_STATIC);
    if (rc != SQLITE_OK) db_.fail(rc, "bind");
    return *this;
}

Statement& Statement::bind(int index, const std::string& text) {
    int rc =
        sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
    if (rc != SQLITE_OK) db_.fail(rc, "bind");
    return *this;
}

bool Statement::step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_.fail(rc, "query");
}

std::int64_t Statement::integer(int column) {
    return sqlite3_column_int64(stmt_, column);
}

ByteView Statement::blob(int column) {
    const void* p = sqlite3_column_blob(stmt_, column);
    int n = sqlite3_column_bytes(stmt_, column);
    return {static_cast<const std::uint8_t*>(p), static_cast<std::size_t>(n)};
}

std::string Statement::text(int column) {
    const unsigned char* p = sqlite3_column_text(stmt_, column);
    int n = sqlite3_column_bytes(stmt_, column);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)) : "";
}

Connection::Connection(const std::filesystem::path& path, bool create) : path_(path) {
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, batching_vfs_name());
    if (rc != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw Error(rc == SQLITE_CANTOPEN ? ErrorKind::NotFound : ErrorKind::Io,
                    "cannot open " + path.string() + ": " + msg);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 10000);
}

Connection::~Connection() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
}

void Connection::exec(const char* sql) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail(rc, "query");
}

Statement Connection::prepare(const char* sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
        sqlite3_stmt* stmt = nullptr;
        int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
        if (rc != SQLITE_OK) fail(rc, "prepare");
        it = cache_.emplace(sql, stmt).first;
    }
    return Statement(*this, it->second);
}

void Connection::fail(int rc, const std::string& what) {
    const std::string file = path_.string();
    std::string detail = sqlite3_errmsg(db_);
    switch (rc & 0xff) {
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
            throw Error(ErrorKind::Corrupt, file + " is damaged or not a vscard file (" + detail +
                                                "); restore it from a backup, or remove it");
        case SQLITE_FULL:
            throw Error(ErrorKind::NoSpace, file + ": the disk is full; free some space");
        case SQLITE_READONLY:
        case SQLITE_PERM:
            throw Error(ErrorKind::ReadOnly, file + " is read-only (" + detail + ")");
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            throw Error(ErrorKind::Io, file + " is busy in another process (" + detail + ")");
        case SQLITE_CONSTRAINT:
            throw Error(ErrorKind::Corrupt, file + ": inconsistent content (" + detail + ")");
        default:
            throw Error(ErrorKind::Io, file + ": " + what + " failed (" + detail + ")");
    }
}

Transaction::Transaction(Connection& db) : db_(db) {
    db_.exec("BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
    if (!done_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
    db_.exec("COMMIT");
    done_ = true;
}

}  // namespace vscard::sql
