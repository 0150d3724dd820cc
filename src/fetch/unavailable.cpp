// The download functions of a build configured with -DPETSEG_WITH_FETCH=OFF (where libcurl, libarchive or OpenSSL
// are missing, as on the GPU check's machine): weight files given by path still work; everything that would
// download or extract says why it cannot.
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
std::filesystem::path torch_hub_checkpoints() { return {}; }
std::filesystem::path resolve_weights(const std::string& spec, WeightsRole role, const std::string&,
                                      const std::string&) {
  if (spec.empty() || std::filesystem::is_regular_file(spec)) return spec;
  PETSEG_FAIL(role == WeightsRole::kModel ? "--weights " : "--backbone-weights ", spec,
              ": no such file, and weights by name need downloads: ", kWhy);
}

}  // namespace petseg::fetch
