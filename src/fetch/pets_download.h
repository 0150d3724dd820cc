// `petseg data download`: the Oxford-IIIT Pet archives torchvision's OxfordIIITPet downloads (same URLs, same MD5
// sums), fetched with resume, checked, extracted safely into the data set folder (images/, annotations/), then
// prepared. A mirror (--mirror URL) serves the same file names and publishes their sums in MD5SUMS beside them.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace petseg::fetch {

struct PetsArchive {
  std::string name;  // images.tar.gz
  std::string url;   // the official location
  std::string md5;   // torchvision's sum for it
  std::string top;   // the folder it unpacks to (images, annotations)
};
const std::vector<PetsArchive>& pets_archives();

struct PetsDownloadOptions {
  std::filesystem::path out;
  std::string mirror;  // empty: the official URLs and sums
};

// Leaves out/images.tar.gz, out/annotations.tar.gz (kept: never deleted) and the extracted out/images/,
// out/annotations/. An archive already there with the right sum is not fetched again; a folder already extracted
// is left alone. Returns the folders extracted by this call.
std::vector<std::string> download_pets(const PetsDownloadOptions& options);

}  // namespace petseg::fetch
