// vscard-fsx: a seeded random sequence of file operations run on a directory (a mounted area)
// and mirrored on a reference directory (e.g. on tmpfs). After every step both trees are
// compared: listing, kinds, sizes, modes, fixed mtimes and content, also of files held open
// (several at once, including files renamed over or unlinked while open). Results and errno
// values of every operation must match too. On a mismatch the seed and the step are printed,
// so `--seed S --ops STEP` replays the run up to the failure.
//
// A test tool: built with the tests, never installed.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Options {
    std::uint64_t seed = 1;
    std::uint64_t ops = 1000;
    fs::path dir;
    fs::path ref;
    std::size_t max_open = 4;
    std::uint64_t max_size = 256 * 1024;
    std::uint64_t full_every = 25;  // content of untouched files: every N steps
    bool fuse_hidden = false;
    bool verbose = false;
};

const char* kUsage =
    "Usage: vscard-fsx --dir DIR --ref REFDIR [--seed N] [--ops N] [--max-open N]\n"
    "                  [--max-size BYTES] [--full-every N] [--fuse-hidden] [--verbose]\n"
    "Runs N seeded random file operations on DIR and on REFDIR (both empty at start) and\n"
    "compares them after every step: listing, sizes, modes, set mtimes, and the content of\n"
    "the files the step touched (of every file each --full-every steps, default 25).\n"
    "--fuse-hidden: DIR is a libfuse mount that keeps files deleted while open as hidden\n"
    "entries (.fuse_hidden*) until they are closed, so their folder cannot be removed before:\n"
    "such files are closed first, and removing their folder is retried until it succeeds.\n"
    "Exit 0: no difference; 1: a difference (seed and step are printed); 2: bad usage.\n";

// Thrown on the first difference between the two trees.
struct Mismatch {
    std::string what;
};

// An operation's outcome on one side: its result and errno.
struct Outcome {
    long value = 0;
    int err = 0;
    std::string data;  // bytes read, if any
};

Outcome sys(long r) {
    Outcome o;
    o.value = r;
    o.err = r < 0 ? errno : 0;
    return o;
}

std::string err_name(int e) {
    return e == 0 ? "ok" : std::string(strerrordesc_np(e)) + " (" + std::to_string(e) + ")";
}

// The same open file on both sides.
struct Handle {
    int fd[2] = {-1, -1};
    std::string path;       // where it is now; "" once unlinked or renamed over
    std::string hidden_in;  // then: the folder it was in ("" for the root)
    bool orphan = false;
    std::uint64_t id = 0;  // for the log: opened as the ID-th handle
};

std::string parent_of(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

bool under(const std::string& path, const std::string& dir) {
    return path == dir || path.rfind(dir + "/", 0) == 0;
}

struct Entry {
    bool dir = false;
    std::uint32_t mode = 0;
    std::uint64_t size = 0;
    timespec mtime{};
};

class Fsx {
public:
    explicit Fsx(Options o) : o_(std::move(o)), rng_(o_.seed) {
        root_[0] = o_.dir;
        root_[1] = o_.ref;
    }
    ~Fsx() {
        for (auto& h : handles_)
            for (int fd : h.fd)
                if (fd >= 0) ::close(fd);
    }

    int run();

private:
    using Op = std::function<std::string()>;  // runs one step, returns its description

    std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : rng_() % n; }
    bool chance(unsigned percent) { return below(100) < percent; }
    std::string p(int side, const std::string& rel) const {
        return rel.empty() ? root_[side].string() : (root_[side] / rel).string();
    }

    std::map<std::string, Entry> scan(int side);
    std::vector<std::string> existing(int kind);  // 0 file, 1 dir, 2 any
    std::string pick_existing(int kind);
    std::string pick_dir();
    std::string pick_new_name();
    std::string pick_path(int kind);
    std::string random_data(std::size_t n);
    std::pair<std::uint64_t, std::size_t> pick_range();
    std::uint32_t pick_mode(bool dir);

    void compare(const std::string& op, const Outcome& a, const Outcome& b);
    std::string content(int side, const std::string& rel);
    std::string fd_content(int fd);
    void check_all(bool full, const std::vector<std::string>& touched);

    void forget_mtime(const std::string& path, bool with_children);
    void renamed(const std::string& from, const std::string& to);
    void unlinked(const std::string& path);
    bool close_hidden_under(const std::string& dir);
    void retry_busy(const std::function<Outcome()>& op, Outcome out[2], bool closed);

    std::string op_create(), op_write(), op_truncate(), op_rename(), op_unlink(), op_mkdir(),
        op_rmdir(), op_fsync(), op_read(), op_chmod(), op_utimens(), op_open(), op_hwrite(),
        op_hread(), op_htruncate(), op_hfsync(), op_hclose(), op_hstat();

    Options o_;
    std::mt19937_64 rng_;
    fs::path root_[2];
    std::vector<Handle> handles_;
    std::uint64_t opened_ = 0;
    std::map<std::string, timespec> fixed_mtime_;  // files whose mtime was set and kept
    std::vector<std::string> touched_;
    std::map<std::string, std::uint64_t> counts_;
};

