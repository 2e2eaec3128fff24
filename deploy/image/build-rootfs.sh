#!/usr/bin/env bash
# Builds Strata's runtime root file system without Docker, from Debian's packages only: a
# minbase Debian 12 made by mmdebstrap with the packages of deploy/image/runtime-packages.txt
# (the list the Dockerfile's runtime stage installs), plus the already built binaries laid out
# by deploy/image/install-layout.sh. Optionally exports it as an OCI image archive (an OCI image
# layout in a tar, one uncompressed layer, configured as the Dockerfile's runtime stage) that
# `skopeo copy oci-archive:FILE ...`, `podman load` and `docker load` read. Run as root.
#
#   build-rootfs.sh --out DIR [--oci FILE.tar] [--tag TAG] [--cache-dir DIR]
#                   [--cache-max-age DAYS] [--bin-dir DIR] [--mirror LINE]... [BINARY...]
#
# --out: the root file system's directory (must be absent or empty).
# --bin-dir: where the binaries are looked up as services/<part>/<name> (default: the
#   repository's bazel-bin); BINARY arguments replace any of the five by path.
# --cache-dir: keeps downloaded .deb files (apt-archives/) and the mmdebstrap result
#   (base-<key>.tar, key: the sha256 of everything that shapes it: package list, suite,
#   mirrors, hooks) there. A base younger than --cache-max-age days (default 7; 0 always
#   rebuilds) is reused without touching the network.
# --mirror: a sources.list line, repeatable (default: Debian's bookworm, bookworm-updates
#   and bookworm-security).
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
list=$here/runtime-packages.txt

out="" oci="" tag="strata:latest" cache="" max_age=7 bin_dir="$repo/bazel-bin"
mirrors=() binaries=()
while (($#)); do
  case "$1" in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --oci) oci=${2:?--oci needs a file}; shift 2 ;;
    --tag) tag=${2:?--tag needs a name}; shift 2 ;;
    --cache-dir) cache=${2:?--cache-dir needs a directory}; shift 2 ;;
    --cache-max-age) max_age=${2:?--cache-max-age needs a number of days}; shift 2 ;;
    --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift 2 ;;
    --mirror) mirrors+=("${2:?--mirror needs a sources.list line}"); shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "build-rootfs.sh: unknown option $1" >&2; exit 2 ;;
    *) binaries+=("$1"); shift ;;
  esac
done
[[ -n "$out" ]] || { echo "build-rootfs.sh: --out DIR is required" >&2; exit 2; }
[[ "$max_age" =~ ^[0-9]+$ ]] || { echo "build-rootfs.sh: --cache-max-age $max_age is not a number of days" >&2; exit 2; }
[[ "$(id -u)" == 0 ]] || { echo "build-rootfs.sh: run as root (mmdebstrap's root mode, file ownership)" >&2; exit 2; }
command -v mmdebstrap >/dev/null || { echo "build-rootfs.sh: mmdebstrap is not installed (apt-get install mmdebstrap)" >&2; exit 3; }
if [[ -e "$out" && -n "$(ls -A "$out")" ]]; then
  echo "build-rootfs.sh: --out $out is not empty" >&2
  exit 2
