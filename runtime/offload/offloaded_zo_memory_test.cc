// Peak resident memory of offloaded ZO: a model whose blocks are several times the memory budget
// is initialized straight onto the NVMe tier, trained for two steps, evaluated, checkpointed and
// loaded back onto NVMe from the checkpoint; the process's peak RSS (VmHWM) must stay within the
// budget plus a small fixed allowance for the test binary, the activations and the I/O queues, and
// far below the model size. Its own binary, because VmHWM is a process-wide high-water mark.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/offload/offloaded_zo.h"

namespace strata {
namespace {

// VmHWM from /proc/self/status, in bytes; -1 when unreadable.
int64_t PeakRssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  }
  return -1;
}

TEST(OffloadedZoMemoryTest, PeakRssStaysWithinBudgetForAModelFourTimesLarger) {
  ModelConfig c;
  c.family = ModelFamily::kLlama;
  c.vocab_size = 1024;
  c.max_seq_len = 64;
  c.n_layer = 24;
  c.n_head = 12;
  c.n_kv_head = 6;
  c.d_model = 768;
  c.d_ff = 2048;
  Transformer::Options model_options;
  model_options.threads = 2;
  auto model = *Transformer::Create(c, model_options);
  const int64_t model_bytes = c.NumParameters() * 4;
  const int64_t budget = 160ll << 20;
  ASSERT_GT(model_bytes, 3 * budget);
  const int64_t start_rss = PeakRssBytes();

  const char* tmp = std::getenv("TEST_TMPDIR");
  OffloadedZo::Options options;
  options.nvme_paths = {absl::StrCat(tmp ? tmp : "/tmp", "/nvme_rss")};
  options.init_seed = 3;
  options.memory_budget_bytes = budget;
  auto offload = OffloadedZo::Create(model.get(), zo::ZoConfig(), options);
  ASSERT_TRUE(offload.ok()) << offload.status();
  ASSERT_LE((*offload)->working_set_bytes(), budget);

  std::mt19937 rng(1);
  const int B = 1, T = 32;
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % c.vocab_size);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % c.vocab_size);
  for (int step = 1; step <= 2; ++step) {
    auto result = (*offload)->Step(tokens, targets, B, T, step, 1e-6);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_TRUE(std::isfinite(result->loss));
  }
  absl::StatusOr<float> eval_loss = (*offload)->Loss(tokens, targets, B, T);  // streamed
  ASSERT_TRUE(eval_loss.ok()) << eval_loss.status();
  EXPECT_TRUE(std::isfinite(*eval_loss));
  HfSaveOptions save;  // A checkpoint written straight from NVMe, one block at a time.
  save.block_source = [&](int layer) { return (*offload)->ReadBlock(layer); };
  const std::string ckpt = absl::StrCat(tmp ? tmp : "/tmp", "/ckpt_rss");
  ASSERT_TRUE(SaveHfCheckpoint(*model, ckpt, save).ok());
  // Resuming: a second model is loaded from that checkpoint straight onto NVMe and gives the
  // same loss bit for bit.
  const int64_t working_set = (*offload)->working_set_bytes();
  offload->reset();  // One offloaded model at a time.
  model.reset();
  auto resumed_model = *Transformer::Create(c, model_options);
  auto reader = HfWeightsReader::Open(ckpt, *resumed_model);
  ASSERT_TRUE(reader.ok()) << reader.status();
  OffloadedZo::Options resume_options = options;
  resume_options.nvme_paths = {absl::StrCat(tmp ? tmp : "/tmp", "/nvme_rss_resumed")};
  resume_options.init_seed.reset();
  resume_options.load_tensor = [&](int id, float* out) { return reader->Read(id, out); };
  auto resumed = OffloadedZo::Create(resumed_model.get(), zo::ZoConfig(), resume_options);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  absl::StatusOr<float> resumed_loss = (*resumed)->Loss(tokens, targets, B, T);
  ASSERT_TRUE(resumed_loss.ok()) << resumed_loss.status();
  EXPECT_EQ(*resumed_loss, *eval_loss);
  const int64_t peak = PeakRssBytes();
  ASSERT_GT(peak, 0) << "cannot read VmHWM from /proc/self/status";
  std::fprintf(stderr,
               "model %.0f MB, budget %.0f MB, RSS before %.0f MB, working set %.0f MB, "
               "peak RSS %.0f MB\n",
               model_bytes / 1048576.0, budget / 1048576.0, start_rss / 1048576.0,
               working_set / 1048576.0, peak / 1048576.0);
  // Measured here: ~10 MB before the model, ~57 MB above the working set at the peak (test
  // binary, thread stacks, activations, initialization and I/O buffers).
  const int64_t allowance = 64ll << 20;
  EXPECT_LE(peak, budget + allowance);
  EXPECT_LT(peak, model_bytes / 2);  // the point of offloading
}

}  // namespace
}  // namespace strata
