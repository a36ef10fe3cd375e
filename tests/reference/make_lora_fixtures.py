#!/usr/bin/env python3
"""Writes small LoRA / LyCORIS fixture files and the ΔW each should give, for
tests/engine/test_lora.c.

The layers are those of a tiny SD-style model whose layer table the C test
builds with lf_lora_targets_add_unet/_add_clip (TINY_UNET / TINY_CLIP there):
UNet levels 2, layers 1, channels (8, 16), attention (1, 0) down / (0, 1) up,
mid attention, context 12, time embedding 8 -> 16; CLIP hidden 8, 2 layers,
MLP 16. Factors are random (fixed seed); the expected ΔW of every layer is
computed by the reference libraries' own code, in float64 on the stored
(float32 or float16-rounded) factors:
  - kohya LoRA / LoCon:  lycoris.functional.locon.diff_weight(down, up, mid,
                         gamma=alpha/rank) (kohya's up @ down * alpha/rank),
  - LoHa:                lycoris.functional.loha.diff_weight(w1b, w1a, w2b, w2a,
                         t1, t2, gamma=alpha/rank) as lycoris.modules.loha calls it,
  - LoKr:                lycoris.functional.lokr.diff_weight(w1, w1a, w1b, w2,
                         w2a, w2b, t2, gamma=alpha) (it divides by the rank),
  - full:                the stored diff / diff_b,
  - PEFT / diffusers:    peft.tuners.lora.layer.{Linear,Conv2d}.get_delta_weight
                         with r and lora_alpha (diffusers' network alpha).
Outputs: tests/engine/fixtures/lora/<name>.safetensors and
<name>.expected.safetensors (pool name -> ΔW as f32, the layer's shape).

  python3 -m venv --system-site-packages tests/reference/.venv-lora  # Debian python3-torch
  tests/reference/.venv-lora/bin/pip install --no-deps -r tests/reference/requirements-lora.txt
  tests/reference/.venv-lora/bin/python tests/reference/make_lora_fixtures.py
"""
import os

import torch
from safetensors.torch import save_file
from lycoris.functional import locon, loha, lokr
from peft.tuners.lora import layer as peft_layer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "engine", "fixtures", "lora")

# Layer (diffusers path) -> torch shape, for the tiny model.
U = {
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q": (8, 8),
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0": (8, 8),
    "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k": (8, 12),
    "down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj": (64, 8),
    "down_blocks.0.attentions.0.proj_in": (8, 8, 1, 1),
    "down_blocks.0.resnets.0.conv1": (8, 8, 3, 3),
    "down_blocks.1.resnets.0.conv1": (16, 8, 3, 3),
    "down_blocks.1.resnets.0.conv_shortcut": (16, 8, 1, 1),
    "mid_block.resnets.0.conv2": (16, 16, 3, 3),
    "mid_block.attentions.0.transformer_blocks.0.attn2.to_v": (16, 12),
    "up_blocks.0.resnets.0.conv1": (16, 32, 3, 3),
    "up_blocks.1.attentions.0.transformer_blocks.0.ff.net.2": (8, 32),
    "time_embedding.linear_1": (16, 8),
}
T = {
    "encoder.layers.0.self_attn.q_proj": (8, 8),
    "encoder.layers.1.mlp.fc1": (16, 8),
    "encoder.layers.1.self_attn.out_proj": (8, 8),
}

gen = torch.Generator().manual_seed(1234)


def rnd(*shape, half=False):
    t = torch.randn(*shape, generator=gen, dtype=torch.float32) * 0.5
    if half == "bf16":
        return t.bfloat16()
    return t.half() if half else t


def f64(t):
    return None if t is None else t.double()


def kohya(path):
    return "lora_unet_" + path.replace(".", "_")


def kohya_te(path):
    return "lora_te_text_model_" + path.replace(".", "_")


def save(name, tensors, expected):
    os.makedirs(OUT, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()},
              os.path.join(OUT, name + ".safetensors"))
    save_file({k: v.float().contiguous() for k, v in expected.items()},
              os.path.join(OUT, name + ".expected.safetensors"))


def lora_factors(shape, r, half=False, tucker=False):
    out, inp, *k = shape
    if tucker:
        return rnd(r, inp, 1, 1, half=half), rnd(out, r, 1, 1, half=half), rnd(r, r, *k, half=half)
    down = rnd(r, inp, *k, half=half)
    up = rnd(out, r, *[1 for _ in k], half=half)
    return down, up, None


