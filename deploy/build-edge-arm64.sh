#!/usr/bin/env bash
# Cross-builds strata-edge for aarch64 with Debian's cross toolchain (g++-aarch64-linux-gnu)
# against the arm64 multiarch -dev packages deploy/setup.sh installs. The edge client's sources
# are compiled as the Bazel build compiles them for x86 — in particular -ffp-contract=off, part
# of the bit-exact replay contract (docs/federated.md) — and linked dynamically; run the result
# with qemu-aarch64 on an x86 machine (the arm64 libraries are in the multiarch paths).
#
#   deploy/build-edge-arm64.sh OUT_BINARY [BUILD_DIR]
set -euo pipefail

out=$(realpath -m "${1:?usage: build-edge-arm64.sh OUT_BINARY [BUILD_DIR]}")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(realpath -m "${2:-$(mktemp -d)}")
cxx=aarch64-linux-gnu-g++
for tool in "$cxx" protoc grpc_cpp_plugin; do
  command -v "$tool" >/dev/null || { echo "build-edge-arm64.sh: $tool is not installed" >&2; exit 3; }
done
[[ -e /usr/lib/aarch64-linux-gnu/libgrpc++.so ]] ||
  { echo "build-edge-arm64.sh: the arm64 gRPC libraries are not installed" >&2; exit 3; }
[[ -e /usr/lib/aarch64-linux-gnu/libicuuc.so ]] ||
  { echo "build-edge-arm64.sh: the arm64 ICU library (libicu-dev:arm64) is not installed" >&2; exit 3; }

# Always from scratch: objects are not tracked against the headers they include.
rm -rf "$build/gen" "$build/obj"
mkdir -p "$build/gen" "$build/obj"
cd "$root"
protos=(common job job_service worker_service federated_service)
for p in "${protos[@]}"; do
  protoc -I. --cpp_out="$build/gen" --grpc_out="$build/gen" \
    --plugin=protoc-gen-grpc="$(command -v grpc_cpp_plugin)" "proto/strata/v1/$p.proto"
done

sources=(
  services/edge/edge_main.cc services/edge/edge_client.cc services/edge/base_checkpoint.cc
  services/common/main_util.cc services/common/tls.cc services/trainer/task_loading.cc
  runtime/base/errno_status.cc runtime/base/logging.cc runtime/base/thread_pool.cc
  runtime/data/dataset.cc runtime/data/tokenizer.cc runtime/data/tokenizer_json.cc
  runtime/data/unicode_normalizer.cc runtime/data/gpt2_vocab_files.cc
  runtime/data/tokenizer_config.cc runtime/data/tokenizer_directory.cc
  runtime/kernels/attention.cc runtime/kernels/cpu_kernels.cc runtime/kernels/matmul.cc
  runtime/model/hf_checkpoint.cc runtime/model/model_config.cc runtime/model/param_layout.cc
  runtime/model/rope_frequencies.cc runtime/model/transformer.cc
  runtime/zo/zo_kernels.cc runtime/zo/zo_optimizer.cc
  runtime/peft/lora_config.cc runtime/peft/lora_adapters.cc runtime/peft/peft_checkpoint.cc
  runtime/peft/zo_adapters.cc runtime/peft/prefix_adapters.cc
  runtime/task/candidate_objective.cc runtime/task/prompt_template.cc runtime/task/task_batch.cc
  runtime/task/task_evaluator.cc runtime/task/task_examples.cc runtime/task/task_metrics.cc
  storage/atomic_file.cc storage/safetensors/safetensors.cc
)
for p in "${protos[@]}"; do
  sources+=("$build/gen/proto/strata/v1/$p.pb.cc" "$build/gen/proto/strata/v1/$p.grpc.pb.cc")
done

flags=(-std=c++20 -O2 -ffp-contract=off -fno-math-errno -fopenmp-simd -pthread -I. -I"$build/gen"
       -DNDEBUG)
objects=()
pids=()
jobs=$(nproc)
for src in "${sources[@]}"; do
  obj="$build/obj/$(echo "$src" | tr '/' '_').o"
  objects+=("$obj")
  "$cxx" "${flags[@]}" -c "$src" -o "$obj" &
  pids+=($!)
  while (( $(jobs -rp | wc -l) >= jobs )); do wait -n; done
done
for pid in "${pids[@]}"; do wait "$pid"; done

# The same libraries as //third_party's linkopts, for arm64 (libcrypto comes with gRPC's).
absl_libs=$(sed -n '/name = "absl"/,/^)/p' third_party/BUILD.bazel | grep -o '"-l[^"]*"' | tr -d '"')
grpc_libs=$(sed -n '/name = "grpc"/,/^)/p' third_party/BUILD.bazel | grep -o '"-l[^"]*"' | tr -d '"')
# shellcheck disable=SC2086
"$cxx" -pthread -o "$out" "${objects[@]}" $grpc_libs -lprotobuf $absl_libs -lopenblas -lpcre2-8 \
  -licuuc
echo "build-edge-arm64.sh: wrote $out ($(file -b "$out" | cut -d, -f1-2))"
