// Fuzz target over the submit path: the bytes are a YAML job config (ParseJobConfig, what
// `strata job submit` reads), or, after a leading NUL byte, a serialized JobSpec (what any gRPC
// client can send). Whatever parses is held to CheckSpecProperties; the serialized form of a
// parsed YAML spec is also tried with one byte changed, reaching what YAML cannot say (enum
// numbers outside the declared set, wrong wire types). Seeds: the docs' YAML examples.
#include <cstddef>
#include <cstdint>
#include <string>

#include "google/protobuf/stubs/logging.h"
#include "services/cli/job_config.h"
#include "services/jobspec/spec_fuzz_checks.h"

namespace {

// Invalid UTF-8 in a string field is an expected refusal here, not worth a log line per input.
const bool kQuietProtobuf = [] {
  google::protobuf::SetLogHandler(nullptr);
  return true;
}();

void FromBinary(const std::string& bytes) {
  strata::v1::JobSpec spec;
  if (spec.ParseFromString(bytes)) strata::CheckSpecProperties(spec);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  if (!input.empty() && input[0] == '\0') {
    FromBinary(input.substr(1));
    return 0;
  }
  absl::StatusOr<strata::v1::JobSpec> spec = strata::ParseJobConfig(input, "fuzz.yaml", {});
  if (!spec.ok()) return 0;
  strata::CheckSpecProperties(*spec);
  std::string bytes = spec->SerializeAsString();
  if (!bytes.empty()) {
    const size_t at = std::hash<std::string>()(input) % bytes.size();
    bytes[at] = static_cast<char>(bytes[at] ^ (1 + (size % 255)));
    FromBinary(bytes);
  }
  return 0;
}