std::map<std::string, Entry> Fsx::scan(int side) {
    std::map<std::string, Entry> out;
    std::vector<std::string> todo = {""};
    while (!todo.empty()) {
        std::string rel = todo.back();
        todo.pop_back();
        DIR* d = ::opendir(p(side, rel).c_str());
        if (!d) throw Mismatch{"cannot list " + p(side, rel) + ": " + err_name(errno)};
        while (dirent* e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name == "." || name == "..") continue;
            std::string child = rel.empty() ? name : rel + "/" + name;
            struct stat st;
            if (::lstat(p(side, child).c_str(), &st) != 0) {
                ::closedir(d);
                throw Mismatch{"listed but cannot stat " + p(side, child) + ": " + err_name(errno)};
            }
            Entry en;
            en.dir = S_ISDIR(st.st_mode);
            en.mode = st.st_mode & 07777;
            en.size = en.dir ? 0 : static_cast<std::uint64_t>(st.st_size);
            en.mtime = st.st_mtim;
            out[child] = en;
            if (en.dir) todo.push_back(child);
        }
        ::closedir(d);
    }
    return out;
}

std::vector<std::string> Fsx::existing(int kind) {
    std::vector<std::string> v;
    for (const auto& [rel, e] : scan(1))
        if (kind == 2 || e.dir == (kind == 1)) v.push_back(rel);
    return v;
}

std::string Fsx::pick_existing(int kind) {
    auto v = existing(kind);
    return v.empty() ? std::string() : v[below(v.size())];
}

std::string Fsx::pick_dir() {
    auto v = existing(1);
    std::vector<std::string> shallow = {""};
    for (auto& d : v)
        if (std::count(d.begin(), d.end(), '/') < 1) shallow.push_back(d);
    return shallow[below(shallow.size())];
}

std::string Fsx::pick_new_name() {
    static const char* names[] = {"a", "b", "c", "d", "e", "f", "g", "sub1", "sub2", "sub3"};
    std::string dir = pick_dir();
    std::string name = names[below(std::size(names))];
    return dir.empty() ? name : dir + "/" + name;
}

// An existing path of KIND most of the time, else a fresh or random one (often missing).
std::string Fsx::pick_path(int kind) {
    if (chance(85)) {
        std::string e = pick_existing(kind);
        if (!e.empty()) return e;
    }
    return pick_new_name();
}

std::string Fsx::random_data(std::size_t n) {
    std::string s(n, '\0');
    std::uint64_t x = rng_();
    for (std::size_t i = 0; i < n; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s[i] = static_cast<char>(x);
    }
    return s;
}

// An offset and a length: small or large, around chunk boundaries, sometimes past the end.
std::pair<std::uint64_t, std::size_t> Fsx::pick_range() {
    std::uint64_t max = o_.max_size;
    std::size_t len;
    switch (below(4)) {
        case 0:
            len = 1 + below(64);
            break;
        case 1:
            len = 1 + below(4096);
            break;
        case 2:
            len = 1 + below(65536);
            break;
        default:
            len = 1 + below(max / 2);
            break;
    }
    len = std::min<std::size_t>(len, max);
    std::uint64_t off;
    if (chance(25)) {
        off = (1 + below(4)) * 4096 * (chance(50) ? 16 : 1);
        off -= below(2) ? below(64) : 0;
    } else {
        off = below(max);
    }
    if (off + len > max) off = max - len;
    return {off, len};
}

