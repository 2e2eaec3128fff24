// See rank_reporter.h.
#include "services/worker/rank_reporter.h"

#include <chrono>
#include <cmath>

#include "absl/strings/match.h"
#include "services/common/grpc_status.h"

namespace strata {
namespace {

void Deadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
}

// Errors that a later attempt of the same report may not get (the coordinator restarting, the
// network): the rest mean the report itself is refused.
bool IsRetriable(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsResourceExhausted(status) || absl::IsInternal(status) || absl::IsUnknown(status) ||
         absl::IsCancelled(status);
}

}  // namespace

absl::StatusOr<bool> GrpcReportSink::Progress(const v1::ProgressReport& report) {
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::ReportAck ack;
  const grpc::Status status = stub_->ReportProgress(&ctx, report, &ack);
  if (!status.ok()) return FromGrpcStatus(status, "WorkerService.ReportProgress");
  return ack.stale();
}

absl::Status GrpcReportSink::StepLog(const v1::StepLogReport& report) {
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::StepLogAck ack;
  return FromGrpcStatus(stub_->ReportStepLog(&ctx, report, &ack), "WorkerService.ReportStepLog");
}

absl::Status GrpcReportSink::Checkpoint(const v1::CheckpointReport& report) {
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::ReportAck ack;
  return FromGrpcStatus(stub_->ReportCheckpoint(&ctx, report, &ack),
                        "WorkerService.ReportCheckpoint");
}

RankReporter::RankReporter(const v1::RankRef& ref, const std::string& worker_id) {
  *progress_.mutable_ref() = ref;
  progress_.set_worker_id(worker_id);
  progress_.mutable_progress()->set_eval_loss(std::nan(""));
}

void RankReporter::OnRecord(const v1::RankReport& r) {
  switch (r.report_case()) {
    case v1::RankReport::kProgress: {
      // The latest evaluation stays with the progress until the next one replaces it.
      v1::JobProgress* p = progress_.mutable_progress();
      const double eval_loss = p->eval_loss();
      const int64_t eval_step = p->eval_step();
      const google::protobuf::Map<std::string, double> eval_metrics = p->eval_metrics();
      *p = r.progress();
      p->set_eval_loss(eval_loss);
      p->set_eval_step(eval_step);
      *p->mutable_eval_metrics() = eval_metrics;
      progress_changed_ = true;
      break;
    }
    case v1::RankReport::kEval: {
      v1::JobProgress* p = progress_.mutable_progress();
      p->set_eval_loss(r.eval().loss());
      p->set_eval_step(r.eval().step());
      *p->mutable_eval_metrics() = r.eval().metrics();
      progress_changed_ = true;
      break;
    }
    case v1::RankReport::kZoStep:
      steps_.push_back(r.zo_step());
      break;
    case v1::RankReport::kCheckpoint: {
      v1::CheckpointReport report;
      *report.mutable_ref() = progress_.ref();
      report.set_worker_id(progress_.worker_id());
      *report.mutable_checkpoint() = r.checkpoint();
      checkpoints_.push_back(std::move(report));
      break;
    }
    case v1::RankReport::kFinal:
      final_seen_ = true;
      final_error_ = r.final().error();
      break;
    case v1::RankReport::REPORT_NOT_SET:
      break;
  }
}

void RankReporter::OnLine(const std::string& line) {
  v1::LogLine* l = progress_.add_logs();
  l->set_text(line);
  l->set_level(absl::StartsWith(line, "strata-train: ") ? v1::LOG_LEVEL_ERROR : v1::LOG_LEVEL_INFO);
  last_line_ = line;
}

void RankReporter::ChannelFailed(const std::string& why) {
  final_seen_ = true;
  final_error_ = why;
}

bool RankReporter::Flush(ReportSink& sink) {
  if (!steps_.empty()) {
    v1::StepLogReport report;
    *report.mutable_ref() = progress_.ref();
    report.set_worker_id(progress_.worker_id());
    for (const v1::ZoStepRecord& r : steps_) *report.add_records() = r;
    const absl::Status sent = sink.StepLog(report);
    if (sent.ok()) {
      steps_.clear();
    } else if (!IsRetriable(sent)) {
      // The coordinator refuses these records for good (a conflict with the stored step log, a
      // rank it did not place here): the run cannot be replayed, so it must not go on.
      final_seen_ = true;
      final_error_ = std::string(sent.message());
      return true;
    }
  }
  while (!checkpoints_.empty() && sink.Checkpoint(checkpoints_.front()).ok()) {
    checkpoints_.erase(checkpoints_.begin());
  }
  if (progress_.logs().empty() && !progress_changed_) return false;
  absl::StatusOr<bool> stale = sink.Progress(progress_);
  if (!stale.ok()) return false;  // Lines and progress go with the next flush.
  progress_.clear_logs();
  progress_changed_ = false;
  return *stale;
}

}  // namespace strata