fi
((${#mirrors[@]})) || mirrors=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)

# The binaries: the five from --bin-dir, any given by path replacing theirs.
declare -A chosen=(
  [strata-coordinator]=$bin_dir/services/coordinator/strata-coordinator
  [strata-worker]=$bin_dir/services/worker/strata-worker
  [strata-train]=$bin_dir/services/trainer/strata-train
  [strata]=$bin_dir/services/cli/strata
  [strata-edge]=$bin_dir/services/edge/strata-edge
)
for binary in ${binaries[@]+"${binaries[@]}"}; do
  name=$(basename "$binary")
  [[ -n "${chosen[$name]:-}" ]] || { echo "build-rootfs.sh: $binary is not a Strata binary" >&2; exit 2; }
  chosen[$name]=$binary
done
for name in "${!chosen[@]}"; do
  [[ -x "${chosen[$name]}" ]] || {
    echo "build-rootfs.sh: ${chosen[$name]} does not exist (bazel build the daemons or pass the path)" >&2
    exit 2
  }
done

# Package names: the list without comments and blank lines.
mapfile -t packages < <(sed 's/#.*//' "$list" | tr -s ' \t' '\n' | sed '/^$/d')
((${#packages[@]})) || { echo "build-rootfs.sh: $list lists no packages" >&2; exit 2; }

suite=bookworm
variant=minbase
# The image keeps no host identity: the runtime supplies hostname and DNS. (Hooks are shell
# text that mmdebstrap runs with $1 = the chroot, hence the single quotes.)
# shellcheck disable=SC2016
cleanup_hook='rm -f "$1/etc/hostname" "$1/etc/resolv.conf"'
# Everything that shapes the base, hashed into its cache key.
recipe=$(printf '%s\n' "suite=$suite" "variant=$variant" "hooks=merged-usr" "hook=$cleanup_hook" \
  "${mirrors[@]/#/mirror=}" "${packages[@]/#/package=}")
key=$(printf '%s' "$recipe" | sha256sum | cut -c1-16)

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT

# mmdebstrap's result as a tar; with --cache-dir the .deb files are synced in and out of the
# chroot's apt archive (so they survive mmdebstrap's cleanup; autoclean first drops those the
# mirrors no longer have) and the tar is kept.
make_base() {
  local result=$1 archives=${2:-}
  local args=(--variant="$variant" --include="$(IFS=,; echo "${packages[*]}")"
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
    --customize-hook="$cleanup_hook")
  if [[ -n "$archives" ]]; then
    # shellcheck disable=SC2016
    args+=(--skip=essential/unlink
      --setup-hook='mkdir -p "$1/var/cache/apt/archives"'
      --setup-hook="sync-in '$archives' /var/cache/apt/archives"
      --customize-hook='chroot "$1" apt-get --quiet autoclean'
      --customize-hook="sync-out /var/cache/apt/archives '$archives'")
  fi
  echo "build-rootfs.sh: mmdebstrap $suite ($variant + ${#packages[@]} packages)"
  mmdebstrap --quiet "${args[@]}" "$suite" "$result" "${mirrors[@]}" </dev/null
}

start=$SECONDS
if [[ -n "$cache" ]]; then
  mkdir -p "$cache/apt-archives"
  base=$cache/base-$key.tar
  exec 9>"$cache/lock"
  flock 9   # one build of a base at a time; the others then reuse it
  if [[ -f "$base" ]] && ((max_age > 0)) && [[ -z "$(find "$base" -mtime +"$((max_age - 1))")" ]]; then
    echo "build-rootfs.sh: reusing $base"
  else
    make_base "$work/base.tar" "$cache/apt-archives"
    mv "$work/base.tar" "$base.tmp" && mv "$base.tmp" "$base"
    # Bases of other recipes go.
    find "$cache" -maxdepth 1 -name 'base-*.tar' ! -name "base-$key.tar" -delete
  fi
  flock -u 9
else
  base=$work/base.tar
  make_base "$base"
fi

mkdir -p "$out"
tar -C "$out" --numeric-owner -xf "$base"
bash "$here/install-layout.sh" "$out" "${chosen[@]}"
echo "build-rootfs.sh: root file system in $out ($((SECONDS - start)) s)"

if [[ -n "$oci" ]]; then
  layout=$work/oci
  mkdir -p "$layout/blobs/sha256"
  # The runtime mounts /dev, /proc and /sys; their contents stay out of the layer.
  tar -C "$out" --numeric-owner --sort=name --exclude='./dev/*' --exclude='./proc/*' \
    --exclude='./sys/*' -cf "$layout/layer.tar" .
  python3 "$here/oci_layout.py" --layout "$layout" --layer "$layout/layer.tar" \
    --dockerfile "$here/Dockerfile" --tag "$tag"
  tar -C "$layout" --numeric-owner --owner=0 --group=0 --sort=name -cf "$oci.tmp" \
    oci-layout index.json manifest.json blobs
  mv "$oci.tmp" "$oci"
  echo "build-rootfs.sh: OCI image archive $oci ($tag, $((SECONDS - start)) s)"
fi
