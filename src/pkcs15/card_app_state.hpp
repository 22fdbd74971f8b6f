#pragma once
// Internal state of pkcs15::CardApp shared by card_app.cpp (open, read, PIN),
// card_app_write.cpp (object writes, directory file commits) and card_format.cpp.
#include <map>
#include <optional>
#include <set>
#include <string>

#include "card/iso7816.hpp"
#include "error.hpp"
#include "pkcs15/card_app.hpp"

namespace vscard::pkcs15 {

inline constexpr std::uint16_t kDirFid = 0x2F00;
inline constexpr std::uint16_t kAppFid = 0x5015;
inline constexpr std::uint16_t kOdfFid = 0x5031;
inline constexpr std::uint16_t kTokenInfoFid = 0x5032;
// FIDs vscard gives new files: data objects, and directory files that outgrew theirs.
// Unreferenced files found on these FIDs are leftovers of an interrupted write.
inline constexpr std::uint16_t kFirstDataFid = 0x6000;
inline constexpr std::uint16_t kLastDataFid = 0x7FFF;
inline constexpr std::uint16_t kFirstDirFid = 0x4410;
inline constexpr std::uint16_t kLastDirFid = 0x44FF;
// Key files and their public key files: a range of their own, because only key writes
// (which read the PrKDF and PuKDF again first) may take a FID there for a leftover.
inline constexpr std::uint16_t kFirstKeyFid = 0x4600;
inline constexpr std::uint16_t kLastKeyFid = 0x47FF;

// One directory file named by the ODF (or the ODF itself).
struct DirFile {
    DfType type = DfType::DODF;
    std::size_t odf_index = 0;                       // its entry in the ODF
    Path path;                                       // as the ODF gives it
    std::size_t ef_size = 0;                         // bytes of its EF
    Bytes content;                                   // its entries, up to the first padding byte
    std::optional<card::SecurityAttributes> access;  // from its FCP when the card gave one
    bool writable = true;      // false for a range inside a shared file (path index/length)
    Entries<DataObject> data;  // DODF only: the parsed entries
};

struct CardApp::State {
    State(card::Transmitter& link, const OpenOptions& o) : iso(link, o.caps, o.log), log(o.log) {}

    card::Iso7816 iso;
    card::ApduLog* log;
    Bytes app_path;  // absolute (3F00 ...), or empty: the application is selected by AID
    bool stale = false;
    DirFile odf;
    Entries<OdfEntry> odf_entries;
    TokenInfo token;
    std::vector<DirFile> dirs;                  // in ODF order
    std::map<std::string, WipedBytes> content;  // by path_key
    std::map<std::string, std::size_t> sizes;   // by path_key

    // Absolute card path of a PKCS#15 path; empty when only reachable through the AID.
    Bytes absolute(const Path& p) const;
    // SELECT of the file at P (through the AID when needed).
    card::FileInfo select(const Path& p, bool want_fcp);
    // The content of the file (or range of one) at P: read once, then from the cache.
    WipedBytes read_cached(const Path& p);
    void check_usable() const;
};

std::string path_key(const Path& p);
Area area_of(const DataObject& d);
// A path for FID beside the application's other files: absolute when the application's
// path is known, else relative to it.
Path app_file_path(const CardApp::State& s, std::uint16_t fid);

// Writes NEXT (entries, no padding) as the new content of F, keeping the card consistent at
// every APDU (see card_app.hpp). A DODF may move into a new file; the ODF never moves
// (NoSpace when it cannot take the change in place).
void commit_dir(CardApp::State& s, DirFile& f, const Bytes& next);
// The FID a path ends with (0 for a path shorter than one).
std::uint16_t last_fid(const Bytes& path);
// Every FID referenced anywhere in the application (to pick unused ones).
std::set<std::uint16_t> used_fids(const CardApp::State& s);
// CREATE FILE of SPEC in the application DF with a free FID from [FIRST, LAST]; an
// unreferenced file on that FID is a leftover and is deleted first. Returns the FID; the
// new file is the current file.
// ALSO_TAKEN: FIDs of new files nothing references yet, which are no leftovers.
std::uint16_t create_in_app(CardApp::State& s, card::FileSpec spec, std::uint16_t first,
                            std::uint16_t last, const std::set<std::uint16_t>& also_taken = {});
// Runs a write, marking the model stale when the card went away in the middle of it.
template <typename Fn>
void guarded(CardApp::State& s, Fn fn) {
    s.check_usable();
    try {
        fn();
    } catch (const Error& e) {
        if (e.kind() == ErrorKind::Io) s.stale = true;
        throw;
    }
}
// Invalid for an empty label, NameTooLong beyond kMaxLabelBytes.
void check_label(std::string_view label);
// The user PIN, NotSupported when the card has none.
const PinObject& user_pin_of(const std::optional<PinObject>& pin);
// Who may change the entries of DIR (and the files they name): as DIR's FCP says when the
// card told, else the PIN.
card::Access write_access(const DirFile& dir, const std::optional<PinObject>& pin);
// The directory file of TYPE new entries go into: the first one vscard can write; one is
// created (and added to the ODF) when the card has none.
std::size_t writable_dir(CardApp::State& s, DfType type, const std::optional<PinObject>& pin);
// Reads directory file F again (its entries as on the card now).
void reread_dir(CardApp::State& s, DirFile& f);
// Forgets what the model cached of the file at P and deletes it (quietly, as below).
void forget_file(CardApp::State& s, const Path& p);
// Selects and deletes the file at P; errors other than Io are ignored (a leftover file only
// costs space and is reclaimed later).
void delete_quietly(CardApp::State& s, const Path& p);

}  // namespace vscard::pkcs15
