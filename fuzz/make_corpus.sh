#!/usr/bin/env bash
# Regenerates the seed corpus fuzz/corpus/TARGET/seed-* from the product's own encoders
# (fuzz/make_corpus.cpp). Inputs kept from fixed bugs (regress-*) are left alone.
# Usage: fuzz/make_corpus.sh [BUILD_DIR]   (default build-fuzz, configured with clang)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-fuzz}
if [ ! -f "$build/CMakeCache.txt" ]; then
    CC=clang CXX=clang++ cmake -S . -B "$build" -DVSCARD_FUZZ=ON -DVSCARD_TESTS=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$build" --target vscard-fuzz-corpus -j"$(nproc)"
find fuzz/corpus -name 'seed-*' -delete 2>/dev/null || true
"$build/fuzz/vscard-fuzz-corpus" fuzz/corpus
find fuzz/corpus -type f | sort | xargs ls -l | awk '{ print $5, $NF }'
