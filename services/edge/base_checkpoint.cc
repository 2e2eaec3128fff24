// See base_checkpoint.h. Hashed with OpenSSL's EVP interface, 1 MiB at a time.
#include "services/edge/base_checkpoint.h"

#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/base/status_macros.h"
#include "runtime/model/hf_checkpoint.h"

namespace strata {

absl::StatusOr<std::string> CheckpointSha256(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (absl::EndsWith(name, ".safetensors") && entry.is_regular_file(error)) {
      files.push_back(name);
    }
  }
  if (error) return absl::NotFoundError(absl::StrCat(dir, ": ", error.message()));
  if (files.empty()) return absl::NotFoundError(absl::StrCat(dir, " has no .safetensors file"));
  std::sort(files.begin(), files.end());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                  EVP_MD_CTX_free);
  if (context == nullptr || EVP_DigestInit_ex(context.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("sha256: cannot initialize OpenSSL's digest");
  }
  std::vector<char> buffer(1 << 20);
  for (const std::string& name : files) {
    const std::string path = dir + "/" + name;
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
    while (in) {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      if (in.gcount() > 0 &&
          EVP_DigestUpdate(context.get(), buffer.data(), static_cast<size_t>(in.gcount())) != 1) {
        return absl::InternalError(absl::StrCat("sha256 of ", path, " failed"));
      }
    }
    if (!in.eof()) return absl::DataLossError(absl::StrCat("error reading ", path));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(context.get(), digest, &length) != 1) {
    return absl::InternalError("sha256: cannot finish the digest");
  }
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) absl::StrAppendFormat(&hex, "%02x", digest[i]);
  return hex;
}

absl::Status LoadBaseCheckpoint(const std::string& dir, const std::string& sha256,
                                Transformer& model) {
  STRATA_ASSIGN_OR_RETURN(const std::string actual, CheckpointSha256(dir));
  if (actual != sha256) {
    return absl::FailedPreconditionError(absl::StrCat("--base_model ", dir, " has sha256 ", actual,
                                                      ", but the job starts from ", sha256,
                                                      ": not the job's checkpoint"));
  }
  return LoadHfWeights(dir, model);
}

}  // namespace strata
