#!/usr/bin/env bash
# Lays Strata's five binaries and its user into a root file system; the one definition of the
# image's layout, used by deploy/image/Dockerfile (on /) and deploy/image/build-rootfs.sh (on
# the directory it builds). Run as root.
#
#   install-layout.sh ROOT BINARY...
#
# BINARY: paths to strata-coordinator, strata-worker, strata-train, strata and strata-edge (all
# five, any order, symlinks followed). Each lands in ROOT/opt/strata/services/<part>/<name>, the
# relative place it has in Bazel's output tree, with a symlink in ROOT/usr/local/bin: the worker
# finds strata-train through /proc/self/exe at <its dir>/../../services/trainer/strata-train, so
# no --train_binary is needed. The user `strata` (uid and gid 65532, the user the Kubernetes
# manifests run the coordinator as; home /var/lib/strata, no login shell) owns /var/lib/strata,
# where the daemons keep their state.
set -euo pipefail

usage="usage: install-layout.sh ROOT BINARY..."
root=${1:?$usage}
shift
[[ -d "$root" ]] || { echo "install-layout.sh: ROOT $root is not a directory" >&2; exit 2; }

# Binary name -> its directory under services/ (as in Bazel's output tree).
declare -A part=(
  [strata-coordinator]=coordinator
  [strata-worker]=worker
  [strata-train]=trainer
  [strata]=cli
  [strata-edge]=edge
)
declare -A source=()
for binary in "$@"; do
  name=$(basename "$binary")
  [[ -n "${part[$name]:-}" ]] ||
    { echo "install-layout.sh: $binary is not one of: ${!part[*]}" >&2; exit 2; }
  [[ -f "$binary" && -x "$binary" ]] ||
    { echo "install-layout.sh: $binary is not an executable file" >&2; exit 2; }
  source[$name]=$binary
done
for name in "${!part[@]}"; do
  [[ -n "${source[$name]:-}" ]] || { echo "install-layout.sh: no $name given" >&2; exit 2; }
done

mkdir -p "$root/usr/local/bin"
for name in "${!part[@]}"; do
  target=/opt/strata/services/${part[$name]}/$name
  install -D -m 0755 "$(realpath "${source[$name]}")" "$root$target"
  ln -sfn "$target" "$root/usr/local/bin/$name"
done

uid=65532
if ! grep -q '^strata:' "$root/etc/passwd"; then
  groupadd --root "$(realpath "$root")" --gid "$uid" strata
  useradd --root "$(realpath "$root")" --key UID_MAX="$uid" --uid "$uid" --gid "$uid" \
    --home-dir /var/lib/strata --no-create-home --shell /usr/sbin/nologin strata
fi
install -d -o "$uid" -g "$uid" -m 0750 "$root/var/lib/strata"
