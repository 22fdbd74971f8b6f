#include "crash.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

namespace vscard::test {

void make_versioned_tree(Rig& rig, const std::string& name, int files, long huge_bytes,
                         int versions) {
    std::mt19937_64 rng(42);
    auto write = [&](const std::filesystem::path& path, std::size_t size) {
        std::string data(size, '\0');
        for (auto& c : data) c = static_cast<char>(rng());
        std::ofstream(path, std::ios::binary).write(data.data(), static_cast<long>(data.size()));
    };
    for (int version = 1; version <= versions; ++version) {
        auto root = rig.dir() / name / ("v" + std::to_string(version));
        for (int i = 0; i < files; ++i) {
            auto dir = root / ("d" + std::to_string(i % 20 + 1));
            std::filesystem::create_directories(dir);
            int f = i / 20 + 1;
            // v2 changes every file, and the size of most.
            std::size_t size = version == 1 ? (f % 7) * 9000 + 100 : (f % 5) * 11000 + 37;
            write(dir / ("f" + std::to_string(f)), size);
        }
        if (huge_bytes > 0) write(root / "d1" / "huge", static_cast<std::size_t>(huge_bytes));
    }
}

bool kill_daemon_during_rsync(Rig& rig, const std::filesystem::path& mountpoint,
                              const std::filesystem::path& src, const std::filesystem::path& dst,
                              std::chrono::milliseconds delay) {
    Process rsync("rsync", {"-a", src.string() + "/", dst.string() + "/"}, rig.options());
    std::this_thread::sleep_for(delay);
    bool busy = rsync.running();
    rig.daemon(mountpoint).kill(9);
    if (!rsync.wait(30s)) rsync.kill(9);
    return busy;
}

std::filesystem::path remount_and_check(Rig& rig, const std::filesystem::path& mountpoint,
                                        const std::string& vsc, const std::string& password) {
    rig.unmount(mountpoint);
    auto mnt = rig.mount();
    auto check = rig.ctl({"check", "vsc/" + vsc, "--password-stdin"}, password + "\n");
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
    return mnt;
}

const char* const kOldOrNew = R"SH(
old_or_new() {
  local dir=$1 v1=$2 v2=${3:-$2} missing=${4:-}
  sums() { [ ! -d "$1" ] || (cd "$1" && find . -type f ! -name '.*' -print0 | xargs -0 -r md5sum); }
  sums "$v1" > "$T/.sums1"; sums "$v2" > "$T/.sums2"; sums "$dir" > "$T/.sumsd"
  awk -v missing="$missing" '
    FILENAME == ARGV[1] || FILENAME == ARGV[2] { ok[$2 " " $1] = 1; want[$2] = 1; next }
    { seen[$2] = 1; if (!ok[$2 " " $1]) { print "torn or unknown content: " $2; bad = 1 } }
    END { if (missing == "") for (f in want) if (!seen[f]) { print "lost: " f; bad = 1 }
          exit bad }' "$T/.sums1" "$T/.sums2" "$T/.sumsd" >&2
}
)SH";

}  // namespace vscard::test
