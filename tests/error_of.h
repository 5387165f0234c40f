// error_of: the message of the zt::Error a callable throws, for tests of error messages.
#pragma once
#include <string>

#include "core/error.h"

namespace zt::test {

// The message of the zt::Error fn throws ("" when it does not throw).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace zt::test
