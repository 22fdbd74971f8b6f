#include "backup/mirror.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <random>

#include "error.hpp"

namespace vscard::backup {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kChunk = 64 * 1024;

bool same_time(const timespec& a, const timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

Node node_of(std::string name, const struct stat& st) {
    Node n;
    n.name = std::move(name);
    n.kind = S_ISDIR(st.st_mode)   ? Node::Kind::Folder
             : S_ISREG(st.st_mode) ? Node::Kind::File
                                   : Node::Kind::Other;
    n.mode = st.st_mode & 07777;
    n.size = n.kind == Node::Kind::File ? static_cast<std::uint64_t>(st.st_size) : 0;
    n.mtime = st.st_mtim;
    return n;
}

// The entries of the folder PATH, sorted by name; throws Error from errno.
std::vector<Node> list(const fs::path& path) {
    DIR* dir = ::opendir(path.c_str());
    if (!dir) throw system_error("cannot list " + path.string());
    std::vector<Node> out;
    errno = 0;
    while (dirent* e = ::readdir(dir)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        struct stat st {};
        if (::fstatat(::dirfd(dir), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) continue;  // gone meanwhile
            Node n;
            n.name = name;
            n.kind = Node::Kind::Other;
            n.error = std::strerror(errno);
            out.push_back(std::move(n));
            continue;
        }
        out.push_back(node_of(name, st));
        errno = 0;
    }
    int err = errno;
    ::closedir(dir);
    if (err) throw system_error("cannot list " + path.string(), err);
    std::sort(out.begin(), out.end(), [](const Node& a, const Node& b) { return a.name < b.name; });
    return out;
}

// Lists the folders below FOLDER (at PATH), keeping the error of one that cannot be listed.
void scan_below(Node& folder, const fs::path& path) {
    for (auto& c : folder.children) {
        if (c.kind != Node::Kind::Folder) continue;
        try {
            c.children = list(path / c.name);
        } catch (const Error& e) {
            c.error = e.what();
            continue;
        }
        scan_below(c, path / c.name);
    }
}

// Progress over the object N (and, with skip_below, what lies below it, not worked through).
void count_done(Progress& progress, const Node& n) {
    ++progress.objects_done;
    progress.bytes_done += n.size;
    if (progress.on_change) progress.on_change(progress);
}
void count_below(Progress& progress, const Node& n) {
    progress.objects_done += n.objects() - 1;
    progress.bytes_done += n.bytes() - n.size;
    if (progress.on_change) progress.on_change(progress);
}

// Errors of setting a mode or a time that mean the target does not keep them.
bool not_kept(int err) {
    return err == ENOTSUP || err == EOPNOTSUPP || err == EPERM || err == ENOSYS || err == EROFS;
}

// Sets the mode and mtime of PATH to those of SOURCE where they differ from CURRENT (nullptr:
// a new object, always set). Throws Error when the target fails otherwise than by not
// keeping them.
void set_metadata(const fs::path& path, const Node& source, const Node* current) {
    if ((!current || current->mode != source.mode) && ::chmod(path.c_str(), source.mode) != 0 &&
        !not_kept(errno))
        throw system_error("cannot set the mode of " + path.string());
    if (current && same_time(current->mtime, source.mtime)) return;
    const timespec times[2] = {{0, UTIME_OMIT}, source.mtime};
    if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0 && !not_kept(errno))
        throw system_error("cannot set the time of " + path.string());
}

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd& operator=(Fd&&) = delete;
    int get() const { return fd_; }
    // Closes now, reporting the error (a FUSE medium commits on close).
    int close() {
        int r = ::close(fd_);
        fd_ = -1;
        return r;
    }

private:
    int fd_;
};

Fd open_read(const fs::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd.get() < 0) throw system_error("cannot open " + path.string());
    return fd;
}

