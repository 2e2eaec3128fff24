// Runs one rank as a RunConfig describes it: builds the model (from its checkpoint, its config
// and init seed), loads and splits the data, maps the config onto the runtime's trainer options
// (field for field: no value here comes from anywhere but the config), meets the other ranks,
// trains, evaluates and exports. The mapping functions are pure and tested on their own.
#ifndef STRATA_SERVICES_TRAINER_RUN_TRAINING_H_
#define STRATA_SERVICES_TRAINER_RUN_TRAINING_H_

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "proto/strata/v1/run_config.pb.h"
#include "runtime/train/fo_trainer.h"
#include "runtime/train/zo_trainer.h"

namespace strata {

// The trainers' options for `run` (its optimizer must be the matching kind). Callbacks, the
// communicator and streamed-initialization sources are left for the caller.
absl::StatusOr<ZoTrainerOptions> ZoOptionsFor(const v1::RunConfig& run);

absl::StatusOr<FoTrainerOptions> FoOptionsFor(const v1::RunConfig& run);

// What RunTraining tells its caller besides the return status.
struct TrainingOutput {
  std::function<void(const std::string&)> log;  // Human-readable lines, for people.
  // Typed reports for the worker: progress (with the lr used), evaluations, each durable ZO
  // step record, committed checkpoints.
  std::function<void(const v1::RankReport&)> report;
  const std::atomic<bool>* stop_requested = nullptr;  // Checked after every step.
};

absl::Status RunTraining(const v1::RunConfig& run, const TrainingOutput& out);

}  // namespace strata

#endif  // STRATA_SERVICES_TRAINER_RUN_TRAINING_H_
