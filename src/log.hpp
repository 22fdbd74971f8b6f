#pragma once
// One log for every program: a line per event on standard error, where journald (under
// systemd) or the terminal picks it up; syslog once a daemon has detached from its terminal.
// Never pass a secret here: only names, paths, uids and error texts.
#include <string>

namespace vscard {

// PROGRAM prefixes every line ("vscard-mountd: ..."); USE_SYSLOG sends lines to syslog.
void init_log(const char* program, bool use_syslog = false);
void log_line(const std::string& line);

}  // namespace vscard
