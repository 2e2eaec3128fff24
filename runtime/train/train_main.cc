// strata-train: trains a transformer on one machine, first-order (AdamW) or zeroth-order (the
// MeZO family), and saves a Hugging Face checkpoint. With no flags it trains a small GPT-2-shaped
// model on the license texts in /usr/share/common-licenses with the byte tokenizer and reports
// the held-out loss against the corpus's unigram entropy (the best loss without context).
// Settings can come from a file: --flagfile=job.flags (one --flag=value per line).
#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runtime/base/status_macros.h"
#include "runtime/data/dataset.h"
#include "runtime/data/tokenizer.h"
#include "runtime/dist/communicator.h"
#include "runtime/model/hf_checkpoint.h"
#include "runtime/train/fo_trainer.h"
#include "runtime/train/zo_trainer.h"
#include "services/common/coordinator_store.h"
#include "services/common/main_util.h"
#include "services/common/tls.h"

ABSL_FLAG(std::string, init_from, "", "Hugging Face checkpoint directory to start from.");
ABSL_FLAG(std::string, model_config, "",
          "config.json for a randomly initialized model (instead of --init_from).");
ABSL_FLAG(std::string, preset, "gpt2-tiny",
          "Built-in shape when neither --init_from nor --model_config is given: gpt2-tiny "
          "(4 layers, 256 wide) or llama-tiny.");
ABSL_FLAG(std::vector<std::string>, data, {},
          "Comma-separated training files. Default: every file in /usr/share/common-licenses.");
ABSL_FLAG(std::string, format, "auto", "Data format: auto, u16, u32, jsonl, text.");
ABSL_FLAG(std::string, tokenizer, "", "tokenizer.json for text data. Default: byte tokenizer.");
ABSL_FLAG(std::string, text_field, "text", "JSONL field holding the text.");
ABSL_FLAG(double, eval_fraction, 0.05, "Fraction of the corpus (its end) held out for eval.");
ABSL_FLAG(int, batch, 16, "Sequences per step.");
ABSL_FLAG(int, seq, 128, "Tokens per sequence.");
ABSL_FLAG(int64_t, steps, 300, "Optimizer steps.");
ABSL_FLAG(double, lr, 3e-3, "Peak learning rate.");
ABSL_FLAG(double, min_lr, 3e-4, "Learning rate at the end of the cosine decay.");
ABSL_FLAG(int64_t, warmup, 30, "Linear warm-up steps.");
ABSL_FLAG(double, weight_decay, 0.1, "AdamW weight decay (not applied to norms and biases).");
ABSL_FLAG(double, grad_clip, 1.0, "Global gradient-norm clip; 0 disables.");
ABSL_FLAG(int64_t, eval_every, 100, "Evaluate every N steps (and at the end).");
ABSL_FLAG(int, eval_batches, 8, "Batches per evaluation.");
ABSL_FLAG(int64_t, log_every, 10, "Progress line every N steps.");
ABSL_FLAG(uint64_t, seed, 1, "Seed for initialization and data order.");
ABSL_FLAG(int, threads, 0, "Compute threads. 0: one per CPU.");
ABSL_FLAG(std::string, save_dir, "", "Write a Hugging Face checkpoint here at the end.");
ABSL_FLAG(std::string, optimizer, "adamw",
          "adamw (first-order) or zo (zeroth-order, MeZO family).");
ABSL_FLAG(std::string, zo_variant, "sgd", "ZO update: sgd, sign, momentum or adam.");
ABSL_FLAG(double, eps, 1e-3, "ZO perturbation scale.");
ABSL_FLAG(int, num_perturbations, 1, "ZO perturbations per step (n-SPSA q).");
ABSL_FLAG(bool, one_sided, false, "ZO one-sided estimate (L(w+eps z) - L(w)) / eps.");
ABSL_FLAG(std::string, distribution, "gaussian", "ZO noise: gaussian or rademacher.");
ABSL_FLAG(double, sparse_quantile, 0,
          "Sparse-MeZO: perturb weights below this magnitude "
          "quantile of each tensor (0 disables).");
