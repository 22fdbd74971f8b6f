#pragma once
// Sizes of the stress runs: small by default (CI), larger through the environment
// (bench/soak.sh sets them).
#include <cstdlib>
#include <random>
#include <string>

namespace vscard::test {

inline long env_number(const char* name, long fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    long n = std::strtol(v, &end, 10);
    return end && *end == '\0' && n >= 0 ? n : fallback;
}

// VSCARD_STRESS_SEED when set, else a fresh one; tests print it so a run can be replayed.
inline unsigned long stress_seed() {
    long s = env_number("VSCARD_STRESS_SEED", -1);
    return s >= 0 ? static_cast<unsigned long>(s) : std::random_device{}();
}

}  // namespace vscard::test
