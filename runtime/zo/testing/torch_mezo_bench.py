"""PyTorch CPU peer of zo_step_bench: MeZO's algorithm as its reference implementation runs it —
seed, in-place torch.normal perturbation (+eps), forward, perturb (-2 eps), forward, restore
(+eps), then the update with z regenerated from the seed — on a GPT-2-shaped model built with
torch_reference.py. Prints {"tok_s": median} as its last line.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "model", "testing"))
import torch_reference  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--B", type=int, default=4)
    parser.add_argument("--T", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = json.loads(args.config)
    V = cfg["vocab_size"]
    P = torch_reference.random_gpt2_params(cfg)
    params = list(P.values())
    idx = torch.randint(0, V, (args.B, args.T))
    targets = torch.randint(0, V, (args.B, args.T))
    eps, lr = 1e-3, 1e-6

    def perturb(seed, scale):
        torch.manual_seed(seed)
        for p in params:
            z = torch.normal(mean=0, std=1, size=p.shape, dtype=p.dtype)
            p.data = p.data + scale * z * eps

    times = []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        with torch.no_grad():
            seed = 1000 + step
            perturb(seed, 1)
            loss1 = torch_reference.loss(P, cfg, idx, targets).item()
            perturb(seed, -2)
            loss2 = torch_reference.loss(P, cfg, idx, targets).item()
            perturb(seed, 1)
            g = (loss1 - loss2) / (2 * eps)
            torch.manual_seed(seed)
            for p in params:
                z = torch.normal(mean=0, std=1, size=p.shape, dtype=p.dtype)
                p.data = p.data - lr * g * z
        elapsed = time.perf_counter() - start
        print(f"torch mezo step {step}: {elapsed:.3f} s", file=sys.stderr, flush=True)
        if step > 0:
            times.append(elapsed)
    print(json.dumps({"tok_s": args.B * args.T / statistics.median(times)}))


if __name__ == "__main__":
    main()