// Reads up to SIZE bytes (fewer only at the end of the file).
std::size_t read_full(int fd, char* buf, std::size_t size, const fs::path& path) {
    std::size_t got = 0;
    while (got < size) {
        ssize_t n = ::read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw system_error("cannot read " + path.string());
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    return got;
}

void write_full(int fd, const char* buf, std::size_t size, const fs::path& path) {
    while (size > 0) {
        ssize_t n = ::write(fd, buf, size);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw system_error("cannot write " + path.string());
        buf += n;
        size -= static_cast<std::size_t>(n);
    }
}

bool same_content(const fs::path& a, const fs::path& b) {
    Fd fa = open_read(a), fb = open_read(b);
    std::vector<char> ba(kChunk), bb(kChunk);
    for (;;) {
        std::size_t na = read_full(fa.get(), ba.data(), kChunk, a);
        std::size_t nb = read_full(fb.get(), bb.data(), kChunk, b);
        if (na != nb || std::memcmp(ba.data(), bb.data(), na) != 0) return false;
        if (na < kChunk) return true;
    }
}

// A fresh temporary file beside TARGET, named as rsync does (".NAME.XXXXXX").
std::pair<Fd, fs::path> create_temp(const fs::path& target) {
    static thread_local std::mt19937 rng{std::random_device{}()};
    static const char kLetters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::string base = "." + target.filename().string().substr(0, 200) + ".";
    for (int attempt = 0;; ++attempt) {
        std::string name = base;
        for (int i = 0; i < 6; ++i) name += kLetters[rng() % (sizeof kLetters - 1)];
        fs::path path = target.parent_path() / name;
        Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (fd.get() >= 0) return {std::move(fd), path};
        if (errno != EEXIST || attempt == 100)
            throw system_error("cannot create a file in " + target.parent_path().string());
    }
}

// Copies the file SOURCE_PATH (scanned as SOURCE) over TARGET through a temporary file.
void copy_file(const fs::path& source_path, const Node& source, const fs::path& target) {
    Fd in = open_read(source_path);
    auto [out, temp] = create_temp(target);
    try {
        std::vector<char> buf(kChunk);
        for (;;) {
            std::size_t n = read_full(in.get(), buf.data(), kChunk, source_path);
            write_full(out.get(), buf.data(), n, target);
            if (n < kChunk) break;
        }
        if (out.close() != 0) throw system_error("cannot write " + target.string());
        set_metadata(temp, source, nullptr);
        if (::rename(temp.c_str(), target.c_str()) != 0)
            throw system_error("cannot rename " + temp.string() + " to " + target.string());
    } catch (...) {
        ::unlink(temp.c_str());
        throw;
    }
}

// Whether the target's file T holds what the source's file S holds (when it cannot be read,
// it is copied again).
bool unchanged(const Node& s, const fs::path& source_path, const Node& t,
               const fs::path& target_path) {
    if (t.size != s.size) return false;
    if (same_time(t.mtime, s.mtime)) return true;
    try {
        return same_content(source_path, target_path);
    } catch (const Error&) {
        return false;
    }
}

class Mirror {
public:
    Mirror(Progress& progress, Summary& summary) : progress_(progress), summary_(summary) {}

    void folder(const Node& source, const fs::path& source_path, const Node& target,
                const fs::path& target_path, const std::string& rel) {
        if (!target.error.empty()) {
            fail(rel, target.error);
            skip(source);
            return;
        }
        for (const auto& t : target.children)
            if (!source.child(t.name)) remove(t, target_path / t.name, rel + t.name);
        for (const auto& s : source.children) {
            const Node* t = target.child(s.name);
            if (t && t->kind != s.kind && s.kind != Node::Kind::Other) {
                remove(*t, target_path / t->name, rel + t->name);
                t = nullptr;
            }
            entry(s, source_path / s.name, t, target_path / s.name, rel + s.name);
        }
    }

private:
    void entry(const Node& s, const fs::path& source_path, const Node* t,
               const fs::path& target_path, const std::string& rel) {
        progress_.current = rel;
        try {
            if (s.kind == Node::Kind::Other)
                throw Error(ErrorKind::NotSupported,
                            s.error.empty() ? "not a regular file or folder; not copied" : s.error);
            if (s.kind == Node::Kind::Folder) {
                folder_entry(s, source_path, t, target_path, rel);
                return;
            }
            if (t && unchanged(s, source_path, *t, target_path)) {
                set_metadata(target_path, s, t);
                ++summary_.skipped;
            } else {
                copy_file(source_path, s, target_path);
                ++summary_.copied;
            }
        } catch (const Error& e) {
            fail(rel, e);
        }
        done(s);
    }

    void folder_entry(const Node& s, const fs::path& source_path, const Node* t,
                      const fs::path& target_path, const std::string& rel) {
        static const Node kEmpty;
        if (!t) {
            if (::mkdir(target_path.c_str(), 0700) != 0) {
                fail(rel, system_error("cannot create " + target_path.string()));
                done(s);
                skip(s);
                return;
            }
            ++summary_.copied;
        } else {
            ++summary_.skipped;
        }
        done(s);
        if (!s.error.empty()) {
            fail(rel + "/", s.error);  // its counterpart at the target stays as it is
            return;
        }
        const auto changes = summary_.copied + summary_.deleted;
        folder(s, source_path, t ? *t : kEmpty, target_path, rel + "/");
        // After its content, whose changes moved its mtime.
        try {
            set_metadata(target_path, s,
                         summary_.copied + summary_.deleted == changes ? t : nullptr);
        } catch (const Error& e) {
            fail(rel, e);
        }
    }

    // Deletes the target's N at PATH with everything below it.
    void remove(const Node& n, const fs::path& path, const std::string& rel) {
        if (n.kind == Node::Kind::Folder) {
            if (!n.error.empty()) {
                fail(rel, "cannot delete: " + n.error);
                return;
            }
            std::size_t failed = summary_.failures.size();
            for (const auto& c : n.children) remove(c, path / c.name, rel + "/" + c.name);
            if (summary_.failures.size() != failed) return;  // not empty: said already
        }
        if ((n.kind == Node::Kind::Folder ? ::rmdir(path.c_str()) : ::unlink(path.c_str())) != 0)
            fail(rel, system_error("cannot delete " + path.string()));
        else
            ++summary_.deleted;
    }

    void done(const Node& n) { count_done(progress_, n); }
    void skip(const Node& n) { count_below(progress_, n); }

    void fail(const std::string& rel, const Error& e) { fail(rel, std::string(e.what())); }
    void fail(const std::string& rel, const std::string& why) {
        summary_.failures.push_back({rel, why});
    }

    Progress& progress_;
    Summary& summary_;
};

class Comparison {
public:
    Comparison(Progress& progress, std::vector<Difference>& out) : progress_(progress), out_(out) {}

    void folder(const Node& a, const fs::path& a_path, const Node& b, const fs::path& b_path,
                const std::string& rel) {
        if (!a.error.empty() || !b.error.empty()) {
            out_.push_back(
                {rel, Difference::Kind::Unreadable, a.error.empty() ? b.error : a.error});
            skip(a);
            return;
        }
        for (const auto& y : b.children)
            if (!a.child(y.name)) out_.push_back({rel + y.name, Difference::Kind::OnlyInB, {}});
        for (const auto& x : a.children) {
            const std::string path = rel + x.name;
            progress_.current = path;
            const Node* y = b.child(x.name);
            if (!y) {
                out_.push_back({path, Difference::Kind::OnlyInA, {}});
                done(x);
                skip(x);
            } else if (x.kind != y->kind) {
                out_.push_back(
                    {path, Difference::Kind::Differs, "a file on one side, not on the other"});
                done(x);
                skip(x);
            } else if (x.kind == Node::Kind::Folder) {
                done(x);
                folder(x, a_path / x.name, *y, b_path / x.name, path + "/");
            } else {
                file(x, a_path / x.name, *y, b_path / x.name, path);
                done(x);
            }
        }
    }

private:
    void file(const Node& x, const fs::path& a_path, const Node& y, const fs::path& b_path,
              const std::string& path) {
        if (x.kind == Node::Kind::Other) {
            out_.push_back({path, Difference::Kind::Unreadable,
                            x.error.empty() ? "not a regular file or folder" : x.error});
            return;
        }
        if (x.size != y.size) {
            out_.push_back({path, Difference::Kind::Differs,
                            "sizes differ: " + std::to_string(x.size) + " and " +
                                std::to_string(y.size) + " bytes"});
            return;
        }
        try {
            if (!same_content(a_path, b_path))
                out_.push_back({path, Difference::Kind::Differs, "contents differ"});
        } catch (const Error& e) {
            out_.push_back({path, Difference::Kind::Unreadable, e.what()});
        }
    }

    void done(const Node& n) { count_done(progress_, n); }
    void skip(const Node& n) { count_below(progress_, n); }

    Progress& progress_;
    std::vector<Difference>& out_;
};

}  // namespace

