#!/usr/bin/env python3
"""Writes tiny random-weight SD1.5-architecture models and reference outputs
for tests/engine/test_model_*.c (diffusers/transformers are the reference).

Each config is saved as a single-file checkpoint in the ORIGINAL (LDM /
A1111) key layout, converted here from diffusers names; config "b" also as a
diffusers folder. Weights are rounded to f16 and stored as f16; the
reference runs in f32 on those same rounded values, so an f32 engine must
match to rounding error. Outputs: tests/engine/fixtures/models/.

  tests/reference/.venv/bin/python tests/reference/make_model_fixtures.py
  ... --full-f16 PATH  only a full-size random f16 SD1.5 checkpoint, built
               with little memory (for bench_lora; torch >= 2: /work/venv-torch2)
  ... --full   also a full-size random SD1.5 checkpoint (+ one UNet step at
               64x64 latent) under tests/reference/out/ (~2 GB, not committed)
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "engine", "fixtures", "models")


# ---- diffusers -> original LDM names (the inverse of diffusers'
# convert_original_stable_diffusion_to_diffusers) ----

RES = [("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."),
       ("time_emb_proj.", "emb_layers.1."), ("norm2.", "out_layers.0."),
       ("conv2.", "out_layers.3."), ("conv_shortcut.", "skip_connection.")]


def res_name(rest):
    for a, b in RES:
        if rest.startswith(a):
            return b + rest[len(a):]
    raise KeyError(rest)


def unet_to_ldm(n, layers, up_attn):
    lp = layers + 1
    top = [("conv_in.", "input_blocks.0.0."), ("time_embedding.linear_1.", "time_embed.0."),
           ("time_embedding.linear_2.", "time_embed.2."), ("conv_norm_out.", "out.0."),
           ("conv_out.", "out.2.")]
    for a, b in top:
        if n.startswith(a):
            return b + n[len(a):]
    p = n.split(".")
    if p[0] == "down_blocks":
        l = int(p[1])
        if p[2] == "resnets":
            return "input_blocks.%d.0.%s" % (1 + l * lp + int(p[3]), res_name(".".join(p[4:])))
        if p[2] == "attentions":
            return "input_blocks.%d.1.%s" % (1 + l * lp + int(p[3]), ".".join(p[4:]))
        if p[2] == "downsamplers":
            return "input_blocks.%d.0.op.%s" % ((l + 1) * lp, ".".join(p[5:]))
    if p[0] == "mid_block":
        if p[1] == "resnets":
            return "middle_block.%d.%s" % (2 * int(p[2]), res_name(".".join(p[3:])))
        if p[1] == "attentions":
            return "middle_block.1.%s" % ".".join(p[3:])
    if p[0] == "up_blocks":
        i = int(p[1])
        if p[2] == "resnets":
            return "output_blocks.%d.0.%s" % (i * lp + int(p[3]), res_name(".".join(p[4:])))
        if p[2] == "attentions":
            return "output_blocks.%d.1.%s" % (i * lp + int(p[3]), ".".join(p[4:]))
        if p[2] == "upsamplers":
            return "output_blocks.%d.%d.conv.%s" % (i * lp + layers, 2 if up_attn[i] else 1,
                                                    ".".join(p[5:]))
    raise KeyError(n)


def vae_to_ldm(n, levels):
    if not (n.startswith("encoder.") or n.startswith("decoder.")):
        return n
    side, rest = n.split(".", 1)
    p = rest.split(".")
    if p[0] == "down_blocks" and p[2] == "resnets":
        r = "down.%s.block.%s.%s" % (p[1], p[3], ".".join(p[4:]))
    elif p[0] == "down_blocks" and p[2] == "downsamplers":
        r = "down.%s.downsample.conv.%s" % (p[1], ".".join(p[5:]))
    elif p[0] == "up_blocks" and p[2] == "resnets":
        r = "up.%d.block.%s.%s" % (levels - 1 - int(p[1]), p[3], ".".join(p[4:]))
    elif p[0] == "up_blocks" and p[2] == "upsamplers":
        r = "up.%d.upsample.conv.%s" % (levels - 1 - int(p[1]), ".".join(p[5:]))
    elif p[0] == "mid_block" and p[1] == "resnets":
        r = "mid.block_%d.%s" % (int(p[2]) + 1, ".".join(p[3:]))
    elif p[0] == "mid_block" and p[1] == "attentions":
        a = ".".join(p[3:])
        for x, y in [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."),
                     ("to_v.", "v."), ("to_out.0.", "proj_out.")]:
            if a.startswith(x):
                r = "mid.attn_1." + y + a[len(x):]
                break
        else:
            raise KeyError(n)
    elif rest.startswith("conv_norm_out."):
        r = "norm_out." + rest[len("conv_norm_out."):]
    else:
        r = rest
    r = r.replace(".conv_shortcut.", ".nin_shortcut.")
    return side + "." + r


# ---- models ----

def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=gen) / fan_in ** 0.5
            elif name.endswith("weight"):
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=gen)
            else:
                v = 0.1 * torch.randn(p.shape, generator=gen)
            p.copy_(v.half().float())
    model.eval()


CONFIGS = {
    "a": dict(  # SD1.5 defaults: no metadata, conv proj, eps, 2 levels
        unet=dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 32),
                  layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                  attention_head_dim=8, norm_num_groups=32),
        vae=dict(block_out_channels=(32, 32), layers_per_block=1, latent_channels=4,
                 norm_num_groups=32, down_block_types=("DownEncoderBlock2D",) * 2,
                 up_block_types=("UpDecoderBlock2D",) * 2),
        text=dict(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                  num_attention_heads=1, max_position_embeddings=77, hidden_act="quick_gelu"),
        metadata=False, prediction="epsilon", text_prefix="cond_stage_model.transformer.text_model."),
    "b": dict(  # metadata: 3 levels, linear proj, heads per level, 2 transformer blocks,
        # 8 groups, v prediction, gelu text encoder
        unet=dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16, 16),
                  layers_per_block=2,
                  down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                  cross_attention_dim=64, attention_head_dim=(2, 2, 4), use_linear_projection=True,
                  norm_num_groups=8, transformer_layers_per_block=(1, 2, 1)),
        vae=dict(block_out_channels=(8, 16, 16), layers_per_block=1, latent_channels=4,
                 norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 3,
                 up_block_types=("UpDecoderBlock2D",) * 3, scaling_factor=0.5),
        text=dict(vocab_size=400, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu"),
        metadata=True, prediction="v_prediction", text_prefix="cond_stage_model.transformer."),
}

FULL = dict(
    unet=dict(sample_size=64, cross_attention_dim=768),  # diffusers defaults are SD1.5's
    vae=dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
             down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4),
    text=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu"),
    metadata=False, prediction="epsilon", text_prefix="cond_stage_model.transformer.text_model.")


def build(cfg, seed):
    gen = torch.Generator().manual_seed(seed)
    unet = UNet2DConditionModel(**cfg["unet"])
    vae = AutoencoderKL(**cfg["vae"])
    text = CLIPTextModel(CLIPTextConfig(**cfg["text"]))
    for m in (unet, vae, text):
        randomize(m, gen)
    return unet, vae, text


def ldm_state(cfg, unet, vae, text):
    layers = unet.config.layers_per_block
    up_attn = [t.startswith("CrossAttn") for t in unet.config.up_block_types]
    levels = len(vae.config.block_out_channels)
    sd = {}
    for n, t in unet.state_dict().items():
        sd["model.diffusion_model." + unet_to_ldm(n, layers, up_attn)] = t
    for n, t in vae.state_dict().items():
        if ".mid_block.attentions." in n and n.endswith("weight") and t.dim() == 2:
            t = t[:, :, None, None]  # LDM keeps these as 1x1 convs
        sd["first_stage_model." + vae_to_ldm(n, levels)] = t
    pre = cfg["text_prefix"]
    for n, t in text.state_dict().items():
        if n.endswith("position_ids"):
            continue
        if not pre.endswith("text_model."):
            n = n[len("text_model."):]
        else:
            n = n[len("text_model."):]
        sd[pre + n] = t
    return {k: v.half().contiguous() for k, v in sd.items()}


def clean(conf):
    """A diffusers config as plain, reproducible JSON values."""
    return {k: v for k, v in sorted(dict(conf).items()) if not k.startswith("_")}


def lf_config(cfg, unet, vae, text):
    return json.dumps({"unet": clean(unet.config), "vae": clean(vae.config),
                       "text_encoder": text.config.to_dict(),  # key as tools/train writes it
                       "scheduler": {"prediction_type": cfg["prediction"]}}, default=list,
                      sort_keys=True)


@torch.no_grad()
def references(unet, vae, text, gen, ctx_dim, H=8, W=8):
    r = {}
    ids = torch.randint(0, text.config.vocab_size, (2, 77), generator=gen, dtype=torch.int64)
    o = text(ids, output_hidden_states=True)
    r["clip_ids"] = ids.to(torch.int32)
    r["clip_skip1"] = o.last_hidden_state
    r["clip_skip2"] = text.text_model.final_layer_norm(o.hidden_states[-2])
    x = torch.randn(2, 4, H, W, generator=gen)
    t = torch.tensor([981.0, 37.0])
    ctx = torch.randn(2, 77, ctx_dim, generator=gen)
    r["unet_x"], r["unet_t"], r["unet_ctx"] = x, t, ctx
    r["unet_out"] = unet(x, t, encoder_hidden_states=ctx).sample
    # A latent size that is not a multiple of 2^(levels-1) (diffusers'
    # forward_upsample_size path), e.g. a 520x328 image.
    xo = torch.randn(1, 4, 5, 7, generator=gen)
    r["unet_x_odd"] = xo
    r["unet_out_odd"] = unet(xo, t[:1], encoder_hidden_states=ctx[:1]).sample
    z = torch.randn(1, 4, H, W, generator=gen)
    r["vae_z"] = z
    r["vae_img"] = vae.decode(z).sample
    s = 2 ** (len(vae.config.block_out_channels) - 1)
    img = torch.rand(1, 3, H * s, W * s, generator=gen) * 2 - 1
    r["vae_enc_in"] = img
    r["vae_enc_mean"] = vae.encode(img).latent_dist.mean
    return {k: v.contiguous() for k, v in r.items()}


def save_diffusers(folder, cfg, unet, vae, text):
    for sub, m, fname in [("unet", unet, "diffusion_pytorch_model.safetensors"),
                          ("vae", vae, "diffusion_pytorch_model.safetensors")]:
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        save_file({k: v.half().contiguous() for k, v in m.state_dict().items()},
                  os.path.join(folder, sub, fname))
        m.save_config(os.path.join(folder, sub))
    os.makedirs(os.path.join(folder, "text_encoder"), exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in text.state_dict().items()
               if not k.endswith("position_ids")},
              os.path.join(folder, "text_encoder", "model.safetensors"))
    text.config.to_json_file(os.path.join(folder, "text_encoder", "config.json"))
    os.makedirs(os.path.join(folder, "scheduler"), exist_ok=True)
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump({"_class_name": "PNDMScheduler", "prediction_type": cfg["prediction"],
                   "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                   "num_train_timesteps": 1000}, f, indent=1)


# ---- TAESD (written from the architecture: madebyollin/taesd's Decoder) ----

class Clamp(torch.nn.Module):
    def forward(self, x):
        return torch.tanh(x / 3) * 3


def conv3(n_in, n_out, bias=True):
    return torch.nn.Conv2d(n_in, n_out, 3, padding=1, bias=bias)


class TaeBlock(torch.nn.Module):
    def __init__(self, n_in, n_out, pool=False):
        super().__init__()
        nn = torch.nn
        self.conv = nn.Sequential(conv3(n_in, n_out), nn.ReLU(), conv3(n_out, n_out), nn.ReLU(),
                                  conv3(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()
        self.pool = None
        if pool:  # FLUX.2 variant: pointwise branch with GroupNorm(4)
            self.pool = nn.Sequential(nn.Conv2d(n_in, 4 * n_in, 1, bias=False),
                                      nn.GroupNorm(4, 4 * n_in), nn.ReLU(),
                                      nn.Conv2d(4 * n_in, n_in, 1, bias=False))

    def forward(self, x):
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def tae_decoder(latent, ch=64, pool=False):
    nn = torch.nn
    L = [Clamp(), conv3(latent, ch), nn.ReLU()]
    for level in range(3):
        L += [TaeBlock(ch, ch, pool and level == 0) for _ in range(3)]
        L += [nn.Upsample(scale_factor=2), conv3(ch, ch, bias=False)]
    L += [TaeBlock(ch, ch), conv3(ch, 3)]
    return nn.Sequential(*L)


@torch.no_grad()
def taesd_fixtures(out):
    gen = torch.Generator().manual_seed(11)
    # A tiny random SD-style decoder (4 latent channels, 8 wide, no pool
    # branch), saved with diffusers AutoencoderTiny names (decoder.layers.N).
    dec = tae_decoder(4, ch=8)
    randomize(dec, gen)
    sd = {"decoder.layers.%d.%s" % (int(k.split(".", 1)[0]) - 1, k.split(".", 1)[1]): v.half()
          for k, v in dec.state_dict().items()}
    save_file(sd, os.path.join(out, "taesd_tiny_sd.safetensors"))
    z = torch.randn(1, 4, 8, 8, generator=gen) * 2
    save_file({"z": z, "rgb": dec(z).contiguous()}, os.path.join(out, "taesd_tiny_sd_ref.safetensors"))
    # The real FLUX.2 decoder from the shared reference data (not copied):
    # only a fixed latent and the expected output are stored.
    real = os.path.join(HERE, "..", "..", "..", "shared", "refdata", "taesd", "taef2_decoder.pth")
    if os.path.exists(real):
        dec = tae_decoder(32, pool=True)
        dec.load_state_dict({k: v.float() for k, v in torch.load(real, map_location="cpu").items()})
        dec.eval()
        z = torch.randn(1, 32, 8, 8, generator=gen)
        save_file({"z": z, "rgb": dec(z).contiguous()}, os.path.join(out, "taef2_ref.safetensors"))
    else:
        print("skipping taef2 reference: %s absent" % real)


def full_f16_random(path):
    """A full-size SD1.5 checkpoint of random f16 values (normal / sqrt(fan in),
    norms' weights 1) built without the f32 model: names and shapes from a
    meta-device build (torch >= 2), values drawn tensor by tensor; peak RSS
    ~2.8 GB instead of --full's. For benchmarks (bench_lora); no references."""
    import numpy as np
    from safetensors.numpy import save_file as save_np
    with torch.device("meta"):
        unet = UNet2DConditionModel(**FULL["unet"])
        vae = AutoencoderKL(**FULL["vae"])
        text = CLIPTextModel(CLIPTextConfig(**FULL["text"]))
    rng = np.random.default_rng(1)
    arrs = {}
    for k, t in ldm_state(FULL, unet, vae, text).items():
        shape = tuple(t.shape)
        if len(shape) == 1:
            one = "norm" in k and k.endswith("weight")
            arrs[k] = (np.ones(shape, np.float32) if one else rng.standard_normal(shape, np.float32) * 0.02
                       ).astype(np.float16)
        else:
            scale = 1.0 / np.sqrt(float(np.prod(shape[1:])))
            arrs[k] = (rng.standard_normal(shape, np.float32) * scale).astype(np.float16)
    save_np(arrs, path)
    print("wrote", path, os.path.getsize(path), "bytes,", len(arrs), "tensors")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="also the full-size SD1.5 checkpoint")
    ap.add_argument("--full-f16", metavar="PATH",
                    help="only a full-size random f16 SD1.5 checkpoint at PATH, low memory (torch >= 2)")
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args()
    if a.full_f16:
        return full_f16_random(a.full_f16)
    torch.set_num_threads(2)
    os.makedirs(a.out, exist_ok=True)
    for i, (name, cfg) in enumerate(sorted(CONFIGS.items())):
        unet, vae, text = build(cfg, 100 + i)
        meta = {"lf.config": lf_config(cfg, unet, vae, text)} if cfg["metadata"] else None
        save_file(ldm_state(cfg, unet, vae, text), os.path.join(a.out, "tiny_%s.safetensors" % name),
                  metadata=meta)
        ref = references(unet, vae, text, torch.Generator().manual_seed(7 + i),
                         cfg["unet"]["cross_attention_dim"])
        save_file(ref, os.path.join(a.out, "tiny_%s_ref.safetensors" % name))
        if name == "b":
            save_diffusers(os.path.join(a.out, "tiny_b_diffusers"), cfg, unet, vae, text)
        print("config", name, "unet params", sum(p.numel() for p in unet.parameters()))
    taesd_fixtures(a.out)
    if a.full:
        out = os.path.join(HERE, "out")
        os.makedirs(out, exist_ok=True)
        unet, vae, text = build(FULL, 1)
        save_file(ldm_state(FULL, unet, vae, text), os.path.join(out, "sd15_full.safetensors"))
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            x = torch.randn(1, 4, 64, 64, generator=gen)
            t = torch.tensor([500.0])
            ctx = torch.randn(1, 77, 768, generator=gen)
            y = unet(x, t, encoder_hidden_states=ctx).sample
            ids = torch.randint(0, 49408, (1, 77), generator=gen)
            o = text(ids, output_hidden_states=True)
            z = torch.randn(1, 4, 32, 32, generator=gen)  # 1024-token VAE attention
            img = vae.decode(z).sample
        save_file({"unet_x": x, "unet_t": t, "unet_ctx": ctx, "unet_out": y.contiguous(),
                   "clip_ids": ids.to(torch.int32).contiguous(),
                   "clip_skip2": text.text_model.final_layer_norm(o.hidden_states[-2]).contiguous(),
                   "vae_z": z, "vae_img": img.contiguous()},
                  os.path.join(out, "sd15_full_ref.safetensors"))
        print("full checkpoint written to", out)


if __name__ == "__main__":
    sys.exit(main())
