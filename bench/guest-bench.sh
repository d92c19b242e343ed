# shellcheck shell=bash
# What the host side of a benchmark that runs in the test guest shares (bench/hugepages,
# bench/latency): finding kvmgpu, booting the guest in the benchmark's mode, reading its
# `BENCH ...` console lines, medians. Sourced; BENCH_NAME names the caller in messages.

bench_die() { echo "$BENCH_NAME: error: $*" >&2; exit 1; }

# The options every guest benchmark takes: --rounds N --warmup N --kvmgpu PATH --cache DIR
# --serial-log FILE --timeout S --verbose (-h prints `usage`). Sets those variables (defaults:
# rounds=$1 warmup=1 timeout=900) and test_guest_args (--timeout, --cache, --quiet); the
# caller's own options are left, in pairs OPTION VALUE, in extra_args. Bad values exit 2.
bench_parse_args() {
    rounds=$1 warmup=1 kvmgpu="" cache="" serial_log="" timeout=900 verbose=0 extra_args=()
    shift
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --rounds) rounds=$2; shift ;;
            --warmup) warmup=$2; shift ;;
            --kvmgpu) kvmgpu=$2; shift ;;
            --cache) cache=$2; shift ;;
            --serial-log) serial_log=$2; shift ;;
            --timeout) timeout=$2; shift ;;
            --verbose) verbose=1 ;;
            -h|--help) usage; exit 0 ;;
            --*) [[ $# -ge 2 ]] || { usage >&2; echo "$BENCH_NAME: $1 takes a value" >&2; exit 2; }
                 extra_args+=("$1" "$2"); shift ;;
            *) usage >&2; echo "$BENCH_NAME: unknown argument \"$1\"" >&2; exit 2 ;;
        esac
        shift
    done
    [[ $rounds =~ ^[1-9][0-9]*$ && $warmup =~ ^[0-9]+$ ]] ||
        { echo "$BENCH_NAME: --rounds takes 1 or more, --warmup 0 or more" >&2; exit 2; }
    test_guest_args=(--timeout "$timeout")
    [[ -z $cache ]] || test_guest_args+=(--cache "$cache")
    [[ $verbose -eq 1 ]] || test_guest_args+=(--quiet)
}

# kvmgpu=PATH: the one given, else build/kvmgpu or build-bench/kvmgpu, made absolute.
bench_find_kvmgpu() {
    local repo=$1
    if [[ -z $kvmgpu ]]; then
        local c
        for c in "$repo/build/kvmgpu" "$repo/build-bench/kvmgpu"; do
            if [[ -x $c ]]; then kvmgpu=$c; break; fi
        done
    fi
    [[ -n $kvmgpu && -x $kvmgpu ]] || bench_die "no kvmgpu at ${kvmgpu:-build/kvmgpu or build-bench/kvmgpu}; build it or pass --kvmgpu PATH"
    kvmgpu=$(readlink -f "$kvmgpu")
}

# Boots the guest: bench_boot REPO MODE APPEND [test-guest options...]. Sets serial_log (a temp
# file unless one was given), guest (test-guest's exit), wall (seconds), load_before/after and
# lines (the console's BENCH lines).
bench_boot() {
    local repo=$1 mode=$2 append=$3
    shift 3
    if [[ -z $serial_log ]]; then
        bench_temp=$(mktemp -d -t "kvmgpu-$mode.XXXXXX")
        trap 'rm -rf "$bench_temp"' EXIT
        serial_log=$bench_temp/serial-$mode.log
    fi
    started=$(date '+%Y-%m-%d %H:%M:%S')
    read -r load_before _ </proc/loadavg
    guest=0
    SECONDS=0
    "$repo/scripts/test-guest" "--$mode" --kvmgpu "$kvmgpu" --serial-log "$serial_log" --append "$append" "$@" </dev/null || guest=$?
    wall=$SECONDS
    read -r load_after _ </proc/loadavg
    mapfile -t lines < <(tr -d '\r' <"$serial_log" | grep -a '^BENCH ' || true)
}

bench_header() {  # bench_header TITLE
    echo "$1 — $started"
    echo "  kvmgpu   $kvmgpu (CMAKE_BUILD_TYPE $(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$(dirname "$kvmgpu")/CMakeCache.txt" 2>/dev/null || echo unknown))"
    printf '%s\n' "${lines[@]}" | sed -n 's/^BENCH INFO /  guest    /p'
    echo "  host     $(nproc) CPUs, load average $load_before before, $load_after after; the guest ran $wall s"
}

# Prints the guest's BENCH FAIL lines; fails when there is one.
bench_failures() {
    local f failed=0
    while IFS= read -r f; do
        [[ -n $f ]] || continue
        echo "$BENCH_NAME: guest: $f" >&2
        failed=1
    done < <(printf '%s\n' "${lines[@]}" | sed -n 's/^BENCH FAIL //p')
    return "$failed"
}

# No samples: says why, with the console's end, and exits 1.
bench_no_samples() {
    echo "$BENCH_NAME: error: no samples (scripts/test-guest exit $guest$([[ $guest -ne 124 ]] || echo "; the guest was killed at the timeout")); its console: $serial_log" >&2
    tail -n 40 "$serial_log" >&2
    exit 1
}

# Whether the guest printed BENCH DONE.
bench_done() { printf '%s\n' "${lines[@]}" | grep -qx 'BENCH DONE'; }

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