std::uint64_t Node::objects() const {
    std::uint64_t n = 1;
    for (const auto& c : children) n += c.objects();
    return n;
}

std::uint64_t Node::bytes() const {
    std::uint64_t n = size;
    for (const auto& c : children) n += c.bytes();
    return n;
}

const Node* Node::child(const std::string& wanted) const {
    auto it = std::lower_bound(children.begin(), children.end(), wanted,
                               [](const Node& c, const std::string& w) { return c.name < w; });
    return it != children.end() && it->name == wanted ? &*it : nullptr;
}

Node scan(const fs::path& root) {
    struct stat st {};
    if (::stat(root.c_str(), &st) != 0) throw system_error("cannot open " + root.string());
    if (!S_ISDIR(st.st_mode))
        throw Error(ErrorKind::NotDirectory, root.string() + " is not a folder");
    Node n = node_of(root.filename().string(), st);
    n.children = list(root);  // the root's own failure is thrown
    scan_below(n, root);
    return n;
}

void Progress::add_to_totals(const Node& root) {
    objects_total += root.objects() - 1;
    bytes_total += root.bytes() - root.size;
}

Summary& Summary::operator+=(const Summary& other) {
    copied += other.copied;
    skipped += other.skipped;
    deleted += other.deleted;
    failures.insert(failures.end(), other.failures.begin(), other.failures.end());
    return *this;
}

Summary mirror(const Node& source, const fs::path& source_path, const Node& target,
               const fs::path& target_path, Progress& progress, const std::string& prefix) {
    Summary summary;
    Mirror(progress, summary).folder(source, source_path, target, target_path, prefix);
    return summary;
}

std::vector<Difference> compare(const Node& a, const fs::path& a_path, const Node& b,
                                const fs::path& b_path, Progress& progress,
                                const std::string& prefix) {
    std::vector<Difference> out;
    Comparison(progress, out).folder(a, a_path, b, b_path, prefix);
    return out;
}

}  // namespace vscard::backup