std::uint32_t Fsx::pick_mode(bool dir) {
    static const std::uint32_t file_modes[] = {0600, 0644, 0640, 0604, 0666, 0700, 0755, 0750};
    static const std::uint32_t dir_modes[] = {0700, 0755, 0750, 0711, 0777};
    return dir ? dir_modes[below(std::size(dir_modes))] : file_modes[below(std::size(file_modes))];
}

void Fsx::compare(const std::string& op, const Outcome& a, const Outcome& b) {
    if (a.err != b.err || (a.err == 0 && a.value != b.value))
        throw Mismatch{op + ": " + root_[0].string() + " gave " + std::to_string(a.value) + " " +
                       err_name(a.err) + ", reference gave " + std::to_string(b.value) + " " +
                       err_name(b.err)};
    if (a.data != b.data) {
        std::size_t i = 0;
        while (i < a.data.size() && i < b.data.size() && a.data[i] == b.data[i]) ++i;
        throw Mismatch{op + ": data differs from byte " + std::to_string(i) + " (" +
                       std::to_string(a.data.size()) + " vs " + std::to_string(b.data.size()) +
                       " bytes)"};
    }
}

std::string Fsx::fd_content(int fd) {
    std::string out;
    char buf[65536];
    for (off_t off = 0;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, off);
        if (n < 0) throw Mismatch{"pread of an open file failed: " + err_name(errno)};
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        off += n;
    }
    return out;
}

std::string Fsx::content(int side, const std::string& rel) {
    int fd = ::open(p(side, rel).c_str(), O_RDONLY);
    if (fd < 0) throw Mismatch{"cannot open " + p(side, rel) + ": " + err_name(errno)};
    std::string out;
    try {
        out = fd_content(fd);
    } catch (...) {
        ::close(fd);
        throw;
    }
    if (::close(fd) != 0) throw Mismatch{"close of " + p(side, rel) + ": " + err_name(errno)};
    return out;
}

void Fsx::check_all(bool full, const std::vector<std::string>& touched) {
    auto a = scan(0), b = scan(1);
    for (const auto& [rel, e] : b)
        if (!a.count(rel)) throw Mismatch{"missing in " + root_[0].string() + ": " + rel};
    for (const auto& [rel, e] : a) {
        auto it = b.find(rel);
        if (it == b.end()) throw Mismatch{"unexpected in " + root_[0].string() + ": " + rel};
        const Entry& r = it->second;
        if (e.dir != r.dir) throw Mismatch{rel + ": file on one side, folder on the other"};
        if (e.mode != r.mode) {
            std::ostringstream s;
            s << rel << ": mode " << std::oct << e.mode << " vs " << r.mode;
            throw Mismatch{s.str()};
        }
        if (e.size != r.size)
            throw Mismatch{rel + ": size " + std::to_string(e.size) + " vs " +
                           std::to_string(r.size)};
        auto fixed = fixed_mtime_.find(rel);
        if (fixed != fixed_mtime_.end() &&
            (e.mtime.tv_sec != fixed->second.tv_sec || e.mtime.tv_nsec != fixed->second.tv_nsec))
            throw Mismatch{rel + ": mtime " + std::to_string(e.mtime.tv_sec) + "." +
                           std::to_string(e.mtime.tv_nsec) + ", set to " +
                           std::to_string(fixed->second.tv_sec) + "." +
                           std::to_string(fixed->second.tv_nsec)};
        bool want =
            !e.dir && (full || std::find(touched.begin(), touched.end(), rel) != touched.end());
        if (want && content(0, rel) != content(1, rel)) throw Mismatch{rel + ": content differs"};
    }
    for (const auto& h : handles_) {
        struct stat sa, sb;
        std::string where = "#" + std::to_string(h.id) + " " +
                            (h.orphan ? "(deleted from " + h.hidden_in + "/)" : h.path);
        if (::fstat(h.fd[0], &sa) != 0)
            throw Mismatch{"fstat of open file " + where + ": " + err_name(errno)};
        ::fstat(h.fd[1], &sb);
        if (sa.st_size != sb.st_size)
            throw Mismatch{"open file " + where + ": size " + std::to_string(sa.st_size) + " vs " +
                           std::to_string(sb.st_size)};
        if (full && fd_content(h.fd[0]) != fd_content(h.fd[1]))
            throw Mismatch{"open file " + where + ": content differs"};
    }
}

