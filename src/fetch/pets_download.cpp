// Fetch (resumable, into name.part), check the sum, rename into place; extract into a staging folder inside the
// data set folder and rename its top folder into place, so a crash never leaves half an images/ that looks whole.
#include "fetch/pets_download.h"

#include <map>
#include <sstream>

#include "core/check.h"
#include "core/log.h"
#include "fetch/archive.h"
#include "fetch/digest.h"
#include "fetch/http.h"

namespace petseg::fetch {
namespace {

namespace fs = std::filesystem;

// "<md5>  <name>" lines, as md5sum writes them ('*' before binary names).
std::map<std::string, std::string> parse_md5sums(const std::string& text, const std::string& url) {
  std::map<std::string, std::string> sums;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string sum, name;
    fields >> sum >> name;
    if (!name.empty() && name[0] == '*') name = name.substr(1);
    PETSEG_CHECK(sum.size() == 32 && sum.find_first_not_of("0123456789abcdef") == std::string::npos && !name.empty(),
                 url, ": not an md5sum line: \"", line, "\"");
    sums[name] = sum;
  }
  return sums;
}

// The archive at `out/name`, fetched unless it is already there with the expected sum.
void fetch_archive(const std::string& url, const fs::path& file, const std::string& md5) {
  if (fs::exists(file)) {
    const std::string have = md5_file(file);
    PETSEG_CHECK(have == md5, file.string(), " is there but its MD5 is ", have, ", expected ", md5,
                 "; move it away (petseg never deletes it) and download again");
    log_info(file.filename().string(), ": already downloaded (MD5 checked)");
    return;
  }
  // A partial file from an earlier run may already be whole (a range request past its end would start it over).
  const fs::path part = file.string() + ".part";
  const bool resuming = fs::exists(part);
  std::string got = resuming ? md5_file(part) : "";
  if (got != md5) {
    log_info("downloading ", url, resuming ? " (resuming)" : "");
    DownloadOptions options;
    options.what = file.filename().string();
    download_to(url, part, options);
    got = md5_file(part);
  }
  if (got != md5) {
    std::error_code ec;
    fs::remove(part, ec);  // our own partial file: a bad one must not be resumed
    PETSEG_FAIL("downloaded ", url, " but its MD5 is ", got, ", expected ", md5,
                " (a corrupt transfer or another file); nothing was kept, run the download again");
  }
  fs::rename(part, file);
}

// Extracts into out/.petseg-extract-<top>/ and renames its <top>/ folder into out/.
void extract_into(const fs::path& file, const fs::path& out, const std::string& top) {
  const fs::path staging = out / (".petseg-extract-" + top);
  std::error_code ec;
  fs::remove_all(staging, ec);  // our own staging folder from an interrupted run
  ExtractReport r;
  try {
    r = extract_archive(file, staging);
  } catch (...) {
    fs::remove_all(staging, ec);  // our own staging folder: a refused archive leaves nothing behind
    throw;
  }
  PETSEG_CHECK(fs::is_directory(staging / top), file.string(), " does not hold a ", top,
               "/ folder: not the Oxford-IIIT Pet archive");
  fs::rename(staging / top, out / top);
  fs::remove_all(staging, ec);
  log_info(file.filename().string(), ": extracted ", r.files, " files into ", (out / top).string());
}

}  // namespace

const std::vector<PetsArchive>& pets_archives() {
  static const std::vector<PetsArchive> archives = {
      {"images.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
       "5c4f3ee8e5d25df40f4fd59a7f44e54c", "images"},
      {"annotations.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
       "95a8c909bbe2e81eed6a22bccdf3f68f", "annotations"},
  };
  return archives;
}

std::vector<std::string> download_pets(const PetsDownloadOptions& o) {
  PETSEG_CHECK(!o.out.empty(), "--out is required");
  std::error_code ec;
  fs::create_directories(o.out, ec);
  PETSEG_CHECK(!ec, "cannot create ", o.out.string(), ": ", ec.message());
  std::map<std::string, std::string> mirror_sums;
  if (!o.mirror.empty()) mirror_sums = parse_md5sums(fetch_text(join_url(o.mirror, "MD5SUMS")), join_url(o.mirror, "MD5SUMS"));
  std::vector<std::string> extracted;
  for (const PetsArchive& a : pets_archives()) {
    const fs::path file = o.out / a.name;
    std::string url = a.url, md5 = a.md5;
    if (!o.mirror.empty()) {
      url = join_url(o.mirror, a.name);
      const auto it = mirror_sums.find(a.name);
      PETSEG_CHECK(it != mirror_sums.end(), join_url(o.mirror, "MD5SUMS"), " has no sum for ", a.name);
      md5 = it->second;
    }
    fetch_archive(url, file, md5);
    if (fs::exists(o.out / a.top)) {
      log_info((o.out / a.top).string(), " is already there: not extracted again");
      continue;
    }
    extract_into(file, o.out, a.top);
    extracted.push_back(a.top);
  }
  return extracted;
}

}  // namespace petseg::fetch
