#pragma once
// Where things live by default (DESIGN §3, §4, §7): one rule, shared by every binary.
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace vscard {

// --store DIR, else $VSCARD_STORE, else $XDG_DATA_HOME/vscard, else ~/.local/share/vscard.
std::filesystem::path store_dir(const std::optional<std::string>& option);

// --agent PATH, else $VSCARD_AGENT, else $XDG_RUNTIME_DIR/vscard/agent.sock
// (falls back to /run/user/UID when XDG_RUNTIME_DIR is unset).
std::filesystem::path agent_socket(const std::optional<std::string>& option);

// Where the cards are mounted, for commands that work through the mount:
// --mount DIR, else $VSCARD_MOUNT, else ~/Cards (vscard-mountd's default).
std::filesystem::path mount_dir(const std::optional<std::string>& option);

// "90", "90s", "15m", "2h", "1d", "250ms". Throws Error(Usage) with the accepted forms.
std::chrono::milliseconds parse_duration_ms(const std::string& text);
std::chrono::seconds parse_duration(const std::string& text);  // whole seconds

// Makes DIR (and parents) with mode 0700 if missing; refuses a DIR owned by another user or
// open to group/others, so secrets never land where others can read them.
void ensure_private_dir(const std::filesystem::path& dir);

}  // namespace vscard
