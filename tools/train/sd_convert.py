"""diffusers <-> original (CompVis/LDM) Stable Diffusion 1.x single-file key layout, for any widths.

Written after diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py, generalised from SD1.5's
fixed 4 levels x 2 layers to the config's number of levels and layers_per_block:

  UNet  model.diffusion_model.*           input_blocks.N.{0 resnet,1 attention} / .op downsample,
                                          middle_block.{0,1,2}, output_blocks.N.{0,1,2}, time_embed, out
  VAE   first_stage_model.*               encoder/decoder down.i.block.j / up.i.block.j, mid.block_1/attn_1,
                                          attention q/k/v/proj_out as 1x1 convs
  CLIP  cond_stage_model.transformer.*    HF CLIPTextModel names under "text_model."

save_single_file() writes f16 safetensors with __metadata__ "lf.config" (JSON: the unet/vae/text configs and
the scheduler), "format" = "pt"; load_single_file() is the exact inverse (used for the round-trip check).
"""
import json

import torch


# ---------------------------------------------------------------------------------------------- UNet
def unet_prefix_map(cfg):
    """[(sd_prefix, hf_prefix)] for every block of a UNet2DConditionModel config (SD-style blocks)."""
    n = len(cfg["block_out_channels"])
    L = cfg["layers_per_block"]
    down_attn = [t.startswith("CrossAttn") for t in cfg["down_block_types"]]
    up_attn = [t.startswith("CrossAttn") for t in cfg["up_block_types"]]
    m = []
    for i in range(n):
        for j in range(L):
            sd = f"input_blocks.{(L + 1) * i + j + 1}."
            m.append((sd + "0.", f"down_blocks.{i}.resnets.{j}."))
            if down_attn[i]:
                m.append((sd + "1.", f"down_blocks.{i}.attentions.{j}."))
        if i < n - 1:
            m.append((f"input_blocks.{(L + 1) * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
        for j in range(L + 1):
            sd = f"output_blocks.{(L + 1) * i + j}."
            m.append((sd + "0.", f"up_blocks.{i}.resnets.{j}."))
            if up_attn[i]:
                m.append((sd + "1.", f"up_blocks.{i}.attentions.{j}."))
        if i < n - 1:
            m.append((f"output_blocks.{(L + 1) * i + L}.{2 if up_attn[i] else 1}.", f"up_blocks.{i}.upsamplers.0."))
    m.append(("middle_block.1.", "mid_block.attentions.0."))
    m.append(("middle_block.0.", "mid_block.resnets.0."))
    m.append(("middle_block.2.", "mid_block.resnets.1."))
    return m


UNET_TOP = [
    ("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
    ("input_blocks.0.0.", "conv_in."), ("out.0.", "conv_norm_out."), ("out.2.", "conv_out."),
]
UNET_RESNET = [
    ("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("out_layers.0.", "norm2."),
    ("out_layers.3.", "conv2."), ("emb_layers.1.", "time_emb_proj."), ("skip_connection.", "conv_shortcut."),
]


def _swap(name, pairs, to_sd):
    for sd, hf in pairs:
        a, b = (hf, sd) if to_sd else (sd, hf)
        if name.startswith(a):
            return b + name[len(a):], True
    return name, False


def unet_to_sd(sd_hf, cfg):
    pm = unet_prefix_map(cfg)
    out = {}
    for k, v in sd_hf.items():
        n, ok = _swap(k, UNET_TOP, True)
        if not ok:
            sd_pre, hf_pre = next(((s, hf) for s, hf in pm if k.startswith(hf)), (None, None))
            if hf_pre is None:
                raise KeyError(f"unmapped UNet key {k}")
            rest = k[len(hf_pre):]
            if ".resnets." in hf_pre:
                rest, ok2 = _swap(rest, UNET_RESNET, True)
                assert ok2, k
            n = sd_pre + rest
        out["model.diffusion_model." + n] = v
    return out


def unet_from_sd(sd, cfg):
    pm = unet_prefix_map(cfg)
    out = {}
    for k, v in sd.items():
        if not k.startswith("model.diffusion_model."):
            continue
        k = k[len("model.diffusion_model."):]
        n, ok = _swap(k, UNET_TOP, False)
        if not ok:
            sd_pre = next((s for s, hf in pm if k.startswith(s)), None)
            if sd_pre is None:
                raise KeyError(f"unmapped UNet key {k}")
            hf_pre = dict(pm)[sd_pre]
            rest = k[len(sd_pre):]
            if ".resnets." in hf_pre:
                rest, ok2 = _swap(rest, UNET_RESNET, False)
                assert ok2, k
            n = hf_pre + rest
        out[n] = v
    return out


# ----------------------------------------------------------------------------------------------- VAE
def vae_prefix_map(cfg):
    n = len(cfg["block_out_channels"])
    L = cfg["layers_per_block"]
    m = []
    for i in range(n):
        for j in range(L):
            m.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        if i < n - 1:
            m.append((f"encoder.down.{i}.downsample.conv.", f"encoder.down_blocks.{i}.downsamplers.0.conv."))
        for j in range(L + 1):
            m.append((f"decoder.up.{n - 1 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}."))
        if i < n - 1:
            m.append((f"decoder.up.{n - 1 - i}.upsample.conv.", f"decoder.up_blocks.{i}.upsamplers.0.conv."))
    for part in ("encoder", "decoder"):
        m.append((f"{part}.mid.block_1.", f"{part}.mid_block.resnets.0."))
        m.append((f"{part}.mid.block_2.", f"{part}.mid_block.resnets.1."))
        m.append((f"{part}.mid.attn_1.", f"{part}.mid_block.attentions.0."))
        m.append((f"{part}.norm_out.", f"{part}.conv_norm_out."))
    return m


VAE_RESNET = [("nin_shortcut.", "conv_shortcut.")]
VAE_ATTN = [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."), ("proj_out.", "to_out.0.")]


def vae_to_sd(sd_hf, cfg):
    pm = vae_prefix_map(cfg)
    out = {}
    for k, v in sd_hf.items():
        hf_pre = next((hf for s, hf in pm if k.startswith(hf)), None)
        if hf_pre is None:
            n = k  # encoder.conv_in, encoder.conv_out, decoder.conv_in, decoder.conv_out, quant_conv, ...
        else:
            sd_pre = dict((hf, s) for s, hf in pm)[hf_pre]
            rest = k[len(hf_pre):]
            if "attentions" in hf_pre:
                rest, ok = _swap(rest, VAE_ATTN, True)
                assert ok, k
                if rest.endswith(".weight") and v.ndim == 2:
                    v = v[:, :, None, None]  # linear -> 1x1 conv as in the original checkpoint
            else:
                rest, _ = _swap(rest, VAE_RESNET, True)
            n = sd_pre + rest
        out["first_stage_model." + n] = v
    return out


def vae_from_sd(sd, cfg):
    pm = vae_prefix_map(cfg)
    out = {}
    for k, v in sd.items():
        if not k.startswith("first_stage_model."):
            continue
        k = k[len("first_stage_model."):]
        sd_pre = next((s for s, hf in pm if k.startswith(s)), None)
        if sd_pre is None:
            n = k
        else:
            hf_pre = dict(pm)[sd_pre]
            rest = k[len(sd_pre):]
            if "attentions" in hf_pre:
                rest, ok = _swap(rest, VAE_ATTN, False)
                assert ok, k
                if v.ndim == 4:
                    v = v[:, :, 0, 0]
            else:
                rest, _ = _swap(rest, VAE_RESNET, False)
            n = hf_pre + rest
        out[n] = v
    return out


# ---------------------------------------------------------------------------------------------- text
TEXT_PREFIX = "cond_stage_model.transformer."


def text_to_sd(sd_hf):
    return {TEXT_PREFIX + k: v for k, v in sd_hf.items() if not k.endswith("position_ids")}


def text_from_sd(sd):
    return {k[len(TEXT_PREFIX):]: v for k, v in sd.items() if k.startswith(TEXT_PREFIX)}


# ------------------------------------------------------------------------------------------ file I/O
def lf_config(unet, vae, te):
    import lf_models as M
    u = {k: (list(v) if isinstance(v, tuple) else v) for k, v in unet.config.items() if not k.startswith("_")}
    va = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vae.config.items() if not k.startswith("_")}
    t = {k: getattr(te.config, k) for k in M.TEXT_CONFIG}
    return {
        "name": "lf-tiny-shapes", "architecture": "sd1.5", "resolution": va["sample_size"], "latent_factor": 8,
        "prediction_type": "epsilon", "unet": u, "vae": va, "text_encoder": t,
        "scheduler": M.SCHEDULER_CONFIG,
        "tokenizer": "OpenAI CLIP BPE (bpe_simple_vocab_16e6), 49408 tokens, 77 positions, pad = <|endoftext|>",
        "text_output": "last_hidden_state (final_layer_norm applied), as SD1.5",
    }


def save_single_file(path, unet, vae, te, extra_meta=None):
    from safetensors.torch import save_file
    sd = {}
    sd.update(unet_to_sd(unet.state_dict(), unet.config))
    sd.update(vae_to_sd(vae.state_dict(), vae.config))
    sd.update(text_to_sd(te.state_dict()))
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in sorted(sd.items())}
    meta = {"format": "pt", "lf.config": json.dumps(lf_config(unet, vae, te), sort_keys=True)}
    meta.update(extra_meta or {})
    save_file(sd, path, metadata=meta)
    return len(sd)


def load_single_file(path, dtype=torch.float32):
    """-> (UNet2DConditionModel, AutoencoderKL, CLIPTextModel) built from the file's lf.config."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors import safe_open
    from transformers import CLIPTextConfig, CLIPTextModel
    with safe_open(path, "pt") as f:
        cfg = json.loads(f.metadata()["lf.config"])
        sd = {k: f.get_tensor(k).to(dtype) for k in f.keys()}
    unet = UNet2DConditionModel(**cfg["unet"])
    vae = AutoencoderKL(**cfg["vae"])
    te = CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"]))
    for model, part in ((unet, unet_from_sd(sd, cfg["unet"])), (vae, vae_from_sd(sd, cfg["vae"])),
                        (te, text_from_sd(sd))):
        missing, unexpected = model.load_state_dict(part, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise KeyError(f"{type(model).__name__}: missing {missing[:5]} unexpected {unexpected[:5]}")
    used = len(unet_from_sd(sd, cfg["unet"])) + len(vae_from_sd(sd, cfg["vae"])) + len(text_from_sd(sd))
    if used != len(sd):
        raise KeyError(f"{len(sd) - used} tensors in {path} belong to no model")
    return unet.eval(), vae.eval(), te.eval()
