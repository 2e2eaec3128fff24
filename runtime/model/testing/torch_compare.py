"""Computes logits, loss and every parameter gradient of a Hugging Face checkpoint directory with
the independent PyTorch reference (torch_reference.py), for the C++ parity test.

  torch_compare.py --dir DIR --batch B --seq T --tokens 1,2,... --targets 3,-100,...

Writes DIR/torch_out.safetensors: "logits" (B, T, V), "loss" (1), and "grad/<name>" for each
parameter in its checkpoint layout.
"""
import argparse
import glob
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--seq", type=int, required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--targets", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with open(os.path.join(args.dir, "config.json")) as f:
        cfg = json.load(f)
    params = {}
    for path in sorted(glob.glob(os.path.join(args.dir, "*.safetensors"))):
        if os.path.basename(path) != "torch_out.safetensors":
            params.update(torch_reference.read_safetensors(path))
    for t in params.values():
        t.requires_grad_(True)
    shape = (args.batch, args.seq)
    idx = torch.tensor([int(x) for x in args.tokens.split(",")]).reshape(shape)
    targets = torch.tensor([int(x) for x in args.targets.split(",")]).reshape(shape)
    logits = torch_reference.logits(params, cfg, idx)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
    loss.backward()
    out = {"logits": logits.detach(), "loss": loss.detach().reshape(1)}
    for name, t in params.items():
        out["grad/" + name] = t.grad if t.grad is not None else torch.zeros_like(t)
    torch_reference.write_safetensors(os.path.join(args.dir, "torch_out.safetensors"), out)


if __name__ == "__main__":
    main()
