// Streaming digests through OpenSSL's EVP interface.
#include "fetch/digest.h"

#include <openssl/evp.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <vector>

#include "core/check.h"

namespace petseg::fetch {
namespace {

std::string digest_file(const std::filesystem::path& path, const EVP_MD* md) {
  std::ifstream in(path, std::ios::binary);
  PETSEG_CHECK(in, "cannot read ", path.string(), " to check its sum");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  PETSEG_CHECK(ctx && EVP_DigestInit_ex(ctx.get(), md, nullptr) == 1, "cannot start a digest");
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), size_t(in.gcount()));
  }
  PETSEG_CHECK(in.eof(), "cannot read ", path.string(), " to check its sum");
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx.get(), out, &n);
  std::string hex;
  char two[3];
  for (unsigned int i = 0; i < n; ++i) {
    std::snprintf(two, sizeof(two), "%02x", out[i]);
    hex += two;
  }
  return hex;
}

}  // namespace

std::string md5_file(const std::filesystem::path& path) { return digest_file(path, EVP_md5()); }
std::string sha256_file(const std::filesystem::path& path) { return digest_file(path, EVP_sha256()); }

}  // namespace petseg::fetch