ABSL_FLAG(double, scalar_clip, 0, "Clip the ZO projected gradient to this magnitude (0: off).");
ABSL_FLAG(double, momentum, 0.9, "ZO momentum coefficient.");
ABSL_FLAG(std::string, checkpoint_dir, "",
          "Checkpoints (and the ZO step log) go here; an existing directory is resumed exactly. "
          "Data-parallel FO ranks each use DIR/rank<R>.");
ABSL_FLAG(int64_t, checkpoint_every, 0, "Checkpoint every N steps (and at the end).");
ABSL_FLAG(std::vector<std::string>, offload_dirs, {},
          "ZO: stream the transformer blocks from these NVMe directories (sgd and sign).");
ABSL_FLAG(int64_t, memory_budget_bytes, 0,
          "ZO offload: bound on the working set (resident tensors + perturbation buffers + "
          "slots).");
ABSL_FLAG(int, prefetch_blocks, 2, "ZO offload: blocks read ahead of the one computing.");
ABSL_FLAG(bool, offload_bf16, false, "ZO offload: store blocks as bf16 (fp32 compute).");
ABSL_FLAG(std::string, offload_tier, "nvme",
          "ZO offload tier: nvme (needs --offload_dirs) or cpu (blocks in pinned host memory).");
ABSL_FLAG(std::string, replay_log, "",
          "ZO: a step log (e.g. the coordinator's copy) to replay from the initial weights when "
          "--checkpoint_dir holds no checkpoint yet, so a restarted run loses no step.");
ABSL_FLAG(bool, report_steps, false,
          "ZO: print each step's record as a \"zo-record\" line once it is durable (for the "
          "worker daemon, which forwards them to the coordinator).");
ABSL_FLAG(int, world_size, 1,
          "FO: data-parallel ranks (each runs this command with its --rank); they meet through "
          "--rendezvous_dir and all-reduce over TCP (Gloo).");
ABSL_FLAG(int, rank, 0, "FO data parallel: this process's rank in [0, --world_size).");
ABSL_FLAG(std::string, rendezvous_dir, "",
          "FO data parallel: a directory every rank can reach, for the rendezvous files.");
ABSL_FLAG(std::string, rendezvous_coordinator, "",
          "FO data parallel: meet the other ranks through this coordinator's rendezvous store "
          "(host:port; TLS per --tls_ca or STRATA_TLS_CA, or --insecure; the worker token from "
          "STRATA_WORKER_TOKEN) instead of files under --rendezvous_dir.");
ABSL_FLAG(std::string, rendezvous_prefix, "strata-train",
          "FO data parallel: key prefix of this run in --rendezvous_dir (one per run/attempt).");
ABSL_FLAG(std::string, rendezvous_host, "127.0.0.1",
          "FO data parallel: the address this rank listens on for its peers.");
ABSL_FLAG(std::vector<std::string>, optimizer_state_dirs, {},
          "FO: keep the AdamW state (m, v) on NVMe in these directories, streamed in sub-groups "
          "(checkpoints stream it too).");
ABSL_FLAG(std::vector<std::string>, param_offload_dirs, {},
          "FO at --zero_stage=3: keep this rank's weight shard on NVMe in these directories "
          "(read before each block's gather, streamed through the AdamW pass).");
ABSL_FLAG(bool, bf16_compute, false,
          "FO at --zero_stage=3: forward and backward read a bf16 copy of the weights that AdamW "
          "writes beside the fp32 masters (half the bytes gathered).");
ABSL_FLAG(int, zero_stage, 0,
          "FO: ZeRO stage 0 (replicated AdamW state), 1 (partitioned state), 2 (+ reduce-scattered "
          "gradients) or 3 (+ partitioned weights, gathered block by block; with one process, "
          "the way to --param_offload_dirs).");
ABSL_FLAG(absl::Duration, collective_timeout, absl::Seconds(60),
          "FO data parallel: a collective that waits longer for a peer fails the run.");
ABSL_FLAG(int, offload_gpu, -1,
          "ZO offload: run the blocks on this CUDA device (-1: on the CPU; needs a CUDA build).");

