#!/usr/bin/env bash
# File-system benchmark: vscard (public/ and private/) against gocryptfs and the plain backing
# filesystem, all in one run on the same disk. Prints each time (median of --repeat runs) and
# the ratios vscard/gocryptfs. The target (vscard at or below gocryptfs on every row) is
# printed, never asserted: the exit status is non-zero only when an operation fails.
#
# See bench/README.md for what each row does and how to read the table.
set -euo pipefail
export LC_ALL=C

readonly PASSWORD='vscard-bench-password'
readonly VSC_NAME='bench'

usage() {
    cat <<'EOF'
Usage: bench/run.sh [options]

Options:
  --repeat N     run every row N times and report the median (default 3)
  --quick        small data set and 1 repeat: a smoke test that runs in seconds
  --dir DIR      parent folder for the scratch directory (default ${TMPDIR:-/tmp}); the disk
                 under DIR is the disk measured
  --bin DIR      folder holding vscard-mountd, vscardctl, vscard-agent (default build/bin;
                 built with 'cmake --build build' when it is build/bin and they are missing)
  --out FILE     also write the results as TSV to FILE
  --rows LIST    run only these rows, comma-separated, of: create, ls, read, write_big,
                 read_big, rsync (ls and read need create, read_big needs write_big)
  --cold         start gocryptfs and vscard-mountd afresh before each read row (untimed), so
                 that no daemon serves a read from what it kept of earlier rows
  --keep         keep the scratch directory (for debugging); it is removed otherwise
  --no-install   do not install missing Debian packages; fail instead
  -h, --help     this text
EOF
}

# ---------------------------------------------------------------------------------------------
# Options
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPEAT=3
QUICK=0
PARENT=${TMPDIR:-/tmp}
BIN=""
OUT=""
KEEP=0
COLD=0
INSTALL=1
repeat_given=0
ONLY=""

die() {
    echo "bench: error: $*" >&2
    exit 1
}
note() { echo "bench: $*" >&2; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --repeat) [[ $# -ge 2 ]] || die "--repeat needs a number"; REPEAT=$2; repeat_given=1; shift 2 ;;
        --repeat=*) REPEAT=${1#*=}; repeat_given=1; shift ;;
        --quick) QUICK=1; shift ;;
        --dir) [[ $# -ge 2 ]] || die "--dir needs a folder"; PARENT=$2; shift 2 ;;
        --dir=*) PARENT=${1#*=}; shift ;;
        --bin) [[ $# -ge 2 ]] || die "--bin needs a folder"; BIN=$2; shift 2 ;;
        --bin=*) BIN=${1#*=}; shift ;;
        --out) [[ $# -ge 2 ]] || die "--out needs a file name"; OUT=$2; shift 2 ;;
        --out=*) OUT=${1#*=}; shift ;;
        --rows) [[ $# -ge 2 ]] || die "--rows needs a list of rows"; ONLY=$2; shift 2 ;;
        --rows=*) ONLY=${1#*=}; shift ;;
        --keep) KEEP=1; shift ;;
        --cold) COLD=1; shift ;;
        --no-install) INSTALL=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "--repeat must be a positive whole number, not '$REPEAT'"

if [[ $QUICK == 1 ]]; then
    SMALL_DIRS=4 SMALL_PER_DIR=50      # 200 small files
    BIG_MIB=8
    TREE_TOP=2 TREE_SUB=2 TREE_PER_DIR=10   # 40-file tree
    [[ $repeat_given == 1 ]] || REPEAT=1
else
    SMALL_DIRS=10 SMALL_PER_DIR=200    # 2000 small files of 1-4 KiB
    BIG_MIB=64
    TREE_TOP=4 TREE_SUB=5 TREE_PER_DIR=25   # 4 x 5 = 20 dirs x 25 = 500 files of 1-16 KiB
fi
SMALL_COUNT=$((SMALL_DIRS * SMALL_PER_DIR))
TREE_COUNT=$((TREE_TOP * TREE_SUB * TREE_PER_DIR))

ROWS=(create ls read write_big read_big rsync)
if [[ -n $ONLY ]]; then
    declare -A wanted=()
    IFS=, read -ra only_list <<<"$ONLY"
    for r in "${only_list[@]}"; do
        [[ " ${ROWS[*]} " == *" $r "* ]] || die "--rows: unknown row '$r' (rows: ${ROWS[*]})"
        wanted[$r]=1
    done
    [[ -z ${wanted[ls]:-}${wanted[read]:-} || -n ${wanted[create]:-} ]] ||
        die "--rows: ls and read need create (they work on the files it writes)"
    [[ -z ${wanted[read_big]:-} || -n ${wanted[write_big]:-} ]] ||
        die "--rows: read_big needs write_big (it reads the file written there)"
    selected=()
    for r in "${ROWS[@]}"; do [[ -n ${wanted[$r]:-} ]] && selected+=("$r"); done
    ROWS=("${selected[@]}")
fi
declare -A LABEL=(
    [create]="create $SMALL_COUNT files (1-4 KiB)"
    [ls]="ls -lR"
    [read]="read all back"
    [write_big]="write $BIG_MIB MiB"
    [read_big]="read $BIG_MIB MiB"
    [rsync]="rsync -a $TREE_COUNT-file tree"
)
CANDS=(plain gocryptfs public private)
declare -A CAND_TITLE=([plain]="plain" [gocryptfs]="gocryptfs" [public]="vscard public"
                       [private]="vscard private")

# ---------------------------------------------------------------------------------------------
# Tools and packages
as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

ensure_packages() {
    local missing=() p
    for p in "$@"; do
        if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) != "install ok installed" ]]; then
            missing+=("$p")
        fi
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $INSTALL == 1 ]] || die "missing Debian packages: ${missing[*]} (install them, or drop --no-install)"
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
    if [[ $EUID -ne 0 ]] && ! command -v sudo >/dev/null; then
        die "missing packages ${missing[*]}; run as root or install sudo"
    fi
    note "installing ${missing[*]} (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null ||
        die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

