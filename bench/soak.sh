#!/usr/bin/env bash
# Long runs of the stress tests (tests/stress): vscard-fsx, fio and stress-ng, and the crash
# loops, with far more operations, kills and time than CI gives them. Prints a summary.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'EOF'
Usage: bench/soak.sh [options]
  --build DIR          build folder holding bin/vscard_stress_tests (default: build)
  --seed N             first seed of fsx and of the kill points (default: random, printed)
  --fsx-ops N          operations per fsx seed and area (default 100000)
  --fsx-seeds N        fsx seeds per area (default 2)
  --kills N            SIGKILLs of the mount during rsync (default 50)
  --powercut N         store copies taken at random points for the power-cut test (default 10)
  --fio-mb N           size of each fio job's file, MiB (default 256)
  --stressng-seconds N how long each stress-ng run lasts (default 120)
  --only LIST          comma-separated parts to run: fsx,tools,crash (default: all)
  --keep-logs DIR      write each part's full output to DIR (default: a temp folder, printed)
Exit status 0 when every part passed.
EOF
}

build=build seed=$(( (RANDOM << 15) | RANDOM )) fsx_ops=100000 fsx_seeds=2 kills=50 powercut=10
fio_mb=256 stressng_seconds=120 only=fsx,tools,crash logs=""
while [ $# -gt 0 ]; do
    case $1 in
        --build) build=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --fsx-ops) fsx_ops=$2; shift 2 ;;
        --fsx-seeds) fsx_seeds=$2; shift 2 ;;
        --kills) kills=$2; shift 2 ;;
        --powercut) powercut=$2; shift 2 ;;
        --fio-mb) fio_mb=$2; shift 2 ;;
        --stressng-seconds) stressng_seconds=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --keep-logs) logs=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "soak.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

tests=$build/bin/vscard_stress_tests
if [ ! -x "$tests" ]; then
    echo "soak.sh: $tests is missing: build first (cmake --build $build)" >&2
    exit 2
fi
[ -n "$logs" ] || logs=$(mktemp -d "${TMPDIR:-/tmp}/vscard-soak.XXXXXX")
mkdir -p "$logs"

export VSCARD_STRESS_SEED=$seed VSCARD_FSX_OPS=$fsx_ops VSCARD_FSX_SEEDS=$fsx_seeds
export VSCARD_CRASH_KILLS=$kills VSCARD_POWERCUT_SNAPSHOTS=$powercut
export VSCARD_FIO_MB=$fio_mb VSCARD_STRESSNG_SECONDS=$stressng_seconds

echo "soak: seed $seed, logs in $logs"
declare -A filters=([fsx]='Areas/FsxTest.*' [tools]='Areas/ToolsTest.*' [crash]='CrashTest.*')
summary=() failed=0
for part in ${only//,/ }; do
    [ -n "${filters[$part]:-}" ] || { echo "soak.sh: unknown part $part" >&2; exit 2; }
    echo "soak: running $part ..."
    start=$(date +%s)
    status=passed
    if ! "$tests" --gtest_filter="${filters[$part]}" > "$logs/$part.log" 2>&1; then
        status=FAILED failed=1
    fi
    secs=$(( $(date +%s) - start ))
    case $part in
        fsx) figures="$(grep -c 'no difference' "$logs/$part.log" || true) fsx runs passed, \
$(awk '/no difference/ { n += $4 } END { print n + 0 }' "$logs/$part.log") operations" ;;
        tools) figures="$(grep -c '^fio: 6 jobs' "$logs/$part.log" || true) fio runs verified, \
$(grep -c 'successful run completed' "$logs/$part.log" || true) stress-ng runs passed" ;;
        crash) figures="$(awk '/^kills done:/ { print $3 }' "$logs/$part.log") kills, \
$(awk '/store copies checked/ { print $1 }' "$logs/$part.log") store copies" ;;
    esac
    summary+=("$(printf '%-6s %-7s %6ss  %s' "$part" "$status" "$secs" "$figures")")
    [ $status = passed ] || grep -E "Failure|FAILED|torn|lost" "$logs/$part.log" | head -20
done

echo
echo "soak summary (seed $seed; replay with --seed $seed)"
printf '%s\n' "${summary[@]}"
exit $failed
