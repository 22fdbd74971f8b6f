#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors and runs every test (ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh  # install_packages: apt-get install of what dpkg lacks (sudo if not root)
install_packages "${BUILD_PACKAGES[@]}" "${RUNTIME_TOOLS[@]}"
build_project build
# Integration tests mount FUSE: they need /dev/fuse and fusermount3 (root, or a user in the
# fuse group on a system that allows it).
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900 "$@"
