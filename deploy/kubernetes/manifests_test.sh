#!/usr/bin/env bash
# Runs manifests_test.py (the Kubernetes manifests' offline test) with the system's python3:
# Bazel's own Python stub wants a `python` binary that Debian does not ship.
set -euo pipefail
exec python3 "$(dirname "$0")/manifests_test.py" "$@"
