// strata-edge: a federated client. Joins a federated ZO job on the coordinator, replays the
// job's history into its global model, trains τ local steps on its own data — text, or a task's
// examples — when sampled, and pushes only seed indices and scalars
// (services/edge/edge_client.h, docs/federated.md).
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "services/common/main_util.h"
#include "services/common/tls.h"
#include "services/edge/edge_client.h"

ABSL_FLAG(std::string, coordinator, "localhost:7070", "The coordinator, host:port.");
ABSL_FLAG(std::string, job, "", "The federated job's id (required).");
ABSL_FLAG(std::string, client_id, "", "This client's id (required; its token is bound to it).");
ABSL_FLAG(std::string, token, "",
          "Enrollment token for --client_id. Prefer --token_file or $STRATA_CLIENT_TOKEN: a "
          "command line is visible to every user of the machine.");
ABSL_FLAG(std::string, token_file, "",
          "File whose first line is the enrollment token (used when --token is empty). "
          "Default: $STRATA_CLIENT_TOKEN.");
ABSL_FLAG(std::string, data, "",
          "Local training text, for a job without a task (one of --data and --task_data is "
          "required unless --sync_only).");
ABSL_FLAG(std::string, task_data, "",
          "Local examples for a job with a task: JSONL with the fields of the task's template "
          "and label; each line is one example (the client's aggregation weight is their count).");
ABSL_FLAG(std::string, eval_data, "",
          "Held-out data, as the job trains (text, or JSONL task examples): the global model's "
          "loss (and the task's accuracy and F1) is reported.");
ABSL_FLAG(std::string, tokenizer, "",
          "tokenizer.json or a Hugging Face model directory, for the text and examples; empty: "
          "bytes. It must be the tokenizer the job's model was trained with.");
ABSL_FLAG(std::string, base_model, "",
          "This client's copy of the job's base checkpoint, for a job that starts from one "
          "(federated.base_checkpoint_sha256): used only when its weights hash to the job's.");
ABSL_FLAG(std::string, state_dir, "strata-edge-state",
          "Where the global model and its round are kept between runs.");
ABSL_FLAG(int, threads, 1, "Compute threads.");
ABSL_FLAG(bool, sync_only, false,
          "Replay the job's whole history into the model, save it, report, and exit.");

namespace strata {
namespace {

constexpr char kUsage[] =
    "a federated client: joins a federated ZO job, replays its history, trains when sampled.\n"
    "Usage: strata-edge --coordinator=HOST:PORT --job=ID --client_id=NAME "
    "(--data=FILE | --task_data=FILE.jsonl) [--tokenizer=FILE] [--base_model=DIR] "
    "[--token_file=F] [--eval_data=FILE] [--state_dir=DIR] [--tls_ca=PEM | --insecure] "
    "[--sync_only]";

absl::Status Run() {
  if (absl::GetFlag(FLAGS_job).empty() || absl::GetFlag(FLAGS_client_id).empty()) {
    return UsageError(
        absl::InvalidArgumentError(absl::StrCat("--job and --client_id are required\n", kUsage)));
  }
  const bool text = !absl::GetFlag(FLAGS_data).empty();
  const bool examples = !absl::GetFlag(FLAGS_task_data).empty();
  if (text && examples) {
    return UsageError(absl::InvalidArgumentError(
        "--data (text) and --task_data (task examples) exclude each other: the job says which"));
  }
  if (!text && !examples && !absl::GetFlag(FLAGS_sync_only)) {
    return UsageError(absl::InvalidArgumentError(
        "--data (a text job) or --task_data (a task job) is required to train"));
  }
  const TlsConfig tls = TlsConfigFromFlags();
  absl::StatusOr<std::string> token =
      ReadSecret(absl::GetFlag(FLAGS_token), absl::GetFlag(FLAGS_token_file), "STRATA_CLIENT_TOKEN",
                 "--token_file");
  if (!token.ok()) return UsageError(token.status());
  // Every call after Register carries a session token: plaintext needs the explicit flag.
  if (absl::Status s = CheckTokenTransport(tls, "the enrollment and session tokens"); !s.ok()) {
    return UsageError(s);
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(tls, "strata-edge");
  if (!credentials.ok()) return UsageError(credentials.status());
  EdgeClientOptions options;
  options.channel = grpc::CreateChannel(absl::GetFlag(FLAGS_coordinator), *credentials);
  options.job_id = absl::GetFlag(FLAGS_job);
  options.client_id = absl::GetFlag(FLAGS_client_id);
  options.token = *token;
  options.data_file = absl::GetFlag(FLAGS_data);
  options.task_file = absl::GetFlag(FLAGS_task_data);
  options.eval_file = absl::GetFlag(FLAGS_eval_data);
  options.tokenizer = absl::GetFlag(FLAGS_tokenizer);
  options.base_model = absl::GetFlag(FLAGS_base_model);
  options.state_dir = absl::GetFlag(FLAGS_state_dir);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.sync_only = absl::GetFlag(FLAGS_sync_only);
  options.log = [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  EdgeClient client(options);
  return client.Run();
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  strata::InitMainWithoutArguments(argc, argv, strata::kUsage);
  return strata::ExitCode("strata-edge", strata::Run());
}
