// Secrets stay secret: after a VSC was used through the mount and the agent, with every log
// on, neither the password nor private plaintext nor secret key material shows up anywhere
// an attacker might look (store file, logs, /proc, a core dump); and a card's PIN never
// appears in the APDU log.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "card/apdu.hpp"
#include "pcsc_rig.hpp"
#include "rig.hpp"

namespace vscard::test {
namespace {

namespace fs = std::filesystem;

struct Secret {
    std::string what;
    std::string bytes;
};

// The forms a secret could leak in: as is, and as hex the way logs print bytes.
std::vector<Secret> forms(const std::string& what, const std::string& bytes) {
    const ByteView v(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    std::string lower = card::to_hex(v, "");
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    return {{what, bytes}, {what + " (hex)", card::to_hex(v)}, {what + " (hex)", lower}};
}

// Fails the test for every secret found in FILE (a file that is missing is fine).
void expect_clean(const fs::path& file, const std::vector<Secret>& secrets) {
    if (!fs::exists(file)) return;
    const std::string content = read_text(file);
    for (const auto& s : secrets)
        EXPECT_EQ(content.find(s.bytes), std::string::npos) << s.what << " found in " << file;
}

// Where the kernel would write a core of a process running in CWD, when core_pattern names a
// file (a pipe to a handler shows only in the wait status, which is checked too).
std::vector<fs::path> core_files(const fs::path& cwd) {
    std::string pattern = read_text("/proc/sys/kernel/core_pattern");
    pattern = pattern.substr(0, pattern.find('\n'));
    std::vector<fs::path> out;
    if (pattern.empty() || pattern[0] == '|') return out;
    fs::path p = pattern;
    const fs::path dir = p.is_absolute() ? p.parent_path() : cwd / p.parent_path();
    const std::string prefix = p.filename().string().substr(0, p.filename().string().find('%'));
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
    return out;
}

// Sends SIGQUIT (whose default action dumps core) and checks that no core came out, or at
// least none holding a secret.
void expect_no_core(Process& p, const std::string& name, const std::vector<Secret>& secrets) {
    const fs::path cwd = fs::read_symlink("/proc/" + std::to_string(p.pid()) + "/cwd");
    const auto before = core_files(cwd);
    p.kill(SIGQUIT);
    ASSERT_TRUE(p.wait(20s)) << name << " survived SIGQUIT";
    EXPECT_EQ(p.term_signal(), SIGQUIT) << name;
    EXPECT_FALSE(p.core_dumped()) << name << " dumped core";
    for (const auto& core : core_files(cwd)) {
        if (std::find(before.begin(), before.end(), core) != before.end()) continue;
        ADD_FAILURE() << name << " left a core file: " << core;
        expect_clean(core, secrets);
        fs::remove(core);
    }
}

TEST(Secrets, NothingLeaksFromAnUnlockedVscInUse) {
    const std::string password = "pw-Quokka-7f3a91e2";
    const std::string private_text = "PRIVATE-PLAINTEXT-MARKER-4c1d8e";
    const std::string private_name = "hidden-name-Zq81";
    Rig rig;
    rig.create_vsc("s", password);
    const fs::path m = rig.mount({}, "mnt", {"--debug"});
    rig.unlock("s", password);

    // A private file, a P-256 key imported into secret/ and read back as an envelope.
    auto r = rig.sh("PRIVATE='" + private_text + "' NAME='" + private_name + "'\n" + R"SH(
printf '%s\n' "$PRIVATE" > "$M/vsc/s/private/$NAME.txt"
mkdir "$M/vsc/s/private/dir" && printf '%s' "$PRIVATE" > "$M/vsc/s/private/dir/two"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/key.pem" 2>/dev/null
openssl pkey -in "$T/key.pem" -outform DER -out "$T/key.der"
openssl pkey -in "$T/key.pem" -text -noout | sed -n '/^priv:/,/^pub:/p' | sed '1d;$d' |
    tr -d ' :\n' > "$T/scalar.hex"
cp "$T/key.pem" "$M/vsc/s/secret/signing"
cat "$M/vsc/s/private/$NAME.txt" "$M/vsc/s/private/dir/two" "$M/vsc/s/secret/signing" > /dev/null
sync
)SH",
                    m);
    ASSERT_EQ(r.exit_code, 0) << r.err;

    std::vector<Secret> secrets;
    for (auto& f : forms("the password", password)) secrets.push_back(f);
    for (auto& f : forms("private plaintext", private_text)) secrets.push_back(f);
    const std::string pem = read_text(rig.dir() / "key.pem");
    // Every base64 line of the PEM body, and the key's private scalar (raw and hex).
    for (std::size_t at = pem.find('\n') + 1, end; (end = pem.find('\n', at)) != std::string::npos;
         at = end + 1) {
        const std::string line = pem.substr(at, end - at);
        if (line.size() >= 32 && line.find("-----") == std::string::npos)
            secrets.push_back({"a line of the private key PEM", line});
    }
    const Bytes scalar = card::from_hex(read_text(rig.dir() / "scalar.hex"));
    ASSERT_EQ(scalar.size(), 32u) << "could not read the key's private scalar";
    for (auto& f : forms("the private key scalar", std::string(scalar.begin(), scalar.end())))
        secrets.push_back(f);
    secrets.push_back({"the private key DER", read_text(rig.dir() / "key.der")});

    // The store, encrypted at rest: also the names of private files.
    const fs::path vsc = rig.store() / "s.vsc";
    ASSERT_TRUE(fs::exists(vsc));
    std::vector<Secret> at_rest = secrets;
    at_rest.push_back({"a private file name", private_name});
    for (const char* suffix : {"", "-wal", "-shm"}) expect_clean(vsc.string() + suffix, at_rest);

    // Logs: the mount logs every FUSE request (--debug); the agent logs what it does.
    const std::string mount_log = read_text(rig.log("mnt"));
    EXPECT_NE(mount_log.find("private"), std::string::npos) << "the mount's debug log is empty";
    expect_clean(rig.log("mnt"), secrets);
    expect_clean(rig.log("agent"), secrets);

    // What other processes of the user can read about the daemons.
    for (Process* p : {&rig.agent(), &rig.daemon(m)}) {
        for (const char* file : {"environ", "cmdline"})
            expect_clean(fs::path("/proc") / std::to_string(p->pid()) / file, secrets);
    }

    expect_no_core(rig.daemon(m), "vscard-mountd", secrets);
    expect_no_core(rig.agent(), "vscard-agent", secrets);
}

TEST(Secrets, PinNeverInTheApduLog) {
    if (auto why = pcsc_rig_unavailable()) GTEST_SKIP() << *why;
    const std::string pin = "739258";
    const std::string wrong_pin = "864213";
    PcscRig rig;
    rig.start_card(0, rig.dir() / "card.img", {"--verbose"});
    ProcessOptions o;
    o.stdin_data = pin + "\n";
    auto format = run("vscardctl", {"format", "0", "--label", "Pin test", "--pin-stdin"},
                      rig.client_options(o));
    ASSERT_EQ(format.exit_code, 0) << format.err;
    // VERIFY through a third-party client, right and wrong, then a status read.
    auto wrong =
        rig.run_in_rig("pkcs15-tool", {"--reader", "0", "--verify-pin", "--pin", wrong_pin});
    EXPECT_NE(wrong.exit_code, 0) << wrong.out << wrong.err;
    auto right = rig.run_in_rig("pkcs15-tool", {"--reader", "0", "--verify-pin", "--pin", pin});
    EXPECT_EQ(right.exit_code, 0) << right.out << right.err;
    auto readers = run("vscardctl", {"readers"}, rig.client_options());
    EXPECT_EQ(readers.exit_code, 0) << readers.err;
    rig.stop_card(0);

    const std::string log = read_text(rig.card_log(0));
    EXPECT_NE(log.find("apdu #"), std::string::npos) << "the emulator logged no APDU";
    EXPECT_NE(log.find("[PIN data withheld]"), std::string::npos) << log;
    std::vector<Secret> secrets;
    for (auto& f : forms("the PIN", pin)) secrets.push_back(f);
    for (auto& f : forms("the wrong PIN", wrong_pin)) secrets.push_back(f);
    expect_clean(rig.card_log(0), secrets);
    expect_clean(rig.dir() / "pcscd.log", secrets);
}

}  // namespace
}  // namespace vscard::test
