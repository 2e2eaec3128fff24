#!/usr/bin/env bash
# Makes the token Secrets the production and gpu overlays mount (components/tls):
#   strata-tokens         tokens (users; those in --operators get role=operator: they see every
#                         job on the dashboard and may cordon and drain workers),
#                         worker-tokens (one "TOKEN strata-worker-N" line per worker),
#                         client-tokens (one enrollment token for any federated client)
#   strata-worker-tokens  one key per worker pod, strata-worker-N, holding that worker's token
# The token files are written under DIR (which must not hold them yet: tokens are never
# replaced silently) so the operator can hand each user their token; the Secrets go to stdout:
#
#   bash deploy/kubernetes/make-secrets.sh --workers=4 --users=alice,bob --operators=alice tokens \
#     | kubectl apply -f -
#
# Scaling the workers past --workers needs a token for each new pod in both Secrets.
# The TLS Secrets (strata-coordinator-tls, strata-worker-tls) come from cert-manager or your
# CA (docs/operations.md, Kubernetes).
set -euo pipefail

namespace=strata
workers=2
users=admin
operators=""
dir=""
for arg in "$@"; do
  case "$arg" in
    --namespace=*) namespace="${arg#*=}" ;;
    --workers=*) workers="${arg#*=}" ;;
    --users=*) users="${arg#*=}" ;;
    --operators=*) operators="${arg#*=}" ;;
    -*) echo "make-secrets: unknown flag $arg" >&2; exit 2 ;;
    *) dir="$arg" ;;
  esac
done
if [[ -z "$dir" ]]; then
  echo "usage: make-secrets.sh [--namespace=strata] [--workers=N] [--users=NAME,...]" \
    "[--operators=NAME,...] DIR" >&2
  exit 2
fi
if ! [[ "$workers" =~ ^[1-9][0-9]*$ ]]; then
  echo "make-secrets: --workers: expected a positive number, got \"$workers\"" >&2
  exit 2
fi
IFS=',' read -r -a user_names <<<"$users"
IFS=',' read -r -a operator_names <<<"$operators"
for user in "${user_names[@]}"; do
  if ! [[ "$user" =~ ^[A-Za-z0-9._-]{1,63}$ ]]; then
    echo "make-secrets: --users: \"$user\" is not 1-63 characters of [A-Za-z0-9._-]" >&2
    exit 2
  fi
done
for operator in "${operator_names[@]}"; do
  if ! [[ ",$users," == *",$operator,"* ]]; then
    echo "make-secrets: --operators: \"$operator\" is not one of --users" >&2
    exit 2
  fi
done

umask 077
mkdir -p "$dir/worker-tokens"
for file in tokens worker-tokens.txt client-tokens; do
  if [[ -e "$dir/$file" ]]; then
    echo "make-secrets: $dir/$file exists; tokens are never replaced: use another DIR" >&2
    exit 1
  fi
done

# 128 random bits as 32 hex digits.
token() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

for user in "${user_names[@]}"; do
  if [[ ",$operators," == *",$user,"* ]]; then
    echo "$(token) $user role=operator"
  else
    echo "$(token) $user"
  fi
done >"$dir/tokens"
for ((i = 0; i < workers; i++)); do
  name="strata-worker-$i"
  value="$(token)"
  echo "$value" >"$dir/worker-tokens/$name"
  echo "$value $name"
done >"$dir/worker-tokens.txt"
echo "$(token) *" >"$dir/client-tokens"

kubectl create secret generic strata-tokens --namespace="$namespace" --dry-run=client -o yaml \
  --from-file=tokens="$dir/tokens" --from-file=worker-tokens="$dir/worker-tokens.txt" \
  --from-file=client-tokens="$dir/client-tokens"
echo "---"
kubectl create secret generic strata-worker-tokens --namespace="$namespace" --dry-run=client \
  -o yaml --from-file="$dir/worker-tokens"
echo "make-secrets: wrote the tokens under $dir; the Secrets are on stdout" >&2
