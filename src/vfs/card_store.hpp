#pragma once
// One area of a card (public or private data objects) as an AreaStore, so that the
// filesystem logic of AreaFs serves cards exactly as it serves VSCs (DESIGN §2).
//
// The card holds data objects named by their label ("dir/sub/file", folders as "dir/"
// markers or implied by the labels below them); this store keeps the node model the
// filesystem works on in memory, built from the listing once per insertion, and turns each
// change into PKCS#15 operations: a commit of file content becomes one object write (the
// card's write ordering keeps the previous content until the new one is complete), a rename
// one DODF change, an unlink one removal.
//
// What a card cannot keep: permission bits, times and extended attributes. Mode and mtime
// changes are accepted and held for as long as the card stays inserted (so `rsync -a` and
// `cp -a` work); after reinsertion every object shows the area's default mode and the time
// of insertion. Extended attributes are refused (ENOTSUP). Objects are at most
// pkcs15::kMaxObjectSize bytes (EFBIG beyond).
//
// Beside the data objects the card shows what its other directories hold, read-only: in the
// public area its certificates (CDF, as NAME.crt in DER) and the public keys that belong to
// none of its keys (PuKDF, as NAME.pub in PEM); in the secret area the keys it keeps without
// an envelope (generated on the card), as entries that cannot be opened, with their NAME.pub.
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "pkcs15/card_app.hpp"
#include "vfs/card_session.hpp"
#include "vfs/node.hpp"

namespace vscard {

class CardAreaStore final : public AreaStore {
public:
    struct Options {
        pkcs15::Area area = pkcs15::Area::Public;
        std::string name;  // "card/SERIAL/public", for messages
        std::uint32_t dir_mode = 0755;
        std::uint32_t file_mode = 0644;
        Timestamp time;  // the mtime of whatever the card does not date
        // Only objects whose label starts with this belong to the area (it is not part of
        // the file names): e.g. "secret/" for the key envelopes among application vscard's.
        std::string label_prefix;
        // Set for the secret area (DESIGN §5): the card family's key. Every key envelope
        // written is also loaded into the card's own key store (so the card can use the key),
        // and keys the card holds without an envelope (generated on the card) show as
        // entries that cannot be opened, with a NAME.pub holding their public key.
        SecureBytes family_key;
    };

    CardAreaStore(std::shared_ptr<CardSession> session, Options options);

    std::vector<NodeRow> load() override;
    std::uint64_t allocate_id() override { return next_id_.fetch_add(1); }
    void apply(const AreaChange& change) override;
    bool read_chunk(std::uint64_t content, std::uint64_t index, WipedBytes& out) override;
    std::size_t chunk_size() const override { return kChunkSize; }
    std::uint64_t max_file_size() const override { return pkcs15::kMaxObjectSize; }
    bool keeps_xattrs() const override { return false; }
    void check_open(std::uint64_t content, bool writable) override;
    void sync() override {}  // the card has applied every write it answered
    SpaceInfo space() override;
    void drop_unreferenced(const std::vector<std::uint64_t>& live_contents) override;
    std::string describe() const override { return options_.name; }

    static constexpr std::uint64_t kRootId = 1;
    // Chunks are slices of the object's content (the filesystem's unit of buffering); a
    // change writes each object touched whole.
    static constexpr std::size_t kChunkSize = 4096;
    static constexpr std::uint64_t kChunksPerObject = pkcs15::kMaxObjectSize / kChunkSize;
    static_assert(pkcs15::kMaxObjectSize % kChunkSize == 0);

private:
    using Nodes = std::map<std::uint64_t, NodeMeta>;
    // The label of node ID in NODES (the area's prefix for the root); folders without the
    // trailing '/'.
    std::string label_of(const Nodes& nodes, std::uint64_t id) const;
    static std::string path_of(const Nodes& nodes, std::uint64_t id);  // without the prefix
    std::optional<std::uint64_t> owner_of(std::uint64_t content) const;
    std::vector<NodeRow> rows() const;          // caller holds mutex_
    void check_size(std::uint64_t size) const;  // TooBig beyond what an object holds
    bool keeps_keys() const { return !options_.family_key.empty(); }
    // Entries the card shows but the mount cannot change: keys the card keeps to itself (no
    // content: they cannot be opened) with their NAME.pub in the secret area, and the card's
    // certificates (NAME.crt) and public keys (NAME.pub) of its CDF and PuKDF in the public
    // area. Opening one for writing, or writing, moving or removing it, is refused (EACCES).
    struct Fixed {
        std::string name;
        std::optional<WipedBytes> content;
        std::string why;  // what the refusal says
    };
    [[noreturn]] void refuse(const Fixed& entry) const;
    // Refuses CHANGE when it would write, move or remove a fixed entry; caller holds mutex_.
    void check_fixed_untouched(const Nodes& after, const AreaChange& change) const;

    std::shared_ptr<CardSession> session_;
    const Options options_;
    std::mutex mutex_;
    Nodes nodes_;                                  // the model as on the card
    std::set<std::uint64_t> markers_;              // folders with a "dir/" object of their own
    std::map<std::uint64_t, WipedBytes> orphans_;  // content of objects removed while open
    std::map<std::uint64_t, Fixed> fixed_;         // by content id
    std::optional<SpaceInfo> space_;               // the card's memory as last asked
    bool loaded_ = false;  // the model is built once: load() afterwards returns it
    std::atomic<std::uint64_t> next_id_{16};
};

}  // namespace vscard
