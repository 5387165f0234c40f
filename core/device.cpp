// Device formatting and parsing ("cpu", "cuda:1").
#include "core/device.h"

#include "core/error.h"

namespace zt {

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    const std::string idx = s.substr(5);
    ZT_CHECK(!idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos,
             "bad device '", s, "' (expected cpu, cuda or cuda:N)");
    return cuda(std::stoi(idx));
  }
  ZT_FAIL("bad device '", s, "' (expected cpu, cuda or cuda:N)");
}

}  // namespace zt
