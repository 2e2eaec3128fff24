// See export_uploader.h.
#include "services/worker/export_uploader.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "google/protobuf/text_format.h"
#include "proto/strata/v1/run_config.pb.h"
#include "runtime/base/status_macros.h"
#include "services/common/grpc_status.h"
#include "services/jobspec/job_paths.h"

namespace strata {
namespace {

constexpr size_t kChunkBytes = 1 << 20;

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) names.push_back(e->d_name);
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The export directory of the job's latest attempt, from rank 0's run config.
absl::StatusOr<std::string> ExportDir(const std::string& owner_area, const std::string& job_id) {
  const std::string job_dir = absl::StrCat(owner_area, "/jobs/", job_id);
  int latest = 0;
  for (const std::string& name : Entries(job_dir)) {
    int attempt = 0;
    absl::string_view rest = name;
    if (absl::ConsumePrefix(&rest, "run-config-a") && absl::ConsumeSuffix(&rest, "-r0.textproto") &&
        absl::SimpleAtoi(rest, &attempt)) {
      latest = std::max(latest, attempt);
    }
  }
  if (latest == 0) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " never ran rank 0 on this worker"));
  }
  std::ifstream in(absl::StrCat(job_dir, "/run-config-a", latest, "-r0.textproto"));
  std::stringstream text;
  text << in.rdbuf();
  v1::RunConfig run;
  if (!google::protobuf::TextFormat::ParseFromString(text.str(), &run)) {
    return absl::DataLossError(absl::StrCat("job ", job_id, ": its run config does not parse"));
  }
  if (run.checkpoint().export_dir().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " writes no export"));
  }
  char resolved[PATH_MAX], area[PATH_MAX];
  if (realpath(run.checkpoint().export_dir().c_str(), resolved) == nullptr) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, ": no export on this worker"));
  }
  if (realpath(owner_area.c_str(), area) == nullptr || !IsPathUnder(resolved, area)) {
    return absl::PermissionDeniedError(
        absl::StrCat("job ", job_id, ": the export resolves outside the owner's area"));
  }
  return std::string(resolved);
}

}  // namespace

absl::Status UploadExportFiles(v1::WorkerService::StubInterface* stub, const std::string& work_dir,
                               const std::string& worker_id, const v1::UploadExport& order) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(2));
  v1::UploadExportAck ack;
  std::unique_ptr<grpc::ClientWriterInterface<v1::ExportChunk>> writer =
      stub->UploadExport(&context, &ack);
  v1::ExportChunk header;
  header.set_transfer_id(order.transfer_id());
  header.set_worker_id(worker_id);
  absl::Status status = [&]() -> absl::Status {
    if (!IsSafePathComponent(order.job_id()) ||
        (!order.owner().empty() && !IsSafePathComponent(order.owner()))) {
      return absl::InvalidArgumentError("the order names an unsafe job id or owner");
    }
    STRATA_ASSIGN_OR_RETURN(std::string dir,
                            ExportDir(OwnerArea(work_dir, order.owner()), order.job_id()));
    std::vector<char> buffer(kChunkBytes);
    for (const std::string& name : Entries(dir)) {
      const std::string path = absl::StrCat(dir, "/", name);
      struct stat st;
      if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // Files only.
      std::ifstream in(path, std::ios::binary);
      int64_t offset = 0;
      bool done = false;
      while (!done) {
        in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        const std::streamsize n = in.gcount();
        done = n < static_cast<std::streamsize>(buffer.size());
        if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read ", name));
        v1::ExportChunk chunk = header;
        chunk.set_file(name);
        chunk.set_offset(offset);
        chunk.set_data(buffer.data(), static_cast<size_t>(n));
        chunk.set_file_done(done);
        offset += n;
        if (!writer->Write(chunk))
          return absl::UnavailableError("the coordinator closed the upload");
      }
    }
    return absl::OkStatus();
  }();
  v1::ExportChunk last = header;
  if (status.ok()) {
    last.set_finished(true);
  } else {
    last.set_error(std::string(status.message()));
  }
  writer->Write(last);
  writer->WritesDone();
  const absl::Status finished = FromGrpcStatus(writer->Finish(), "WorkerService.UploadExport");
  return status.ok() ? finished : status;
}

}  // namespace strata
