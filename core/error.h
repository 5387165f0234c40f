// Error reporting: ZT_CHECK throws zt::Error carrying file:line and the values involved.
// Library code never exits the process; callers (apps) catch zt::Error and report it.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace zt {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  ((os << args), ...);
  return os.str();
}
[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace zt

// ZT_CHECK(cond, "expected ", a, " but found ", b): throws zt::Error when cond is false.
#define ZT_CHECK(cond, ...)                                                          \
  do {                                                                               \
    if (!(cond)) ::zt::detail::throw_error(__FILE__, __LINE__, ::zt::detail::concat(__VA_ARGS__)); \
  } while (0)

// ZT_FAIL("message", values...): unconditional error.
#define ZT_FAIL(...) ::zt::detail::throw_error(__FILE__, __LINE__, ::zt::detail::concat(__VA_ARGS__))
