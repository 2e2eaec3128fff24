// The properties a fuzzer holds every JobSpec to, whatever bytes produced it: NormalizeJobSpec
// either refuses it naming a field ("spec...") or accepts it, and then a normalized spec
// normalizes to itself, the RunConfig builder and the path checks run without crashing, and
// a refusal never grows without bound. A violated property aborts (the fuzzer's finding).
#ifndef STRATA_SERVICES_JOBSPEC_SPEC_FUZZ_CHECKS_H_
#define STRATA_SERVICES_JOBSPEC_SPEC_FUZZ_CHECKS_H_

#include "proto/strata/v1/job.pb.h"

namespace strata {

void CheckSpecProperties(const v1::JobSpec& spec);

}  // namespace strata

#endif  // STRATA_SERVICES_JOBSPEC_SPEC_FUZZ_CHECKS_H_
