#pragma once
// Every user of Boost.Asio includes this header instead of <boost/asio.hpp>.
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>;
// under -std=c++20 that fails unless <utility> comes first.
#include <utility>
#include <boost/asio.hpp>
