#!/usr/bin/env bash
# Runs one fuzz target for a while from its seed corpus (ctest, label fuzz).
# Usage: run_fuzzer.sh FUZZER SEED_DIR WORK_DIR SECONDS [libFuzzer flags...]
# New inputs go to WORK_DIR/corpus, a crashing input to WORK_DIR/crash-* (and the run fails);
# the seed corpus in the source tree is only read.
set -euo pipefail
fuzzer=$1 seeds=$2 work=$3 seconds=$4
shift 4
mkdir -p "$work/corpus" "$work/tmp"
export TMPDIR=$work/tmp  # targets that need files (fuzz_vsc_file) keep them here
exec "$fuzzer" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/" "$@" "$work/corpus" "$seeds"
