#!/usr/bin/env bash
# Builds a fuzz target with clang's libFuzzer + AddressSanitizer + UBSan and runs it.
#   tests/fuzz/run_libfuzzer.sh safetensors [seconds]
# Targets: safetensors (storage/safetensors/safetensors_fuzzer.cc). The corpus grows under
# /tmp/strata-fuzz/<target>/corpus; crashes are written beside it and make the script fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${1:?usage: run_libfuzzer.sh TARGET [SECONDS]}"
seconds="${2:-60}"
case "$target" in
  safetensors)
    sources=(storage/safetensors/safetensors_fuzzer.cc storage/safetensors/safetensors.cc
             storage/atomic_file.cc runtime/base/errno_status.cc)
    seeds=storage/safetensors/testdata
    ;;
  *) echo "unknown fuzz target: $target" >&2; exit 2 ;;
esac
work="/tmp/strata-fuzz/$target"
mkdir -p "$work/corpus"
cp -n "$seeds"/* "$work/corpus/" 2>/dev/null || true
absl_libs=$(pkg-config --libs absl_status absl_statusor absl_strings absl_str_format)
echo "run_libfuzzer: building $target with clang++ -fsanitize=fuzzer,address,undefined"
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I. "${sources[@]}" $absl_libs -o "$work/fuzzer"
echo "run_libfuzzer: running for $seconds s"
"$work/fuzzer" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$work/" \
  "$work/corpus"