def make_kohya():
    """kohya / A1111 LoRA and LoCon: diffusers-path and LDM-path names, text
    encoder, f16 and bf16 factors, a module without alpha, and keys that match
    nothing."""
    t, e = {}, {}
    plan = [  # (path, rank, alpha or None, f16 / "bf16", LDM-style kohya name)
        ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", 4, 2.0, False, None),
        ("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k", 2, None, False,
         "input_blocks.1.1.transformer_blocks.0.attn2.to_k"),
        ("down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj", 3, 6.0, True, None),
        ("down_blocks.0.attentions.0.proj_in", 2, 1.0, False, None),
        ("down_blocks.0.resnets.0.conv1", 3, 1.5, False, None),
        ("up_blocks.0.resnets.0.conv1", 2, 4.0, True, "output_blocks.0.0.in_layers.2"),
        ("mid_block.resnets.0.conv2", 2, 1.0, "bf16", None),
    ]
    for path, r, alpha, half, ldm in plan:
        name = kohya(ldm if ldm else path)
        down, up, _ = lora_factors(U[path], r, half)
        t[name + ".lora_down.weight"] = down
        t[name + ".lora_up.weight"] = up
        if alpha is not None:
            dt = {False: torch.float32, True: torch.float16, "bf16": torch.bfloat16}[half]
            t[name + ".alpha"] = torch.tensor(alpha, dtype=dt)
        gamma = (alpha if alpha is not None else r) / r
        e["unet." + path + ".weight"] = locon.diff_weight(f64(down), f64(up), None, gamma=gamma)
    for path, r, alpha in [("encoder.layers.0.self_attn.q_proj", 2, 1.0),
                           ("encoder.layers.1.mlp.fc1", 4, 8.0)]:
        name = kohya_te(path)
        down, up, _ = lora_factors(T[path], r)
        t[name + ".lora_down.weight"], t[name + ".lora_up.weight"] = down, up
        t[name + ".alpha"] = torch.tensor(alpha)
        e["clip." + path + ".weight"] = locon.diff_weight(f64(down), f64(up), None, gamma=alpha / r)
    # Keys that name no layer of the model: reported, never applied.
    t["lora_unet_down_blocks_7_resnets_0_conv1.lora_down.weight"] = rnd(2, 8, 3, 3)
    t["lora_unet_down_blocks_7_resnets_0_conv1.lora_up.weight"] = rnd(8, 2, 1, 1)
    t["lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"] = rnd(2, 8)
    t["lora_te2_text_model_encoder_layers_0_self_attn_q_proj.alpha"] = torch.tensor(1.0)
    t["lora_unet_down_blocks_0_resnets_0_norm1.w_norm"] = rnd(8)
    save("kohya", t, e)


def make_locon_tucker():
    """LoCon with the 3x3 lora_mid (Tucker) form, and a plain 1x1 LoCon."""
    t, e = {}, {}
    for path, r, alpha in [("down_blocks.1.resnets.0.conv1", 3, 1.0),
                           ("mid_block.resnets.0.conv2", 2, 4.0)]:
        name = kohya(path)
        down, up, mid = lora_factors(U[path], r, tucker=True)
        t[name + ".lora_down.weight"], t[name + ".lora_up.weight"] = down, up
        t[name + ".lora_mid.weight"] = mid
        t[name + ".alpha"] = torch.tensor(alpha)
        e["unet." + path + ".weight"] = locon.diff_weight(f64(down), f64(up), f64(mid),
                                                          gamma=alpha / r)
    path = "down_blocks.1.resnets.0.conv_shortcut"
    down, up, _ = lora_factors(U[path], 2)
    t[kohya(path) + ".lora_down.weight"], t[kohya(path) + ".lora_up.weight"] = down, up
    e["unet." + path + ".weight"] = locon.diff_weight(f64(down), f64(up), None, gamma=1.0)
    save("locon_tucker", t, e)


