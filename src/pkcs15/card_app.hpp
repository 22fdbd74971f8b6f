#pragma once
// The PKCS#15 application on an ISO 7816-4 file-system card (DESIGN §5), over any
// card::Transmitter: locating it, reading its directory structure once into a cached model,
// data objects as files (list, read, write, rename, remove, mkdir), the user PIN, and
// formatting a blank card.
//
// Locating the application: EF.DIR (3F00/2F00) names the PKCS#15 application and, normally,
// its path, which is used as is (paths from the MF work on every card and cost no extra
// SELECT). Without a path there, the application is selected by its AID; when that fails
// too (or there is no EF.DIR), the default path 3F00/5015 is tried.
//
// Caching: open() reads EF.DIR, ODF, TokenInfo and every directory file of the ODF (AODF,
// DODF, CDF, PuKDF, PrKDF, SKDF) once; listing then sends no APDU. Object content is read
// on first use and kept until the CardApp goes away (drop_content() forgets it, e.g. when
// the private area is locked). The model is dropped with the CardApp on removal or reset.
//
// Write ordering (a card can be pulled out between any two APDUs; every APDU is applied by
// the card whole or not at all):
//   - new content always goes into a NEW elementary file (CREATE FILE, UPDATE BINARY), and
//     only then does the DODF point at it; an overwrite switches the DODF entry to the new
//     file and deletes the old file last. The DODF never names a missing or partial file,
//     and a failed write leaves the previous content intact.
//   - removal: the DODF entry goes first, the file after.
//   - the DODF itself changes in one UPDATE BINARY when the changed bytes fit one APDU, or
//     by appending behind its last entry with the first byte of the new entry written last
//     (until then the old entries end where they ended). Any other change, or a DODF that
//     outgrows its file, is written into a new, larger DODF file which the ODF is then
//     switched to (a change of two bytes, one APDU); the old DODF file is deleted last.
//   - files left behind by an interrupted write (unreferenced files in vscard's FID ranges)
//     are reclaimed when their FID comes up again for a new file.
// After an Io error during a write the card's state is unknown to the model: the CardApp
// then refuses further work (Io) until it is opened again.
//
// Not thread-safe: one caller at a time (the PC/SC layer holds its transaction around calls).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "card/apdu.hpp"
#include "card/iso7816.hpp"
#include "card/personalize.hpp"
#include "pkcs15/pkcs15.hpp"
#include "secure_bytes.hpp"

namespace vscard::pkcs15 {

// The areas of DESIGN §1 that data objects make up. Vscard: private objects of application
// "vscard" (key envelopes, the family key), never listed among the user's files.
enum class Area { Public, Private, Vscard };
const char* area_name(Area area);

// A data object as a file of an area.
struct DataFile {
    Area area = Area::Public;
    std::string label;                // path below the area: "dir/sub/file"; "dir/" a folder
    std::optional<std::size_t> size;  // known without an APDU (nullopt: size() finds out)
    DataObject object;                // the DODF entry as on the card

    bool is_folder() const { return !label.empty() && label.back() == '/'; }
};

struct OpenOptions {
    card::CardCaps caps;           // e.g. card::caps_from_atr(atr); learned further on use
    card::ApduLog* log = nullptr;  // counts (and optionally logs) every APDU
};

// Largest object content: READ/UPDATE BINARY offsets have 15 bits.
inline constexpr std::size_t kMaxObjectSize = card::kMaxOffset + 1;

class CardApp {
public:
    // Locates the application and reads the directory structure. Error(NotFound) when the card
    // has no PKCS#15 application; Corrupt when a directory file is malformed; Io on removal.
    static CardApp open(card::Transmitter& link, OpenOptions options = {});

    CardApp(CardApp&&) noexcept;
    CardApp& operator=(CardApp&&) noexcept;
    ~CardApp();

    // ---- identity (cached) ----
    const TokenInfo& token_info() const;
    std::string serial() const;  // TokenInfo serial as OpenSC shows it (lowercase hex)
    std::string label() const;   // token label, "" when none
    Bytes app_path() const;      // absolute path of the application DF; empty: by AID only
    const card::CardCaps& caps() const;
    // APDUs sent so far through OPTIONS.log (0 without a log).
    std::uint64_t apdu_count() const;
    // Direct access for card operations this class does not wrap (e.g. Personalizer::memory).
    card::Iso7816& iso();

    // ---- data objects (listing sends no APDU) ----
    std::vector<DataFile> list(Area area) const;
    std::optional<DataFile> find(Area area, std::string_view label) const;
    // The content size; for an object that records none, one SELECT (or a read) the first time.
    std::size_t size(Area area, std::string_view label);
    // The content (NotFound when there is no such object; Locked while the PIN is needed).
    // Read once, then served from the cache.
    WipedBytes read(Area area, std::string_view label);
    // Creates the object or replaces its content (see the write ordering above). NoSpace when
    // the card is full, TooBig beyond kMaxObjectSize, NameTooLong beyond kMaxLabelBytes,
    // Locked when the PIN must be verified first; in each case the previous content stays.
    void write(Area area, std::string_view label, ByteView content);
    // Renames FROM to TO within AREA, replacing TO if it exists (a DODF change only, plus
    // deleting the replaced object's file). One object only: a folder marker ("dir/") renames
    // to a folder marker without its content; rename_prefix() moves a whole folder.
    void rename(Area area, std::string_view from, std::string_view to);
    // Renames every object whose label starts with FROM_PREFIX (e.g. "dir/") to start with
    // TO_PREFIX instead, in one DODF change. Exists when a resulting label is taken.
    void rename_prefix(Area area, std::string_view from_prefix, std::string_view to_prefix);
    // Deletes the object: its DODF entry first, then its file.
    void remove(Area area, std::string_view label);
    // A folder marker (label ending in '/', added when missing); Exists when present.
    void mkdir(Area area, std::string_view folder);
    // Forgets cached content of AREA (all areas when nullopt).
    void drop_content(std::optional<Area> area = std::nullopt);
    // Whether the ODF and DODFs still hold what this model read (another program may have
    // written the card since): a SELECT and a READ BINARY or two each. Writers call it
    // before they change the card, and read the application again when it says no.
    bool directory_unchanged();

