#pragma once
// Internal state of pkcs15::CardApp shared by card_app.cpp (open, read, PIN),
// card_app_write.cpp (object writes, directory file commits) and card_format.cpp.
#include <map>
#include <optional>
#include <set>
#include <string>

#include "card/iso7816.hpp"
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
// Every FID referenced anywhere in the application (to pick unused ones).
std::set<std::uint16_t> used_fids(const CardApp::State& s);
// CREATE FILE of SPEC in the application DF with a free FID from [FIRST, LAST]; an
// unreferenced file on that FID is a leftover and is deleted first. Returns the FID; the
// new file is the current file.
std::uint16_t create_in_app(CardApp::State& s, card::FileSpec spec, std::uint16_t first,
                            std::uint16_t last);
// Selects and deletes the file at P; errors other than Io are ignored (a leftover file only
// costs space and is reclaimed later).
void delete_quietly(CardApp::State& s, const Path& p);

}  // namespace vscard::pkcs15
