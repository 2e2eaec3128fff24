#!/usr/bin/env bash
# The main job on embedded defaults: builds Strata, starts a local coordinator (state in SQLite
# under a temporary directory) and two worker daemons on loopback, shows they answer
# (`strata health`, `strata node list`), then submits two jobs through the CLI and follows
# their progress: first-order pretraining of a small GPT-2-shaped model on a synthetic language
# (deploy/examples/synthetic_sentiment.py, with its word-level tokenizer), then a zeroth-order
# (MeZO) fine-tune of the exported model on a sentiment task given as a task file
# (docs/tasks.md). The held-out accuracy is printed before (zero-shot, and 4-shot in context)
# and after the fine-tune. Prints the metrics URL and what the dashboard shows. Everything is
# stopped and removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "demo: building strata, strata-coordinator, strata-worker, strata-train (bazel -c opt)"
bazel build -c opt //services/cli:strata //services/coordinator:strata-coordinator \
  //services/worker:strata-worker //services/trainer:strata-train
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

# The synthetic language and its sentiment task: corpus.txt, tokenizer.json, train/dev/test.jsonl
# and sentiment.yaml, the task file.
data="$work/data"
python3 deploy/examples/synthetic_sentiment.py "$data"

# TLS on every connection (a development CA) and a user token for the CLI.
bash deploy/dev-certs.sh "$work/certs" >/dev/null
tls=(--tls_cert="$work/certs/server.pem" --tls_key="$work/certs/server-key.pem")
export STRATA_TLS_CA="$work/certs/ca.pem"
export STRATA_TOKEN="demo-$RANDOM$RANDOM"
echo "$STRATA_TOKEN demo" >"$work/tokens"
# One token per worker, each bound to that worker's name; the workers read theirs from a file.
: >"$work/worker-tokens"
for name in worker-a worker-b; do
  token="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  echo "$token $name" >>"$work/worker-tokens"
  echo "$token" >"$work/$name.token"
