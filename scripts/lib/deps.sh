# Installs the Debian packages a step needs when they are missing (apt-get; sudo when not root).
# Usage: source scripts/lib/deps.sh; install_packages pkg1 pkg2 ...

BUILD_PACKAGES=(cmake g++ make pkg-config help2man libfuse3-dev fuse3 libssl-dev libsqlite3-dev
                libkeyutils-dev libcli11-dev libgtest-dev libpcsclite-dev)
RUNTIME_TOOLS=(rsync tar diffutils findutils attr util-linux keyutils openssl sqlite3 procps psmisc gocryptfs
               dpkg-dev udev systemd
               pcscd vsmartcard-vpcd opensc fio stress-ng)
# The sanitizer and fuzz build (build_sanitized): clang with libFuzzer and the sanitizer runtimes.
FUZZ_PACKAGES=(clang libclang-rt-dev)

install_packages() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing missing Debian packages: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null; then
            echo "error: missing packages (${missing[*]}) and no sudo; install them as root" >&2
            return 1
        fi
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
        "${sudo[@]}" apt-get update
        "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}

# Configures and builds into BUILD_DIR with warnings as errors; further arguments name the
# targets to build (default: everything, tests included).
build_project() {
    local dir=$1
    shift
    local targets=()
    [ $# -gt 0 ] && targets=(--target "$@")
    cmake -S . -B "$dir" -DVSCARD_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build "$dir" -j"$(nproc)" "${targets[@]}"
}

# Configures and builds into BUILD_DIR with clang, ASan + UBSan and the libFuzzer targets
# (VSCARD_FUZZ implies VSCARD_SANITIZE).
build_sanitized() {
    local dir=$1
    CC=clang CXX=clang++ cmake -S . -B "$dir" -DVSCARD_WERROR=ON -DVSCARD_FUZZ=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build "$dir" -j"$(nproc)"
}

# Sanitizer settings of the tests (the binaries also read them when run by hand): any report
# fails the test, with a stack trace. LeakSanitizer stays on, also in the daemons (they free
# everything on a clean exit). The agent's sanitizer build skips mlockall (ASan's shadow is
# terabytes of address space); OpenSSL's secure heap needs no setting.
SANITIZER_ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:strict_init_order=1
SANITIZER_UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