void Fsx::forget_mtime(const std::string& path, bool with_children) {
    for (auto it = fixed_mtime_.begin(); it != fixed_mtime_.end();) {
        bool hit = it->first == path || (with_children && it->first.rfind(path + "/", 0) == 0);
        it = hit ? fixed_mtime_.erase(it) : std::next(it);
    }
}

// Bookkeeping after a successful rename: open handles and fixed mtimes follow their objects.
void Fsx::renamed(const std::string& from, const std::string& to) {
    if (from == to) return;
    auto moved = [&](const std::string& path) -> std::optional<std::string> {
        if (path == from) return to;
        if (path.rfind(from + "/", 0) == 0) return to + path.substr(from.size());
        return std::nullopt;
    };
    for (auto& h : handles_) {
        if (!h.orphan && under(h.path, to)) {  // replaced
            h.hidden_in = parent_of(h.path);
            h.path.clear();
            h.orphan = true;
        }
    }
    for (auto& h : handles_) {
        if (auto m = moved(h.path)) h.path = *m;
        if (auto m = h.orphan ? moved(h.hidden_in) : std::nullopt) h.hidden_in = *m;
    }
    forget_mtime(to, true);
    std::map<std::string, timespec> next;
    for (const auto& [path, t] : fixed_mtime_) next[moved(path).value_or(path)] = t;
    fixed_mtime_ = std::move(next);
}

void Fsx::unlinked(const std::string& path) {
    for (auto& h : handles_) {
        if (h.path != path) continue;
        h.hidden_in = parent_of(path);
        h.path.clear();
        h.orphan = true;
    }
    forget_mtime(path, false);
}

// With --fuse-hidden, before DIR is removed or replaced: closes the files deleted while open
// that the mount still keeps (hidden) in DIR or below. Returns whether it closed any.
bool Fsx::close_hidden_under(const std::string& dir) {
    if (!o_.fuse_hidden) return false;
    bool closed = false;
    for (auto it = handles_.begin(); it != handles_.end();) {
        if (it->orphan && (dir.empty() || under(it->hidden_in, dir))) {
            Outcome out[2];
            for (int s : {0, 1}) out[s] = sys(::close(it->fd[s]));
            compare("close of a file deleted while open, in " + dir, out[0], out[1]);
            it = handles_.erase(it);
            closed = true;
        } else {
            ++it;
        }
    }
    return closed;
}

// The mount removes a hidden file when the kernel releases it, a moment after close(): an
// operation that found its folder busy then is retried for up to 5 s.
void Fsx::retry_busy(const std::function<Outcome()>& op, Outcome out[2], bool closed) {
    for (int i = 0; closed && i < 500 && out[0].err == ENOTEMPTY && out[1].err == 0; ++i) {
        ::usleep(10000);
        out[0] = op();
    }
}

std::string Fsx::op_create() {
    std::string rel = pick_new_name();
    int flags = O_CREAT | O_WRONLY;
    if (chance(30)) flags |= O_EXCL;
    if (chance(50)) flags |= O_TRUNC;
    std::uint32_t mode = pick_mode(false);
    auto [off, len] = pick_range();
    if (chance(50)) off = 0;
    std::string data = random_data(len);
    Outcome out[2];
    for (int s : {0, 1}) {
        int fd = ::open(p(s, rel).c_str(), flags, mode);
        out[s] = sys(fd);
        if (fd < 0) continue;
        Outcome w = sys(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)));
        Outcome c = sys(::close(fd));
        out[s] = w.err ? w : c.err ? c : w;
    }
    std::ostringstream d;
    d << "create " << rel << " flags=" << std::hex << flags << std::dec << " mode=" << std::oct
      << mode << std::dec << " then write " << len << "@" << off;
    compare(d.str(), out[0], out[1]);
    if (out[1].err == 0) {
        forget_mtime(rel, false);
        touched_.push_back(rel);
    }
    return d.str();
}

