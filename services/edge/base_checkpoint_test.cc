// The base checkpoint's digest is plain sha256 over the .safetensors files in name order (what
// `sha256sum` prints for one file; other files ignored), and a client loads θ0 from its copy only
// when the digest is the job's — then it has the checkpoint's weights bit for bit.
#include "services/edge/base_checkpoint.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/testing/tiny_models.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string Dir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  mkdir(dir.c_str(), 0755);
  return dir;
}

TEST(BaseCheckpointTest, TheDigestIsSha256OfTheWeightFilesInNameOrder) {
  const std::string one = Dir("one");
  std::ofstream(one + "/model.safetensors") << "abc";
  std::ofstream(one + "/config.json") << "{}";  // Not a weight file: not hashed.
  absl::StatusOr<std::string> digest = CheckpointSha256(one);
  ASSERT_TRUE(digest.ok()) << digest.status();
  // FIPS 180-2's example: sha256("abc").
  EXPECT_EQ(*digest, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string sharded = Dir("sharded");
  std::ofstream(sharded + "/model-00002-of-00002.safetensors") << "c";
  std::ofstream(sharded + "/model-00001-of-00002.safetensors") << "ab";
  EXPECT_EQ(CheckpointSha256(sharded).value_or(""), *digest);
  EXPECT_EQ(CheckpointSha256(Dir("empty")).status().code(), absl::StatusCode::kNotFound);
}

TEST(BaseCheckpointTest, OnlyTheJobsCheckpointIsLoaded) {
  const ModelConfig config = testing_models::Tiny(ModelFamily::kGpt2, 2);
  absl::StatusOr<std::unique_ptr<Transformer>> saved = Transformer::Create(config);
  absl::StatusOr<std::unique_ptr<Transformer>> client = Transformer::Create(config);
  ASSERT_TRUE(saved.ok() && client.ok());
  (*saved)->InitializeParameters(1);
  (*client)->InitializeParameters(2);
  const std::string dir = Dir("base");
  ASSERT_TRUE(SaveHfCheckpoint(**saved, dir).ok());
  absl::StatusOr<std::string> digest = CheckpointSha256(dir);
  ASSERT_TRUE(digest.ok()) << digest.status();

  const absl::Status other = LoadBaseCheckpoint(dir, std::string(64, '0'), **client);
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(other.message(), HasSubstr(*digest));
  EXPECT_THAT(other.message(), HasSubstr(std::string(64, '0')));
  const Transformer& loaded = **client;
  const Transformer& original = **saved;
  EXPECT_NE(std::vector<float>(loaded.params().begin(), loaded.params().end()),
            std::vector<float>(original.params().begin(), original.params().end()));

  ASSERT_TRUE(LoadBaseCheckpoint(dir, *digest, **client).ok());
  EXPECT_EQ(std::vector<float>(loaded.params().begin(), loaded.params().end()),
            std::vector<float>(original.params().begin(), original.params().end()));
}

}  // namespace
}  // namespace strata
