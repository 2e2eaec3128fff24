#!/usr/bin/env bash
# Builds Strata and runs every test: `bazel test //...`, then the GPU build
# (`bazel build --config=cuda //...`) when the CUDA toolkit is present. Ends with one line
# "N passed, M failed, K skipped" counting individual test cases, and exits non-zero if any
# test case or build failed.
set -uo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
echo "test.sh: bazel test //... (first run builds everything; a few minutes on 2 cores)"
bazel test --keep_going //...
test_rc=$?

cuda_home="${CUDA_HOME:-/usr/local/cuda}"
cuda_result="skipped"
if [[ -x "$cuda_home/bin/nvcc" ]]; then
  echo "test.sh: bazel build --config=cuda //..."
  if bazel build --config=cuda //...; then cuda_result="passed"; else cuda_result="failed"; fi
else
  echo "test.sh: no CUDA toolkit at $cuda_home: skipping the --config=cuda build"
fi

echo "test.sh: finished in $(($(date +%s) - start)) s"
targets=$(bazel query 'tests(//...)' 2>/dev/null)
python3 deploy/summarize_tests.py --testlogs "$(bazel info bazel-testlogs 2>/dev/null)" \
  --extra "cuda_build=$cuda_result" --bazel_rc "$test_rc" $targets
