#pragma once
// Mirroring and comparing two folder trees (DESIGN §6): what `vscardctl backup`, `restore`
// and `verify` do with each area of a card or VSC. It works on any two folders (the areas of
// a mount, or plain directories) through ordinary file operations.
//
// mirror() makes a target folder hold what a source folder holds, like `rsync -a --delete`:
// files new or changed on the source are copied, files gone from the source are deleted at
// the target, modes and modification times are set where the target keeps them (extended
// attributes are not copied). A file whose size and mtime match is unchanged; one whose size
// matches but mtime does not is compared by content (a card forgets mtimes when it is pulled
// out). Each file is written to a temporary name in its target folder and renamed over the
// old one, so a failure never leaves a half-written file: the old content stays.
#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace vscard::backup {

// One entry of a scanned tree (symbolic links are not followed).
struct Node {
    enum class Kind { File, Folder, Other };
    std::string name;
    Kind kind = Kind::Folder;
    mode_t mode = 0;
    std::uint64_t size = 0;
    timespec mtime{};
    std::vector<Node> children;  // folders: sorted by name
    std::string error;           // a folder that could not be listed: why (children empty)

    // This entry and everything below it; file bytes in it and below.
    std::uint64_t objects() const;
    std::uint64_t bytes() const;
    const Node* child(const std::string& name) const;
};

// Scans the folder ROOT. Throws Error (its kind from errno: Locked for EACCES, NotSupported
// for ENOTSUP, ...) when ROOT itself cannot be listed; a folder below it that cannot be
// listed is kept with its error.
Node scan(const std::filesystem::path& root);

// Objects (files and folders, not counting the roots) and bytes done so far out of the
// totals, with the object being worked on; ON_CHANGE is called after each object.
struct Progress {
    std::uint64_t objects_total = 0, objects_done = 0;
    std::uint64_t bytes_total = 0, bytes_done = 0;
    std::string current;
    std::function<void(const Progress&)> on_change;

    // Adds what lies below ROOT to the totals.
    void add_to_totals(const Node& root);
};

struct Failure {
    std::string path;  // relative, with the prefix given to mirror()
    std::string error;
};

// Objects (files and folders) of one mirror run.
struct Summary {
    std::uint64_t copied = 0;   // created or rewritten at the target
    std::uint64_t skipped = 0;  // already the same
    std::uint64_t deleted = 0;  // removed from the target
    std::vector<Failure> failures;

    Summary& operator+=(const Summary& other);
};

// Makes TARGET_PATH (scanned as TARGET) hold what SOURCE_PATH (scanned as SOURCE) holds.
// Failures of single objects are collected, never thrown; a folder of the source that could
// not be listed leaves its counterpart at the target untouched. PREFIX goes before the
// relative paths of failures and progress (e.g. "public/").
Summary mirror(const Node& source, const std::filesystem::path& source_path, const Node& target,
               const std::filesystem::path& target_path, Progress& progress,
               const std::string& prefix = "");

struct Difference {
    enum class Kind { OnlyInA, OnlyInB, Differs, Unreadable };
    std::string path;  // relative, with the prefix given to compare()
    Kind kind;
    std::string detail;  // Differs, Unreadable: what
};

// The differences between the trees A and B (scanned from A_PATH and B_PATH): structure,
// kinds and file contents; modes and times are not compared. Writes nothing.
std::vector<Difference> compare(const Node& a, const std::filesystem::path& a_path, const Node& b,
                                const std::filesystem::path& b_path, Progress& progress,
                                const std::string& prefix = "");

}  // namespace vscard::backup
