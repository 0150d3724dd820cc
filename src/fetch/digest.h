// File digests as the download checks need them: MD5 (torchvision's data set sums, md5sum files) and SHA-256
// (torch.hub's hash prefix in weight file names), lowercase hex.
#pragma once

#include <filesystem>
#include <string>

namespace petseg::fetch {

std::string md5_file(const std::filesystem::path& path);
std::string sha256_file(const std::filesystem::path& path);

}  // namespace petseg::fetch