def make_loha():
    """LoHa: Linear, Conv2d flattened (non-Tucker) and Conv2d with hada_t1/t2."""
    t, e = {}, {}
    # (path, rank, alpha, tucker)
    for path, r, alpha, tucker in [
            ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0", 2, 1.0, False),
            ("mid_block.resnets.0.conv2", 3, 2.0, False),
            ("down_blocks.0.resnets.0.conv1", 2, 3.0, True)]:
        name = kohya(path)
        out, inp, *k = U[path]
        if tucker:
            w1a, w1b, w2a, w2b = rnd(r, out), rnd(r, inp), rnd(r, out), rnd(r, inp)
            t1, t2 = rnd(r, r, *k), rnd(r, r, *k)
            t[name + ".hada_t1"], t[name + ".hada_t2"] = t1, t2
        else:
            kk = 1
            for v in k:
                kk *= v
            w1a, w1b, w2a, w2b = rnd(out, r), rnd(r, inp * kk), rnd(out, r), rnd(r, inp * kk)
            t1 = t2 = None
        t[name + ".hada_w1_a"], t[name + ".hada_w1_b"] = w1a, w1b
        t[name + ".hada_w2_a"], t[name + ".hada_w2_b"] = w2a, w2b
        t[name + ".alpha"] = torch.tensor(alpha)
        d = loha.diff_weight(f64(w1b), f64(w1a), f64(w2b), f64(w2a), f64(t1), f64(t2),
                             gamma=alpha / r)
        e["unet." + path + ".weight"] = d.reshape(U[path])
    path = "encoder.layers.1.self_attn.out_proj"
    w1a, w1b, w2a, w2b = rnd(8, 2), rnd(2, 8), rnd(8, 2), rnd(2, 8)
    name = kohya_te(path)
    t[name + ".hada_w1_a"], t[name + ".hada_w1_b"] = w1a, w1b
    t[name + ".hada_w2_a"], t[name + ".hada_w2_b"] = w2a, w2b
    e["clip." + path + ".weight"] = loha.diff_weight(f64(w1b), f64(w1a), f64(w2b), f64(w2a),
                                                     None, None, gamma=1.0)
    save("loha", t, e)


def make_lokr():
    """LoKr: every combination of whole / factored w1 and w2, and the Tucker w2."""
    t, e = {}, {}

    def put(path, alpha, w1=None, w1a=None, w1b=None, w2=None, w2a=None, w2b=None, t2=None,
            te=False):
        name = kohya_te(path) if te else kohya(path)
        for k, v in [("lokr_w1", w1), ("lokr_w1_a", w1a), ("lokr_w1_b", w1b), ("lokr_w2", w2),
                     ("lokr_w2_a", w2a), ("lokr_w2_b", w2b), ("lokr_t2", t2)]:
            if v is not None:
                t[name + "." + k] = v
        if alpha is not None:
            t[name + ".alpha"] = torch.tensor(alpha)
        d = lokr.diff_weight(f64(w1), f64(w1a), f64(w1b), f64(w2), f64(w2a), f64(w2b), f64(t2),
                             gamma=alpha if alpha is not None else 1.0)
        shape = (T if te else U)[path]
        e[("clip." if te else "unet.") + path + ".weight"] = d.reshape(shape)

    # Linear 64x8 = kron([8,2], [8,4]): whole w1, factored w2 (rank 2).
    put("down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj", 4.0,
        w1=rnd(8, 2), w2a=rnd(8, 2), w2b=rnd(2, 4))
    # Linear 16x12 = kron([4,3], [4,4]): factored w1 (rank 2), whole w2.
    put("mid_block.attentions.0.transformer_blocks.0.attn2.to_v", 1.0,
        w1a=rnd(4, 2), w1b=rnd(2, 3), w2=rnd(4, 4))
    # Conv 16x8x3x3: both whole (alpha ignored: scale 1).
    put("down_blocks.1.resnets.0.conv1", 7.0, w1=rnd(4, 2), w2=rnd(4, 4, 3, 3))
    # Conv 16x32x3x3: factored w1, Tucker w2 (t2 [2,2,3,3], w2a [2,4], w2b [2,8]).
    put("up_blocks.0.resnets.0.conv1", 2.0, w1a=rnd(4, 2), w1b=rnd(2, 4),
        t2=rnd(2, 2, 3, 3), w2a=rnd(2, 4), w2b=rnd(2, 8))
    # Conv 8x8x3x3: whole w1, factored w2 with a 4-D w2b [r, d, kh, kw].
    put("down_blocks.0.resnets.0.conv1", 3.0, w1=rnd(2, 2), w2a=rnd(4, 3), w2b=rnd(3, 4, 3, 3))
    # Text encoder Linear 8x8, no alpha.
    put("encoder.layers.0.self_attn.q_proj", None, w1=rnd(2, 4), w2a=rnd(4, 1), w2b=rnd(1, 2),
        te=True)
    save("lokr", t, e)


