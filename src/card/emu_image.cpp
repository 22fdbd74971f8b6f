#include "card/emu_image.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>

#include "card/tlv.hpp"
#include "crypto.hpp"
#include "error.hpp"

namespace vscard::card::emu {
namespace {

constexpr char kMagic[8] = {'V', 'S', 'C', 'A', 'R', 'D', 'E', 'M'};
constexpr std::size_t kHeaderSize = 8 + 2 + 2 + 4;
constexpr std::size_t kDigestSize = 32;

enum : tlv::Tag {
    kCard = 0xE1,
    kFileNode = 0xE2,
    kPinNode = 0xE3,
    kCapacity = 0xC1,
    kSerial = 0xC2,
    kFid = 0xC3,
    kDescriptor = 0xC4,
    kDfName = 0xC5,
    kLifeCycle = 0xC6,
    kSecurity = 0xC7,
    kData = 0xC8,
    kPinRef = 0xC9,
    kPinValue = 0xCA,
    kPinMax = 0xCB,
    kPinLeft = 0xCC,
    kPuk = 0xCD,
    kPukMax = 0xCE,
    kPukLeft = 0xCF,
};

Bytes sha256(ByteView data) {
    Bytes out(kDigestSize);
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
        len != kDigestSize)
        throw Error(ErrorKind::Io, "SHA-256 failed");
    return out;
}

Error corrupt(const std::string& why) {
    return Error(ErrorKind::Corrupt, why);
}

tlv::Node uint_node(tlv::Tag tag, std::uint64_t v, std::size_t min_bytes = 1) {
    return tlv::primitive(tag, tlv::encode_uint(v, min_bytes));
}

tlv::Node file_node(const File& f) {
    std::vector<tlv::Node> c;
    c.push_back(uint_node(kFid, f.fid, 2));
    c.push_back(uint_node(kDescriptor, f.df ? kDescriptorDf : kDescriptorTransparentEf));
    if (!f.df_name.empty()) c.push_back(tlv::primitive(kDfName, f.df_name));
    c.push_back(uint_node(kLifeCycle, f.life_cycle));
    c.push_back(tlv::primitive(kSecurity, f.security.encode()));
    if (!f.df) c.push_back(tlv::primitive(kData, f.data));
    for (const auto& ch : f.children) c.push_back(file_node(*ch));
    return tlv::constructed(kFileNode, std::move(c));
}

const tlv::Node& need(const tlv::Node& n, tlv::Tag tag, const char* what) {
    const tlv::Node* c = n.child(tag);
    if (!c) throw corrupt(std::string("missing ") + what);
    return *c;
}

std::uint64_t need_uint(const tlv::Node& n, tlv::Tag tag, const char* what, std::size_t max) {
    try {
        return tlv::decode_uint(need(n, tag, what).value, max);
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::Corrupt) throw;
        throw corrupt(std::string("bad ") + what + ": " + e.what());
    }
}

std::unique_ptr<File> parse_file(const tlv::Node& n, File* parent, std::set<Bytes>& names) {
    auto f = std::make_unique<File>();
    f->parent = parent;
    f->fid = static_cast<std::uint16_t>(need_uint(n, kFid, "file id", 2));
    auto desc = need_uint(n, kDescriptor, "file descriptor", 1);
    if (desc != kDescriptorDf && desc != kDescriptorTransparentEf)
        throw corrupt("unknown file descriptor " + std::to_string(desc));
    f->df = desc == kDescriptorDf;
    f->life_cycle = static_cast<std::uint8_t>(need_uint(n, kLifeCycle, "life cycle", 1));
    try {
        f->security = SecurityAttributes::decode(need(n, kSecurity, "security").value);
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::Corrupt) throw;
        throw corrupt(e.what());
    }
    if (const tlv::Node* name = n.child(kDfName)) {
        if (!f->df || name->value.empty() || name->value.size() > 16) throw corrupt("bad DF name");
        if (!names.insert(name->value).second) throw corrupt("duplicate DF name");
        f->df_name = name->value;
    }
    if (f->df) {
        if (n.child(kData)) throw corrupt("DF with data");
        if (parent && f->depth() > kMaxDfDepth) throw corrupt("DFs nested too deep");
    } else {
        f->data = need(n, kData, "EF data").value;
        if (f->data.size() > kMaxEfSize) throw corrupt("EF larger than 32 KiB");
    }
    std::set<std::uint16_t> ids;
    for (const auto& c : n.children) {
        if (c.tag != kFileNode) continue;
        if (!f->df) throw corrupt("EF with children");
        auto child = parse_file(c, f.get(), names);
        if (child->fid == kMfFid || child->fid == 0x3FFF || child->fid == 0xFFFF)
            throw corrupt("reserved file id below the MF");
        if (!ids.insert(child->fid).second) throw corrupt("duplicate file id in a DF");
        f->children.push_back(std::move(child));
    }
    return f;
}

