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
