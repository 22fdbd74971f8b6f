#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors and runs every test (ctest).
# Then builds again with clang, AddressSanitizer + UndefinedBehaviorSanitizer and the libFuzzer
# targets (build-sanitize/) and runs the tests there (not the benchmark, packaging or stress runs)
# plus a short run of every fuzz target (label fuzz). Arguments go to both ctest runs.
# VSCARD_QUICK=1 skips the sanitizer and fuzz pass (a quick local run).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh  # install_packages: apt-get install of what dpkg lacks (sudo if not root)
quick=${VSCARD_QUICK:-0}
packages=("${BUILD_PACKAGES[@]}" "${RUNTIME_TOOLS[@]}")
[ "$quick" = 1 ] || packages+=("${FUZZ_PACKAGES[@]}")
install_packages "${packages[@]}"
build_project build
# Integration tests mount FUSE: they need /dev/fuse and fusermount3 (root, or a user in the
# fuse group on a system that allows it).
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900 "$@"
[ "$quick" = 1 ] && exit 0

build_sanitized build-sanitize
export ASAN_OPTIONS=${ASAN_OPTIONS:-$SANITIZER_ASAN_OPTIONS}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-$SANITIZER_UBSAN_OPTIONS}
# Not the stress label either: fio, stress-ng, fsx and the kill loops ran in the first pass; under
# the sanitizers they take minutes more, and stress-ng's rename stressor then races libfuse's
# asynchronous release of files unlinked while open (rmdir of their folder: ENOTEMPTY).
ctest --test-dir build-sanitize --output-on-failure -j"$(nproc)" --timeout 900 \
    -LE 'bench|packaging|stress' "$@"
