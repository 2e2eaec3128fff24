#!/usr/bin/env bash
# Runs image_test.py (the image recipe's test) with Debian's python3: Bazel's py_test stub
# wants a `python` on PATH, which Debian does not have.
exec python3 "$(dirname "$0")/image_test.py" "$@"