Pin parse_pin(const tlv::Node& n) {
    Pin p;
    p.reference = static_cast<std::uint8_t>(need_uint(n, kPinRef, "PIN reference", 1));
    if (p.reference == 0x00 || p.reference == 0xFF) throw corrupt("reserved PIN reference");
    const auto& v = need(n, kPinValue, "PIN value").value;
    if (v.empty() || v.size() > kMaxPinSize) throw corrupt("bad PIN length");
    p.value = secure_copy(v);
    p.max_tries = static_cast<std::uint8_t>(need_uint(n, kPinMax, "PIN max tries", 1));
    p.tries_left = static_cast<std::uint8_t>(need_uint(n, kPinLeft, "PIN tries left", 1));
    if (p.max_tries < 1 || p.max_tries > 15 || p.tries_left > p.max_tries)
        throw corrupt("bad PIN retry counter");
    if (const tlv::Node* puk = n.child(kPuk)) {
        if (puk->value.empty() || puk->value.size() > kMaxPinSize) throw corrupt("bad PUK length");
        p.puk = secure_copy(puk->value);
        p.puk_max_tries = static_cast<std::uint8_t>(need_uint(n, kPukMax, "PUK max tries", 1));
        p.puk_tries_left = static_cast<std::uint8_t>(need_uint(n, kPukLeft, "PUK tries left", 1));
        if (p.puk_max_tries < 1 || p.puk_max_tries > 15 || p.puk_tries_left > p.puk_max_tries)
            throw corrupt("bad PUK retry counter");
    }
    return p;
}

void put(Bytes& out, std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint64_t get(ByteView in, std::size_t off, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | in[off + static_cast<std::size_t>(i)];
    return v;
}

}  // namespace

File* File::child(std::uint16_t id) const {
    for (const auto& c : children)
        if (c->fid == id) return c.get();
    return nullptr;
}

std::size_t File::depth() const {
    std::size_t d = 0;
    for (const File* p = parent; p; p = p->parent) ++d;
    return d;
}

std::size_t File::footprint() const {
    std::size_t n = kFileOverhead + data.size();
    for (const auto& c : children) n += c->footprint();
    return n;
}

std::unique_ptr<File> File::clone(File* new_parent) const {
    auto f = std::make_unique<File>();
    f->fid = fid;
    f->df = df;
    f->df_name = df_name;
    f->life_cycle = life_cycle;
    f->security = security;
    f->data = data;
    f->parent = new_parent;
    for (const auto& c : children) f->children.push_back(c->clone(f.get()));
    return f;
}

CardImage CardImage::blank(std::size_t capacity) {
    CardImage img;
    img.capacity = capacity;
    img.serial = crypto::random(kSerialSize);
    img.mf = std::make_unique<File>();
    img.mf->fid = kMfFid;
    img.mf->df = true;
    img.mf->security = {Access::always(), Access::always(), Access::never()};
    return img;
}

CardImage CardImage::clone() const {
    CardImage img;
    img.capacity = capacity;
    img.serial = serial;
    img.mf = mf ? mf->clone(nullptr) : nullptr;
    img.pins = pins;
    return img;
}

std::size_t CardImage::used() const {
    return (mf ? mf->footprint() : 0) + pins.size() * kPinOverhead;
}

Bytes CardImage::serialize() const {
    std::vector<tlv::Node> c;
    c.push_back(uint_node(kCapacity, capacity, 4));
    c.push_back(tlv::primitive(kSerial, serial));
    c.push_back(file_node(*mf));
    for (const auto& [ref, p] : pins) {
        std::vector<tlv::Node> pc;
        pc.push_back(uint_node(kPinRef, p.reference));
        pc.push_back(tlv::primitive(kPinValue, p.value));
        pc.push_back(uint_node(kPinMax, p.max_tries));
        pc.push_back(uint_node(kPinLeft, p.tries_left));
        if (!p.puk.empty()) {
            pc.push_back(tlv::primitive(kPuk, p.puk));
            pc.push_back(uint_node(kPukMax, p.puk_max_tries));
            pc.push_back(uint_node(kPukLeft, p.puk_tries_left));
        }
        c.push_back(tlv::constructed(kPinNode, std::move(pc)));
    }
    Bytes body = tlv::constructed(kCard, std::move(c)).encode();
    Bytes out(kMagic, kMagic + sizeof kMagic);
    put(out, kImageVersion, 2);
    put(out, 0, 2);
    put(out, body.size(), 4);
    out.insert(out.end(), body.begin(), body.end());
    wipe(body);  // held PIN values
    Bytes digest = sha256(out);
    out.insert(out.end(), digest.begin(), digest.end());
    return out;
}

