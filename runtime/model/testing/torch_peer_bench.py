"""PyTorch CPU peer of model_step_bench: times one FO step (forward + backward + AdamW) or two
loss-only forward passes of a GPT-2-shaped model with the same shapes and thread count, and
prints {"tok_s": median} as its last line. Run by model_step_bench, which measures its peak RSS.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["fo", "fwd2"], required=True)
    parser.add_argument("--B", type=int, default=4)
    parser.add_argument("--T", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", required=True, help="config.json text")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = json.loads(args.config)
    V = cfg["vocab_size"]
    P = torch_reference.random_gpt2_params(cfg)
    for t in P.values():
        t.requires_grad_(args.mode == "fo")
    idx = torch.randint(0, V, (args.B, args.T))
    targets = torch.randint(0, V, (args.B, args.T))
    optimizer = torch.optim.AdamW(list(P.values()), lr=1e-4, weight_decay=0.0) \
        if args.mode == "fo" else None
    times = []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        if args.mode == "fo":
            optimizer.zero_grad(set_to_none=True)
            torch_reference.loss(P, cfg, idx, targets).backward()
            optimizer.step()
        else:
            with torch.no_grad():
                torch_reference.loss(P, cfg, idx, targets)
                torch_reference.loss(P, cfg, idx, targets)
        elapsed = time.perf_counter() - start
        print(f"torch {args.mode} step {step}: {elapsed:.3f} s", file=sys.stderr, flush=True)
        if step > 0:  # The first step warms up allocators and thread pools.
            times.append(elapsed)
    tokens = args.B * args.T * (2 if args.mode == "fwd2" else 1)
    print(json.dumps({"tok_s": tokens / statistics.median(times)}))


if __name__ == "__main__":
    main()