namespace strata {

// Set by SIGTERM: stop after the current step, checkpointed.
std::atomic<bool> g_stop_requested{false};

namespace {

constexpr char kUsage[] =
    "Trains a transformer on this machine (first-order AdamW or zeroth-order MeZO) and saves a "
    "Hugging Face checkpoint.\n\nUsage: strata-train [--data=FILES] [--tokenizer=tokenizer.json] "
    "[--init_from=DIR | --model_config=config.json | --preset=gpt2-tiny] [--steps=N] "
    "[--save_dir=DIR]";

std::vector<std::string> DefaultCorpus() {
  std::vector<std::string> files;
  const std::string dir = "/usr/share/common-licenses";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.' && e->d_type == DT_REG) files.push_back(dir + "/" + e->d_name);
    }
    closedir(d);
  }
  std::sort(files.begin(), files.end());
  return files;
}

absl::StatusOr<ModelConfig> PresetConfig(const std::string& name, int vocab_size) {
  ModelConfig c;
  c.vocab_size = vocab_size;
  c.max_seq_len = 256;
  c.n_layer = 4;
  c.d_model = 256;
  c.n_head = 8;
  if (name == "gpt2-tiny") {
    c.family = ModelFamily::kGpt2;
    c.n_kv_head = 8;
    c.d_ff = 1024;
  } else if (name == "llama-tiny") {
    c.family = ModelFamily::kLlama;
    c.n_kv_head = 4;
    c.d_ff = 704;
    c.norm_eps = 1e-6f;
    c.tie_embeddings = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--preset=", name, " is not gpt2-tiny or llama-tiny"));
  }
  return c;
}

bool Offloaded() {
  return absl::GetFlag(FLAGS_optimizer) == "zo" &&
         (!absl::GetFlag(FLAGS_offload_dirs).empty() || absl::GetFlag(FLAGS_offload_tier) == "cpu");
}

// Offloaded ZO (without Sparse-MeZO) builds the blocks straight on their tier, from the seed or
// from --init_from, so the model's arena never holds them.
bool StreamOffloadedWeights() { return Offloaded() && absl::GetFlag(FLAGS_sparse_quantile) == 0; }

// FO at ZeRO stage 3 (one rank or several): each rank initializes only its shard.
bool ShardedWeights() {
  return absl::GetFlag(FLAGS_optimizer) != "zo" && absl::GetFlag(FLAGS_zero_stage) == 3;
}

