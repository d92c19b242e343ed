#include "util/stack_thread.hpp"

#include <pthread.h>

#include <exception>
#include <system_error>

namespace kvmgpu::util {
namespace {

struct Job {
    const std::function<void()>* fn;
    std::exception_ptr failure;
};

void* run_job(void* arg) {
    auto* job = static_cast<Job*>(arg);
    try {
        (*job->fn)();
    } catch (...) {
        job->failure = std::current_exception();
    }
    return nullptr;
}

// pthread_attr_t, destroyed on every path.
struct Attr {
    pthread_attr_t attr{};
    Attr() {
        if (int e = pthread_attr_init(&attr)) throw std::system_error(e, std::generic_category(), "pthread_attr_init");
    }
    ~Attr() { pthread_attr_destroy(&attr); }
    Attr(const Attr&) = delete;
    Attr& operator=(const Attr&) = delete;
};

}  // namespace

void run_on_stack(std::size_t stack_bytes, const std::function<void()>& fn) {
    Attr attr;
    if (int e = pthread_attr_setstacksize(&attr.attr, stack_bytes))
        throw std::system_error(e, std::generic_category(), "pthread_attr_setstacksize");
    Job job{&fn, nullptr};
    pthread_t thread{};
    if (int e = pthread_create(&thread, &attr.attr, run_job, &job))
        throw std::system_error(e, std::generic_category(), "pthread_create");
    pthread_join(thread, nullptr);
    if (job.failure) std::rethrow_exception(job.failure);
}

}  // namespace kvmgpu::util