CardImage CardImage::deserialize(ByteView data) {
    if (data.size() < kHeaderSize + kDigestSize || std::memcmp(data.data(), kMagic, 8) != 0)
        throw corrupt("not a vscard-emu card image");
    auto version = get(data, 8, 2);
    if (version != kImageVersion)
        throw corrupt("image version " + std::to_string(version) +
                      " is not supported (this vscard-emu reads version " +
                      std::to_string(kImageVersion) + ")");
    if (get(data, 10, 2) != 0) throw corrupt("unknown feature flags");
    auto body_len = get(data, 12, 4);
    if (body_len != data.size() - kHeaderSize - kDigestSize)
        throw corrupt("truncated or extended (length mismatch)");
    ByteView covered = data.first(data.size() - kDigestSize);
    Bytes digest = sha256(covered);
    if (std::memcmp(digest.data(), data.data() + covered.size(), kDigestSize) != 0)
        throw corrupt("checksum mismatch");

    tlv::Node card;
    try {
        card = tlv::Node::parse(data.subspan(kHeaderSize, body_len),
                                {.allow_padding = false, .max_depth = kMaxDfDepth + 4});
    } catch (const Error& e) {
        throw corrupt(e.what());
    }
    if (card.tag != kCard) throw corrupt("no card object");
    CardImage img;
    img.capacity = need_uint(card, kCapacity, "capacity", 4);
    if (img.capacity < kMinCapacity || img.capacity > kMaxCapacity)
        throw corrupt("memory size out of range");
    img.serial = need(card, kSerial, "serial").value;
    if (img.serial.empty() || img.serial.size() > 16) throw corrupt("bad serial");
    std::set<Bytes> names;
    img.mf = parse_file(need(card, kFileNode, "MF"), nullptr, names);
    if (img.mf->fid != kMfFid || !img.mf->df) throw corrupt("the root is not the MF");
    for (const auto& c : card.children) {
        if (c.tag == kFileNode && &c != card.child(kFileNode)) throw corrupt("two roots");
        if (c.tag != kPinNode) continue;
        Pin p = parse_pin(c);
        if (img.pins.count(p.reference)) throw corrupt("duplicate PIN reference");
        img.pins.emplace(p.reference, std::move(p));
    }
    if (img.used() > img.capacity) throw corrupt("content exceeds the card memory");
    return img;
}

void save_image(const std::filesystem::path& path, const CardImage& image) {
    Bytes data = image.serialize();
    std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
    std::string tmpl = (dir / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    int fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0) throw system_error("cannot write card image " + path.string());
    std::string tmp = name.data();
    auto fail = [&](const std::string& what) {
        int err = errno;
        if (fd >= 0) ::close(fd);
        ::unlink(tmp.c_str());
        wipe(data);
        return system_error(what + " " + path.string(), err);
    };
    ::fchmod(fd, 0600);
    std::size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw fail("cannot write card image");
        off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) throw fail("cannot sync card image");
    if (::close(fd) != 0) {
        fd = -1;
        throw fail("cannot write card image");
    }
    fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw fail("cannot replace card image");
    wipe(data);
    // The rename itself is durable only once the directory is synced.
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

CardImage load_image(const std::filesystem::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw system_error("cannot open card image " + path.string());
    Bytes data;
    std::uint8_t buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            throw system_error("cannot read card image " + path.string(), err);
        }
        if (n == 0) break;
        data.insert(data.end(), buf, buf + n);
        if (data.size() > kMaxCapacity * 2 + 4096) {
            ::close(fd);
            throw corrupt("card image " + path.string() + " is damaged: far too large");
        }
    }
    ::close(fd);
    try {
        CardImage img = CardImage::deserialize(data);
        wipe(data);
        return img;
    } catch (const Error& e) {
        wipe(data);
        throw corrupt("card image " + path.string() + " is damaged: " + e.what() +
                      "; restore it from a copy or remove it to start with a blank card");
    }
}

}  // namespace vscard::card::emu
