// Errors and checks: library code throws petseg::Error with a message that names the file or argument and what
// is wrong; main() catches it and prints one line.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace petseg {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// strerror(errno) as a string, thread-safe.
std::string errno_message(int err);

}  // namespace petseg

#define PETSEG_CHECK(cond, ...)                                                 \
  do {                                                                          \
    if (!(cond)) throw ::petseg::Error(::petseg::detail::str_cat(__VA_ARGS__)); \
  } while (0)

#define PETSEG_FAIL(...) throw ::petseg::Error(::petseg::detail::str_cat(__VA_ARGS__))
