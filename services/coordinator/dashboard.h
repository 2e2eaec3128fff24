// The coordinator's operations dashboard on its HTTP port: the page ("/", with /dashboard.js
// and /dashboard.css, all compiled into the binary) and its data (/api/v1/dashboard, JSON).
// The data needs the same bearer tokens as JobService: a user sees the workers and their own
// jobs; an operator (role=operator, or everyone without --tokens_file) sees every job.
#ifndef STRATA_SERVICES_COORDINATOR_DASHBOARD_H_
#define STRATA_SERVICES_COORDINATOR_DASHBOARD_H_

#include <map>
#include <string>

#include "services/common/metrics.h"
#include "services/coordinator/job_manager.h"
#include "services/coordinator/round_manager.h"
#include "services/coordinator/tokens.h"
#include "services/coordinator/worker_registry.h"

namespace strata {

struct DashboardSources {  // Not owned; they outlive the pages.
  JobManager* jobs = nullptr;
  WorkerRegistry* registry = nullptr;
  RoundManager* rounds = nullptr;  // Optional: federated rounds.
  const TokenTable* tokens = nullptr;
  // How many finished jobs the page shows beside the unfinished ones.
  size_t recent_finished = 20;
};

// The pages, by path, for OperatorEndpoint::Options::pages.
std::map<std::string, HttpGetHandler> DashboardPages(DashboardSources sources);

// What `user` may see, as the JSON the page reads (everything for an operator).
std::string DashboardJson(const DashboardSources& sources, const std::string& user,
                          bool is_operator);

}  // namespace strata

#endif  // STRATA_SERVICES_COORDINATOR_DASHBOARD_H_
