#pragma once
// Crash checks shared by the single-kill test and the stress loops: a tree kept in two known
// versions, a SIGKILL of the mount's daemon while rsync writes, a remount with `vscardctl
// check`, and the check that every file holds one of its known contents (never a torn one).
#include <chrono>
#include <filesystem>
#include <string>

#include "rig.hpp"

namespace vscard::test {

// Makes $T/NAME/v1 and $T/NAME/v2 (only v1 if VERSIONS is 1): the same FILES file names in 20
// folders, with other content (and sizes) in each version. HUGE_BYTES > 0 adds d1/huge, so a kill
// lands mid-transfer.
void make_versioned_tree(Rig& rig, const std::string& name, int files = 1000, long huge_bytes = 0,
                         int versions = 2);

// Starts `rsync -a SRC/ DST/` (with the rig's environment), SIGKILLs the daemon of MOUNTPOINT
// after DELAY and waits for rsync to give up. Returns whether rsync was still at work then.
bool kill_daemon_during_rsync(Rig& rig, const std::filesystem::path& mountpoint,
                              const std::filesystem::path& src, const std::filesystem::path& dst,
                              std::chrono::milliseconds delay);

// Unmounts what a killed daemon left, mounts the rig's store again (returning the new mount
// point) and expects `vscardctl check vsc/VSC` to pass.
std::filesystem::path remount_and_check(Rig& rig, const std::filesystem::path& mountpoint,
                                        const std::string& vsc, const std::string& password);

// Shell code for rig.sh(): `old_or_new DIR V1 [V2 [missing-ok]]` fails, naming the file, unless
// every visible file in DIR equals the file of the same name in V1 or V2, and (unless
// missing-ok) every file of V1 exists in DIR (a missing DIR holds no files: a kill may come
// before rsync made it). rsync's hidden temporaries are ignored.
extern const char* const kOldOrNew;

}  // namespace vscard::test
