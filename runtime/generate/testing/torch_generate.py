"""Greedy decoding with the independent PyTorch reference (runtime/model/testing/
torch_reference.py), without a cache: at every step the reference runs the whole sequence so far
(prompt and the tokens chosen before) and takes the argmax of the last position's logits, as
transformers' greedy search does. For the generator's comparison test.

  torch_generate.py --case DIR:PROMPT:STEPS [--case DIR:PROMPT:STEPS ...]

DIR holds config.json and the checkpoint, and optionally a PEFT adapter directory's files beside
them (LoRA: its modules' A and B with scale lora_alpha / r; PREFIX_TUNING: its
"prompt_embeddings" as past_key_values). PROMPT is comma-separated token ids. Writes
DIR/torch_generate.safetensors: "tokens" (STEPS, as float32) and "logits" (STEPS, V), the logits
each token was chosen from.
"""
import argparse
import glob
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "model",
                                "testing"))
import torch_reference  # noqa: E402

_OUTPUTS = ("torch_out.safetensors", "torch_generate.safetensors", "adapter_model.safetensors")


def load(directory):
    """The reference's config and float32 parameters of DIR, with its PEFT adapter if any."""
    with open(os.path.join(directory, "config.json")) as f:
        cfg = json.load(f)
    params = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.safetensors"))):
        if os.path.basename(path) not in _OUTPUTS:
            params.update(torch_reference.read_safetensors(path))
    adapter = os.path.join(directory, "adapter_model.safetensors")
    if os.path.exists(adapter):
        with open(os.path.join(directory, "adapter_config.json")) as f:
            peft = json.load(f)
        if peft["peft_type"] == "PREFIX_TUNING":
            params.update(torch_reference.read_safetensors(adapter))
        else:
            cfg["lora_scale"] = peft["lora_alpha"] / peft["r"]
            for name, t in torch_reference.read_safetensors(adapter).items():
                params[name[len("base_model.model."):]] = t
    params = {("model." + n if n.startswith("decoder.") else n): t.float()
              for n, t in params.items()}
    return cfg, params


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", action="append", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for case in args.case:
        directory, prompt, steps = case.rsplit(":", 2)
        cfg, params = load(directory)
        sequence = [int(t) for t in prompt.split(",")]
        tokens, step_logits = [], []
        with torch.no_grad():
            for _ in range(int(steps)):
                logits = torch_reference.logits(params, cfg, torch.tensor([sequence]))[0, -1]
                token = int(torch.argmax(logits))
                tokens.append(token)
                step_logits.append(logits)
                sequence.append(token)
        torch_reference.write_safetensors(
            os.path.join(directory, "torch_generate.safetensors"),
            {"tokens": torch.tensor(tokens, dtype=torch.float32),
             "logits": torch.stack(step_logits)})


if __name__ == "__main__":
    main()
