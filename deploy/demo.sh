#!/usr/bin/env bash
# The main job on embedded defaults: builds Strata, starts a local coordinator and two worker
# daemons on loopback and shows they answer (`strata health`, `strata node list`), then trains a
# small model on this machine: first-order pretraining on the license texts Debian ships, then a
# zeroth-order fine-tune with checkpoints and the step log. Everything runs under a temporary
# directory and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "demo: building strata, strata-coordinator, strata-worker (bazel -c opt)"
bazel build -c opt //services/cli:strata //services/coordinator:strata-coordinator \
  //services/worker:strata-worker //runtime/train:strata-train
bin="$(bazel info -c opt bazel-bin 2>/dev/null)"
work="$(mktemp -d /tmp/strata-demo.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_for_file() {
  for _ in $(seq 1 300); do
    [[ -s "$1" ]] && return 0
    sleep 0.1
  done
  echo "demo: $2 did not start; its log:" >&2
  cat "$3" >&2
  exit 1
}

echo "demo: starting strata-coordinator (logs in $work)"
"$bin/services/coordinator/strata-coordinator" --listen=localhost:0 \
  --port_file="$work/coordinator.port" 2>"$work/coordinator.log" &
pids+=($!)
wait_for_file "$work/coordinator.port" strata-coordinator "$work/coordinator.log"
export STRATA_COORDINATOR="localhost:$(cat "$work/coordinator.port")"
echo "demo: coordinator at $STRATA_COORDINATOR"

for name in worker-a worker-b; do
  "$bin/services/worker/strata-worker" --name="$name" --listen=localhost:0 \
    --port_file="$work/$name.port" --nvme_paths="$work/nvme-$name" 2>"$work/$name.log" &
  pids+=($!)
  wait_for_file "$work/$name.port" "$name" "$work/$name.log"
done

echo "demo: \$ strata health"
"$bin/services/cli/strata" health

echo "demo: waiting for both workers to register"
for _ in $(seq 1 100); do
  listing="$("$bin/services/cli/strata" node list)"
  if grep -q worker-a <<<"$listing" && grep -q worker-b <<<"$listing"; then break; fi
  sleep 0.1
done
echo "demo: \$ strata node list"
echo "$listing"
if ! grep -q worker-a <<<"$listing" || ! grep -q worker-b <<<"$listing"; then
  echo "demo: workers did not register; worker logs:" >&2
  cat "$work"/worker-*.log >&2
  exit 1
fi
echo "demo: OK: the coordinator answers and both workers are registered"

echo "demo: \$ strata-train (first-order AdamW, GPT-2-shaped model, license texts, 150 steps)"
"$bin/runtime/train/strata-train" --preset=gpt2-tiny --steps=150 --batch=8 --seq=64 \
  --eval_every=0 --log_every=50 --save_dir="$work/model"
echo "demo: \$ strata-train --optimizer=zo (MeZO fine-tune of that model, 60 steps, checkpointed)"
"$bin/runtime/train/strata-train" --optimizer=zo --init_from="$work/model" --steps=60 \
  --batch=8 --seq=64 --lr=1e-5 --min_lr=1e-5 --warmup=0 --eps=1e-3 --log_every=20 \
  --eval_every=0 --checkpoint_dir="$work/zo" --checkpoint_every=30
echo "demo: OK: trained, fine-tuned with ZO and checkpointed (the temporary directory is removed on exit)"