std::string Fsx::op_write() {
    std::string rel = pick_path(0);
    auto [off, len] = pick_range();
    std::string data = random_data(len);
    bool sync = chance(10);
    Outcome out[2];
    for (int s : {0, 1}) {
        int fd = ::open(p(s, rel).c_str(), O_WRONLY);
        out[s] = sys(fd);
        if (fd < 0) continue;
        Outcome w = sys(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)));
        Outcome f = sync ? sys(::fsync(fd)) : Outcome{};
        Outcome c = sys(::close(fd));
        out[s] = w.err ? w : f.err ? f : c.err ? c : w;
    }
    std::string d = "write " + rel + " " + std::to_string(len) + "@" + std::to_string(off) +
                    (sync ? " +fsync" : "");
    compare(d, out[0], out[1]);
    forget_mtime(rel, false);
    touched_.push_back(rel);
    return d;
}

std::string Fsx::op_truncate() {
    std::string rel = pick_path(chance(90) ? 0 : 2);
    std::uint64_t size = chance(20) ? 0 : below(o_.max_size + 1);
    Outcome out[2];
    for (int s : {0, 1}) out[s] = sys(::truncate(p(s, rel).c_str(), static_cast<off_t>(size)));
    std::string d = "truncate " + rel + " " + std::to_string(size);
    compare(d, out[0], out[1]);
    forget_mtime(rel, false);
    touched_.push_back(rel);
    return d;
}

std::string Fsx::op_rename() {
    std::string from = pick_path(chance(70) ? 0 : 2);
    std::string to = chance(40) ? pick_existing(chance(70) ? 0 : 2) : pick_new_name();
    if (to.empty()) to = pick_new_name();
    bool closed = close_hidden_under(to);
    Outcome out[2];
    for (int s : {1, 0}) out[s] = sys(::rename(p(s, from).c_str(), p(s, to).c_str()));
    retry_busy([&] { return sys(::rename(p(0, from).c_str(), p(0, to).c_str())); }, out, closed);
    std::string d = "rename " + from + " -> " + to;
    compare(d, out[0], out[1]);
    if (out[1].err == 0) {
        renamed(from, to);
        touched_.push_back(to);
    }
    return d;
}

std::string Fsx::op_unlink() {
    std::string rel = pick_path(chance(90) ? 0 : 2);
    Outcome out[2];
    for (int s : {0, 1}) out[s] = sys(::unlink(p(s, rel).c_str()));
    std::string d = "unlink " + rel;
    compare(d, out[0], out[1]);
    if (out[1].err == 0) unlinked(rel);
    return d;
}

std::string Fsx::op_mkdir() {
    std::string rel = pick_new_name();
    std::uint32_t mode = pick_mode(true);
    Outcome out[2];
    for (int s : {0, 1}) out[s] = sys(::mkdir(p(s, rel).c_str(), mode));
    std::ostringstream d;
    d << "mkdir " << rel << " " << std::oct << mode;
    compare(d.str(), out[0], out[1]);
    return d.str();
}

std::string Fsx::op_rmdir() {
    std::string rel = pick_path(chance(85) ? 1 : 2);
    bool closed = close_hidden_under(rel);
    Outcome out[2];
    for (int s : {1, 0}) out[s] = sys(::rmdir(p(s, rel).c_str()));
    retry_busy([&] { return sys(::rmdir(p(0, rel).c_str())); }, out, closed);
    std::string d = "rmdir " + rel;
    compare(d, out[0], out[1]);
    return d;
}

