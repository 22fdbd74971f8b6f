// pkcs15::CardApp: locating the application, reading its directory structure once, reading
// objects, the user PIN. Writes are in card_app_write.cpp, formatting in card_format.cpp.
#include "pkcs15/card_app.hpp"

#include <openssl/crypto.h>

#include <algorithm>

#include "error.hpp"
#include "pkcs15/card_app_state.hpp"
#include "pkcs15/der.hpp"

namespace vscard::pkcs15 {
namespace {

Bytes fid_bytes(std::uint16_t fid) {
    return {static_cast<std::uint8_t>(fid >> 8), static_cast<std::uint8_t>(fid & 0xFF)};
}

Bytes concat(ByteView a, ByteView b) {
    Bytes out(a.begin(), a.end());
    out.insert(out.end(), b.begin(), b.end());
    return out;
}

bool starts_with_mf(ByteView p) {
    return p.size() >= 2 && p[0] == 0x3F && p[1] == 0x00;
}

// Size of the DER element at the start of DATA, 0 when its header is malformed, nullopt when
// DATA ends before the element does.
std::optional<std::size_t> element_size(ByteView data) {
    std::size_t p = 1;
    if ((data[0] & 0x1F) == 0x1F) {
        while (p < data.size() && (data[p] & 0x80)) ++p;
        ++p;
    }
    if (p >= data.size()) return std::nullopt;
    std::size_t len = data[p++];
    if (len & 0x80) {
        const std::size_t n = len & 0x7F;
        if (n == 0 || n > 4) return 0;
        if (p + n > data.size()) return std::nullopt;
        len = 0;
        for (std::size_t i = 0; i < n; ++i) len = len << 8 | data[p++];
    }
    if (p + len > data.size()) return std::nullopt;
    return p + len;
}

// Whether DATA (the start of a directory file) already holds every entry: a padding byte
// where the next entry would start, or a malformed header (the parser will say so).
bool entries_complete(ByteView data) {
    std::size_t p = 0;
    while (p < data.size()) {
        if (der::is_padding(data[p])) return true;
        auto n = element_size(data.subspan(p));
        if (!n) return false;
        if (*n == 0) return true;
        p += *n;
    }
    return false;
}

template <typename T>
std::size_t entries_size(const Entries<T>& entries) {
    std::size_t n = 0;
    for (const auto& e : entries) {
        if (const T* t = std::get_if<T>(&e))
            n += t->der.size();
        else
            n += std::get<UnknownEntry>(e).der.size();
    }
    return n;
}

// Reads the directory file F (its path set) and fills its size, access and content; only as
// much of a large, mostly empty file as holds entries.
void read_dir_file(CardApp::State& s, DirFile& f) {
    card::FileInfo info = s.select(f.path, true);
    if (info.fcp) f.access = info.fcp->security;
    Bytes data;
    if (f.path.index || f.path.length) {  // a range of a shared file: read, never rewritten
        f.writable = false;
        data = s.iso.read_binary(static_cast<std::size_t>(f.path.index.value_or(0)),
                                 static_cast<std::size_t>(f.path.length.value_or(0)));
        f.ef_size = data.size();
    } else if (auto size = info.size()) {
        f.ef_size = *size;
        while (data.size() < *size && !entries_complete(data)) {
            Bytes part =
                s.iso.read_binary(data.size(), std::min(s.iso.read_chunk(), *size - data.size()));
            if (part.empty()) break;
            data.insert(data.end(), part.begin(), part.end());
        }
    } else {
        data = s.iso.read_file(std::nullopt);
        f.ef_size = data.size();
    }
    f.content = std::move(data);
}

// Keeps only the entries' bytes of F's content, parsing a DODF into F.data.
template <typename T>
void trim(DirFile& f, const Entries<T>& entries) {
    f.content.resize(entries_size(entries));
}

void parse_dir_file(DirFile& f) {
    switch (f.type) {
        case DfType::DODF:
            f.data = parse_dodf(f.content);
            trim(f, f.data);
            break;
        case DfType::AODF:
            trim(f, parse_aodf(f.content));
            break;
        case DfType::CDF:
        case DfType::TrustedCDF:
        case DfType::UsefulCDF:
            trim(f, parse_cdf(f.content));
            break;
        case DfType::PrKDF:
            trim(f, parse_prkdf(f.content));
            break;
        case DfType::PuKDF:
        case DfType::TrustedPuKDF:
            trim(f, parse_pukdf(f.content));
            break;
        case DfType::SKDF:
            trim(f, parse_skdf(f.content));
            break;
    }
}

}  // namespace

void reread_dir(CardApp::State& s, DirFile& f) {
    read_dir_file(s, f);
    parse_dir_file(f);
}

namespace {

bool tolerable(const Error& e) {
    return e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::Invalid ||
           e.kind() == ErrorKind::NotSupported;
}

// The path EF.DIR gives the PKCS#15 application, if any (empty when it names none).
std::optional<Bytes> app_path_from_dir(CardApp::State& s) {
    try {
        card::FileInfo info = s.iso.select_path(Bytes{0x3F, 0x00, 0x2F, 0x00}, true);
        Bytes dir = s.iso.read_file(info.size());
        for (const auto& e : parse_dir(dir)) {
            const auto* r = std::get_if<DirRecord>(&e);
            if (!r || r->aid != kPkcs15Aid) continue;
            if (r->path.empty()) return Bytes{};
            return starts_with_mf(r->path) ? r->path : concat(fid_bytes(card::kMfFid), r->path);
        }
    } catch (const Error& e) {
        if (!tolerable(e) && e.kind() != ErrorKind::Corrupt) throw;
    }
    return std::nullopt;
}

// Finds the application and reads its ODF: EF.DIR's path, else the AID, else 3F00/5015.
void locate(CardApp::State& s) {
    const Bytes fallback{0x3F, 0x00, 0x50, 0x15};
    std::optional<Bytes> from_dir = app_path_from_dir(s);
    std::vector<std::optional<Bytes>> candidates;  // nullopt: by AID
    if (from_dir && !from_dir->empty()) candidates.emplace_back(*from_dir);
    if (s.iso.caps().aid_select != false) candidates.emplace_back(std::nullopt);
    if (!from_dir || *from_dir != fallback) candidates.emplace_back(fallback);
    for (const auto& c : candidates) {
        try {
            if (c) {
                s.app_path = *c;
            } else {
                s.app_path.clear();
                try {
                    s.iso.select_aid(kPkcs15Aid);
                } catch (const Error& e) {
                    if (!tolerable(e)) throw;
                    s.iso.caps().aid_select = false;
                    continue;
                }
            }
            s.odf.path = app_file_path(s, kOdfFid);
            read_dir_file(s, s.odf);
            s.odf_entries = parse_odf(s.odf.content);
            s.odf.content.resize(entries_size(s.odf_entries));
            return;
        } catch (const Error& e) {
            if (!tolerable(e)) throw;
        }
    }
    throw Error(ErrorKind::NotFound,
                "the card has no PKCS#15 application (no ODF under the path of EF.DIR, the "
                "PKCS#15 AID or 3F00/5015); format it with `vscardctl format`");
}

}  // namespace

// ---- State helpers ---------------------------------------------------------------------------

std::string path_key(const Path& p) {
    std::string k = card::to_hex(p.aid, "") + ":" + p.to_hex();
    if (p.index) k += ":" + std::to_string(*p.index);
    if (p.length) k += "+" + std::to_string(*p.length);
    return k;
}

Area area_of(const DataObject& d) {
    if (d.is_vscard_internal()) return Area::Vscard;
    return d.common.is_private() ? Area::Private : Area::Public;
}

const char* area_name(Area a) {
    switch (a) {
        case Area::Public:
            return "public";
        case Area::Private:
            return "private";
        case Area::Vscard:
            return "vscard";
    }
    return "?";
}

Path app_file_path(const CardApp::State& s, std::uint16_t fid) {
    Path p;
    p.value = concat(s.app_path, fid_bytes(fid));
    return p;
}

Bytes CardApp::State::absolute(const Path& p) const {
    if (!p.aid.empty()) return {};
    if (starts_with_mf(p.value)) return p.value;
    if (app_path.empty()) return {};
    return concat(app_path, p.value);
}

card::FileInfo CardApp::State::select(const Path& p, bool want_fcp) {
    Bytes abs = absolute(p);
    if (!abs.empty()) return iso.select_path(abs, want_fcp);
    card::FileInfo f =
        iso.select_aid(p.aid.empty() ? kPkcs15Aid : p.aid, want_fcp && p.value.empty());
    if (p.value.empty()) return f;
    return iso.select_path(p.value, want_fcp);
}

void CardApp::State::check_usable() const {
    if (stale)
        throw Error(ErrorKind::Io,
                    "the card was removed or reset in the middle of a write; its state is "
                    "unknown until it is inserted again");
}

// ---- open and accessors ----------------------------------------------------------------------

CardApp::CardApp(std::unique_ptr<State> state) : s_(std::move(state)) {}
CardApp::CardApp(CardApp&&) noexcept = default;
CardApp& CardApp::operator=(CardApp&&) noexcept = default;
CardApp::~CardApp() = default;

CardApp CardApp::open(card::Transmitter& link, OpenOptions options) {
    auto s = std::make_unique<State>(link, options);
    locate(*s);
    DirFile token;
    token.path = app_file_path(*s, kTokenInfoFid);
    try {
        read_dir_file(*s, token);
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::NotFound) throw;
        throw Error(ErrorKind::Corrupt, "the card's PKCS#15 application has no TokenInfo (" +
                                            card::path_text(s->absolute(token.path)) + ")");
    }
    s->token = parse_token_info(token.content);
    for (std::size_t i = 0; i < s->odf_entries.size(); ++i) {
        const auto* e = std::get_if<OdfEntry>(&s->odf_entries[i]);
        if (!e) continue;
        DirFile f;
        f.type = e->type;
        f.odf_index = i;
        f.path = e->path;
        try {
            read_dir_file(*s, f);
            parse_dir_file(f);
        } catch (const Error& err) {
            if (err.kind() != ErrorKind::NotFound) throw;
            f.writable = false;  // named by the ODF but absent: nothing to list
            f.content.clear();
        }
        s->dirs.push_back(std::move(f));
    }
    return CardApp(std::move(s));
}

