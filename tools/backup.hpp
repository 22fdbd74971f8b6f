#pragma once
// vscardctl backup, restore and verify (DESIGN §6): the areas of a card and of a VSC mirrored
// (like `rsync -a --delete`) or compared through the mount, with a progress bar on a terminal
// and a summary at the end. The work itself is src/backup/mirror.hpp.
#include <CLI/CLI.hpp>
#include <optional>
#include <string>

namespace vscard::tools {

class BackupCommands {
public:
    // Adds the subcommands backup, restore and verify to APP.
    explicit BackupCommands(CLI::App& app);
    BackupCommands(const BackupCommands&) = delete;
    BackupCommands& operator=(const BackupCommands&) = delete;

    // Whether the command line chose one of them.
    bool selected() const;
    // Runs the chosen one: its exit status, or throws Error (after printing what was done).
    int run() const;

private:
    CLI::App* backup_;
    CLI::App* restore_;
    CLI::App* verify_;
    std::string first_, second_;
    std::optional<std::string> mount_;
    bool quiet_ = false;
};

}  // namespace vscard::tools