std::string Fsx::op_fsync() {
    std::string rel = pick_path(0);
    Outcome out[2];
    for (int s : {0, 1}) {
        int fd = ::open(p(s, rel).c_str(), O_RDONLY);
        out[s] = sys(fd);
        if (fd < 0) continue;
        Outcome f = sys(::fsync(fd));
        Outcome c = sys(::close(fd));
        out[s] = f.err ? f : c;
    }
    std::string d = "fsync " + rel;
    compare(d, out[0], out[1]);
    return d;
}

std::string Fsx::op_read() {
    std::string rel = pick_path(0);
    auto [off, len] = pick_range();
    Outcome out[2];
    for (int s : {0, 1}) {
        int fd = ::open(p(s, rel).c_str(), O_RDONLY);
        out[s] = sys(fd);
        if (fd < 0) continue;
        std::string buf(len, '\0');
        Outcome r = sys(::pread(fd, buf.data(), len, static_cast<off_t>(off)));
        if (r.err == 0) r.data = buf.substr(0, static_cast<std::size_t>(r.value));
        Outcome c = sys(::close(fd));
        out[s] = r.err ? r : c.err ? c : r;
    }
    std::string d = "read " + rel + " " + std::to_string(len) + "@" + std::to_string(off);
    compare(d, out[0], out[1]);
    return d;
}

std::string Fsx::op_chmod() {
    bool dir = chance(25);
    std::string rel = pick_path(dir ? 1 : 0);
    std::uint32_t mode = pick_mode(dir);
    Outcome out[2];
    for (int s : {0, 1}) out[s] = sys(::chmod(p(s, rel).c_str(), mode));
    std::ostringstream d;
    d << "chmod " << rel << " " << std::oct << mode;
    compare(d.str(), out[0], out[1]);
    return d.str();
}

std::string Fsx::op_utimens() {
    std::string rel = pick_path(0);
    timespec t[2];
    t[0].tv_sec = 0;
    t[0].tv_nsec = UTIME_OMIT;
    t[1].tv_sec = static_cast<time_t>(315532800 + below(1500000000));
    t[1].tv_nsec = static_cast<long>(chance(50) ? 0 : below(1000000000));
    Outcome out[2];
    for (int s : {0, 1}) out[s] = sys(::utimensat(AT_FDCWD, p(s, rel).c_str(), t, 0));
    std::string d =
        "utimens " + rel + " " + std::to_string(t[1].tv_sec) + "." + std::to_string(t[1].tv_nsec);
    compare(d, out[0], out[1]);
    struct stat st;
    if (out[1].err == 0 && ::stat(p(1, rel).c_str(), &st) == 0 && S_ISREG(st.st_mode))
        fixed_mtime_[rel] = t[1];  // a folder's changes with its entries
    return d;
}

std::string Fsx::op_open() {
    if (handles_.size() >= o_.max_open) return op_hclose();
    std::string rel = chance(70) ? pick_path(0) : pick_new_name();
    int flags = O_RDWR | (chance(40) ? O_CREAT : 0) | (chance(15) ? O_TRUNC : 0);
    Handle h;
    Outcome out[2];
    for (int s : {0, 1}) {
        h.fd[s] = ::open(p(s, rel).c_str(), flags, 0644);
        out[s] = sys(h.fd[s]);
        out[s].value = h.fd[s] < 0 ? -1 : 0;
    }
    std::ostringstream d;
    d << "open #" << opened_ + 1 << " " << rel << " flags=" << std::hex << flags;
    if (out[0].err != out[1].err) {
        for (int fd : h.fd)
            if (fd >= 0) ::close(fd);
    }
    compare(d.str(), out[0], out[1]);
    if (h.fd[0] >= 0) {
        h.id = ++opened_;
        h.path = rel;
        handles_.push_back(h);
        forget_mtime(rel, false);
        touched_.push_back(rel);
    }
    return d.str();
}

