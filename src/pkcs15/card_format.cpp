// pkcs15::format: a fresh PKCS#15 structure on a blank card, laid out as OpenSC's default
// profile does (3F00/5015 with ODF 5031, TokenInfo 5032, AODF 4401, PrKDF 4402, PuKDF 4403,
// CDF 4404, DODF 4405, SKDF 4406), so that OpenSC's tools read what vscard writes.
#include <algorithm>

#include "crypto.hpp"
#include "error.hpp"
#include "pkcs15/card_app.hpp"
#include "pkcs15/card_app_state.hpp"

namespace vscard::pkcs15 {
namespace {

using card::Access;
using card::SecurityAttributes;

constexpr std::uint16_t kAodfFid = 0x4401;
constexpr std::uint16_t kPrkdfFid = 0x4402;
constexpr std::uint16_t kPukdfFid = 0x4403;
constexpr std::uint16_t kCdfFid = 0x4404;
constexpr std::uint16_t kDodfFid = 0x4405;
constexpr std::uint16_t kSkdfFid = 0x4406;
constexpr std::size_t kSerialBytes = 8;
constexpr std::size_t kUnknownCapacity = 64 * 1024;
const Bytes kAppPath{0x3F, 0x00, 0x50, 0x15};

Path app_path_of(std::uint16_t fid) {
    Path p;
    p.value = kAppPath;
    p.value.push_back(static_cast<std::uint8_t>(fid >> 8));
    p.value.push_back(static_cast<std::uint8_t>(fid & 0xFF));
    return p;
}

void refuse_if_present(card::Iso7816& iso, ByteView path, const char* what) {
    bool present = true;
    try {
        iso.select_path(path);
    } catch (const Error& e) {
        if (e.kind() != ErrorKind::NotFound) throw;
        present = false;
    }
    if (present)
        throw Error(ErrorKind::Exists, std::string("the card is not blank: it already has ") +
                                           what + "; erase it before formatting");
}

PinObject user_pin_object(const FormatOptions& o) {
    PinObject pin;
    pin.common.label = "User PIN";
    pin.common.flags = kObjectPrivate | kObjectModifiable;
    pin.auth_id = {0x01};
    pin.pin_flags = kPinCaseSensitive | kPinLocal | kPinInitialized | kPinNeedsPadding;
    pin.pin_type = static_cast<std::int64_t>(PinType::Utf8);
    pin.min_length = static_cast<std::int64_t>(o.pin_min_length);
    pin.stored_length = static_cast<std::int64_t>(o.pin_max_length);
    pin.max_length = static_cast<std::int64_t>(o.pin_max_length);
    pin.reference = o.pin_reference;
    pin.pad_char = 0xFF;
    Path p;
    p.value = kAppPath;  // OpenSC selects the PIN's DF before VERIFY
    pin.path = p;
    return pin;
}

card::PinFormat format_of(const FormatOptions& o) {
    card::PinFormat f;
    f.type = card::PinFormat::Type::Utf8;
    f.min_length = o.pin_min_length;
    f.max_length = o.pin_max_length;
    f.stored_length = o.pin_max_length;
    f.pad_char = 0xFF;
    f.needs_padding = true;
    return f;
}

}  // namespace

CardApp format(card::Transmitter& link, card::Personalizer& personalizer, std::string_view label,
               ByteView pin, const FormatOptions& o) {
    if (o.pin_min_length < 1 || o.pin_max_length < o.pin_min_length || o.pin_max_length > 64)
        throw Error(ErrorKind::Invalid, "PIN lengths must satisfy 1 <= min <= max <= 64");
    if (label.size() > kMaxLabelBytes)
        throw Error(ErrorKind::NameTooLong,
                    "the card label has at most " + std::to_string(kMaxLabelBytes) + " bytes");
    const card::PinFormat fmt = format_of(o);
    const SecureBytes pin_value = card::encode_pin(pin, fmt);
    const SecureBytes puk_value = o.puk.empty() ? SecureBytes{} : card::encode_pin(o.puk, fmt);

    card::Iso7816 iso(link, o.caps, o.log);
    refuse_if_present(iso, Bytes{0x3F, 0x00, 0x2F, 0x00}, "an EF.DIR (3F00/2F00)");
    refuse_if_present(iso, kAppPath, "a DF 3F00/5015");
    const auto memory = personalizer.memory(iso);
    const std::size_t capacity = memory ? memory->available : kUnknownCapacity;

    // The PIN first: the files below are created under it.
    iso.select_mf();
    personalizer.set_pin(iso, o.pin_reference, pin_value, puk_value, o.pin_tries);
    iso.verify(o.pin_reference, pin_value);

    const Access pin_ac = Access::pin(o.pin_reference);
    const Access write = o.pin_for_writes ? pin_ac : Access::always();
    const SecurityAttributes dir_access{Access::always(), write, pin_ac};

    // Room: the DODF grows into a larger file when full, the other lists rarely change.
    const std::size_t dodf_size =
        o.dodf_size ? o.dodf_size : std::clamp<std::size_t>(capacity / 32, 128, 8192);
    const std::size_t list_size = std::clamp<std::size_t>(capacity / 128, 64, 2048);

    TokenInfo token;
    token.serial_number = crypto::random(kSerialBytes);
    token.manufacturer_id = "vscard";
    if (!label.empty()) token.label = std::string(label);
    Entries<PinObject> aodf{user_pin_object(o)};
    Entries<OdfEntry> odf;
    for (auto [type, fid] : {std::pair{DfType::PrKDF, kPrkdfFid},
                             {DfType::PuKDF, kPukdfFid},
                             {DfType::CDF, kCdfFid},
                             {DfType::DODF, kDodfFid},
                             {DfType::SKDF, kSkdfFid},
                             {DfType::AODF, kAodfFid}})
        odf.emplace_back(OdfEntry{type, app_path_of(fid), {}});
    DirRecord record;
    record.aid = kPkcs15Aid;
    record.label = o.app_label;
    record.path = kAppPath;

    auto put = [&](std::uint16_t fid, const Bytes& content, std::size_t size,
                   SecurityAttributes access) {
        card::FileSpec spec;
        spec.fid = fid;
        spec.size = std::max(size, content.size());
        spec.access = access;
        iso.create_file(spec);  // current afterwards; its DF stays the current DF
        if (!content.empty()) iso.update_binary(0, content);
    };

    iso.select_mf();
    card::FileSpec app;
    app.fid = kAppFid;
    app.df = true;
    app.df_name = kPkcs15Aid;
    app.access = {Access::always(), write, pin_ac};  // DF: -, CREATE inside, DELETE
    iso.create_file(app);
    const Bytes aodf_bytes = serialize_aodf(aodf);
    put(kAodfFid, aodf_bytes, aodf_bytes.size() + 64, {Access::always(), pin_ac, pin_ac});
    for (std::uint16_t fid : {kPrkdfFid, kPukdfFid, kCdfFid, kSkdfFid})
        put(fid, {}, list_size, dir_access);
    put(kDodfFid, {}, dodf_size, dir_access);
    put(kTokenInfoFid, serialize_token_info(token), 0, {Access::always(), pin_ac, pin_ac});
    const Bytes odf_bytes = serialize_odf(odf);
    put(kOdfFid, odf_bytes, odf_bytes.size() + 32, dir_access);
    // ODF and EF.DIR last: a format cut short leaves no application that seems complete.
    iso.select_mf();
    put(kDirFid, serialize_dir({record}), 0, {Access::always(), pin_ac, pin_ac});

    OpenOptions open;
    open.caps = iso.caps();
    open.log = o.log;
    return CardApp::open(link, open);
}

}  // namespace vscard::pkcs15
