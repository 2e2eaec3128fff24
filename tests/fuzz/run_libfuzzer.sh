#!/usr/bin/env bash
# Builds a fuzz target with clang's libFuzzer + AddressSanitizer + UBSan and runs it.
#   tests/fuzz/run_libfuzzer.sh safetensors|job_config [seconds]
# Targets: safetensors (storage/safetensors/safetensors_fuzzer.cc); job_config (the submit
# path: services/cli/job_config_fuzzer.cc, seeded with the YAML examples of docs/config.md and
# docs/federated.md; its generated protos come from `bazel build //proto/strata/v1:v1_cc_grpc`).
# The corpus grows under /tmp/strata-fuzz/<target>/corpus; crashes are written beside it and
# make the script fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${1:?usage: run_libfuzzer.sh TARGET [SECONDS]}"
seconds="${2:-60}"
case "$target" in
  safetensors)
    sources=(storage/safetensors/safetensors_fuzzer.cc storage/safetensors/safetensors.cc
             storage/atomic_file.cc runtime/base/errno_status.cc)
    seeds=storage/safetensors/testdata
    extra=()
    ;;
  job_config)
    bazel build //proto/strata/v1:v1_cc_grpc >/dev/null
    generated="$(bazel info bazel-bin 2>/dev/null)"
    sources=(services/cli/job_config_fuzzer.cc services/cli/job_config.cc
             services/jobspec/spec_fuzz_checks.cc services/jobspec/job_spec.cc
             services/jobspec/spec_limits.cc services/jobspec/job_paths.cc
             services/jobspec/run_config_builder.cc runtime/base/errno_status.cc
             "$generated"/proto/strata/v1/{common,job,run_config}.pb.cc)
    extra=(-I"$generated" $(pkg-config --libs protobuf yaml-0.1))
    seeds=""
    ;;
  *) echo "unknown fuzz target: $target" >&2; exit 2 ;;
esac
work="/tmp/strata-fuzz/$target"
mkdir -p "$work/corpus"
if [[ -n "$seeds" ]]; then
  cp -n "$seeds"/* "$work/corpus/" 2>/dev/null || true
else
  python3 - "$work/corpus" docs/config.md docs/federated.md <<'PY'
import re, sys
n = 0
for doc in sys.argv[2:]:
    for block in re.findall(r"```yaml\n(.*?)```", open(doc).read(), re.S):
        n += 1
        open(f"{sys.argv[1]}/docs-{n}.yaml", "w").write(block)
PY
fi
absl_libs=$(pkg-config --libs absl_status absl_statusor absl_strings absl_str_format absl_strings)
echo "run_libfuzzer: building $target with clang++ -fsanitize=fuzzer,address,undefined"
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I. "${sources[@]}" "${extra[@]}" $absl_libs -o "$work/fuzzer"
echo "run_libfuzzer: running for $seconds s"
"$work/fuzzer" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$work/" \
  "$work/corpus"