def make_full():
    """Full diff: weight deltas (Linear, Conv2d) and a bias delta."""
    t, e = {}, {}
    for path, bias in [("time_embedding.linear_1", True), ("down_blocks.1.resnets.0.conv_shortcut", False)]:
        name = kohya(path)
        d = rnd(*U[path])
        t[name + ".diff"] = d
        e["unet." + path + ".weight"] = d
        if bias:
            b = rnd(U[path][0])
            t[name + ".diff_b"] = b
            e["unet." + path + ".bias"] = b
    path = "encoder.layers.1.mlp.fc1"
    b = rnd(16)
    t[kohya_te(path) + ".diff_b"] = b
    e["clip." + path + ".bias"] = b
    save("full", t, e)


def peft_delta(shape, a, b, alpha):
    """PEFT's own ΔW for a Linear / Conv2d with lora_A = a, lora_B = b."""
    r = a.shape[0]
    if len(shape) == 2:
        base = torch.nn.Linear(shape[1], shape[0], bias=False).double()
        lay = peft_layer.Linear(base, "default", r=r, lora_alpha=alpha)
    else:
        base = torch.nn.Conv2d(shape[1], shape[0], shape[2:], bias=False).double()
        lay = peft_layer.Conv2d(base, "default", r=r, lora_alpha=alpha)
    lay = lay.double()
    with torch.no_grad():
        lay.lora_A["default"].weight.copy_(a.double())
        lay.lora_B["default"].weight.copy_(b.double())
        return lay.get_delta_weight("default")


def make_peft():
    """diffusers / PEFT names: lora_A/lora_B under unet. and text_encoder.
    (with and without diffusers' .alpha), the older lora.down/lora.up and
    lora_linear_layer forms, and attention-processor names."""
    t, e = {}, {}
    # (file module, path, rank, alpha stored or None, suffixes)
    plan = [
        ("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
         "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", 2, None, "A"),
        ("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
         "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k", 3, 6.0, "A"),
        ("unet.down_blocks.0.attentions.0.proj_in", "down_blocks.0.attentions.0.proj_in", 2, None, "A"),
        ("unet.down_blocks.0.resnets.0.conv1", "down_blocks.0.resnets.0.conv1", 2, 1.0, "A"),
        ("unet.up_blocks.1.attentions.0.transformer_blocks.0.ff.net.2",
         "up_blocks.1.attentions.0.transformer_blocks.0.ff.net.2", 2, None, "old"),
        ("mid_block.attentions.0.transformer_blocks.0.attn2.processor.to_v",
         "mid_block.attentions.0.transformer_blocks.0.attn2.to_v", 2, None, "proc"),
        ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out",
         "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0", 3, None, "proc"),
    ]
    for mod, path, r, alpha, form in plan:
        shape = U[path]
        out, inp, *k = shape
        a = rnd(r, inp, *k)
        b = rnd(out, r, *[1 for _ in k])
        if form == "A":
            t[mod + ".lora_A.weight"], t[mod + ".lora_B.weight"] = a, b
        elif form == "old":
            t[mod + ".lora.down.weight"], t[mod + ".lora.up.weight"] = a, b
        else:
            t[mod + "_lora.down.weight"], t[mod + "_lora.up.weight"] = a, b
        if alpha is not None:
            t[mod + ".alpha"] = torch.tensor(alpha)
        e["unet." + path + ".weight"] = peft_delta(shape, a, b, alpha if alpha is not None else r)
    for mod, path, r, form in [
            ("text_encoder.text_model.encoder.layers.0.self_attn.q_proj",
             "encoder.layers.0.self_attn.q_proj", 2, "A"),
            ("text_encoder.text_model.encoder.layers.1.mlp.fc1", "encoder.layers.1.mlp.fc1", 2,
             "linear_layer"),
            ("text_encoder.text_model.encoder.layers.1.self_attn.to_out",
             "encoder.layers.1.self_attn.out_proj", 2, "proc")]:
        shape = T[path]
        a, b = rnd(r, shape[1]), rnd(shape[0], r)
        if form == "A":
            t[mod + ".lora_A.weight"], t[mod + ".lora_B.weight"] = a, b
        elif form == "linear_layer":
            t[mod + ".lora_linear_layer.down.weight"] = a
            t[mod + ".lora_linear_layer.up.weight"] = b
        else:
            t[mod + "_lora.down.weight"], t[mod + "_lora.up.weight"] = a, b
        e["clip." + path + ".weight"] = peft_delta(shape, a, b, r)
    save("peft", t, e)


def main():
    make_kohya()
    make_locon_tucker()
    make_loha()
    make_lokr()
    make_full()
    make_peft()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("wrote %s (%d bytes)" % (OUT, total))


if __name__ == "__main__":
    main()
