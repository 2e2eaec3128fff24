"""Independent PyTorch implementations of the GPT-2 and LLaMA families, written from the
architecture descriptions (not from Strata's code), plus a minimal safetensors reader/writer.

Parameters are a dict keyed by Hugging Face tensor names in Hugging Face layouts (GPT-2's Conv1D
weights are (in, out)), so a checkpoint file feeds both this reference and Strata unchanged.
Used by the runtime's comparison tests and by the model_step_bench peer.
"""
import json
import math
import struct

import torch
import torch.nn.functional as F

_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
           "I32": torch.int32}
_NAMES = {v: k for k, v in _DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = bytearray(data[base + begin:base + end])
        t = torch.frombuffer(raw, dtype=_DTYPES[info["dtype"]]) if raw else torch.empty(0)
        tensors[name] = t.reshape(info["shape"]).clone()
    return tensors


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        raw = t.numpy().tobytes() if t.dtype != torch.bfloat16 else \
            t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def random_gpt2_params(cfg):
    """GPT-2 parameters in Hugging Face layout with GPT-2's initialization scale."""
    C, L, V = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"]
    F_ = cfg.get("n_inner") or 4 * C
    P = {"transformer.wte.weight": torch.randn(V, C) * 0.02,
         "transformer.wpe.weight": torch.randn(cfg["n_positions"], C) * 0.02,
         "transformer.ln_f.weight": torch.ones(C), "transformer.ln_f.bias": torch.zeros(C)}
    for layer in range(L):
        p = f"transformer.h.{layer}."
        P.update({p + "ln_1.weight": torch.ones(C), p + "ln_1.bias": torch.zeros(C),
                  p + "attn.c_attn.weight": torch.randn(C, 3 * C) * 0.02,
                  p + "attn.c_attn.bias": torch.zeros(3 * C),
                  p + "attn.c_proj.weight": torch.randn(C, C) * 0.02,
                  p + "attn.c_proj.bias": torch.zeros(C),
                  p + "ln_2.weight": torch.ones(C), p + "ln_2.bias": torch.zeros(C),
                  p + "mlp.c_fc.weight": torch.randn(C, F_) * 0.02,
                  p + "mlp.c_fc.bias": torch.zeros(F_),
                  p + "mlp.c_proj.weight": torch.randn(F_, C) * 0.02,
                  p + "mlp.c_proj.bias": torch.zeros(C)})
    return P


def _attention(q, k, v):
    """q: (B, NH, T, HD); k, v: (B, NH, T, HD). Causal softmax attention."""
    T = q.shape[2]
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    att = att.masked_fill(~mask, float("-inf"))
    return F.softmax(att, dim=-1) @ v


def gpt2_logits(P, cfg, idx):
    B, T = idx.shape
    C, NH = cfg["n_embd"], cfg["n_head"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    x = P["transformer.wte.weight"][idx] + P["transformer.wpe.weight"][:T]
    for layer in range(cfg["n_layer"]):
        p = f"transformer.h.{layer}."
        h = F.layer_norm(x, (C,), P[p + "ln_1.weight"], P[p + "ln_1.bias"], eps)
        qkv = h @ P[p + "attn.c_attn.weight"] + P[p + "attn.c_attn.bias"]
        q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in qkv.split(C, dim=2))
        y = _attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ P[p + "attn.c_proj.weight"] + P[p + "attn.c_proj.bias"]
        h = F.layer_norm(x, (C,), P[p + "ln_2.weight"], P[p + "ln_2.bias"], eps)
        h = F.gelu(h @ P[p + "mlp.c_fc.weight"] + P[p + "mlp.c_fc.bias"], approximate="tanh")
        x = x + h @ P[p + "mlp.c_proj.weight"] + P[p + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (C,), P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], eps)
    return x @ P["transformer.wte.weight"].t()


def _rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _scaled_inv_freq(inv_freq, scaling):
    """rope_scaling as transformers' modeling_rope_utils applies it (linear, llama3)."""
    if not scaling:
        return inv_freq
    kind = scaling.get("rope_type", scaling.get("type"))
    factor = scaling["factor"]
    if kind == "linear":
        return inv_freq / factor
    assert kind == "llama3", kind
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_len = scaling["original_max_position_embeddings"]
    low_freq_wavelen, high_freq_wavelen = old_len / low, old_len / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return torch.where(medium, smoothed, scaled)


def llama_logits(P, cfg, idx):
    B, T = idx.shape
    C, NH = cfg["hidden_size"], cfg["num_attention_heads"]
    NKV = cfg.get("num_key_value_heads", NH)
    HD = C // NH
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    inv_freq = _scaled_inv_freq(
        1.0 / (theta ** (torch.arange(0, HD, 2, dtype=torch.int64).float() / HD)),
        cfg.get("rope_scaling"))
    freqs = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    x = P["model.embed_tokens.weight"][idx]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = _rms_norm(x, P[p + "input_layernorm.weight"], eps)
        q = (h @ P[p + "self_attn.q_proj.weight"].t()).view(B, T, NH, HD).transpose(1, 2)
        k = (h @ P[p + "self_attn.k_proj.weight"].t()).view(B, T, NKV, HD).transpose(1, 2)
        v = (h @ P[p + "self_attn.v_proj.weight"].t()).view(B, T, NKV, HD).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        y = _attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ P[p + "self_attn.o_proj.weight"].t()
        h = _rms_norm(x, P[p + "post_attention_layernorm.weight"], eps)
        g = F.silu(h @ P[p + "mlp.gate_proj.weight"].t()) * (h @ P[p + "mlp.up_proj.weight"].t())
        x = x + g @ P[p + "mlp.down_proj.weight"].t()
    x = _rms_norm(x, P["model.norm.weight"], eps)
    head = P.get("lm_head.weight", P["model.embed_tokens.weight"])
    return x @ head.t()


def logits(P, cfg, idx):
    return gpt2_logits(P, cfg, idx) if cfg["model_type"] == "gpt2" else llama_logits(P, cfg, idx)


def loss(P, cfg, idx, targets):
    out = logits(P, cfg, idx)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1), ignore_index=-100)