    // ---- other directory files ----
    std::vector<PinObject> pins() const;
    std::vector<CertObject> certificates() const;
    std::vector<KeyObject> public_keys() const;
    std::vector<KeyObject> private_keys() const;
    std::vector<KeyObject> secret_keys() const;
    // The content of the file a directory entry points at (e.g. a certificate's DER): read
    // once, then from the cache.
    WipedBytes read_path(const Path& path);

    // ---- the card's own key store (DESIGN §5) ----
    // A private key lives in a key file that can never be read and is used after the user
    // PIN, named by a PrKDF entry; its public key sits in a readable file named by a PuKDF
    // entry with the same id (the SHA-1 of its SubjectPublicKeyInfo). Labels name keys, as
    // the mount's secret/ entries do. Writes keep the card consistent at every APDU: the
    // files first, then the PuKDF entry, then the PrKDF entry (the commit point), what was
    // replaced last; a removal goes the other way round.
    //
    // The private key labelled LABEL (nullopt: none).
    std::optional<KeyObject> private_key(std::string_view label) const;
    // Its public key as SubjectPublicKeyInfo DER, read once from the PuKDF's file; nullopt
    // when the card keeps none for it.
    std::optional<Bytes> public_key(std::string_view label);
    // Stores PKCS8 (PrivateKeyInfo DER of an RSA or EC key) whose public key is SPKI under
    // LABEL, replacing a key of that label; nothing happens when that key is already there.
    // NoSpace when the card is full (the previous key stays), Locked before VERIFY.
    void import_key(std::string_view label, ByteView pkcs8, ByteView spki);
    // Has the card generate a key pair under LABEL (Exists when the label is taken); returns
    // its public key (SubjectPublicKeyInfo DER). The key never leaves the card.
    Bytes generate_key(std::string_view label, card::GeneratedKeyType type,
                       unsigned rsa_bits = 2048);
    // Removes the key LABEL: its PrKDF entry, the PuKDF entry, then both files.
    void remove_key(std::string_view label);
    // Relabels key FROM as TO (Exists when TO is taken).
    void rename_key(std::string_view from, std::string_view to);
    // Has the card sign DATA with key LABEL: a DigestInfo for RSA (PKCS#1 v1.5), the hash for
    // EC (the signature comes back as r || s). The PIN must be verified.
    Bytes sign(std::string_view label, ByteView data);

    // ---- the user PIN (the AODF's first PIN that is neither SO nor unblocking PIN) ----
    std::optional<PinObject> user_pin() const;
    card::PinFormat pin_format() const;  // NotSupported without a user PIN
    // VERIFY without data: tries left without spending one.
    card::PinStatus pin_status();
    // VERIFY, the PIN padded as the AODF says. card::PinError (WrongPassword with tries left,
    // Locked when blocked) on failure.
    void verify_pin(ByteView pin);
    void change_pin(ByteView old_pin, ByteView new_pin);
    void logout();

    // The model behind the API (pkcs15/card_app_state.hpp; internal to the implementation).
    struct State;

private:
    explicit CardApp(std::unique_ptr<State> state);
    std::unique_ptr<State> s_;
};

struct FormatOptions {
    std::string app_label = "vscard";  // EF.DIR label of the application
    SecureBytes puk;                   // empty: no PUK
    int pin_tries = 3;
    std::uint8_t pin_reference = 0x81;
    std::size_t pin_min_length = 4;
    std::size_t pin_max_length = 16;  // also the stored (padded) length
    // Creating, changing and deleting public objects needs the PIN too (a card anyone can
    // rewrite is no safe copy); false lets anyone who holds the card write public objects.
    bool pin_for_writes = true;
    // Bytes reserved for the DODF; 0: 1/32 of the card's memory (128..8192). It grows into
    // a larger file when full, so this only saves that switch.
    std::size_t dodf_size = 0;
    card::CardCaps caps;
    card::ApduLog* log = nullptr;
};

// Writes a fresh PKCS#15 structure onto a blank card (Exists when the card already has an
// EF.DIR or a DF 5015): the user PIN set through PERSONALIZER, EF.DIR naming the
// application, DF 3F00/5015 (named by the PKCS#15 AID) with ODF, TokenInfo (random serial,
// LABEL), AODF with the PIN (and its path), and empty DODF, PrKDF, PuKDF, CDF, SKDF; the
// directory files get room in proportion to the card's memory. Returns the opened card.
CardApp format(card::Transmitter& link, card::Personalizer& personalizer, std::string_view label,
               ByteView pin, const FormatOptions& options = {});

}  // namespace vscard::pkcs15
