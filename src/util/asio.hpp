#pragma once
// Every user of Boost.Asio includes this header instead of <boost/asio.hpp>.
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>;
// under -std=c++20 that fails unless <utility> comes first.
#include <utility>
#include <boost/asio.hpp>

// GCC 12 reports -Wmismatched-new-delete inside Asio's coroutine frames depending on inlining: a
// known false positive (GCC PR 109224). Every coroutine user includes this header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
