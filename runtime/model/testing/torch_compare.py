"""Computes logits, loss and every parameter gradient of a Hugging Face checkpoint directory with
the independent PyTorch reference (torch_reference.py), for the C++ parity test.

  torch_compare.py --dir DIR --batch B --seq T --tokens 1,2,... --targets 3,-100,...

Writes DIR/torch_out.safetensors: "logits" (B, T, V), "loss" (1), and "grad/<name>" for each
parameter in its checkpoint layout (and for a PEFT adapter's tensors beside it: LoRA's by
module name, a prefix's "prompt_embeddings").

  torch_compare.py --dir DIR --write_random SEED [--dtype bf16|f16|f32] [--opt_short_names]

Writes random parameters for DIR/config.json as DIR/model.safetensors, the way Hugging Face
checkpoints hold them (a tied head's lm_head.weight included, as some exports do; OPT with the
"decoder." prefix when --opt_short_names), for the loader test.
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
    parser.add_argument("--batch", type=int)
    parser.add_argument("--seq", type=int)
    parser.add_argument("--tokens")
    parser.add_argument("--targets")
    parser.add_argument("--write_random", type=int)
    parser.add_argument("--dtype", default="f32")
    parser.add_argument("--opt_short_names", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with open(os.path.join(args.dir, "config.json")) as f:
        cfg = json.load(f)
    if args.write_random is not None:
        params = torch_reference.random_params(cfg, torch.Generator().manual_seed(args.write_random))
        dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
        out = {}
        for name, t in params.items():
            if args.opt_short_names and name.startswith("model.decoder."):
                name = name[len("model."):]
            out[name] = t.to(dtype)
        if cfg.get("tie_word_embeddings", cfg["model_type"] in ("gpt2", "opt")):
            embed = [n for n in out if n.endswith("embed_tokens.weight") or n.endswith("wte.weight")]
            out["lm_head.weight"] = out[embed[0]].clone()
        torch_reference.write_safetensors(os.path.join(args.dir, "model.safetensors"), out)
        return
    params = {}
    for path in sorted(glob.glob(os.path.join(args.dir, "*.safetensors"))):
        if os.path.basename(path) not in ("torch_out.safetensors", "adapter_model.safetensors"):
            params.update(torch_reference.read_safetensors(path))
    # A PEFT adapter beside the checkpoint. LoRA: its tensors keyed by module (the
    # "base_model.model." prefix PEFT writes removed), its scale alpha / r into the config.
    # PREFIX_TUNING: its "prompt_embeddings" as the reference's prefix.
    adapter = os.path.join(args.dir, "adapter_model.safetensors")
    if os.path.exists(adapter):
        with open(os.path.join(args.dir, "adapter_config.json")) as f:
            peft = json.load(f)
        if peft["peft_type"] == "PREFIX_TUNING":
            params.update(torch_reference.read_safetensors(adapter))
        else:
            cfg["lora_scale"] = peft["lora_alpha"] / peft["r"]
            for name, t in torch_reference.read_safetensors(adapter).items():
                params[name[len("base_model.model."):]] = t
    # Checkpoints may hold bf16/fp16; the reference computes in float32 as Strata does.
    params = {("model." + n if n.startswith("decoder.") else n): t.float()
              for n, t in params.items()}
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