std::string Fsx::op_hwrite() {
    if (handles_.empty()) return op_open();
    std::size_t i = below(handles_.size());
    Handle& h = handles_[i];
    auto [off, len] = pick_range();
    std::string data = random_data(len);
    Outcome out[2];
    for (int s : {0, 1})
        out[s] = sys(::pwrite(h.fd[s], data.data(), data.size(), static_cast<off_t>(off)));
    std::string d = "handle #" + std::to_string(h.id) + " (" + h.path + ") write " +
                    std::to_string(len) + "@" + std::to_string(off);
    compare(d, out[0], out[1]);
    if (!h.path.empty()) {
        forget_mtime(h.path, false);
        touched_.push_back(h.path);
    }
    return d;
}

std::string Fsx::op_hread() {
    if (handles_.empty()) return op_open();
    std::size_t i = below(handles_.size());
    Handle& h = handles_[i];
    auto [off, len] = pick_range();
    Outcome out[2];
    for (int s : {0, 1}) {
        std::string buf(len, '\0');
        out[s] = sys(::pread(h.fd[s], buf.data(), len, static_cast<off_t>(off)));
        if (out[s].err == 0) out[s].data = buf.substr(0, static_cast<std::size_t>(out[s].value));
    }
    std::string d = "handle #" + std::to_string(h.id) + " (" + h.path + ") read " +
                    std::to_string(len) + "@" + std::to_string(off);
    compare(d, out[0], out[1]);
    return d;
}

std::string Fsx::op_htruncate() {
    if (handles_.empty()) return op_open();
    std::size_t i = below(handles_.size());
    Handle& h = handles_[i];
    std::uint64_t size = chance(20) ? 0 : below(o_.max_size + 1);
    Outcome out[2];
    for (int s : {0, 1}) out[s] = sys(::ftruncate(h.fd[s], static_cast<off_t>(size)));
    std::string d =
        "handle #" + std::to_string(h.id) + " (" + h.path + ") ftruncate " + std::to_string(size);
    compare(d, out[0], out[1]);
    if (!h.path.empty()) {
        forget_mtime(h.path, false);
        touched_.push_back(h.path);
    }
    return d;
}

std::string Fsx::op_hfsync() {
    if (handles_.empty()) return op_open();
    std::size_t i = below(handles_.size());
    Outcome out[2];
    for (int s : {0, 1}) out[s] = sys(::fsync(handles_[i].fd[s]));
    std::string d =
        "handle #" + std::to_string(handles_[i].id) + " (" + handles_[i].path + ") fsync";
    compare(d, out[0], out[1]);
    return d;
}

std::string Fsx::op_hclose() {
    if (handles_.empty()) return op_open();
    std::size_t i = below(handles_.size());
    Handle h = handles_[i];
    handles_.erase(handles_.begin() + static_cast<std::ptrdiff_t>(i));
    Outcome out[2];
    for (int s : {0, 1}) out[s] = sys(::close(h.fd[s]));
    std::string d = "handle #" + std::to_string(h.id) + " (" + h.path + ") close";
    compare(d, out[0], out[1]);
    if (!h.path.empty()) touched_.push_back(h.path);
    return d;
}

std::string Fsx::op_hstat() {
    if (handles_.empty()) return op_open();
    std::size_t i = below(handles_.size());
    Outcome out[2];
    for (int s : {0, 1}) {
        struct stat st;
        out[s] = sys(::fstat(handles_[i].fd[s], &st));
        if (out[s].err == 0) out[s].value = static_cast<long>(st.st_size);
    }
    std::string d =
        "handle #" + std::to_string(handles_[i].id) + " (" + handles_[i].path + ") fstat size";
    compare(d, out[0], out[1]);
    return d;
}

