// Options that take one of a fixed set of words: each set is declared once, next to what it configures, as a
// Choices list; the command line (CLI::IsMember), the config reader and the error messages all use that list.
#pragma once

#include <string>
#include <vector>

#include "core/check.h"

namespace petseg {

using Choices = std::vector<std::string>;

// "a, b, c"
inline std::string join_choices(const Choices& choices) {
  std::string s;
  for (const auto& c : choices) s += (s.empty() ? "" : ", ") + c;
  return s;
}

// Throws `unknown --option "value"; valid: a, b, c` unless `value` is one of `choices`.
inline void check_choice(const std::string& option, const std::string& value, const Choices& choices) {
  for (const auto& c : choices) {
    if (c == value) return;
  }
  PETSEG_FAIL("unknown ", option, " \"", value, "\"; valid: ", join_choices(choices));
}

inline const Choices kDeviceChoices = {"auto", "cpu", "cuda"};

}  // namespace petseg
