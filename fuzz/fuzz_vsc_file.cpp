// A damaged or hostile NAME.vsc: open (header validation), unlock with the seed's password,
// integrity check and a walk over the areas, on a private copy of the fuzzed bytes.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>

#include "error.hpp"
#include "fuzz_util.hpp"
#include "store/vsc_file.hpp"

namespace {

using namespace vscard;

// The password of the seed files (fuzz/make_corpus.cpp).
constexpr std::string_view kPassword = "fuzz password";

const std::filesystem::path& work_dir() {
    static const std::filesystem::path dir = [] {
        std::string tmpl = (std::filesystem::temp_directory_path() / "vscard-fuzz-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) std::abort();
        std::atexit([] { std::filesystem::remove_all(work_dir()); });
        return std::filesystem::path(tmpl);
    }();
    return dir;
}

// Every object row, and the first chunks of each content stream.
void walk(AreaStore& store) {
    for (const NodeRow& row : store.load()) {
        if (row.meta.content == 0) continue;
        const std::uint64_t chunks = (row.meta.size + store.chunk_size() - 1) / store.chunk_size();
        for (std::uint64_t i = 0; i < chunks && i < 4; ++i) {
            WipedBytes chunk;
            store.read_chunk(row.meta.content, i, chunk);
        }
    }
    store.space();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::filesystem::path path = work_dir() / "card.vsc";
    std::filesystem::remove(path.string() + "-wal");
    std::filesystem::remove(path.string() + "-shm");
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    ::chmod(path.c_str(), 0600);
    try {
        auto vsc = VscFile::open(path);
        std::optional<VscKeys> keys;
        try {
            keys = vsc->unlock(view_of(kPassword));
        } catch (const Error&) {
        }
        vsc->check(keys ? &*keys : nullptr);
        walk(*vsc->area(Area::Public, nullptr));
        if (keys) {
            walk(*vsc->area(Area::Private, &*keys));
            walk(*vsc->area(Area::Secret, &*keys));
        }
    } catch (const Error&) {
    }
    return 0;
}