const TokenInfo& CardApp::token_info() const {
    return s_->token;
}
std::string CardApp::serial() const {
    return s_->token.serial_hex();
}
std::string CardApp::label() const {
    return s_->token.label.value_or("");
}
Bytes CardApp::app_path() const {
    return s_->app_path;
}
const card::CardCaps& CardApp::caps() const {
    return s_->iso.caps();
}
std::uint64_t CardApp::apdu_count() const {
    return s_->log ? s_->log->commands() : 0;
}
card::Iso7816& CardApp::iso() {
    return s_->iso;
}

namespace {

std::optional<std::size_t> known_size(const CardApp::State& s, const DataObject& d) {
    if (d.path.length) return static_cast<std::size_t>(*d.path.length);
    auto it = s.sizes.find(path_key(d.path));
    if (it != s.sizes.end()) return it->second;
    return std::nullopt;
}

template <typename T, typename Parse>
std::vector<T> collect(const CardApp::State& s, std::initializer_list<DfType> types, Parse parse) {
    std::vector<T> out;
    for (const auto& f : s.dirs) {
        if (std::find(types.begin(), types.end(), f.type) == types.end()) continue;
        for (auto& t : objects_of(parse(ByteView(f.content)))) out.push_back(std::move(t));
    }
    return out;
}

}  // namespace

