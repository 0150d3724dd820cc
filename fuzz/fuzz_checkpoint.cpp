// libFuzzer entry for petseg::fuzz::checkpoint (see targets.h).
#include <cstddef>
#include <cstdint>

#include "core/device.h"
#include "targets.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  petseg::configure_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  petseg::fuzz::checkpoint(data, size);
  return 0;
}
