// The download functions of a build configured with -DPETSEG_WITH_FETCH=OFF (where libcurl, libarchive or OpenSSL
// are missing, as on the GPU check's machine): weight files given by path still work; everything that would
// download or extract says why it cannot. Weights by name are still found in torch.hub's cache (weights_cache.cpp).
#include "core/check.h"
#include "fetch/archive.h"
#include "fetch/pets_download.h"
#include "fetch/weights_cache.h"

namespace petseg::fetch {
namespace {

constexpr const char* kWhy = "this petseg was built without download support (-DPETSEG_WITH_FETCH=OFF: libcurl, "
                             "libarchive or OpenSSL were missing; scripts/setup.sh installs them)";

}  // namespace

const std::vector<PetsArchive>& pets_archives() {
  static const std::vector<PetsArchive> none;
  return none;
}
std::vector<std::string> download_pets(const PetsDownloadOptions&) { PETSEG_FAIL("petseg data download: ", kWhy); }
ExtractReport extract_archive(const std::filesystem::path& archive, const std::filesystem::path&,
                              const ExtractLimits&) {
  PETSEG_FAIL(archive.string(), ": ", kWhy);
}
ExtractReport extract_archive(const void*, size_t, const std::string& name, const std::filesystem::path&,
                              const ExtractLimits&) {
  PETSEG_FAIL(name, ": ", kWhy);
}

namespace detail {
std::filesystem::path download_weights(const std::string& name, const std::string&) {
  PETSEG_FAIL(name, " is not in torch.hub's cache (", torch_hub_checkpoints().string(), ") and cannot be downloaded: ",
              kWhy);
}
}  // namespace detail

}  // namespace petseg::fetch