command -v dpkg-query >/dev/null || die "dpkg-query not found: this script expects Debian (12)"
ensure_packages gocryptfs rsync fuse3
for tool in gocryptfs rsync fusermount3 dd find xargs; do
    command -v "$tool" >/dev/null || die "'$tool' not found in PATH"
done
[[ -c /dev/fuse ]] || die "/dev/fuse is missing: FUSE is not available here (load the fuse module, or give the container /dev/fuse)"

if [[ -z $BIN ]]; then
    BIN=$REPO/build/bin
    if [[ ! -x $BIN/vscard-mountd || ! -x $BIN/vscardctl || ! -x $BIN/vscard-agent ]]; then
        note "vscard binaries missing in $BIN: building (cmake --build build)"
        [[ -f $REPO/build/CMakeCache.txt ]] || cmake -S "$REPO" -B "$REPO/build" >/dev/null ||
            die "cmake configure failed"
        cmake --build "$REPO/build" -j"$(nproc)" || die "the build failed"
    fi
fi
bin_abs=$(cd "$BIN" 2>/dev/null && pwd) || die "binary folder '$BIN' does not exist (see --bin)"
BIN=$bin_abs
for b in vscard-mountd vscardctl vscard-agent; do
    [[ -x $BIN/$b ]] || die "$BIN/$b is missing or not executable (build the project first)"
done

# ---------------------------------------------------------------------------------------------
# Scratch directory, daemons, cleanup
mkdir -p "$PARENT" || die "cannot create $PARENT"
WORK=$(mktemp -d "$PARENT/vscard-bench.XXXXXX") || die "cannot create a scratch folder in $PARENT"
WORK=$(cd "$WORK" && pwd)
MOUNTS=()      # FUSE mount points to unmount on exit
PIDS=()        # daemons to stop on exit

