# shellcheck shell=sh
# Helpers for the guest scripts (busybox sh), sourced by tests/e2e/guest-steps and
# scripts/test-guest-demo inside the test guest.

SYS=/sys/bus/pci/devices

# The driver a device is bound to, or "none".
driver_of() {
    if [ -e "$SYS/$1/driver" ]; then basename "$(readlink "$SYS/$1/driver")"; else echo none; fi
}
override_of() { cat "$SYS/$1/driver_override"; }
group_of() { basename "$(readlink "$SYS/$1/iommu_group")"; }

# One line per PCI device: address, driver, driver_override. Compared before and after a step.
snapshot() {
    for d in "$SYS"/*; do
        a=$(basename "$d")
        echo "$a $(driver_of "$a") $(override_of "$a")"
    done
}

# Polls `$@` until it succeeds or $WAIT_S seconds (default 30) pass; returns its last status.
wait_for() {
    _deadline=$(( $(date +%s) + ${WAIT_S:-30} ))
    while ! "$@"; do
        [ "$(date +%s)" -ge "$_deadline" ] && return 1
        sleep 0.1
    done
    return 0
}

# What the host's drivers made of a PCI function, from its sysfs directory: its DRM nodes
# (drm/card0 → /dev/dri/card0), framebuffers (graphics/fb0 → /dev/fb0), sound cards
# (sound/card0 → /dev/snd/controlC0 …). Each prints names, one a line, nothing when there are none.
drm_nodes_of() { for _n in "$SYS/$1"/drm/card* "$SYS/$1"/drm/renderD*; do [ -e "$_n" ] && basename "$_n"; done; }
fbs_of() { for _n in "$SYS/$1"/graphics/fb*; do [ -e "$_n" ] && basename "$_n"; done; }
sound_cards_of() { for _n in "$SYS/$1"/sound/card*; do [ -e "$_n" ] && basename "$_n"; done; }
# The /dev/snd nodes of sound card $1 (card0 → controlC0, pcmC0D0p, …), from its sysfs directory.
snd_nodes_of() { for _n in /sys/class/sound/"$1"/*; do [ -e "$_n/dev" ] && basename "$_n"; done; }
# The framebuffer console: succeeds when a vtconsole named "frame buffer device" is bound;
# FBCON_VTCON is then its directory (/sys/class/vtconsole/vtconN).
fbcon_bound() {
    for _v in /sys/class/vtconsole/vtcon*; do
        if grep -q "frame buffer" "$_v/name" 2>/dev/null && [ "$(cat "$_v/bind")" = 1 ]; then
            # shellcheck disable=SC2034  # for the scripts that source this file
            FBCON_VTCON=$_v
            return 0
        fi
    done
    return 1
}
# One line per vtconsole: "vtcon1 bind=1 (M) frame buffer device".
vtconsoles() { for _v in /sys/class/vtconsole/vtcon*; do echo "$(basename "$_v") bind=$(cat "$_v/bind") $(cat "$_v/name")"; done; }

# Holding a node, as a display server holds /dev/dri/card0 or a player /dev/snd/pcmC0D0p:
#   hold /dev/dri/card0 || fail ...   # HOLD_PID is the holder's pid
#   ...                               # /proc/$HOLD_PID/fd/0 is the node
#   unhold                            # ends it (by its pid) and waits for it
# The holder is a busybox `sleep 600` with its stdin on the node. hold fails (and leaves no
# process) when the node cannot be opened within 5 s.
hold() {
    # shellcheck disable=SC2217  # sleep does not read its stdin: it only keeps it open
    sleep 600 <"$1" &
    HOLD_PID=$!
    if WAIT_S=5 wait_for holds "$HOLD_PID" "$1"; then return 0; fi
    unhold
    return 1
}
holds() { [ "$(readlink "/proc/$1/fd/0" 2>/dev/null)" = "$2" ]; }  # holds PID NODE
unhold() {
    if [ -n "${HOLD_PID:-}" ]; then
        kill "$HOLD_PID" 2>/dev/null
        wait "$HOLD_PID" 2>/dev/null
    fi
    HOLD_PID=""
}

# The evdev node (eventN) of the input device whose kernel name is $1 ("QEMU Virtio Keyboard"),
# from sysfs; fails when there is none.
event_node_named() {
    for _e in /sys/class/input/event*; do
        if [ "$(cat "$_e/device/name" 2>/dev/null)" = "$1" ]; then basename "$_e"; return 0; fi
    done
    return 1
}
# The events of type $2 (1 EV_KEY, 2 EV_REL) in file $1 of raw struct input_event (24 bytes on
# x86_64: time 16, type 2, code 2, value 4), one "CODE VALUE" a line (VALUE's low 16 bits: enough
# for 0/1 key states and small moves).
evdev_events() { od -An -v -tu2 -w24 "$1" | awk -v t="$2" '$9 == t { print $10, $11 }'; }

# The guest's CPU time in use, in percent, over 0.2 s (from /proc/stat: all but idle and iowait).
busy() {
    read -r _ _u _n _s _i _w _q _sq _st _ </proc/stat
    _busy0=$((_u + _n + _s + _q + _sq + _st)) _idle0=$((_i + _w))
    sleep 0.2
    read -r _ _u _n _s _i _w _q _sq _st _ </proc/stat
    _busy=$((_u + _n + _s + _q + _sq + _st - _busy0)) _idle=$((_i + _w - _idle0))
    echo $((_busy * 100 / (_busy + _idle + 1)))
}
# Waits until the guest is idle (under 5% busy over 0.2 s), at most 50 tries (10 s); fails then.
# For benchmarks: what the previous sample left running (a redraw, a probe) stays out of the next.
settle_idle() {
    _tries=0
    while [ "$(busy)" -ge 5 ]; do
        _tries=$((_tries + 1))
        [ "$_tries" -lt 50 ] || return 1
    done
}
