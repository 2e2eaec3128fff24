// What a training loop tells its caller as it runs, besides the human-readable log: progress at
// each logged step (with the learning rate the optimizer used), evaluations, and committed
// checkpoints. Both trainers call these from their Run loop; a null callback is skipped.
#ifndef STRATA_RUNTIME_TRAIN_TRAIN_EVENTS_H_
#define STRATA_RUNTIME_TRAIN_TRAIN_EVENTS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace strata {

struct TrainProgress {
  int64_t step = 0;  // Steps done.
  int64_t max_steps = 0;
  double loss = 0;
  double lr = 0;  // As the optimizer used it at `step`.
  double tokens_per_second = 0;
  int64_t tokens_total = 0;
  int64_t offload_read_bytes = 0;
  int64_t offload_write_bytes = 0;
};

// One evaluation of the held-out data.
struct EvalResult {
  double loss = 0;  // The training objective on the held-out data.
  // A task's metrics by name (accuracy, f1, exact_match, token_f1; runtime/task): empty for a
  // plain corpus.
  std::map<std::string, double> metrics;
};

struct TrainEvents {
  std::function<void(const TrainProgress&)> on_progress;
  std::function<void(int64_t step, const EvalResult& eval)> on_eval;
  std::function<void(int64_t step, const std::string& dir)> on_checkpoint;
};

}  // namespace strata

#endif  // STRATA_RUNTIME_TRAIN_TRAIN_EVENTS_H_
