// Formats zt::Error messages as "message (at file:line)".
#include "core/error.h"

namespace zt::detail {

void throw_error(const char* file, int line, const std::string& msg) {
  std::string path(file);
  auto pos = path.rfind('/');
  // Keep "layer/file.cpp" so the location is short but unambiguous.
  if (pos != std::string::npos && pos > 0) {
    auto prev = path.rfind('/', pos - 1);
    if (prev != std::string::npos) path = path.substr(prev + 1);
  }
  throw Error(msg + " (at " + path + ":" + std::to_string(line) + ")");
}

}  // namespace zt::detail
