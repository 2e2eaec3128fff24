"""The peer of adam_bench: torch.optim.AdamW(foreach=True) over the GPT-2-small tensor shapes.

Usage: torch_adam_bench.py THREADS STEPS. Prints {"seconds": median step time} last.
"""
import json
import statistics
import sys
import time

import torch


def main():
    threads, steps = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    d, v, ctx, layers = 768, 50257, 1024, 12
    shapes = [(v, d), (ctx, d)]
    for _ in range(layers):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d),
                   (4 * d,), (d, 4 * d), (d,)]
    shapes += [(d,), (d,)]
    params = [torch.nn.Parameter(torch.randn(s) * 0.02) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1, foreach=True)
    times = []
    with torch.no_grad():
        for step in range(steps + 1):
            start = time.perf_counter()
            opt.step()
            if step > 0:
                times.append(time.perf_counter() - start)
    n = sum(p.numel() for p in params)
    print(f"torch AdamW(foreach=True): {n} params, {statistics.median(times):.4f} s/step",
          file=sys.stderr)
    print(json.dumps({"seconds": statistics.median(times)}))


if __name__ == "__main__":
    main()
