#pragma once
// The agent's log: one line per event on stderr (journald adds the timestamps under systemd).
// Never pass a secret here: only targets, uids, pids and error texts.
#include <string>

namespace vscard::agent {

void log(const std::string& line);

}  // namespace vscard::agent
