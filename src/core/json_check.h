// One guard for every JSON document petseg reads back (manifests, checkpoint meta records, configs): nlohmann's
// get<int>() on a floating-point value is a plain static_cast, undefined behaviour when the value does not fit
// (found by fuzzing the manifest reader). Refuse such documents before any field is read.
#pragma once

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "core/check.h"

namespace petseg {

// Every floating-point number in `doc` must be finite and within +-2^31 (what petseg's documents ever hold);
// otherwise an Error naming `what`.
inline void check_json_numbers(const nlohmann::json& doc, const std::string& what) {
  if (doc.is_number_float()) {
    const double v = doc.get<double>();
    PETSEG_CHECK(std::isfinite(v) && std::fabs(v) < 2147483648.0, what, ": number ", v, " is out of range");
  } else if (doc.is_structured()) {
    for (const auto& item : doc) check_json_numbers(item, what);
  }
}

}  // namespace petseg