done
chmod 600 "$work"/*.token "$work/worker-tokens" "$work/tokens"

echo "demo: starting strata-coordinator (TLS, user and worker tokens; logs in $work)"
"$bin/services/coordinator/strata-coordinator" --listen=localhost:0 "${tls[@]}" \
  --tokens_file="$work/tokens" --worker_tokens_file="$work/worker-tokens" \
  --data_roots="$data" \
  --port_file="$work/coordinator.port" --data_dir="$work/coordinator" \
  --metrics_listen=localhost:0 --metrics_port_file="$work/coordinator.metrics" \
  2>"$work/coordinator.log" &
pids+=($!)
wait_for_file "$work/coordinator.port" strata-coordinator "$work/coordinator.log"
export STRATA_COORDINATOR="localhost:$(cat "$work/coordinator.port")"
echo "demo: coordinator at $STRATA_COORDINATOR"
wait_for_file "$work/coordinator.metrics" strata-coordinator "$work/coordinator.log"
dashboard_url="http://localhost:$(cat "$work/coordinator.metrics")/"
echo "demo: dashboard at ${dashboard_url}#token=$STRATA_TOKEN (open it to watch the jobs below)"

for name in worker-a worker-b; do
  "$bin/services/worker/strata-worker" --name="$name" --listen=localhost:0 "${tls[@]}" \
    --tls_ca="$STRATA_TLS_CA" --worker_token_file="$work/$name.token" \
    --port_file="$work/$name.port" --nvme_paths="$work/nvme-$name" --cores=1 \
    --work_dir="$work/workers" --data_roots="$data" \
    --metrics_listen=localhost:0 2>"$work/$name.log" &
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

# The two job configs (docs/config.md). Datasets come from the data root; checkpoint paths are
# relative to the user's area on the workers (they share one work dir here, as a shared file
# system would), so the fine-tune names the pre-training's export as `pretrain/export`.
vocab="$(python3 -c 'import json,sys; print(max(json.load(open(sys.argv[1]))["added_tokens"][0]["id"] + 1, 0))' "$data/tokenizer.json")"
model="{\"model_type\": \"gpt2\", \"vocab_size\": $vocab, \"n_embd\": 128, \"n_layer\": 2, \"n_head\": 4, \"n_positions\": 64}"
cat >"$work/pretrain.yaml" <<YAML
name: demo-pretrain
model:
  config_json: '$model'
data:
  train_paths: [$data/corpus.txt]
  tokenizer_path: $data/tokenizer.json
  batch_size: 16
  seq_len: 32
optimizer:
  adamw: {lr: 3e-3, weight_decay: 0.1, grad_clip_norm: 1.0}
  schedule: {kind: LR_SCHEDULE_KIND_COSINE, warmup_steps: 20, min_lr_ratio: 0.1}
training: {max_steps: 300, log_interval: 50, eval_interval: 300, seed: 1}
resources: {cores_per_rank: 1}
checkpoint: {path: pretrain, export_safetensors: true}
YAML
# The fine-tune: the task file's keys under `task:`.
{
  cat <<YAML
name: demo-zo-task
model:
  checkpoint_path: pretrain/export
data:
  tokenizer_path: $data/tokenizer.json
  batch_size: 16
  seq_len: 24
optimizer:
  zeroth_order: {variant: ZO_VARIANT_SGD, lr: 1e-4, epsilon: 1e-3}
training: {max_steps: 200, log_interval: 50, eval_interval: 50, seed: 1}
resources: {cores_per_rank: 1}
checkpoint: {path: finetune, interval_steps: 100, export_safetensors: true}
task:
YAML
  grep -v '^#' "$data/sentiment.yaml" | sed 's/^/  /'
} >"$work/finetune.yaml"

evaluate() {  # strata-train eval of a model on the task's test examples: its JSON line.
  "$bin/services/trainer/strata-train" eval --init_from="$1" --tokenizer="$data/tokenizer.json" \
    --task="$data/sentiment.yaml" --shots="$2" --threads=2 2>/dev/null
}
accuracy() { python3 -c 'import json,sys; print("%.3f" % json.loads(sys.argv[1])[sys.argv[2]]["accuracy"])' "$1" "$2"; }

echo "demo: \$ strata job submit pretrain.yaml   (first-order AdamW, 300 steps on the synthetic language)"
"$bin/services/cli/strata" job submit "$work/pretrain.yaml" | tee "$work/pretrain.out"
pretrain_id="$(sed -n 's/^submitted job \([^ ]*\).*/\1/p' "$work/pretrain.out" | head -1)"
echo "demo: \$ strata job export $pretrain_id ./pretrained   (its Hugging Face export, via the coordinator)"
"$bin/services/cli/strata" job export "$pretrain_id" "$work/pretrained"
echo "demo: \$ strata-train eval --init_from=./pretrained --task=sentiment.yaml --shots=4"
before="$(evaluate "$work/pretrained" 4)"
echo "$before"
echo "demo: \$ strata job submit finetune.yaml   (zeroth-order fine-tune on the task, 200 steps)"
"$bin/services/cli/strata" job submit "$work/finetune.yaml" | tee "$work/finetune.out"
finetune_id="$(sed -n 's/^submitted job \([^ ]*\).*/\1/p' "$work/finetune.out" | head -1)"
"$bin/services/cli/strata" job export "$finetune_id" "$work/finetuned" >/dev/null
after="$(evaluate "$work/finetuned" 0)"
echo "demo: held-out accuracy on the task's 256 test examples: zero-shot $(accuracy "$before" zero_shot), 4-shot in context $(accuracy "$before" k_shot), after the ZO fine-tune $(accuracy "$after" zero_shot)"
python3 - "$before" "$after" <<'PY'
import json, sys
before, after = json.loads(sys.argv[1]), json.loads(sys.argv[2])
if after["zero_shot"]["accuracy"] < before["zero_shot"]["accuracy"] + 0.2:
    sys.exit("demo: the fine-tune did not raise held-out accuracy")
PY
echo "demo: \$ strata job list"
"$bin/services/cli/strata" job list

metrics_url="http://localhost:$(cat "$work/coordinator.metrics")/metrics"
echo "demo: coordinator metrics at $metrics_url (also /healthz and /readyz); some of them:"
python3 - "$metrics_url" <<'PY'
import sys, urllib.request
for line in urllib.request.urlopen(sys.argv[1], timeout=10).read().decode().splitlines():
    if line.startswith(("strata_jobs{", "strata_workers{")):
        print("  " + line)
PY
python3 - "$dashboard_url" "$STRATA_TOKEN" <<'PY'
import json, sys, urllib.request
request = urllib.request.Request(sys.argv[1] + "api/v1/dashboard",
                                 headers={"Authorization": "Bearer " + sys.argv[2]})
data = json.load(urllib.request.urlopen(request, timeout=10))
print("demo: the dashboard shows %d workers and %d jobs: %s" % (
    len(data["workers"]), len(data["jobs"]),
    ", ".join("%s %s" % (j["name"], j["state"]) for j in data["jobs"])))
PY
echo "demo: OK: both jobs completed on the workers (the temporary directory is removed on exit)"