// `init_reader`: --init_from's weights when they are streamed (else null).
absl::Status RunZo(Transformer* model, const TokenCorpus& train, const TokenCorpus& eval,
                   double entropy, HfWeightsReader* init_reader) {
  ZoTrainerOptions o;
  const std::string variant = absl::GetFlag(FLAGS_zo_variant);
  if (variant == "sgd") {
    o.zo.variant = zo::ZoVariant::kSgd;
  } else if (variant == "sign") {
    o.zo.variant = zo::ZoVariant::kSign;
  } else if (variant == "momentum") {
    o.zo.variant = zo::ZoVariant::kMomentum;
  } else if (variant == "adam") {
    o.zo.variant = zo::ZoVariant::kAdam;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--zo_variant=", variant, " is not sgd, sign, momentum or adam"));
  }
  const std::string distribution = absl::GetFlag(FLAGS_distribution);
  if (distribution != "gaussian" && distribution != "rademacher") {
    return absl::InvalidArgumentError(
        absl::StrCat("--distribution=", distribution, " is not gaussian or rademacher"));
  }
  o.zo.distribution =
      distribution == "gaussian" ? zo::Distribution::kGaussian : zo::Distribution::kRademacher;
  o.zo.eps = static_cast<float>(absl::GetFlag(FLAGS_eps));
  o.zo.num_perturbations = absl::GetFlag(FLAGS_num_perturbations);
  o.zo.one_sided = absl::GetFlag(FLAGS_one_sided);
  o.zo.sparse_quantile = static_cast<float>(absl::GetFlag(FLAGS_sparse_quantile));
  o.zo.scalar_clip = static_cast<float>(absl::GetFlag(FLAGS_scalar_clip));
  o.zo.momentum = static_cast<float>(absl::GetFlag(FLAGS_momentum));
  o.zo.weight_decay = static_cast<float>(absl::GetFlag(FLAGS_weight_decay));
  o.zo.seed = absl::GetFlag(FLAGS_seed);
  o.batch = absl::GetFlag(FLAGS_batch);
  o.seq = absl::GetFlag(FLAGS_seq);
  o.steps = absl::GetFlag(FLAGS_steps);
  o.lr = absl::GetFlag(FLAGS_lr);
  o.min_lr = absl::GetFlag(FLAGS_min_lr);
  o.warmup = absl::GetFlag(FLAGS_warmup);
  o.eval_every = absl::GetFlag(FLAGS_eval_every);
  o.eval_batches = absl::GetFlag(FLAGS_eval_batches);
  o.log_every = absl::GetFlag(FLAGS_log_every);
  o.data_seed = absl::GetFlag(FLAGS_seed);
  o.checkpoint_dir = absl::GetFlag(FLAGS_checkpoint_dir);
  o.checkpoint_every = absl::GetFlag(FLAGS_checkpoint_every);
  const std::string tier = absl::GetFlag(FLAGS_offload_tier);
  if (tier != "nvme" && tier != "cpu") {
    return absl::InvalidArgumentError(absl::StrCat("--offload_tier=", tier, " is not nvme or cpu"));
  }
  if (Offloaded()) {
    o.offload = OffloadedZo::Options();
    o.offload->tier = tier == "cpu" ? OffloadedZo::Tier::kCpu : OffloadedZo::Tier::kNvme;
    o.offload->nvme_paths = absl::GetFlag(FLAGS_offload_dirs);
    o.offload->memory_budget_bytes = absl::GetFlag(FLAGS_memory_budget_bytes);
    o.offload->prefetch_blocks = absl::GetFlag(FLAGS_prefetch_blocks);
    o.offload->bf16_storage = absl::GetFlag(FLAGS_offload_bf16);
    o.offload->gpu_device = absl::GetFlag(FLAGS_offload_gpu);
    if (init_reader != nullptr) {
      o.offload->load_tensor = [init_reader](int id, float* out) {
        return init_reader->Read(id, out);
      };
    } else if (StreamOffloadedWeights()) {
      o.offload->init_seed = absl::GetFlag(FLAGS_seed);
    }
  }
  o.stop_requested = [] { return g_stop_requested.load(); };
  o.replay_log = absl::GetFlag(FLAGS_replay_log);
  if (absl::GetFlag(FLAGS_report_steps)) {
    // Exact values: %a prints the binary floating-point value.
    o.on_step = [](const zo::ZoStepRecord& r) {
      std::string line = absl::StrFormat("zo-record %d %d %a %a %d", r.step, r.seed, r.lr,
                                         static_cast<double>(r.loss), r.skipped ? 1 : 0);
      for (float g : r.scalars) absl::StrAppendFormat(&line, " %a", static_cast<double>(g));
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    };
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<ZoTrainer> trainer,
                          ZoTrainer::Create(model, &train, &eval, o));
  STRATA_RETURN_IF_ERROR(trainer->Run([](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }));
  STRATA_ASSIGN_OR_RETURN(float eval_loss, trainer->Evaluate());
  std::printf("eval loss %.4f = %.2f x the unigram entropy %.4f\n", eval_loss, eval_loss / entropy,
              entropy);
  if (!absl::GetFlag(FLAGS_save_dir).empty()) {
    STRATA_RETURN_IF_ERROR(trainer->ExportHf(absl::GetFlag(FLAGS_save_dir)));
    std::printf("saved %s\n", absl::GetFlag(FLAGS_save_dir).c_str());
  }
  return absl::OkStatus();
}