std::vector<DataFile> CardApp::list(Area area) const {
    std::vector<DataFile> out;
    for (const auto& f : s_->dirs)
        for (const auto& e : f.data)
            if (const auto* d = std::get_if<DataObject>(&e); d && area_of(*d) == area)
                out.push_back(DataFile{area, d->common.label, known_size(*s_, *d), *d});
    return out;
}

std::optional<DataFile> CardApp::find(Area area, std::string_view label) const {
    for (const auto& f : s_->dirs)
        for (const auto& e : f.data)
            if (const auto* d = std::get_if<DataObject>(&e);
                d && area_of(*d) == area && d->common.label == label)
                return DataFile{area, d->common.label, known_size(*s_, *d), *d};
    return std::nullopt;
}

std::vector<PinObject> CardApp::pins() const {
    return collect<PinObject>(*s_, {DfType::AODF}, parse_aodf);
}
std::vector<CertObject> CardApp::certificates() const {
    return collect<CertObject>(*s_, {DfType::CDF, DfType::TrustedCDF, DfType::UsefulCDF},
                               parse_cdf);
}
std::vector<KeyObject> CardApp::public_keys() const {
    return collect<KeyObject>(*s_, {DfType::PuKDF, DfType::TrustedPuKDF}, parse_pukdf);
}
std::vector<KeyObject> CardApp::private_keys() const {
    return collect<KeyObject>(*s_, {DfType::PrKDF}, parse_prkdf);
}
std::vector<KeyObject> CardApp::secret_keys() const {
    return collect<KeyObject>(*s_, {DfType::SKDF}, parse_skdf);
}

