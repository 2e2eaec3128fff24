// A task's examples ready for training and evaluation: the definition, the tokenized training
// sample and the dev examples jobs evaluate on (services/trainer builds it from a TaskSpec).
#ifndef STRATA_RUNTIME_TASK_TASK_DATA_H_
#define STRATA_RUNTIME_TASK_TASK_DATA_H_

#include <vector>

#include "runtime/data/tokenizer.h"
#include "runtime/task/task_definition.h"
#include "runtime/task/task_examples.h"

namespace strata::task {

struct TaskData {
  TaskDefinition definition;
  std::vector<TaskExample> train;
  std::vector<TaskExample> dev;
  // Decodes what generation tasks generate (exact match and token F1 need text); not owned.
  const Tokenizer* tokenizer = nullptr;
};

}  // namespace strata::task

#endif  // STRATA_RUNTIME_TASK_TASK_DATA_H_
