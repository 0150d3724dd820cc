// errno formatting shared by every area.
#include "core/check.h"

#include <cstring>

namespace petseg {

std::string errno_message(int err) {
  char buf[256];
  // GNU strerror_r may return a static string instead of filling buf.
  const char* msg = strerror_r(err, buf, sizeof(buf));
  return msg ? std::string(msg) : std::string("error ") + std::to_string(err);
}

}  // namespace petseg
