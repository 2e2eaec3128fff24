// Hugging Face checkpoint directories: save/load round trips (single file, sharded, bf16), the
// GPT-2 Conv1D transposition on disk, and rejection of incomplete or foreign checkpoints.
#include "runtime/model/hf_checkpoint.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/testing/tiny_models.h"
#include "storage/atomic_file.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string NewDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(base ? base : "/tmp") + "/" + name;
  mkdir(dir.c_str(), 0755);
  return dir;
}

ModelConfig Tiny(ModelFamily family) {
  ModelConfig c;
  c.family = family;
  c.vocab_size = 37;
  c.max_seq_len = 16;
  c.n_layer = 3;
  c.n_head = 4;
  c.n_kv_head = family == ModelFamily::kLlama ? 2 : 4;
  c.d_model = 16;
  c.d_ff = 24;
  c.tie_embeddings = family == ModelFamily::kGpt2;
  return testing_models::WithFamilyFeatures(c);
}

class HfCheckpointTest : public ::testing::TestWithParam<ModelFamily> {};

TEST_P(HfCheckpointTest, SingleAndShardedRoundTripsAreBitwise) {
  auto model = Transformer::Create(Tiny(GetParam()));
  ASSERT_TRUE(model.ok());
  (*model)->InitializeParameters(7);
  for (int64_t max_shard : {int64_t{0}, int64_t{2000}}) {
    const std::string dir =
        NewDir(absl::StrCat("rt_", static_cast<int>(GetParam()), "_", max_shard));
    HfSaveOptions options;
    options.max_shard_bytes = max_shard;
    ASSERT_TRUE(SaveHfCheckpoint(**model, dir, options).ok());
    if (max_shard > 0) {
      EXPECT_TRUE(std::ifstream(dir + "/model.safetensors.index.json").good());
      EXPECT_FALSE(std::ifstream(dir + "/model.safetensors").good());
    }
    absl::StatusOr<std::unique_ptr<Transformer>> loaded = LoadHfCheckpoint(dir);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ASSERT_EQ((*loaded)->params().size(), (*model)->params().size());
    EXPECT_TRUE(std::equal((*model)->params().begin(), (*model)->params().end(),
                           (*loaded)->params().begin()));
  }
}

TEST_P(HfCheckpointTest, Bf16SaveLoadsRounded) {
  auto model = Transformer::Create(Tiny(GetParam()));
  ASSERT_TRUE(model.ok());
  (*model)->InitializeParameters(8);
  const std::string dir = NewDir(absl::StrCat("bf16_", static_cast<int>(GetParam())));
  HfSaveOptions options;
  options.dtype = SafetensorsDType::kBF16;
  ASSERT_TRUE(SaveHfCheckpoint(**model, dir, options).ok());
  auto loaded = LoadHfCheckpoint(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  for (size_t i = 0; i < (*model)->params().size(); i += 7) {
    ASSERT_EQ((*loaded)->params()[i], Bf16ToFloat(FloatToBf16((*model)->params()[i])));
  }
}

INSTANTIATE_TEST_SUITE_P(Families, HfCheckpointTest,
                         ::testing::ValuesIn(testing_models::AllFamilies()),
                         [](const ::testing::TestParamInfo<ModelFamily>& info) {
                           return std::string(ModelFamilyName(info.param));
                         });

TEST(HfCheckpointGpt2Test, Conv1DWeightsAreStoredInputMajor) {
  auto model = Transformer::Create(Tiny(ModelFamily::kGpt2));
  ASSERT_TRUE(model.ok());
  (*model)->InitializeParameters(9);
  const std::string dir = NewDir("conv1d");
  ASSERT_TRUE(SaveHfCheckpoint(**model, dir).ok());
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok());
  const SafetensorsEntry* entry = file->header().Find("transformer.h.1.attn.c_attn.weight");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->shape, (std::vector<int64_t>{16, 48}));  // (in, out) on disk.
  std::vector<float> disk(16 * 48);
  ASSERT_TRUE(file->ReadF32(*entry, disk.data()).ok());
  const TensorInfo& t = (*model)->layout().BlockTensor(1, 2);
  const float* arena = (*model)->params().data() + t.offset;  // (out=48, in=16).
  EXPECT_EQ(disk[3 * 48 + 40], arena[40 * 16 + 3]);
  EXPECT_EQ(disk[15 * 48 + 0], arena[0 * 16 + 15]);
}

TEST(HfCheckpointErrorsTest, IncompleteForeignOrMisshapenCheckpointsAreRejected) {
  auto model = Transformer::Create(Tiny(ModelFamily::kLlama));
  ASSERT_TRUE(model.ok());
  const std::string dir = NewDir("errors");
  ASSERT_TRUE(SaveHfCheckpoint(**model, dir).ok());
  std::vector<float> one(16, 1.0f);

  // Missing parameters.
  std::vector<SafetensorsTensorView> partial = {{"model.norm.weight", {16}, one.data()}};
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", partial, {}).ok());
  absl::Status status = LoadHfWeights(dir, **model);
  EXPECT_THAT(status.message(), HasSubstr("parameters missing"));
  EXPECT_THAT(status.message(), HasSubstr("model.embed_tokens.weight"));

  // A tensor of another architecture.
  std::vector<SafetensorsTensorView> foreign = {{"bert.pooler.dense.weight", {16}, one.data()}};
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", foreign, {}).ok());
  EXPECT_THAT(LoadHfWeights(dir, **model).message(), HasSubstr("bert.pooler.dense.weight"));

  // Wrong shape.
  std::vector<SafetensorsTensorView> wrong = {{"model.norm.weight", {4, 4}, one.data()}};
  ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", wrong, {}).ok());
  EXPECT_THAT(LoadHfWeights(dir, **model).message(), HasSubstr("has shape [4, 4]"));

  // An index pointing outside the directory.
  ASSERT_TRUE(
      WriteStringToFileAtomically(dir + "/model.safetensors.index.json",
                                  R"({"weight_map": {"model.norm.weight": "../../etc/passwd"}})")
          .ok());
  EXPECT_THAT(LoadHfWeights(dir, **model).message(), HasSubstr("must name a file"));

  // No weights at all.
  const std::string empty = NewDir("empty");
  EXPECT_EQ(LoadHfWeights(empty, **model).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata
