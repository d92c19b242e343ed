// The launch step `hugepages`: the hugepage pool raised by what the VM lacks (see
// hugepages_step in launch_steps.hpp).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>

#include "app/launch_steps.hpp"
#include "host/hugepage_pool.hpp"
#include "host/journal.hpp"
#include "util/text.hpp"

namespace kvmgpu::app {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Takes the host-wide hugepage lock, waiting for another launch that holds it (up to 2 min,
// or until a stop signal).
util::Fd lock_pool(LaunchRun& run, const std::string& message) {
    const auto file = host_state_dir(run.ctx) / "hugepages.lock";
    fs::create_directories(file.parent_path());
    util::Fd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) run.fail("hugepages", message, "cannot open " + file.string());
    const auto deadline = Clock::now() + std::chrono::minutes(2);
    while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (Clock::now() > deadline)
            run.fail("hugepages", message,
                     "another VM's launch has held " + file.string() + " for 2 minutes; is a kvmgpu hanging?");
        if (util::wait_readable(-1, Clock::now() + std::chrono::milliseconds(20), &run.interrupt) ==
            util::WaitResult::interrupted)
            run.check_interrupt("hugepages");
    }
    return fd;
}

std::string boot_advice(std::uint64_t page, std::uint64_t pages) {
    return page >= (std::uint64_t{1} << 30)
               ? "1G pages are seldom free once a host has run a while: reserve them at boot with "
                 "`default_hugepagesz=1G hugepagesz=1G hugepages=" + std::to_string(pages) + "` on the kernel command line"
               : "free memory (close programs; `sync; echo 3 > /proc/sys/vm/drop_caches`) and start again, or reserve "
                 "them at boot with `hugepages=" + std::to_string(pages) + "` on the kernel command line";
}

}  // namespace

void hugepages_step(LaunchRun& run) {
    const auto& m = run.profile.machine;
    const std::uint64_t page = m.hugepage_bytes();
    if (page == 0) return;
    const std::string size = util::format_size(page);
    const auto& root = run.ctx.host_root;
    const auto node = host::numa_node_of(root, run.profile.cpu.pin);
    auto pool = host::hugepage_pool_files(page, node);
    if (node && !fs::exists(host::under(root, pool.dir))) pool = host::hugepage_pool_files(page, std::nullopt);
    const std::string where = node ? " of NUMA node " + std::to_string(*node) : "";
    const std::string message = "reserving " + size + " hugepages" + where;
    auto lock = lock_pool(run, message);
    const std::uint64_t needed = (m.memory + page - 1) / page;
    const auto total = host::read_page_count(root, pool.nr_hugepages());
    const auto free = host::read_page_count(root, pool.free_hugepages());
    if (!total || !free) run.fail("hugepages", message, "cannot read " + pool.dir.string() + " (no " + size + " pages?)");
    if (*free >= needed) {
        *run.hugepages_lock = std::move(lock);
        return run.step("hugepages", message, std::to_string(*free) + " free cover the " + std::to_string(needed) + " the VM needs");
    }
    const std::uint64_t lacking = needed - *free;
    const std::uint64_t target = *total + lacking;
    if (!m.keep_hugepages) {
        register_journal_undo(run);
        try {
            host::record_change(host_state_dir(run.ctx), run.profile.name, ::getpid(),
                                host::HugepagesAdded{pool.nr_hugepages(), lacking});
        } catch (const std::exception& e) {
            run.fail("hugepages", message, e.what());
        }
    }
    // Compaction makes the contiguous runs a hugepage needs; a kernel without it still tries.
    run.writer.write(host::under(root, "/proc/sys/vm/compact_memory"), "1");
    const int error = run.writer.write(host::under(root, pool.nr_hugepages()), std::to_string(target));
    const auto now = host::read_page_count(root, pool.nr_hugepages()).value_or(*total);
    if (error != 0 || now < target) {
        // Whatever the kernel did give goes back now, so the pool is as it was; the journal
        // entry goes with it (its undo would lower the pool by all that was asked).
        if (now != *total) run.writer.write(host::under(root, pool.nr_hugepages()), std::to_string(*total));
        if (!m.keep_hugepages)
            host::drop_change(host_state_dir(run.ctx), run.profile.name, host::HugepagesAdded{pool.nr_hugepages(), lacking});
        run.fail("hugepages", message,
                 "the VM needs " + std::to_string(needed) + " " + size + " pages and " + std::to_string(*free) +
                     " were free; the kernel could add " + std::to_string(now > *total ? now - *total : 0) + " of the " +
                     std::to_string(lacking) + " more asked for: " + boot_advice(page, target));
    }
    *run.hugepages_lock = std::move(lock);
    run.step("hugepages", message,
             "pool " + std::to_string(*total) + " → " + std::to_string(target) + " pages (" + std::to_string(lacking) +
                 " added for " + util::format_size(m.memory) + ")" +
                 (m.keep_hugepages ? "; kept after the VM (keep_hugepages)" : "; given back when the VM ends"));
}

}  // namespace kvmgpu::app