// ---- reading objects -------------------------------------------------------------------------

namespace {

DataFile must_find(const CardApp& app, Area area, std::string_view label) {
    auto f = app.find(area, label);
    if (!f)
        throw Error(ErrorKind::NotFound, "no object '" + std::string(label) + "' in the " +
                                             area_name(area) + " area of the card");
    return *f;
}

[[noreturn]] void rethrow_about(const Error& e, std::string_view label) {
    throw Error(e.kind(), "'" + std::string(label) + "' on the card: " + e.what());
}

}  // namespace

WipedBytes CardApp::read(Area area, std::string_view label) {
    s_->check_usable();
    const DataFile f = must_find(*this, area, label);
    try {
        return s_->read_cached(f.object.path);
    } catch (const Error& e) {
        rethrow_about(e, label);
    }
}

WipedBytes CardApp::read_path(const Path& path) {
    s_->check_usable();
    return s_->read_cached(path);
}

WipedBytes CardApp::State::read_cached(const Path& p) {
    const std::string key = path_key(p);
    if (auto it = content.find(key); it != content.end()) return it->second;
    Bytes data;
    card::FileInfo info = select(p, !p.length);
    if (p.length)
        data = iso.read_binary(static_cast<std::size_t>(p.index.value_or(0)),
                               static_cast<std::size_t>(*p.length));
    else
        data = iso.read_file(info.size());
    WipedBytes out(data.begin(), data.end());
    OPENSSL_cleanse(data.data(), data.size());
    sizes[key] = out.size();
    content[key] = out;
    return out;
}

std::size_t CardApp::size(Area area, std::string_view label) {
    s_->check_usable();
    const DataFile f = must_find(*this, area, label);
    if (f.size) return *f.size;
    try {
        card::FileInfo info = s_->select(f.object.path, true);
        if (auto n = info.size()) {
            s_->sizes[path_key(f.object.path)] = *n;
            return *n;
        }
    } catch (const Error& e) {
        rethrow_about(e, label);
    }
    return read(area, label).size();  // no FCP: the size is what reading gives
}

void CardApp::drop_content(std::optional<Area> area) {
    if (!area) {
        s_->content.clear();
        return;
    }
    for (const auto& f : list(*area)) s_->content.erase(path_key(f.object.path));
}

// ---- the user PIN ----------------------------------------------------------------------------

