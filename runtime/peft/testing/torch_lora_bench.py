"""PyTorch CPU peer of peft_bench: times a LoRA step over a frozen base with the same shapes,
targets and thread count, and prints {"tok_s": median} as its last line (peft_bench measures
its peak RSS).
  --mode zo_lora: MeZO's step on the adapters (perturb +eps z, forward, -2 eps z, forward,
                  restore, update with the projected gradient; z regenerated from the step's
                  seed each time, as MeZO does), under torch.no_grad.
  --mode fo_lora: forward, backward to the adapters only (the base has requires_grad False),
                  AdamW on the adapters.
The model is torch_reference.py's (the independent reference of the parity tests) with LoRA on
the named modules, as PEFT computes it.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "model",
                                "testing"))
import torch_reference  # noqa: E402


def block_prefix(cfg, layer):
    return (f"transformer.h.{layer}." if cfg["model_type"] == "gpt2"
            else f"model.layers.{layer}.")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["zo_lora", "fo_lora"], required=True)
    parser.add_argument("--config", required=True, help="config.json text")
    parser.add_argument("--targets", required=True,
                        help="comma-separated module names within a block, e.g. attn.c_attn")
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16)
    parser.add_argument("--B", type=int, default=2)
    parser.add_argument("--T", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = json.loads(args.config)
    cfg["lora_scale"] = args.alpha / args.r
    generator = torch.Generator().manual_seed(0)
    P = torch_reference.random_params(cfg, generator)
    for t in P.values():
        t.mul_(0.1)  # Small weights: no overflow through deep stacks (speed is what counts).
        t.requires_grad_(False)
    layers = cfg.get("n_layer") or cfg["num_hidden_layers"]
    adapters = []
    for layer in range(layers):
        for target in args.targets.split(","):
            module = block_prefix(cfg, layer) + target
            weight = P[module + ".weight"]
            # nn.Linear stores (out, in); GPT-2's Conv1D (in, out).
            out_f, in_f = ((weight.shape[1], weight.shape[0]) if cfg["model_type"] == "gpt2"
                           else tuple(weight.shape))
            P[module + ".lora_A.weight"] = torch.randn(args.r, in_f) / in_f ** 0.5
            P[module + ".lora_B.weight"] = torch.zeros(out_f, args.r)
            adapters += [P[module + ".lora_A.weight"], P[module + ".lora_B.weight"]]
    V = cfg["vocab_size"]
    idx = torch.randint(0, V, (args.B, args.T))
    targets = torch.randint(0, V, (args.B, args.T))
    eps, lr = 1e-2, 1e-4
    optimizer = None
    if args.mode == "fo_lora":
        for a in adapters:
            a.requires_grad_(True)
        optimizer = torch.optim.AdamW(adapters, lr=lr, weight_decay=0.0)

    def perturb(seed, scale):
        gen = torch.Generator().manual_seed(seed)
        for a in adapters:
            a.add_(torch.randn(a.shape, generator=gen), alpha=scale)

    times = []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        if args.mode == "fo_lora":
            optimizer.zero_grad(set_to_none=True)
            torch_reference.loss(P, cfg, idx, targets).backward()
            optimizer.step()
        else:
            with torch.no_grad():
                perturb(step, eps)
                plus = torch_reference.loss(P, cfg, idx, targets).item()
                perturb(step, -2 * eps)
                minus = torch_reference.loss(P, cfg, idx, targets).item()
                perturb(step, eps)
                perturb(step, -lr * (plus - minus) / (2 * eps))
        elapsed = time.perf_counter() - start
        print(f"torch {args.mode} step {step}: {elapsed:.3f} s", file=sys.stderr, flush=True)
        if step > 0:  # The first step warms up allocators and thread pools.
            times.append(elapsed)
    print(json.dumps({"tok_s": args.B * args.T / statistics.median(times)}))


if __name__ == "__main__":
    main()
