// Third-party stress tools on a mounted VSC: fio with crc32c verification and stress-ng's file
// stressors. Zero mismatches, the daemon alive afterwards and `vscardctl check` passing.
#include <gtest/gtest.h>

#include "rig.hpp"
#include "stress_env.hpp"

namespace vscard::test {
namespace {

class ToolsTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        rig.create_vsc("tools", "pw-tools");
        mnt = rig.mount();
        rig.unlock("tools", "pw-tools");
        area = "$M/vsc/tools/" + GetParam();
    }
    void TearDown() override {
        EXPECT_TRUE(rig.daemon(mnt).running()) << read_text(rig.log("mnt"));
        auto check = rig.ctl({"check", "vsc/tools", "--password-stdin"}, "pw-tools\n");
        EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
    }
    void expect_ok(const RunResult& r) {
        EXPECT_EQ(r.exit_code, 0) << "stdout:\n"
                                  << r.out << "stderr:\n"
                                  << r.err << "mount log:\n"
                                  << read_text(rig.log("mnt"));
        std::cout << r.out;
    }
    Rig rig;
    std::filesystem::path mnt;
    std::string area;
};

// Several jobs at once: sequential and random, small and large blocks, each verifying what
// it wrote with crc32c (verify_fatal: the first bad block fails the run). The size of each
// file is VSCARD_FIO_MB MiB (default 24).
TEST_P(ToolsTest, FioVerifiesEveryBlock) {
    std::string mb = std::to_string(env_number("VSCARD_FIO_MB", 24));
    expect_ok(rig.sh("A=" + area + " MB=" + mb + R"SH(
mkdir "$A/fio"
cat > "$T/verify.fio" <<EOF
[global]
directory=$A/fio
ioengine=psync
size=${MB}m
verify=crc32c
verify_fatal=1
verify_dump=0
do_verify=1
fallocate=none
group_reporting=0
[seq-large]
rw=write
bs=1m
[seq-small]
rw=write
bs=4k
[rand-small]
rw=randwrite
bs=4k
[rand-large]
rw=randwrite
bs=128k
[rand-odd]
rw=randwrite
bs=12k
verify=crc32c-intel
fsync=16
[mixed]
rw=randrw
bs=16k
verify=crc32c
verify_backlog=32
EOF
fio --output-format=terse --terse-version=3 "$T/verify.fio" > "$T/fio.out"
# every job ended without error (terse field 5) and read its data back (field 6: KiB read)
awk -F';' '{ if ($5 != 0 || $6 <= 0) { print "job " $3 ": error " $5 ", read " $6; bad = 1 } }
           END { exit bad }' "$T/fio.out"
[ "$(wc -l < "$T/fio.out")" = 6 ]
echo "fio: 6 jobs of ${MB} MiB each verified"
)SH",
                     mnt));
}

// stress-ng's file stressors, VSCARD_STRESSNG_SECONDS each (default 8), two instances each,
// all at once: --hdd with --verify, --dentry, --rename and --dir.
TEST_P(ToolsTest, StressNgFileStressors) {
    std::string secs = std::to_string(env_number("VSCARD_STRESSNG_SECONDS", 8));
    expect_ok(rig.sh("A=" + area + " SECS=" + secs + R"SH(
mkdir "$A/stress-ng"
stress-ng --temp-path "$A/stress-ng" --timeout "${SECS}s" --verify --metrics-brief \
  --hdd 2 --hdd-bytes 16m --hdd-write-size 64k --hdd-opts wr-rnd,rd-rnd \
  --dentry 2 --dentries 256 --rename 2 --dir 2 --dir-dirs 256 --log-file "$T/stress-ng.log" \
  >/dev/null 2>&1 || { tail -40 "$T/stress-ng.log"; exit 1; }
if grep -iE "fail|error|mismatch|untrustworthy" "$T/stress-ng.log"; then exit 1; fi
for s in hdd dentry rename dir; do   # every stressor did work
  awk -v s=$s '$2 == "metrc:" && $4 == s && $5 > 0 { ok = 1 } END { exit !ok }' "$T/stress-ng.log"
done
grep -o "stress-ng: info: .*successful run completed.*" "$T/stress-ng.log"
# nothing is left behind but an empty folder
[ -z "$(ls -A "$A/stress-ng")" ]
)SH",
                     mnt));
}

INSTANTIATE_TEST_SUITE_P(Areas, ToolsTest, ::testing::Values("public", "private"));

}  // namespace
}  // namespace vscard::test