int Fsx::run() {
    for (int s : {0, 1}) {
        std::error_code ec;
        if (!fs::is_directory(root_[s], ec) || !fs::is_empty(root_[s], ec)) {
            std::cerr << "vscard-fsx: " << root_[s] << " must be an empty folder\n";
            return 2;
        }
    }
    struct Kind {
        const char* name;
        unsigned weight;
        std::string (Fsx::*fn)();
    };
    static const Kind kinds[] = {
        {"create", 10, &Fsx::op_create},      {"write", 14, &Fsx::op_write},
        {"truncate", 5, &Fsx::op_truncate},   {"rename", 10, &Fsx::op_rename},
        {"unlink", 5, &Fsx::op_unlink},       {"mkdir", 5, &Fsx::op_mkdir},
        {"rmdir", 4, &Fsx::op_rmdir},         {"fsync", 2, &Fsx::op_fsync},
        {"read", 8, &Fsx::op_read},           {"chmod", 4, &Fsx::op_chmod},
        {"utimens", 4, &Fsx::op_utimens},     {"open", 6, &Fsx::op_open},
        {"hwrite", 10, &Fsx::op_hwrite},      {"hread", 6, &Fsx::op_hread},
        {"htruncate", 3, &Fsx::op_htruncate}, {"hfsync", 2, &Fsx::op_hfsync},
        {"hclose", 5, &Fsx::op_hclose},       {"hstat", 3, &Fsx::op_hstat},
    };
    unsigned total = 0;
    for (const auto& k : kinds) total += k.weight;

    auto start = std::chrono::steady_clock::now();
    std::deque<std::string> recent;
    std::uint64_t step = 0;
    try {
        for (step = 1; step <= o_.ops; ++step) {
            unsigned r = static_cast<unsigned>(below(total));
            const Kind* k = kinds;
            while (r >= k->weight) r -= (k++)->weight;
            touched_.clear();
            std::string what = "(" + std::string(k->name) + ")";
            recent.push_back(std::to_string(step) + ": " + what);
            if (recent.size() > 20) recent.pop_front();
            what = (this->*(k->fn))();
            recent.back() = std::to_string(step) + ": " + what;
            ++counts_[k->name];
            if (o_.verbose) std::cout << step << ": " << what << "\n";
            check_all(o_.full_every && step % o_.full_every == 0, touched_);
        }
        --step;
        // Close what is still open, then a last full comparison.
        while (!handles_.empty()) op_hclose();
        check_all(true, {});
    } catch (const Mismatch& m) {
        std::cerr << "vscard-fsx: FAILED at step " << step << " (seed " << o_.seed
                  << "): " << m.what << "\nlast operations:\n";
        for (const auto& line : recent) std::cerr << "  " << line << "\n";
        std::cerr << "replay: vscard-fsx --seed " << o_.seed << " --ops " << step << " --max-open "
                  << o_.max_open << " --max-size " << o_.max_size
                  << " --dir DIR --ref REFDIR --verbose\n";
        return 1;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "vscard-fsx: seed " << o_.seed << ": " << step << " operations, no difference ("
              << secs << " s)\n ";
    for (const auto& [name, n] : counts_) std::cout << " " << name << "=" << n;
    std::cout << "\n";
    return 0;
}

std::optional<Options> parse(int argc, char** argv) {
    Options o;
    auto number = [](const char* s) -> std::optional<std::uint64_t> {
        char* end = nullptr;
        errno = 0;
        unsigned long long v = std::strtoull(s, &end, 10);
        if (errno || !end || *end || !*s) return std::nullopt;
        return v;
    };
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help") {
            std::cout << kUsage;
            std::exit(0);
        }
        if (a == "--verbose" || a == "--fuse-hidden") {
            (a == "--verbose" ? o.verbose : o.fuse_hidden) = true;
            continue;
        }
        if (i + 1 >= argc) return std::nullopt;
        const char* v = argv[++i];
        if (a == "--dir") {
            o.dir = v;
        } else if (a == "--ref") {
            o.ref = v;
        } else {
            auto n = number(v);
            if (!n) return std::nullopt;
            if (a == "--seed")
                o.seed = *n;
            else if (a == "--ops")
                o.ops = *n;
            else if (a == "--max-open")
                o.max_open = static_cast<std::size_t>(*n);
            else if (a == "--max-size" && *n >= 4096)
                o.max_size = *n;
            else if (a == "--full-every")
                o.full_every = *n;
            else
                return std::nullopt;
        }
    }
    if (o.dir.empty() || o.ref.empty()) return std::nullopt;
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    auto o = parse(argc, argv);
    if (!o) {
        std::cerr << "vscard-fsx: bad usage; see vscard-fsx --help\n";
        return 2;
    }
    return Fsx(*o).run();
}
