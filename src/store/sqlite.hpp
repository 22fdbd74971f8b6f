#pragma once
// Thin RAII over the SQLite C API: a connection with cached statements, and typed errors
// that name the file. SQLite gives the VSC file atomic, crash-safe transactions (WAL).
#include <sqlite3.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "secure_bytes.hpp"

namespace vscard::sql {

class Connection;

class Statement {
public:
    Statement(Connection& db, sqlite3_stmt* stmt);
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int index, std::int64_t value);
    Statement& bind(int index, ByteView blob);
    Statement& bind(int index, const std::string& text);
    bool step();  // true while a row is available
    void run() {
        while (step()) {
        }
    }
    std::int64_t integer(int column);
    ByteView blob(int column);
    std::string text(int column);

private:
    Connection& db_;
    sqlite3_stmt* stmt_;
};

class Connection {
public:
    Connection(const std::filesystem::path& path, bool create);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    void exec(const char* sql);
    // Statements are prepared once per connection and reset on every use.
    Statement prepare(const char* sql);
    [[noreturn]] void fail(int rc, const std::string& what);
    sqlite3* handle() { return db_; }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
    sqlite3* db_ = nullptr;
    std::unordered_map<const char*, sqlite3_stmt*> cache_;
};

// A transaction that rolls back unless committed.
class Transaction {
public:
    explicit Transaction(Connection& db);
    ~Transaction();
    void commit();

private:
    Connection& db_;
    bool done_ = false;
};

}  // namespace vscard::sql
