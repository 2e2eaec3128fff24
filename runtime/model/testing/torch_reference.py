"""Independent PyTorch implementations of the GPT-2, OPT, LLaMA, Mistral, Qwen2 and Qwen3
families, written from the architecture descriptions and Hugging Face transformers' documented
semantics (not from Strata's code), plus a minimal safetensors reader/writer.

Parameters are a dict keyed by Hugging Face tensor names in Hugging Face layouts (GPT-2's Conv1D
weights are (in, out)), so a checkpoint file feeds both this reference and Strata unchanged.
Used by the runtime's comparison tests and by the model_step_bench peer.

Optional extras in the parameter dict: LoRA tensors ("<module>.lora_A.weight" / ".lora_B.weight"
with cfg["lora_scale"]) and a prefix-tuning prompt ("prompt_embeddings", see _prefix_kv).
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


def random_params(cfg, generator):
    """Random parameters of any family, named and shaped as Hugging Face checkpoints hold them
    (written here from the architectures, independently of Strata's tensor table)."""
    kind = cfg["model_type"]
    if kind == "gpt2":
        return random_gpt2_params(cfg)

    def rand(*shape):
        return torch.randn(*shape, generator=generator) * 0.2

    L = cfg["num_hidden_layers"]
    C, NH = cfg["hidden_size"], cfg["num_attention_heads"]
    P = {}
    if kind == "opt":
        F_, E = cfg["ffn_dim"], cfg.get("word_embed_proj_dim") or C
        d = "model.decoder."
        P[d + "embed_tokens.weight"] = rand(cfg["vocab_size"], E)
        P[d + "embed_positions.weight"] = rand(cfg["max_position_embeddings"] + 2, C)
        if E != C:
            P[d + "project_in.weight"] = rand(C, E)
            P[d + "project_out.weight"] = rand(E, C)
        if cfg.get("do_layer_norm_before", True) and not cfg.get("_remove_final_layer_norm"):
            P[d + "final_layer_norm.weight"] = 1 + rand(C)
            P[d + "final_layer_norm.bias"] = rand(C)
        for layer in range(L):
            p = f"{d}layers.{layer}."
            for m in ("q_proj", "k_proj", "v_proj", "out_proj"):
                P[p + f"self_attn.{m}.weight"] = rand(C, C)
                P[p + f"self_attn.{m}.bias"] = rand(C)
            for n in ("self_attn_layer_norm", "final_layer_norm"):
                P[p + n + ".weight"] = 1 + rand(C)
                P[p + n + ".bias"] = rand(C)
            P[p + "fc1.weight"], P[p + "fc1.bias"] = rand(F_, C), rand(F_)
            P[p + "fc2.weight"], P[p + "fc2.bias"] = rand(C, F_), rand(C)
        return P
    NKV = cfg.get("num_key_value_heads", NH)
    HD = cfg.get("head_dim") or (128 if kind == "qwen3" else C // NH)
    F_ = cfg["intermediate_size"]
    qkv_bias = kind == "qwen2" or (kind in ("llama", "qwen3") and cfg.get("attention_bias", False))
    o_bias = kind in ("llama", "qwen3") and cfg.get("attention_bias", False)
    mlp_bias = kind == "llama" and cfg.get("mlp_bias", False)
    P["model.embed_tokens.weight"] = rand(cfg["vocab_size"], C)
    P["model.norm.weight"] = 1 + rand(C)
    if not cfg.get("tie_word_embeddings", False):
        P["lm_head.weight"] = rand(cfg["vocab_size"], C)
    for layer in range(L):
        p = f"model.layers.{layer}."
        for m, rows in (("q_proj", NH * HD), ("k_proj", NKV * HD), ("v_proj", NKV * HD)):
            P[p + f"self_attn.{m}.weight"] = rand(rows, C)
            if qkv_bias:
                P[p + f"self_attn.{m}.bias"] = rand(rows)
        P[p + "self_attn.o_proj.weight"] = rand(C, NH * HD)
        if o_bias:
            P[p + "self_attn.o_proj.bias"] = rand(C)
        if kind == "qwen3":
            P[p + "self_attn.q_norm.weight"] = 1 + rand(HD)
            P[p + "self_attn.k_norm.weight"] = 1 + rand(HD)
        P[p + "input_layernorm.weight"] = 1 + rand(C)
        P[p + "post_attention_layernorm.weight"] = 1 + rand(C)
        for m, shape in (("gate_proj", (F_, C)), ("up_proj", (F_, C)), ("down_proj", (C, F_))):
            P[p + f"mlp.{m}.weight"] = rand(*shape)
            if mlp_bias:
                P[p + f"mlp.{m}.bias"] = rand(shape[0])
    return P


def _lora(P, cfg, x, module):
    """LoRA (Hu et al. 2021) on a linear layer, as PEFT computes it: (alpha / r) B A x, where
    P holds module + ".lora_A.weight" (r, in) and ".lora_B.weight" (out, r); 0 without."""
    a = P.get(module + ".lora_A.weight")
    if a is None:
        return 0
    return (x @ a.t()) @ P[module + ".lora_B.weight"].t() * cfg["lora_scale"]


def _attention(q, k, v, window=None, scale=None):
    """q: (B, NH, T, HD); k, v: (B, NH, S, HD) with S = Pn + T >= T, the first Pn keys being a
    cache (prefix) at absolute positions 0..Pn-1 and query i sitting at position Pn + i, as
    transformers attends with past_key_values. Causal softmax attention: query i sees key j iff
    j <= Pn + i; with `window`, also Pn + i - window < j (Mistral's sliding window). Pn = 0 is
    plain causal self-attention."""
    T, S = q.shape[2], k.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    att = (q @ k.transpose(-2, -1)) * scale
    i = torch.arange(T)[:, None] + (S - T)
    j = torch.arange(S)[None, :]
    mask = j <= i
    if window:
        mask = mask & (i - j < window)
    att = att.masked_fill(~mask, float("-inf"))
    return F.softmax(att, dim=-1) @ v


def _kv_geometry(cfg):
    """(layers, key/value heads, head_dim) of any family, as its attention caches keys."""
    kind = cfg["model_type"]
    if kind == "gpt2":
        return cfg["n_layer"], cfg["n_head"], cfg["n_embd"] // cfg["n_head"]
    C, NH = cfg["hidden_size"], cfg["num_attention_heads"]
    if kind == "opt":
        return cfg["num_hidden_layers"], NH, C // NH
    NKV = cfg.get("num_key_value_heads", NH)
    HD = cfg.get("head_dim") or (128 if kind == "qwen3" else C // NH)
    return cfg["num_hidden_layers"], NKV, HD


def _prefix_length(P):
    """Number of prefix-tuning virtual tokens Pn (0 without P["prompt_embeddings"])."""
    pe = P.get("prompt_embeddings")
    return 0 if pe is None else pe.shape[0]


def _prefix_kv(P, cfg, layer, batch):
    """Prefix tuning (Li & Liang 2021) as PEFT's PREFIX_TUNING with prefix_projection=False
    feeds it: P["prompt_embeddings"] (Pn, L * 2 * NKV * HD) is the cache past_key_values, row v
    holding for each layer its key then its value ([kv_head][head_dim] each), i.e.
    view(Pn, L, 2, NKV, HD). Returns this layer's (keys, values), each (batch, NKV, Pn, HD) and
    the same for every batch element, used as given (no projection, norm, RoPE or bias); None
    without a prompt."""
    pe = P.get("prompt_embeddings")
    if pe is None:
        return None
    L, NKV, HD = _kv_geometry(cfg)
    kv = pe.view(pe.shape[0], L, 2, NKV, HD)[:, layer].permute(1, 2, 0, 3)  # (2, NKV, Pn, HD)
    return tuple(t.unsqueeze(0).expand(batch, -1, -1, -1) for t in kv)


def _with_prefix(P, cfg, layer, k, v, capture=None):
    """The keys and values a layer attends to: its tokens' own k, v (B, NKV, T, HD), after
    projection, norm and RoPE, recorded as capture[layer] = (k, v) when `capture` is a dict, with
    the layer's prefix (_prefix_kv) prepended along the sequence when there is one."""
    if capture is not None:
        capture[layer] = (k, v)
    prefix = _prefix_kv(P, cfg, layer, k.shape[0])
    if prefix is None:
        return k, v
    return torch.cat((prefix[0], k), dim=2), torch.cat((prefix[1], v), dim=2)


def gpt2_logits(P, cfg, idx, capture=None):
    """GPT-2. With a prefix of Pn virtual tokens the T tokens take positions Pn..Pn+T-1, as
    transformers places tokens after past_key_values. `capture`: see _with_prefix."""
    B, T = idx.shape
    C, NH = cfg["n_embd"], cfg["n_head"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    Pn = _prefix_length(P)
    x = P["transformer.wte.weight"][idx] + P["transformer.wpe.weight"][Pn:Pn + T]
    for layer in range(cfg["n_layer"]):
        p = f"transformer.h.{layer}."
        h = F.layer_norm(x, (C,), P[p + "ln_1.weight"], P[p + "ln_1.bias"], eps)
        qkv = h @ P[p + "attn.c_attn.weight"] + P[p + "attn.c_attn.bias"] + \
            _lora(P, cfg, h, p + "attn.c_attn")
        q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in qkv.split(C, dim=2))
        k, v = _with_prefix(P, cfg, layer, k, v, capture)
        y = _attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ P[p + "attn.c_proj.weight"] + P[p + "attn.c_proj.bias"] + \
            _lora(P, cfg, y, p + "attn.c_proj")
        h = F.layer_norm(x, (C,), P[p + "ln_2.weight"], P[p + "ln_2.bias"], eps)
        h = F.gelu(h @ P[p + "mlp.c_fc.weight"] + P[p + "mlp.c_fc.bias"] +
                   _lora(P, cfg, h, p + "mlp.c_fc"), approximate="tanh")
        x = x + h @ P[p + "mlp.c_proj.weight"] + P[p + "mlp.c_proj.bias"] + \
            _lora(P, cfg, h, p + "mlp.c_proj")
    x = F.layer_norm(x, (C,), P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], eps)
    return x @ P["transformer.wte.weight"].t()


def _rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _yarn(theta, dim, scaling, max_position_embeddings):
    """YaRN (Peng et al. 2023) as transformers' modeling_rope_utils computes it: per-dimension
    blend of interpolated (divided by factor) and extrapolated frequencies by a linear ramp
    between the correction dimensions of beta_fast and beta_slow rotations; cos and sin are
    scaled by the attention factor 0.1 ln(factor) + 1 (or mscale / mscale_all_dim's ratio)."""
    factor = scaling["factor"]
    original = scaling.get("original_max_position_embeddings") or max_position_embeddings
    beta_fast = scaling.get("beta_fast") or 32
    beta_slow = scaling.get("beta_slow") or 1

    def mscale_of(scale, m=1.0):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention = scaling.get("attention_factor")
    if attention is None:
        if scaling.get("mscale") and scaling.get("mscale_all_dim"):
            attention = mscale_of(factor, scaling["mscale"]) / mscale_of(factor,
                                                                        scaling["mscale_all_dim"])
        else:
            attention = mscale_of(factor)

    def correction_dim(rotations):
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(theta))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if scaling.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    pos_freqs = theta ** (torch.arange(0, dim, 2).float() / dim)
    extrapolation, interpolation = 1.0 / pos_freqs, 1.0 / (factor * pos_freqs)
    extrapolation_factor = 1 - ramp
    inv_freq = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor
    return inv_freq, attention


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


def _window_of_layer(cfg, layer):
    """The sliding window a layer uses, as transformers configures it: Mistral's sliding_window
    (4096 when the key is absent) on every layer; Qwen2/Qwen3 only with use_sliding_window, on
    layers at or above max_window_layers; LLaMA none."""
    kind = cfg["model_type"]
    if kind == "mistral":
        return cfg["sliding_window"] if "sliding_window" in cfg else 4096
    if kind in ("qwen2", "qwen3") and cfg.get("use_sliding_window"):
        return cfg.get("sliding_window", 4096) if layer >= cfg.get("max_window_layers", 28) else None
    return None


def llama_logits(P, cfg, idx, capture=None):
    """LLaMA and its descendants: Mistral (sliding window), Qwen2 (q/k/v biases), Qwen3 (q/k
    RMSNorm per head before RoPE, head_dim default 128). With a prefix of Pn virtual tokens the
    T tokens are rotated at positions Pn..Pn+T-1, as transformers does after past_key_values.
    `capture`: see _with_prefix."""
    kind = cfg["model_type"]
    B, T = idx.shape
    C, NH = cfg["hidden_size"], cfg["num_attention_heads"]
    NKV = cfg.get("num_key_value_heads", NH)
    HD = cfg.get("head_dim") or (128 if kind == "qwen3" else C // NH)
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    qkv_bias = kind == "qwen2" or (kind in ("llama", "qwen3") and cfg.get("attention_bias", False))
    o_bias = kind in ("llama", "qwen3") and cfg.get("attention_bias", False)
    mlp_bias = kind == "llama" and cfg.get("mlp_bias", False)
    scaling = cfg.get("rope_scaling")
    attention_scale = 1.0
    if scaling and scaling.get("rope_type", scaling.get("type")) == "yarn":
        inv_freq, attention_scale = _yarn(theta, HD, scaling, cfg["max_position_embeddings"])
    else:
        inv_freq = _scaled_inv_freq(
            1.0 / (theta ** (torch.arange(0, HD, 2, dtype=torch.int64).float() / HD)), scaling)
    Pn = _prefix_length(P)
    freqs = torch.arange(Pn, Pn + T, dtype=torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos() * attention_scale, emb.sin() * attention_scale

    def linear(x, name, bias):
        y = x @ P[name + ".weight"].t() + _lora(P, cfg, x, name)
        return y + P[name + ".bias"] if bias else y

    x = P["model.embed_tokens.weight"][idx]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = _rms_norm(x, P[p + "input_layernorm.weight"], eps)
        q = linear(h, p + "self_attn.q_proj", qkv_bias).view(B, T, NH, HD)
        k = linear(h, p + "self_attn.k_proj", qkv_bias).view(B, T, NKV, HD)
        v = linear(h, p + "self_attn.v_proj", qkv_bias).view(B, T, NKV, HD)
        if kind == "qwen3":
            q = _rms_norm(q, P[p + "self_attn.q_norm.weight"], eps)
            k = _rms_norm(k, P[p + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        k, v = _with_prefix(P, cfg, layer, k, v, capture)
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        y = _attention(q, k, v, _window_of_layer(cfg, layer)).transpose(1, 2).reshape(B, T, NH * HD)
        x = x + linear(y, p + "self_attn.o_proj", o_bias)
        h = _rms_norm(x, P[p + "post_attention_layernorm.weight"], eps)
        g = F.silu(linear(h, p + "mlp.gate_proj", mlp_bias)) * linear(h, p + "mlp.up_proj", mlp_bias)
        x = x + linear(g, p + "mlp.down_proj", mlp_bias)
    x = _rms_norm(x, P["model.norm.weight"], eps)
    head = P.get("lm_head.weight", P["model.embed_tokens.weight"])
    return x @ head.t()


def opt_logits(P, cfg, idx, capture=None):
    """OPT as transformers' OPTForCausalLM computes it: learned positions read at offset 2, the
    query scaled by head_dim^-0.5 after its bias, ReLU MLP, LayerNorm before (or, with
    do_layer_norm_before false as in opt-350m, after) each sublayer, project_in/project_out when
    word_embed_proj_dim differs from hidden_size, head tied to the token embedding. With a prefix
    of Pn virtual tokens the T tokens take positions Pn..Pn+T-1 (table rows Pn+2..Pn+T+1), as
    transformers places them after past_key_values. `capture`: see _with_prefix."""
    B, T = idx.shape
    C, NH = cfg["hidden_size"], cfg["num_attention_heads"]
    HD = C // NH
    E = cfg.get("word_embed_proj_dim") or C
    before = cfg.get("do_layer_norm_before", True)
    d = "model.decoder."

    def linear(x, name):
        return x @ P[name + ".weight"].t() + P[name + ".bias"] + _lora(P, cfg, x, name)

    def norm(x, name):
        return F.layer_norm(x, (C,), P[name + ".weight"], P[name + ".bias"], 1e-5)

    x = P[d + "embed_tokens.weight"][idx]
    if E != C:
        x = x @ P[d + "project_in.weight"].t()
    x = x + P[d + "embed_positions.weight"][torch.arange(T) + (_prefix_length(P) + 2)]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"{d}layers.{layer}."
        residual = x
        h = norm(x, p + "self_attn_layer_norm") if before else x
        q = linear(h, p + "self_attn.q_proj") * HD ** -0.5
        k = linear(h, p + "self_attn.k_proj")
        v = linear(h, p + "self_attn.v_proj")
        q, k, v = (t.view(B, T, NH, HD).transpose(1, 2) for t in (q, k, v))
        k, v = _with_prefix(P, cfg, layer, k, v, capture)
        y = _attention(q, k, v, scale=1.0).transpose(1, 2).reshape(B, T, C)
        x = residual + linear(y, p + "self_attn.out_proj")
        if not before:
            x = norm(x, p + "self_attn_layer_norm")
        residual = x
        h = norm(x, p + "final_layer_norm") if before else x
        h = linear(F.relu(linear(h, p + "fc1")), p + "fc2")
        x = residual + h
        if not before:
            x = norm(x, p + "final_layer_norm")
    if before and not cfg.get("_remove_final_layer_norm", False):
        x = norm(x, d + "final_layer_norm")
    if E != C:
        x = x @ P[d + "project_out.weight"].t()
    return x @ P[d + "embed_tokens.weight"].t()


def logits(P, cfg, idx, capture=None):
    """Logits (B, T, V) of any family; `capture`: see _with_prefix."""
    kind = cfg["model_type"]
    if kind == "gpt2":
        return gpt2_logits(P, cfg, idx, capture)
    if kind == "opt":
        return opt_logits(P, cfg, idx, capture)
    assert kind in ("llama", "mistral", "qwen2", "qwen3"), kind
    return llama_logits(P, cfg, idx, capture)


def loss(P, cfg, idx, targets):
    out = logits(P, cfg, idx)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1), ignore_index=-100)