std::optional<PinObject> CardApp::user_pin() const {
    for (const auto& p : pins())
        if (!(p.pin_flags & (kPinSoPin | kPinUnblockingPin))) return p;
    return std::nullopt;
}

namespace {

PinObject must_user_pin(const CardApp& app) {
    auto p = app.user_pin();
    if (!p || !p->reference)
        throw Error(ErrorKind::NotSupported,
                    "the card's PKCS#15 application declares no user PIN (AODF)");
    return *p;
}

// Local PINs live in a DF (OpenSC selects it first too).
void select_pin_df(CardApp::State& s, const PinObject& pin) {
    if ((pin.pin_flags & kPinLocal) && pin.path && !pin.path->value.empty())
        s.select(*pin.path, false);
}

std::uint8_t reference_of(const PinObject& pin) {
    return static_cast<std::uint8_t>(*pin.reference & 0xFF);
}

}  // namespace

card::PinFormat CardApp::pin_format() const {
    const PinObject pin = must_user_pin(*this);
    card::PinFormat f;
    f.type = pin.pin_type >= 0 && pin.pin_type <= 4
                 ? static_cast<card::PinFormat::Type>(pin.pin_type)
                 : card::PinFormat::Type::Utf8;
    f.min_length = static_cast<std::size_t>(std::max<std::int64_t>(0, pin.min_length));
    if (pin.max_length) f.max_length = static_cast<std::size_t>(*pin.max_length);
    f.stored_length = static_cast<std::size_t>(std::max<std::int64_t>(0, pin.stored_length));
    f.pad_char = pin.pad_char.value_or(0x00);
    f.needs_padding = (pin.pin_flags & kPinNeedsPadding) != 0;
    return f;
}

card::PinStatus CardApp::pin_status() {
    s_->check_usable();
    const PinObject pin = must_user_pin(*this);
    select_pin_df(*s_, pin);
    return s_->iso.pin_status(reference_of(pin));
}

void CardApp::verify_pin(ByteView pin) {
    s_->check_usable();
    const PinObject p = must_user_pin(*this);
    SecureBytes encoded = card::encode_pin(pin, pin_format());
    select_pin_df(*s_, p);
    s_->iso.verify(reference_of(p), encoded);
}

void CardApp::change_pin(ByteView old_pin, ByteView new_pin) {
    s_->check_usable();
    const PinObject p = must_user_pin(*this);
    const card::PinFormat f = pin_format();
    SecureBytes a = card::encode_pin(old_pin, f), b = card::encode_pin(new_pin, f);
    select_pin_df(*s_, p);
    s_->iso.change_reference_data(reference_of(p), a, b);
}

bool CardApp::directory_unchanged() {
    s_->check_usable();
    auto same = [&](const DirFile& f) {
        if (!f.writable) return true;  // vscard never rewrites those, nor do others' writes
        s_->select(f.path, false);
        // The entries as read, and the byte behind them: still padding unless an entry came.
        const std::size_t want = std::min(f.ef_size, f.content.size() + 1);
        Bytes now;
        while (now.size() < want) {
            Bytes part =
                s_->iso.read_binary(now.size(), std::min(s_->iso.read_chunk(), want - now.size()));
            if (part.empty()) break;
            now.insert(now.end(), part.begin(), part.end());
        }
        if (now.size() < f.content.size() ||
            !std::equal(f.content.begin(), f.content.end(), now.begin()))
            return false;
        return now.size() == f.content.size() || der::is_padding(now[f.content.size()]);
    };
    if (!same(s_->odf)) return false;
    for (const auto& f : s_->dirs)
        if (f.type == DfType::DODF && !same(f)) return false;
    return true;
}

void CardApp::logout() {
    s_->check_usable();
    const PinObject p = must_user_pin(*this);
    s_->iso.logout(reference_of(p));
    drop_content(Area::Private);
    drop_content(Area::Vscard);
}

}  // namespace vscard::pkcs15
