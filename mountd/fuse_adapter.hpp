#pragma once
// libfuse3 high-level operations as thin adapters onto vscard::Vfs.
#define FUSE_USE_VERSION 312
#include <fuse3/fuse.h>

#include "vfs/vfs.hpp"

namespace vscard::mountd {

// The operations table; `fuse_get_context()->private_data` is the Vfs*.
const fuse_operations& fuse_ops();

// Kernel cache invalidation must not run inside a filesystem callback (the kernel may wait
// on locks that callback holds), so requests are queued to a thread of their own.
class Invalidator {
public:
    explicit Invalidator(struct fuse* fuse);
    ~Invalidator();
    void push(const std::vector<std::string>& paths);

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace vscard::mountd
