#pragma once
// Runs a function on a thread of its own with a stack of a known size, and waits for it. For
// code whose recursion depth depends on its input (a parser): the room it has is then the same
// whatever thread or `ulimit -s` the caller has.
#include <cstddef>
#include <functional>

namespace kvmgpu::util {

// Calls `fn` on a new thread with `stack_bytes` of stack and returns when it has returned.
// An exception `fn` throws is rethrown here; std::system_error if no thread could be made.
void run_on_stack(std::size_t stack_bytes, const std::function<void()>& fn);

}  // namespace kvmgpu::util
