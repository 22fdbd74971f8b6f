#pragma once
// The media every store-level and filesystem-level conformance test runs against: the
// in-memory medium (small and default chunks) and the VSC file's clear and encrypted areas.
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "card_app_util.hpp"
#include "store/vsc_file.hpp"
#include "store_test_util.hpp"
#include "vfs/area_fs.hpp"
#include "vfs/card_store.hpp"
#include "vfs/memory_store.hpp"

namespace vscard::testing {

// "a/b/c" as the components AreaFs takes.
inline RelPath P(std::string_view path) {
    RelPath out;
    std::size_t start = 0;
    while (start < path.size()) {
        std::size_t slash = path.find('/', start);
        if (slash == std::string_view::npos) slash = path.size();
        out.emplace_back(path.substr(start, slash - start));
        start = slash + 1;
    }
    return out;
}

// ---- the media under test ------------------------------------------------------------------
// Each medium gives a store, and a way to reach the same data again after the filesystem
// object is gone (for the VSC file: reopened from disk; for a card: reinserted).
// kKeepsMetadata: mode, times, extended attributes and node numbers survive that;
// kKeepsHoles: chunks never written are not stored; kStoresNodeRows: the medium stores the
// node rows as given (so they can be damaged); kHoldsLargeFiles: files large enough to be
// staged (AreaFs::kStageChunks chunks); kMaxPathBytes: a limit on whole paths.

template <std::size_t ChunkSize>
class MemoryMedium {
public:
    MemoryMedium() {
        MemoryAreaStore::Options options;
        options.chunk_size = ChunkSize;
        store_ = std::make_shared<MemoryAreaStore>(options);
    }
    std::shared_ptr<AreaStore> store() { return store_; }
    std::shared_ptr<AreaStore> reopen() { return store_; }
    MemoryAreaStore* memory() { return store_.get(); }
    Area area() const { return Area::Public; }
    static constexpr bool kKeepsMetadata = true;
    static constexpr bool kKeepsHoles = true;
    static constexpr bool kStoresNodeRows = true;
    static constexpr bool kHoldsLargeFiles = true;
    static constexpr std::size_t kMaxPathBytes = 0;  // no limit beyond names of 255 bytes
    std::size_t chunk_count() { return store_->chunk_count(); }

private:
    std::shared_ptr<MemoryAreaStore> store_;
};

template <Area A>
class VscMedium {
public:
    VscMedium() {
        VscFile::CreateOptions options;
        options.kdf = fast_kdf();
        path_ = VscFile::create(dir_.path() / "store", "test", view_of(kPassword), options);
        file_ = VscFile::open(path_);
        keys_ = file_->unlock(view_of(kPassword));
    }
    std::shared_ptr<AreaStore> store() { return file_->area(A, &keys_); }
    std::shared_ptr<AreaStore> reopen() {
        file_.reset();
        file_ = VscFile::open(path_);
        keys_ = file_->unlock(view_of(kPassword));
        return file_->area(A, &keys_);
    }
    MemoryAreaStore* memory() { return nullptr; }
    Area area() const { return A; }
    static constexpr bool kKeepsMetadata = true;
    static constexpr bool kKeepsHoles = true;
    static constexpr bool kStoresNodeRows = true;
    static constexpr bool kHoldsLargeFiles = true;
    static constexpr std::size_t kMaxPathBytes = 0;  // no limit beyond names of 255 bytes
    std::size_t chunk_count() {
        auto db = file_->connection();
        auto st = db->prepare("SELECT count(*) FROM chunks WHERE area = ?1");
        st.bind(1, static_cast<std::int64_t>(A));
        return st.step() ? static_cast<std::size_t>(st.integer(0)) : 0;
    }

private:
    static constexpr std::string_view kPassword = "correct horse";
    TempDir dir_;
    std::filesystem::path path_;
    std::shared_ptr<VscFile> file_;
    VscKeys keys_;
};

// The in-process emulator as a session's channel (no other program to keep out).
class EmulatorChannel final : public CardChannel {
public:
    explicit EmulatorChannel(EmulatorLink& link) : link_(link) {}
    card::Transmitter& link() override { return link_; }
    std::shared_ptr<void> hold() override { return std::make_shared<int>(0); }
    std::uint64_t resets() const override { return resets_; }
    void reset() {
        link_.reinsert();
        ++resets_;
    }

private:
    EmulatorLink& link_;
    std::uint64_t resets_ = 0;
};

class FixedPin final : public PinSource {
public:
    explicit FixedPin(std::string_view pin) : pin_(pin) {}
    std::optional<SecureBytes> get() override {
        if (forgotten_) return std::nullopt;
        return secure_from(pin_);
    }
    void forget() override { forgotten_ = true; }
    bool forgotten() const { return forgotten_; }

private:
    std::string pin_;
    bool forgotten_ = false;
};

// An area of a PKCS#15 card on the emulator; reopen() is the card pulled out and inserted
// again (a new session reads the card afresh).
template <pkcs15::Area A>
class CardMedium {
public:
    CardMedium() : card_(formatted_image(256 * 1024)) {}
    std::shared_ptr<AreaStore> store() { return open(); }
    std::shared_ptr<AreaStore> reopen() {
        card_.link.reinsert();
        return open();
    }
    MemoryAreaStore* memory() { return nullptr; }
    Area area() const { return A == pkcs15::Area::Public ? Area::Public : Area::Private; }
    TestCard& card() { return card_; }
    // A card keeps names and content only: mode, times, extended attributes and node
    // numbers start afresh at each insertion (card_store.hpp).
    static constexpr bool kKeepsMetadata = false;
    static constexpr bool kKeepsHoles = false;
    static constexpr bool kStoresNodeRows = false;   // the tree comes from the labels
    static constexpr bool kHoldsLargeFiles = false;  // objects of at most 32 KiB
    std::size_t chunk_count() {
        throw Error(ErrorKind::NotSupported, "a card stores each object whole");
    }
    static constexpr std::size_t kMaxPathBytes = pkcs15::kMaxLabelBytes;  // the whole label

private:
    std::shared_ptr<AreaStore> open() {
        auto session = std::make_shared<CardSession>(std::make_unique<EmulatorChannel>(card_.link),
                                                     "Test PCD 00 00", card_.emu.atr(), &card_.log);
        session->set_pin_source(std::make_shared<FixedPin>(kPin));
        CardAreaStore::Options options;
        options.area = A;
        options.name = std::string("card/") + session->serial() + "/" + pkcs15::area_name(A);
        options.time = Timestamp::now();
        return std::make_shared<CardAreaStore>(session, options);
    }
    TestCard card_;
};

using MemorySmallChunks = MemoryMedium<16>;
using MemoryDefaultChunks = MemoryMedium<64 * 1024>;
using VscPublic = VscMedium<Area::Public>;
using VscPrivate = VscMedium<Area::Private>;
using CardPublic = CardMedium<pkcs15::Area::Public>;
using CardPrivate = CardMedium<pkcs15::Area::Private>;

struct MediumNames {
    template <typename T>
    static std::string GetName(int) {
        if (std::is_same_v<T, MemorySmallChunks>) return "MemorySmallChunks";
        if (std::is_same_v<T, MemoryDefaultChunks>) return "MemoryDefaultChunks";
        if (std::is_same_v<T, VscPublic>) return "VscPublic";
        if (std::is_same_v<T, VscPrivate>) return "VscPrivate";
        if (std::is_same_v<T, CardPublic>) return "CardPublic";
        if (std::is_same_v<T, CardPrivate>) return "CardPrivate";
        return "Unknown";
    }
};

}  // namespace vscard::testing