absl::Status Run() {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer,
                          LoadTokenizer(absl::GetFlag(FLAGS_tokenizer)));
  Transformer::Options options;
  options.threads = absl::GetFlag(FLAGS_threads);
  std::unique_ptr<Transformer> model;
  std::optional<HfWeightsReader> init_reader;
  const std::string init_from = absl::GetFlag(FLAGS_init_from);
  if (!init_from.empty() && StreamOffloadedWeights()) {
    STRATA_ASSIGN_OR_RETURN(ModelConfig config, ReadHfConfig(init_from + "/config.json"));
    STRATA_ASSIGN_OR_RETURN(model, Transformer::Create(config, options));
    STRATA_ASSIGN_OR_RETURN(init_reader, HfWeightsReader::Open(init_from, *model));
  } else if (!init_from.empty()) {
    STRATA_ASSIGN_OR_RETURN(model, LoadHfCheckpoint(init_from, options));
  } else {
    ModelConfig config;
    if (!absl::GetFlag(FLAGS_model_config).empty()) {
      STRATA_ASSIGN_OR_RETURN(config, ReadHfConfig(absl::GetFlag(FLAGS_model_config)));
    } else {
      STRATA_ASSIGN_OR_RETURN(config,
                              PresetConfig(absl::GetFlag(FLAGS_preset), tokenizer->vocab_size()));
    }
    STRATA_ASSIGN_OR_RETURN(model, Transformer::Create(config, options));
    // ZeRO stage 3 initializes each rank's shard itself (FoTrainerOptions::init_seed).
    if (!StreamOffloadedWeights() && !ShardedWeights()) {
      model->InitializeParameters(absl::GetFlag(FLAGS_seed));
    }
  }
  if (model->config().vocab_size < tokenizer->vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the model's vocabulary (%d) is smaller than the tokenizer's (%d)",
                        model->config().vocab_size, tokenizer->vocab_size()));
  }
  std::vector<std::string> files = absl::GetFlag(FLAGS_data);
  if (files.empty()) files = DefaultCorpus();
  STRATA_ASSIGN_OR_RETURN(CorpusFormat format, ParseCorpusFormat(absl::GetFlag(FLAGS_format)));
  STRATA_ASSIGN_OR_RETURN(TokenCorpus corpus, TokenCorpus::Load(files, format, tokenizer.get(),
                                                                absl::GetFlag(FLAGS_text_field),
                                                                model->config().vocab_size));
  const double eval_fraction = absl::GetFlag(FLAGS_eval_fraction);
  if (!(eval_fraction > 0 && eval_fraction < 0.5)) {
    return absl::InvalidArgumentError("--eval_fraction must be in (0, 0.5)");
  }
  const int64_t split = static_cast<int64_t>(corpus.size() * (1.0 - eval_fraction));
  const absl::Span<const int32_t> all = corpus.tokens();
  const TokenCorpus train = TokenCorpus::FromTokens({all.begin(), all.begin() + split});
  const TokenCorpus eval = TokenCorpus::FromTokens({all.begin() + split, all.end()});
  std::printf("model: %s, %d layers, d_model %d, %.2fM parameters\n",
              std::string(ModelFamilyName(model->config().family)).c_str(), model->config().n_layer,
              model->config().d_model, model->config().NumParameters() / 1e6);
  std::printf("data: %zu files, %lld train + %lld eval tokens, unigram entropy %.4f nats\n",
              files.size(), static_cast<long long>(train.size()),
              static_cast<long long>(eval.size()), corpus.UnigramEntropy());

  if (absl::GetFlag(FLAGS_optimizer) == "zo") {
    return RunZo(model.get(), train, eval, corpus.UnigramEntropy(),
                 init_reader.has_value() ? &*init_reader : nullptr);
  }
  if (absl::GetFlag(FLAGS_optimizer) != "adamw") {
    return absl::InvalidArgumentError(
        absl::StrCat("--optimizer=", absl::GetFlag(FLAGS_optimizer), " is not adamw or zo"));
  }
  FoTrainerOptions o;
  o.batch = absl::GetFlag(FLAGS_batch);
  o.seq = absl::GetFlag(FLAGS_seq);
  o.steps = absl::GetFlag(FLAGS_steps);
  o.lr = static_cast<float>(absl::GetFlag(FLAGS_lr));
  o.min_lr = static_cast<float>(absl::GetFlag(FLAGS_min_lr));
  o.warmup = absl::GetFlag(FLAGS_warmup);
  o.weight_decay = static_cast<float>(absl::GetFlag(FLAGS_weight_decay));
  o.grad_clip = static_cast<float>(absl::GetFlag(FLAGS_grad_clip));
  o.eval_every = absl::GetFlag(FLAGS_eval_every);
  o.eval_batches = absl::GetFlag(FLAGS_eval_batches);
  o.log_every = absl::GetFlag(FLAGS_log_every);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.save_dir = absl::GetFlag(FLAGS_save_dir);
  o.checkpoint_dir = absl::GetFlag(FLAGS_checkpoint_dir);
  o.checkpoint_every = absl::GetFlag(FLAGS_checkpoint_every);
  o.stop_requested = [] { return g_stop_requested.load(); };
  o.optimizer_state_dirs = absl::GetFlag(FLAGS_optimizer_state_dirs);
  o.param_offload_dirs = absl::GetFlag(FLAGS_param_offload_dirs);
  o.bf16_compute = absl::GetFlag(FLAGS_bf16_compute);
  o.zero_stage = absl::GetFlag(FLAGS_zero_stage);
  if (o.zero_stage < 0 || o.zero_stage > 3) {
    return absl::InvalidArgumentError("--zero_stage must be 0, 1, 2 or 3");
  }
  if (ShardedWeights() && absl::GetFlag(FLAGS_init_from).empty()) {
    o.init_seed = absl::GetFlag(FLAGS_seed);
  }
  std::unique_ptr<KeyValueStore> rendezvous_store;
  std::unique_ptr<Communicator> comm;
  if (absl::GetFlag(FLAGS_world_size) > 1) {
    GlooOptions gloo;
    if (const std::string address = absl::GetFlag(FLAGS_rendezvous_coordinator); !address.empty()) {
      const TlsConfig tls = TlsConfigFromFlags();
      STRATA_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                              MakeChannelCredentials(tls, "strata-train"));
      if (const char* token = std::getenv("STRATA_WORKER_TOKEN");
          token != nullptr && *token != '\0' && !tls.insecure) {
        credentials =
            grpc::CompositeChannelCredentials(credentials, grpc::AccessTokenCredentials(token));
      }
      rendezvous_store = std::make_unique<CoordinatorStore>(
          grpc::CreateChannel(address, credentials), absl::GetFlag(FLAGS_rendezvous_prefix));
      gloo.store = rendezvous_store.get();
    } else if (absl::GetFlag(FLAGS_rendezvous_dir).empty()) {
      return absl::InvalidArgumentError(
          "--world_size > 1 needs --rendezvous_dir or --rendezvous_coordinator");
    }
    gloo.rank = absl::GetFlag(FLAGS_rank);
    gloo.size = absl::GetFlag(FLAGS_world_size);
    gloo.store_dir = absl::GetFlag(FLAGS_rendezvous_dir);
    gloo.prefix = absl::GetFlag(FLAGS_rendezvous_prefix);
    gloo.timeout = absl::GetFlag(FLAGS_collective_timeout);
    gloo.hostname = absl::GetFlag(FLAGS_rendezvous_host);
    STRATA_ASSIGN_OR_RETURN(comm, CreateGlooCommunicator(gloo));
    o.comm = comm.get();
    std::printf("data parallel: rank %d of %d, ZeRO stage %d, met through %s\n", gloo.rank,
                gloo.size, o.zero_stage,
                gloo.store != nullptr
                    ? ("the coordinator at " + absl::GetFlag(FLAGS_rendezvous_coordinator)).c_str()
                    : gloo.store_dir.c_str());
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<FoTrainer> trainer,
                          FoTrainer::Create(model.get(), &train, &eval, o));
  STRATA_RETURN_IF_ERROR(trainer->Run([](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }));
  STRATA_ASSIGN_OR_RETURN(float eval_loss, trainer->Evaluate());
  std::printf("eval loss %.4f = %.2f x the unigram entropy %.4f\n", eval_loss,
              eval_loss / corpus.UnigramEntropy(), corpus.UnigramEntropy());
  return absl::OkStatus();
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::InitMainWithoutArguments(argc, argv, strata::kUsage);
  // SIGTERM asks the run to stop gracefully: after the current step, checkpointed.
  {
    struct sigaction action = {};
    action.sa_handler = [](int) { strata::g_stop_requested.store(true); };
    sigaction(SIGTERM, &action, nullptr);
  }
  if (absl::Status status = strata::Run(); !status.ok()) {
    std::fprintf(stderr, "strata-train: %s\n", status.ToString().c_str());
    return absl::IsCancelled(status) ? 3 : 1;
  }
  return 0;
}
