# shellcheck shell=bash
# What the host side of a benchmark that runs in the test guest shares (bench/hugepages,
# bench/latency): finding kvmgpu, booting the guest in the benchmark's mode, reading its
# `BENCH ...` console lines, medians. Sourced; BENCH_NAME names the caller in messages.

bench_die() { echo "$BENCH_NAME: error: $*" >&2; exit 1; }

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
