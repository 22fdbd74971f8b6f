#pragma once
// An SQLite VFS that gathers the many small appends SQLite makes to a WAL file into few large
// writes (see wal_vfs.cpp). Everything else is the default VFS.

namespace vscard::sql {

// Registers the VFS (once) and returns its name for sqlite3_open_v2().
const char* batching_vfs_name();

}  // namespace vscard::sql
