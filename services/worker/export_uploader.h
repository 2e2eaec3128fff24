// Answers an UploadExport order: finds the export of a job's latest attempt from the run config
// this worker wrote for its rank 0 (in the owner's area, never from a path in the order),
// checks it still resolves inside the owner's area, and streams its files to the coordinator
// (WorkerService.UploadExport) in 1 MiB chunks, ending with `finished`, or with `error` when the
// export cannot be sent.
#ifndef STRATA_SERVICES_WORKER_EXPORT_UPLOADER_H_
#define STRATA_SERVICES_WORKER_EXPORT_UPLOADER_H_

#include <string>

#include "absl/status/status.h"
#include "proto/strata/v1/worker_service.grpc.pb.h"

namespace strata {

// `work_dir` is the worker's resolved --work_dir.
absl::Status UploadExportFiles(v1::WorkerService::StubInterface* stub, const std::string& work_dir,
                               const std::string& worker_id, const v1::UploadExport& order);

}  // namespace strata

#endif  // STRATA_SERVICES_WORKER_EXPORT_UPLOADER_H_
