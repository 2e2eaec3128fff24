// The tasks MeZO reports (Malladi et al. 2023, large_models/templates.py), as TaskSpecs: each
// preset's template and label words, the usual field names of the datasets' Hugging Face JSONL
// exports (GLUE / SuperGLUE / SQuAD / DROP), and MeZO's sample sizes (1000 train, 500 dev — 100
// for CB and COPA — and 1000 test). A user's spec names the files; what it sets itself wins.
#ifndef STRATA_SERVICES_JOBSPEC_TASK_PRESETS_H_
#define STRATA_SERVICES_JOBSPEC_TASK_PRESETS_H_

#include <string>
#include <vector>

#include "proto/strata/v1/job.pb.h"

namespace strata {

// Null when `name` is not a preset.
const v1::TaskSpec* FindTaskPreset(const std::string& name);
std::vector<std::string> TaskPresetNames();

}  // namespace strata

#endif  // STRATA_SERVICES_JOBSPEC_TASK_PRESETS_H_
