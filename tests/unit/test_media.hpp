#pragma once
// The media every store-level and filesystem-level conformance test runs against: the
// in-memory medium (small and default chunks) and the VSC file's clear and encrypted areas.
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "store/vsc_file.hpp"
#include "store_test_util.hpp"
#include "vfs/memory_store.hpp"

namespace vscard::testing {

// ---- the media under test ------------------------------------------------------------------
// Each medium gives a store, and a way to reach the same data again after the filesystem
// object is gone (for the VSC file: reopened from disk).

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

private:
    static constexpr std::string_view kPassword = "correct horse";
    TempDir dir_;
    std::filesystem::path path_;
    std::shared_ptr<VscFile> file_;
    VscKeys keys_;
};

using MemorySmallChunks = MemoryMedium<16>;
using MemoryDefaultChunks = MemoryMedium<64 * 1024>;
using VscPublic = VscMedium<Area::Public>;
using VscPrivate = VscMedium<Area::Private>;

struct MediumNames {
    template <typename T>
    static std::string GetName(int) {
        if (std::is_same_v<T, MemorySmallChunks>) return "MemorySmallChunks";
        if (std::is_same_v<T, MemoryDefaultChunks>) return "MemoryDefaultChunks";
        if (std::is_same_v<T, VscPublic>) return "VscPublic";
        if (std::is_same_v<T, VscPrivate>) return "VscPrivate";
        return "Unknown";
    }
};

}  // namespace vscard::testing
