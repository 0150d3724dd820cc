// libFuzzer entry, compiled once per target with PETSEG_FUZZ_TARGET set to one of the functions of targets.h.
#include <cstddef>
#include <cstdint>

#include "core/device.h"
#include "targets.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  petseg::configure_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  petseg::fuzz::PETSEG_FUZZ_TARGET(data, size);
  return 0;
}