cleanup() {
    local rc=$? m p i
    trap - EXIT INT TERM
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        m=${MOUNTS[i]}
        if mountpoint -q "$m" 2>/dev/null; then
            fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null ||
                umount -l "$m" 2>/dev/null || note "could not unmount $m"
        fi
    done
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [[ $KEEP == 1 ]]; then
        note "scratch folder kept: $WORK"
    else
        rm -rf --one-file-system "$WORK" 2>/dev/null || note "could not remove $WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ${#WORK} -gt 90 ]]; then
    die "scratch path $WORK is too long for a Unix socket; use a shorter --dir"
fi

# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_for() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

show_log() {
    [[ -s $1 ]] && { echo "---- last lines of $1:" >&2; tail -n 20 "$1" >&2; }
    return 0
}

# Page cache: dropped before every timed step, so reads measure the filesystem (FUSE mounts
# keep page cache of their own too; dropping caches empties both layers). Pages a daemon has
# mapped stay: see "Page cache" in bench/README.md.
DROP=0
if [[ $EUID -eq 0 ]] && { sync && echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
    DROP=1
else
    note "warning: cannot drop the page cache (needs root and a writable /proc/sys/vm);"
    note "         the read rows may be served from cache and are not comparable to a full run"
fi
drop_caches() {
    if [[ $DROP == 1 ]]; then
        sync && echo 3 >/proc/sys/vm/drop_caches
    else
        sync
    fi
}

# ---------------------------------------------------------------------------------------------
# Source data, generated once and not timed. RANDOM is seeded so sizes repeat between runs.
SRC=$WORK/src
note "scratch folder $WORK on $(df -P "$WORK" | awk 'NR==2 {print $1 " (" $6 ")"}')"
note "generating source data ($SMALL_COUNT small files, $BIG_MIB MiB, $TREE_COUNT-file tree)"
RANDOM=4242
mkdir -p "$SRC/small" "$SRC/tree"
for ((d = 0; d < SMALL_DIRS; d++)); do
    mkdir "$SRC/small/d$d"
    for ((f = 0; f < SMALL_PER_DIR; f++)); do
        head -c $((1024 + RANDOM % 3073)) /dev/urandom >"$SRC/small/d$d/f$f.bin"
    done
done
head -c $((BIG_MIB << 20)) /dev/urandom >"$SRC/big.bin"
for ((t = 0; t < TREE_TOP; t++)); do
    for ((s = 0; s < TREE_SUB; s++)); do
        mkdir -p "$SRC/tree/top$t/sub$s"
        for ((f = 0; f < TREE_PER_DIR; f++)); do
            head -c $((1024 + RANDOM % 15361)) /dev/urandom >"$SRC/tree/top$t/sub$s/file$f.dat"
        done
    done
done
chmod -R u+rwX,go+rX "$SRC"
sync

# ---------------------------------------------------------------------------------------------
# Candidates
PLAIN=$WORK/plain
mkdir -p "$PLAIN"

note "setting up gocryptfs"
GOCRYPT_CIPHER=$WORK/gocryptfs.cipher
GOCRYPT_MNT=$WORK/gocryptfs.mnt
PASSFILE=$WORK/passfile
mkdir -p "$GOCRYPT_CIPHER" "$GOCRYPT_MNT"
(umask 077 && printf '%s\n' "$PASSWORD" >"$PASSFILE")
gocryptfs -init -q -passfile "$PASSFILE" "$GOCRYPT_CIPHER" >"$WORK/gocryptfs-init.log" 2>&1 ||
    { show_log "$WORK/gocryptfs-init.log"; die "gocryptfs -init failed"; }
MOUNTS+=("$GOCRYPT_MNT")
mount_gocryptfs() {
    gocryptfs -q -passfile "$PASSFILE" "$GOCRYPT_CIPHER" "$GOCRYPT_MNT" >>"$WORK/gocryptfs.log" 2>&1 ||
        { show_log "$WORK/gocryptfs.log"; die "mounting gocryptfs on $GOCRYPT_MNT failed"; }
    mountpoint -q "$GOCRYPT_MNT" || die "gocryptfs returned but $GOCRYPT_MNT is not a mount point"
}
mount_gocryptfs

note "setting up vscard (agent, VSC '$VSC_NAME', mount)"
export VSCARD_STORE=$WORK/store
export VSCARD_AGENT=$WORK/agent.sock
VSC_MNT=$WORK/vscard.mnt
mkdir -p "$VSC_MNT"
"$BIN/vscard-agent" --socket "$VSCARD_AGENT" --idle-timeout 1d >"$WORK/agent.log" 2>&1 &
PIDS+=($!)
wait_for 10 test -S "$VSCARD_AGENT" ||
    { show_log "$WORK/agent.log"; die "vscard-agent did not open $VSCARD_AGENT within 10 s"; }
printf '%s\n' "$PASSWORD" | "$BIN/vscardctl" create "$VSC_NAME" --password-stdin \
    >"$WORK/create.log" 2>&1 || { show_log "$WORK/create.log"; die "vscardctl create $VSC_NAME failed"; }
MOUNTS+=("$VSC_MNT")
mountd_up() { kill -0 "$MOUNTD_PID" && test -d "$VSC_MNT/vsc/$VSC_NAME"; }
start_mountd() {
    "$BIN/vscard-mountd" -f --no-pcsc --store "$VSCARD_STORE" --agent "$VSCARD_AGENT" "$VSC_MNT" \
        >>"$WORK/mountd.log" 2>&1 &
    MOUNTD_PID=$!
    if ! wait_for 15 mountd_up; then
        show_log "$WORK/mountd.log"
        kill -0 "$MOUNTD_PID" 2>/dev/null || die "vscard-mountd exited while mounting $VSC_MNT"
        die "vscard-mountd did not show $VSC_MNT/vsc/$VSC_NAME within 15 s"
    fi
}
private_open() {
    wait_for 10 ls "$VSC_MNT/vsc/$VSC_NAME/private/" >/dev/null ||
        { show_log "$WORK/mountd.log"; die "$VSC_MNT/vsc/$VSC_NAME/private stays inaccessible after unlock"; }
}
start_mountd
PIDS=("$MOUNTD_PID" "${PIDS[@]}")   # stop the mount before the agent
printf '%s\n' "$PASSWORD" | "$BIN/vscardctl" unlock "vsc/$VSC_NAME" --password-stdin \
    >"$WORK/unlock.log" 2>&1 || { show_log "$WORK/unlock.log"; die "vscardctl unlock vsc/$VSC_NAME failed"; }
private_open

# --cold: both FUSE daemons start afresh before a read row (untimed), so that neither holds
# anything of earlier rows, pages it has mapped included (drop_caches leaves those). The
# agent keeps the VSC unlocked meanwhile.
restart_daemons() {
    fusermount3 -u "$GOCRYPT_MNT" || die "cannot unmount $GOCRYPT_MNT for --cold"
    mount_gocryptfs
    fusermount3 -u "$VSC_MNT" || die "cannot unmount $VSC_MNT for --cold"
    wait "$MOUNTD_PID" 2>/dev/null || true
    start_mountd
    PIDS[0]=$MOUNTD_PID
    private_open
}

declare -A ROOT=(
    [plain]=$PLAIN
    [gocryptfs]=$GOCRYPT_MNT
    [public]=$VSC_MNT/vsc/$VSC_NAME/public
    [private]=$VSC_MNT/vsc/$VSC_NAME/private
)

# ---------------------------------------------------------------------------------------------
# The rows. Each takes the candidate's fresh repetition folder D; commands are chained with &&
# so a failure is reported (errexit does not apply inside a condition).
# Write rows end with 'sync -f' on the backing filesystem: all four candidates store their
# data there (neither FUSE mount uses writeback caching, so by the time the writer has closed
# its files the data is in the backing filesystem), and the time includes getting it to disk.
warm() { find "$@" -type f -print0 | xargs -0 cat >/dev/null; }   # untimed: source in cache

prep_create() { warm "$SRC/small"; }
row_create() { cp -r "$SRC/small" "$1/small" && sync -f "$WORK"; }
row_ls() { ls -lR "$1/small" >/dev/null; }
row_read() { find "$1/small" -type f -print0 | xargs -0 cat >/dev/null; }
check_read() { diff -r "$SRC/small" "$1/small" >/dev/null; }
prep_write_big() { cat "$SRC/big.bin" >/dev/null; }
row_write_big() { dd if="$SRC/big.bin" of="$1/big.bin" bs=1M status=none && sync -f "$WORK"; }
row_read_big() { dd if="$1/big.bin" of=/dev/null bs=1M status=none; }
check_read_big() { cmp -s "$SRC/big.bin" "$1/big.bin"; }
prep_rsync() { warm "$SRC/tree"; }
row_rsync() { rsync -a "$SRC/tree/" "$1/tree/" && sync -f "$WORK"; }
check_rsync() { diff -r "$SRC/tree" "$1/tree" >/dev/null; }

declare -A TIMES=()    # [row,cand] -> space-separated seconds
declare -A AFTER=()    # [row,cand] -> seconds vscard-mountd stayed busy after the step (settle)
declare -A FAILED=()   # [row,cand] -> 1
FAILURES=0

# settle: waits (at most 30 s) until vscard-mountd has used no CPU time and written nothing
# for half a second, and sets BUSY to the time it saw it active meanwhile (in steps of 0.1 s).
# The mount's WAL checkpoint copies what was written into the VSC file a moment after the
# writes pause; started by one step, it must not run in the next one, often another
# candidate's. gocryptfs defers nothing: its writes are in the backing file when close()
# returns. run_row settles after each timed step, and the report gives what it saw.
BUSY=0
settle() {
    local now prev="" quiet=0 busy=0 deadline=$((SECONDS + 30))
    [[ $QUICK == 1 ]] && return   # figures not meaningful there: no need to wait
    while ((SECONDS < deadline)); do
        now="$(awk '{ print $14 + $15 }' "/proc/$MOUNTD_PID/stat" 2>/dev/null)"
        now+=" $(awk '$1 == "write_bytes:" { print $2 }' "/proc/$MOUNTD_PID/io" 2>/dev/null)"
        if [[ -z $prev || $now == "$prev" ]]; then
            quiet=$((quiet + 1))
            ((quiet >= 5)) && break
        else
            quiet=0
            busy=$((busy + 1))
        fi
        prev=$now
        sleep 0.1
    done
    BUSY=$(printf '%d.%d' $((busy / 10)) $((busy % 10)))
}

# run_row ROW CAND DIR: prepares, drops caches, times the row, then checks the data (untimed).
run_row() {
    local row=$1 cand=$2 dir=$3 t0 t1 us err=$WORK/last-error.log
    settle
    drop_caches
    if declare -F "prep_$row" >/dev/null; then "prep_$row" "$dir" || true; fi   # source in cache
    t0=$EPOCHREALTIME
    if "row_$row" "$dir" 2>"$err"; then
        t1=$EPOCHREALTIME
        us=$(( ${t1/./} - ${t0/./} ))
        TIMES[$row,$cand]+="$(printf '%d.%06d' $((us / 1000000)) $((us % 1000000))) "
        settle
        AFTER[$row,$cand]+="$BUSY "
        if declare -F "check_$row" >/dev/null && ! "check_$row" "$dir" 2>>"$err"; then
            note "${CAND_TITLE[$cand]}: '${LABEL[$row]}': data read back differs from what was written"
            FAILED[$row,$cand]=1
            FAILURES=$((FAILURES + 1))
        fi
    else
        note "${CAND_TITLE[$cand]}: '${LABEL[$row]}' failed in $dir:"
        sed 's/^/    /' "$err" | head -n 10 >&2
        FAILED[$row,$cand]=1
        FAILURES=$((FAILURES + 1))
    fi
}

mode="full"
[[ $QUICK == 1 ]] && mode="quick (reduced sizes; a smoke test, figures not meaningful)"
[[ $COLD == 1 ]] && mode+="; cold reads (daemons restarted before each read row)"
note "mode: $mode; $REPEAT repetition(s); page cache dropped before each step: $([[ $DROP == 1 ]] && echo yes || echo NO)"

for ((rep = 1; rep <= REPEAT; rep++)); do
    note "repetition $rep/$REPEAT"
    # Rotate the candidate order between repetitions so none always runs first.
    order=()
    for ((i = 0; i < ${#CANDS[@]}; i++)); do
        order+=("${CANDS[(i + rep - 1) % ${#CANDS[@]}]}")
    done
    declare -A DIR=()
    for cand in "${order[@]}"; do
        DIR[$cand]=${ROOT[$cand]}/rep$rep
        mkdir "${DIR[$cand]}" || die "cannot create ${DIR[$cand]} (${CAND_TITLE[$cand]})"
    done
    for row in "${ROWS[@]}"; do
        if [[ $COLD == 1 && " ls read read_big " == *" $row "* ]]; then restart_daemons; fi
        for cand in "${order[@]}"; do
            run_row "$row" "$cand" "${DIR[$cand]}"
        done
    done
    # Untimed: remove this repetition's files so every candidate starts the next one from
    # the same state.
    for cand in "${order[@]}"; do
        rm -rf "${DIR[$cand]}" 2>"$WORK/last-error.log" ||
            { note "${CAND_TITLE[$cand]}: removing ${DIR[$cand]} failed:"; sed 's/^/    /' "$WORK/last-error.log" | head -n 5 >&2; FAILURES=$((FAILURES + 1)); }
    done
done

# ---------------------------------------------------------------------------------------------
# Report
median() {   # seconds...
    [[ $# -gt 0 ]] || { echo "-"; return; }
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "-"; exit }
        if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]
        else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() {   # a b -> a/b
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}

declare -A MED=()
for row in "${ROWS[@]}"; do
    for cand in "${CANDS[@]}"; do
        if [[ -n ${FAILED[$row,$cand]:-} ]]; then
            MED[$row,$cand]="FAILED"
        else
            # shellcheck disable=SC2086
            MED[$row,$cand]=$(median ${TIMES[$row,$cand]:-})
        fi
    done
done

fmt_row() { printf '%-28s | %9s | %9s | %13s | %14s | %16s | %15s\n' "$@"; }
{
    echo
    echo "vscard benchmark: median of $REPEAT run(s), seconds; $mode"
    echo "disk: $(df -P "$WORK" | awk 'NR==2 {print $1}'), $(uname -r), $(gocryptfs -version 2>/dev/null | head -n 1 | cut -d';' -f1)"
    fmt_row "row" "plain" "gocryptfs" "vscard public" "vscard private" "private/gocrypt" "public/gocrypt"
    fmt_row "----------------------------" "---------" "---------" "-------------" "--------------" "----------------" "---------------"
    met=0 total=0
    for row in "${ROWS[@]}"; do
        g=${MED[$row,gocryptfs]}
        rp=$(ratio "${MED[$row,private]/FAILED/-}" "${g/FAILED/-}")
        rq=$(ratio "${MED[$row,public]/FAILED/-}" "${g/FAILED/-}")
        fmt_row "${LABEL[$row]}" "${MED[$row,plain]}" "$g" "${MED[$row,public]}" \
            "${MED[$row,private]}" "$rp" "$rq"
        total=$((total + 1))
        if [[ $rp != "-" ]] && awk -v r="$rp" 'BEGIN { exit !(r <= 1.0) }'; then met=$((met + 1)); fi
    done
    echo
    echo "target: vscard private at or below gocryptfs on every row (ratio <= 1.00): met on $met of $total rows"
    busy=""
    for row in "${ROWS[@]}"; do
        # shellcheck disable=SC2086
        b=$(median ${AFTER[$row,private]:-})
        [[ $b == "-" || $b == "0.000" ]] || busy+=" ${LABEL[$row]} ${b%?}s;"
    done
    [[ -z $busy ]] || echo "vscard private, busy after the step (WAL checkpoint; not in the times above), median:${busy%;}"
    [[ $DROP == 1 ]] || echo "note: the page cache could not be dropped; read rows may be served from cache"
} | tee "$WORK/report.txt"

if [[ -n $OUT ]]; then
    {
        printf 'row\tplain\tgocryptfs\tvscard_public\tvscard_private\tratio_private_gocryptfs\tratio_public_gocryptfs\truns'
        printf '\t%s_all' "${CANDS[@]}"
        printf '\n'
        for row in "${ROWS[@]}"; do
            g=${MED[$row,gocryptfs]}
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "${LABEL[$row]}" "${MED[$row,plain]}" "$g" \
                "${MED[$row,public]}" "${MED[$row,private]}" \
                "$(ratio "${MED[$row,private]/FAILED/-}" "${g/FAILED/-}")" \
                "$(ratio "${MED[$row,public]/FAILED/-}" "${g/FAILED/-}")" "$REPEAT"
            for cand in "${CANDS[@]}"; do   # every run, comma-separated, in run order
                all=${TIMES[$row,$cand]:-}
                all=${all% }
                printf '\t%s' "${all// /,}"
            done
            printf '\n'
        done
    } >"$OUT" || die "cannot write $OUT"
    note "results written to $OUT"
fi

if [[ $FAILURES -gt 0 ]]; then
    note "$FAILURES operation(s) failed; see the messages above (run with --keep to inspect $WORK)"
    exit 1
fi
