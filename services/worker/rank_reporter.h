// RankReporter: what one running rank has to tell the coordinator, batched. It takes the
// rank's typed records (RankReport) and its human-readable lines, and Flush sends them through a
// ReportSink: ZO step records and checkpoints are kept until the coordinator acknowledges them
// (a failed send retries them on the next flush, in order), progress is the latest (carrying
// the latest evaluation: its loss, step and task metrics), lines go once. It knows nothing of
// processes or pipes; RankRunner feeds it.
#ifndef STRATA_SERVICES_WORKER_RANK_REPORTER_H_
#define STRATA_SERVICES_WORKER_RANK_REPORTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/strata/v1/run_config.pb.h"
#include "proto/strata/v1/worker_service.grpc.pb.h"

namespace strata {

// The coordinator's report RPCs, as RankReporter uses them.
class ReportSink {
 public:
  virtual ~ReportSink() = default;
  // Whether the attempt is stale (superseded: the rank should stop).
  virtual absl::StatusOr<bool> Progress(const v1::ProgressReport& report) = 0;
  virtual absl::Status StepLog(const v1::StepLogReport& report) = 0;
  virtual absl::Status Checkpoint(const v1::CheckpointReport& report) = 0;
};

// ReportSink over WorkerService (10 s deadline a call). `stub` must outlive it.
class GrpcReportSink : public ReportSink {
 public:
  explicit GrpcReportSink(v1::WorkerService::StubInterface* stub) : stub_(stub) {}
  absl::StatusOr<bool> Progress(const v1::ProgressReport& report) override;
  absl::Status StepLog(const v1::StepLogReport& report) override;
  absl::Status Checkpoint(const v1::CheckpointReport& report) override;

 private:
  v1::WorkerService::StubInterface* stub_;
};

class RankReporter {
 public:
  RankReporter(const v1::RankRef& ref, const std::string& worker_id);

  void OnRecord(const v1::RankReport& record);
  void OnLine(const std::string& line);
  // Sends what is pending through `sink`; returns whether the rank must stop: the coordinator
  // called the attempt stale, or refused its step-log records for good (exit_error() says why).
  bool Flush(ReportSink& sink);

  int64_t step() const { return progress_.progress().step(); }
  size_t pending_lines() const { return progress_.logs_size(); }
  // Why the rank ended, in its own words (its Final record, or the reason its channel was
  // refused); else its last output line.
  std::string exit_error() const { return final_seen_ ? final_error_ : last_line_; }
  // The rank's report channel carried something that is not a record.
  void ChannelFailed(const std::string& why);

 private:
  v1::ProgressReport progress_;  // The latest progress and the lines not sent yet.
  bool progress_changed_ = true;
  std::vector<v1::ZoStepRecord> steps_;            // Not yet acknowledged.
  std::vector<v1::CheckpointReport> checkpoints_;  // Likewise.
  std::string last_line_, final_error_;
  bool final_seen_ = false;
};

}  // namespace strata

#endif  // STRATA_SERVICES_WORKER_RANK_REPORTER_H_
