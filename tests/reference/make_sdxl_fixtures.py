#!/usr/bin/env python3
"""Writes tiny random-weight SDXL base and refiner models, per-network
reference outputs and whole-generation references for
tests/engine/test_model_sdxl.c and test_pipeline_sdxl.c (diffusers 0.27 /
transformers 4.38 are the reference).

Models (weights rounded to f16 and stored as f16; the references run in f32
on the same rounded values):
  base:    CLIPTextModel (CLIP ViT-L style, quick_gelu) + CLIPTextModelWithProjection
           (OpenCLIP bigG style, gelu), UNet2DConditionModel with
           addition_embed_type="text_time" (6 time ids), no attention at the top
           level, transformer depth differing per level, linear projections,
           SDXL's attention_head_dim list (heads per level), AutoencoderKL with
           scaling_factor 0.13025.
  refiner: the OpenCLIP encoder only, a UNet with 5 time ids
           (requires_aesthetics_score), the same VAE.
Each is saved as ONE file in the original SGM layout (the inverse of
diffusers' convert_from_ckpt for SDXL):
  conditioner.embedders.0.transformer.text_model.*   CLIP-L, HF names (base)
  conditioner.embedders.1.model.*                    OpenCLIP (base; refiner: embedders.0)
      token_embedding.weight, positional_embedding, transformer.resblocks.N.
      {ln_1,ln_2,attn.in_proj_weight/in_proj_bias (q,k,v packed),attn.out_proj,
      mlp.c_fc,mlp.c_proj}, ln_final, text_projection ([dim, proj]: x @ P, the
      transpose of HF's Linear weight)
  model.diffusion_model.*  (label_emb.0.0 / label_emb.0.2: the add embedding)
  first_stage_model.*
with an "lf.config" metadata entry holding what shapes cannot say for these
tiny sizes (heads, groups, addition_time_embed_dim; NOT the VAE scaling
factor, so the SDXL default is exercised); the base also as a diffusers
folder (text_encoder/, text_encoder_2/, unet/, vae/, scheduler/) and as an
old-style pickled .ckpt (base.ckpt: torch.save of {"state_dict": the same SGM
tensors, "global_step": 0, "lf.config": the same string}).

Pipelines: the text encoders' token embeddings widened to CLIP's 49,408 rows
(row r = row r % 400, as the C test does when it loads the fixture), real
CLIP BPE (the shared reference data's merges file) on both sides,
StableDiffusionXLPipeline for several samplers, and the refiner hand-off
base(denoising_end) + StableDiffusionXLImg2ImgPipeline(denoising_start).
The negative prompt is "blurry, ugly", and empty in one case
(euler_empty_negative): diffusers' force_zeros_for_empty_prompt then zeroes
the uncond (text and pooled), as A1111's sd_models_xl.py does
(force_zero_negative_prompt) and lightfarm does for SDXL.

  /work/venv-ref/bin/python tests/reference/make_sdxl_fixtures.py
  ... --full   also a FULL-size random SDXL base checkpoint (single file, f16)
               and a diffusers folder under tests/reference/out/ (not committed)

  ... --parts-only   only the UNet-only part files below, from the committed
               base.safetensors and base_diffusers/unet (no model is rebuilt)

Parts (for the assembly from parts, lf_manifest / test_manifest.c): the base's
UNet alone as one file in each key layout users have, f16 values identical to
the single file's, each with lf.config {"unet": ...} (the tiny sizes again):
  unet_sgm.safetensors        model.diffusion_model.* (label_emb.0.*), as the
                              original SGM checkpoints and ComfyUI UNet saves
  unet_diffusers.safetensors  diffusers names (down_blocks.*, add_embedding.*), as
                              ByteDance's sdxl_lightning_Nstep_unet.safetensors
and the other parts as separate files, as ComfyUI's models/clip and models/vae
hold them (HF names; lf.config {"text_encoder": ...} / {"vae": ...}):
  clip_l.safetensors          CLIP ViT-L (text_model.*)
  clip_g.safetensors          OpenCLIP ViT-bigG in HF names (text_model.*, text_projection.weight)
  vae.safetensors             the VAE in diffusers names (decoder.*, encoder.*, ...)

Outputs: tests/engine/fixtures/sdxl/.
"""
import argparse
import json
import os
import sys
import tempfile

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_model_fixtures as mmf  # noqa: E402
import make_pipeline_fixtures as mpf  # noqa: E402

from diffusers import (AutoencoderKL, EulerDiscreteScheduler,  # noqa: E402
                       StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline,
                       UNet2DConditionModel)
from transformers import (CLIPTextConfig, CLIPTextModel,  # noqa: E402
                          CLIPTextModelWithProjection, CLIPTokenizer)

OUT = os.path.join(HERE, "..", "engine", "fixtures", "sdxl")
BOS, EOS = 398, 399  # tiny vocabulary: the two largest ids, as in CLIP's

TEXT_L = dict(vocab_size=400, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
              num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
              bos_token_id=BOS, eos_token_id=EOS, pad_token_id=EOS)
TEXT_G = dict(vocab_size=400, hidden_size=24, intermediate_size=48, num_hidden_layers=3,
              num_attention_heads=2, max_position_embeddings=77, hidden_act="gelu",
              projection_dim=20, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=0)
UNET_BASE = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(4, 8, 8),
                 layers_per_block=1,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 cross_attention_dim=16 + 24, attention_head_dim=(1, 2, 2),
                 transformer_layers_per_block=(1, 1, 2), use_linear_projection=True,
                 norm_num_groups=4, addition_embed_type="text_time", addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=20 + 6 * 8)
UNET_REFINER = dict(UNET_BASE, block_out_channels=(4, 8), cross_attention_dim=24,
                    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(1, 2),
                    transformer_layers_per_block=(1, 2),
                    projection_class_embeddings_input_dim=20 + 5 * 8)
VAE = dict(block_out_channels=(4, 8), layers_per_block=1, latent_channels=4, norm_num_groups=4,
           down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
           scaling_factor=0.13025, force_upcast=True)

# Real SDXL 1.0 sizes (diffusers' sdxl base configs).
FULL_TEXT_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                   num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu")
FULL_TEXT_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120,
                   num_hidden_layers=32, num_attention_heads=20, max_position_embeddings=77,
                   hidden_act="gelu", projection_dim=1280, pad_token_id=0)
FULL_UNET = dict(sample_size=128, in_channels=4, out_channels=4,
                 block_out_channels=(320, 640, 1280), layers_per_block=2,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 cross_attention_dim=2048, attention_head_dim=(5, 10, 20),
                 transformer_layers_per_block=(1, 2, 10), use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816)
FULL_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, scaling_factor=0.13025,
                force_upcast=True, sample_size=1024)


# ---- diffusers / HF -> SGM names ----

def openclip_state(text_g):
    """HF CLIPTextModelWithProjection -> OpenCLIP names (q/k/v packed,
    text_projection transposed)."""
    sd = {k: v for k, v in text_g.state_dict().items() if not k.endswith("position_ids")}
    out = {"token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
           "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
           "ln_final.weight": sd["text_model.final_layer_norm.weight"],
           "ln_final.bias": sd["text_model.final_layer_norm.bias"],
           "text_projection": sd["text_projection.weight"].t().contiguous()}
    for i in range(text_g.config.num_hidden_layers):
        p, q = "text_model.encoder.layers.%d." % i, "transformer.resblocks.%d." % i
        for a, b in [("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."),
                     ("self_attn.out_proj.", "attn.out_proj."), ("mlp.fc1.", "mlp.c_fc."),
                     ("mlp.fc2.", "mlp.c_proj.")]:
            for s in ("weight", "bias"):
                out[q + b + s] = sd[p + a + s]
        for s in ("weight", "bias"):
            out[q + "attn.in_proj_" + s] = torch.cat(
                [sd[p + "self_attn.%s_proj.%s" % (x, s)] for x in "qkv"], 0)
    return out


def sgm_state(unet, vae, text_l, text_g):
    layers = unet.config.layers_per_block
    up_attn = [t.startswith("CrossAttn") for t in unet.config.up_block_types]
    levels = len(vae.config.block_out_channels)
    sd = {}
    for n, t in unet.state_dict().items():
        if n.startswith("add_embedding.linear_1."):
            k = "label_emb.0.0." + n.split(".")[-1]
        elif n.startswith("add_embedding.linear_2."):
            k = "label_emb.0.2." + n.split(".")[-1]
        else:
            k = mmf.unet_to_ldm(n, layers, up_attn)
        sd["model.diffusion_model." + k] = t
    for n, t in vae.state_dict().items():
        if ".mid_block.attentions." in n and n.endswith("weight") and t.dim() == 2:
            t = t[:, :, None, None]
        sd["first_stage_model." + mmf.vae_to_ldm(n, levels)] = t
    g = "conditioner.embedders.0.model." if text_l is None else "conditioner.embedders.1.model."
    if text_l is not None:
        for n, t in text_l.state_dict().items():
            if not n.endswith("position_ids"):
                sd["conditioner.embedders.0.transformer." + n] = t
    for n, t in openclip_state(text_g).items():
        sd[g + n] = t
    return {k: v.half().contiguous() for k, v in sd.items()}


def lf_config(unet, text_l, text_g):
    c = {"unet": mmf.clean(unet.config), "vae": {"norm_num_groups": VAE["norm_num_groups"]},
         "text_encoder_2": text_g.config.to_dict()}
    if text_l is not None:
        c["text_encoder"] = text_l.config.to_dict()
    return json.dumps(c, default=list, sort_keys=True)


def save_ckpt(path, unet, vae, text_l, text_g):
    """The base as an old-style SDXL .ckpt: torch.save (zip format) of a dict
    holding the SGM state_dict (f16, the same tensors as base.safetensors)
    and, beside it, what the .ckpt files of training runs carry
    (global_step, an int) plus the "lf.config" string the tiny sizes need
    (real SDXL .ckpt files have none and get SDXL's defaults). Read by
    loaders/lf_torchzip, whose pickle machine executes nothing."""
    torch.save({"state_dict": sgm_state(unet, vae, text_l, text_g), "global_step": 0,
                "lf.config": lf_config(unet, text_l, text_g)}, path)


def build(unet_cfg, with_l, seed, text_l_cfg=TEXT_L, text_g_cfg=TEXT_G, vae_cfg=VAE):
    gen = torch.Generator().manual_seed(seed)
    unet = UNet2DConditionModel(**unet_cfg)
    vae = AutoencoderKL(**vae_cfg)
    text_l = CLIPTextModel(CLIPTextConfig(**text_l_cfg)) if with_l else None
    text_g = CLIPTextModelWithProjection(CLIPTextConfig(**text_g_cfg))
    for m in (unet, vae, text_l, text_g):
        if m is not None:
            mmf.randomize(m, gen)
    return unet, vae, text_l, text_g


# ---- references ----

def chunk_ids(gen, n_words):
    """A1111-style chunk for the tiny vocabulary: BOS, words, EOS, then EOS
    padding (CLIP-L) / 0 padding (OpenCLIP)."""
    ids = [BOS] + torch.randint(1, BOS, (n_words,), generator=gen).tolist() + [EOS]
    return ids + [EOS] * (77 - len(ids)), ids + [0] * (77 - len(ids))


@torch.no_grad()
def references(unet, vae, text_l, text_g, gen, n_ids):
    r = {}
    rows = [chunk_ids(gen, n) for n in (5, 30)]
    ids_l = torch.tensor([a for a, _ in rows], dtype=torch.int64)
    ids_g = torch.tensor([b for _, b in rows], dtype=torch.int64)
    r["ids"] = ids_l.to(torch.int32)  # the C side derives encoder 2's padding
    og = text_g(ids_g, output_hidden_states=True)
    r["te2_hidden"] = og.hidden_states[-2]
    r["te2_pooled"] = og.text_embeds
    if text_l is not None:
        ol = text_l(ids_l, output_hidden_states=True)
        r["te1_hidden"] = ol.hidden_states[-2]
        r["text_cond"] = torch.cat([ol.hidden_states[-2], og.hidden_states[-2]], -1)
    else:
        r["text_cond"] = og.hidden_states[-2].clone()
    ctx_dim = unet.config.cross_attention_dim
    x = torch.randn(2, 4, 8, 8, generator=gen)
    t = torch.tensor([981.0, 37.0])
    ctx = torch.randn(2, 77, ctx_dim, generator=gen)
    emb = torch.randn(2, text_g.config.projection_dim, generator=gen)
    if n_ids == 6:  # [orig_h, orig_w, crop_top, crop_left, target_h, target_w]
        tid = torch.tensor([[768.0, 1024.0, 16.0, 32.0, 1024.0, 896.0],
                            [1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0]])
    else:  # [orig_h, orig_w, crop_top, crop_left, aesthetic_score]
        tid = torch.tensor([[768.0, 1024.0, 16.0, 32.0, 6.0], [1024.0, 1024.0, 0.0, 0.0, 2.5]])
    r["unet_x"], r["unet_t"], r["unet_ctx"], r["unet_text_embeds"], r["unet_time_ids"] = \
        x, t, ctx, emb, tid
    cond = {"text_embeds": emb, "time_ids": tid}
    r["unet_out"] = unet(x, t, encoder_hidden_states=ctx, added_cond_kwargs=cond).sample
    xo = torch.randn(1, 4, 5, 7, generator=gen)
    r["unet_x_odd"] = xo
    r["unet_out_odd"] = unet(xo, t[:1], encoder_hidden_states=ctx[:1],
                             added_cond_kwargs={"text_embeds": emb[:1],
                                                "time_ids": tid[:1]}).sample
    z = torch.randn(1, 4, 8, 8, generator=gen) / vae.config.scaling_factor
    r["vae_z"] = z
    r["vae_img"] = vae.decode(z).sample
    s = 2 ** (len(vae.config.block_out_channels) - 1)
    img = torch.rand(1, 3, 8 * s, 8 * s, generator=gen) * 2 - 1
    r["vae_enc_in"] = img
    r["vae_enc_mean"] = vae.encode(img).latent_dist.mean
    return {k: v.contiguous().clone() for k, v in r.items()}


def save_diffusers(folder, unet, vae, text_l, text_g):
    for sub, m in [("unet", unet), ("vae", vae)]:
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        save_file({k: v.half().contiguous() for k, v in m.state_dict().items()},
                  os.path.join(folder, sub, "diffusion_pytorch_model.safetensors"))
        m.save_config(os.path.join(folder, sub))
    for sub, m in [("text_encoder", text_l), ("text_encoder_2", text_g)]:
        if m is None:
            continue
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        save_file({k: v.half().contiguous() for k, v in m.state_dict().items()
                   if not k.endswith("position_ids")},
                  os.path.join(folder, sub, "model.safetensors"))
        m.config.to_json_file(os.path.join(folder, sub, "config.json"))
    os.makedirs(os.path.join(folder, "scheduler"), exist_ok=True)
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump({"_class_name": "EulerDiscreteScheduler", "prediction_type": "epsilon",
                   "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                   "num_train_timesteps": 1000, "steps_offset": 1,
                   "timestep_spacing": "leading"}, f, indent=1)


# ---- whole generations ----

PROMPT = mpf.PROMPT
NEGATIVE = mpf.NEGATIVE
SEED, CFG, SIZE = 1234, 5.0, 16
# dpmpp_2m on sgm_uniform 9 (integer timesteps): diffusers rounds DPM-Solver's timesteps,
# which a tiny UNet (2 time frequencies) feels far more than a real one.
PIPE_CASES = ["euler", "euler_a", "euler_karras", "heun", "dpmpp_2m", "uni_pc_f32"]
MICRO = dict(original_size=(24, 40), crops_coords_top_left=(2, 6), target_size=(32, 16))


def widened(text, eos=49407):
    """The text model with its token embedding widened to 49,408 rows (row r =
    row r % 400) and CLIP's real BOS/EOS ids, as the C test loads it."""
    cfg = dict(text.config.to_dict(), vocab_size=49408, bos_token_id=49406, eos_token_id=eos)
    cls = type(text)
    w = cls(CLIPTextConfig(**{k: v for k, v in cfg.items() if not k.startswith("_")
                              and k not in ("architectures", "transformers_version",
                                            "model_type")}))
    sd = text.state_dict()
    emb = sd["text_model.embeddings.token_embedding.weight"]
    sd["text_model.embeddings.token_embedding.weight"] = emb[torch.arange(49408) % emb.shape[0]]
    w.load_state_dict(sd)
    return w.eval()


def tokenizers(tmp):
    tok = mpf.tokenizer(tmp)
    tok2 = CLIPTokenizer(os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt"),
                         pad_token="!", model_max_length=77)
    return tok, tok2


def start_latents(gen, s0, vp, sched):
    noise = torch.randn((1, 4, SIZE // 2, SIZE // 2), generator=gen)
    x0 = noise * (s0 / (1 + s0 * s0) ** 0.5 if vp else s0)
    return x0 / float(sched.init_noise_sigma)


@torch.no_grad()
def pipelines(out, base, refiner):
    unet, vae, text_l, text_g = base
    r_unet, _, _, r_text_g = refiner
    text_l, text_g, r_text_g = widened(text_l), widened(text_g), widened(r_text_g)
    tmp = tempfile.mkdtemp()
    tok, tok2 = tokenizers(tmp)
    cases = {c[0]: c for c in mpf.CASES}
    meta = []
    runs = [(n, n, {}, NEGATIVE) for n in PIPE_CASES] + [("euler_micro", "euler", MICRO, NEGATIVE),
                                                         ("euler_empty_negative", "euler", {}, "")]
    for name, case, kw, negative in runs:
        _, sampler, schedule, steps, make, vp, how, *patch = cases[case]
        sched = make()
        gen = torch.Generator().manual_seed(SEED)
        if patch:
            patch[0](sched, gen)
        lf = mpf.lf_schedule(schedule, steps)
        if how == "override":
            mpf.override_schedule(sched, lf, vp)
        sched.set_timesteps(steps)
        pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_l, text_encoder_2=text_g,
                                         tokenizer=tok, tokenizer_2=tok2, unet=unet,
                                         scheduler=sched, force_zeros_for_empty_prompt=True)
        pipe.set_progress_bar_config(disable=True)
        lat0 = start_latents(gen, float(lf[0]), vp, sched)
        # diffusers zeroes the uncond for negative_prompt=None (not for "").
        lat = pipe(PROMPT, negative_prompt=negative or None, height=SIZE, width=SIZE,
                   num_inference_steps=steps, guidance_scale=CFG, generator=gen, latents=lat0,
                   output_type="latent", **kw).images
        img = vae.decode(lat / vae.config.scaling_factor).sample
        save_file({"latent": lat.contiguous().float(), "image": img.contiguous().float()},
                  os.path.join(out, "pipe_%s.safetensors" % name))
        meta.append(dict(case=name, sampler=sampler, scheduler=schedule, steps=steps,
                         diffusers=type(sched).__name__, schedule_match=how, negative=negative,
                         **kw))
        print("pipeline %-16s |lat| %.3f" % (name, float(lat.abs().max())))
    # Refiner hand-off: base runs timesteps >= round(1000 - 1000 * f), the
    # refiner (img2img with denoising_start = f) the rest, same generator.
    for name, case, frac in [("refiner_euler", "euler", 0.5), ("refiner_euler_a", "euler_a", 0.6)]:
        _, sampler, schedule, steps, make, vp, how, *patch = cases[case]
        sched = make()
        gen = torch.Generator().manual_seed(SEED)
        lf = mpf.lf_schedule(schedule, steps)
        sched.set_timesteps(steps)
        pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_l, text_encoder_2=text_g,
                                         tokenizer=tok, tokenizer_2=tok2, unet=unet,
                                         scheduler=sched, force_zeros_for_empty_prompt=True)
        pipe.set_progress_bar_config(disable=True)
        lat0 = start_latents(gen, float(lf[0]), vp, sched)
        mid = pipe(PROMPT, negative_prompt=NEGATIVE, height=SIZE, width=SIZE,
                   num_inference_steps=steps, guidance_scale=CFG, generator=gen, latents=lat0,
                   output_type="latent", denoising_end=frac).images
        rpipe = StableDiffusionXLImg2ImgPipeline(
            vae=vae, text_encoder=None, text_encoder_2=r_text_g, tokenizer=None,
            tokenizer_2=tok2, unet=r_unet, scheduler=make(), requires_aesthetics_score=True,
            force_zeros_for_empty_prompt=False)
        rpipe.set_progress_bar_config(disable=True)
        lat = rpipe(PROMPT, negative_prompt=NEGATIVE, image=mid, num_inference_steps=steps,
                    guidance_scale=CFG, generator=gen, denoising_start=frac,
                    output_type="latent").images
        img = vae.decode(lat / vae.config.scaling_factor).sample
        save_file({"latent": lat.contiguous().float(), "image": img.contiguous().float(),
                   "base_latent": mid.contiguous().float()},
                  os.path.join(out, "pipe_%s.safetensors" % name))
        meta.append(dict(case=name, sampler=sampler, scheduler=schedule, steps=steps,
                         refiner_switch_at=frac, aesthetic_score=6.0,
                         negative_aesthetic_score=2.5))
        print("pipeline %-16s |lat| %.3f" % (name, float(lat.abs().max())))
    with open(os.path.join(out, "pipelines.json"), "w") as f:
        json.dump(dict(prompt=PROMPT, negative=NEGATIVE, seed=SEED, cfg=CFG, width=SIZE,
                       height=SIZE, diffusers=__import__("diffusers").__version__,
                       torch=torch.__version__, cases=meta), f, indent=1)


def randomized_state(model, gen):
    """model's state dict as random f16 tensors (mmf.randomize's scales),
    made tensor by tensor: the model itself can live on the meta device, so
    a full-size SDXL never exists in f32."""
    out = {}
    for name, p in model.state_dict().items():
        if name.endswith("position_ids"):
            continue
        if p.dim() >= 2:
            fan_in = 1
            for d in p.shape[1:]:
                fan_in *= d
            v = torch.randn(tuple(p.shape), generator=gen) / fan_in ** 0.5
        elif name.endswith("weight"):
            v = 1.0 + 0.1 * torch.randn(tuple(p.shape), generator=gen)
        else:
            v = 0.1 * torch.randn(tuple(p.shape), generator=gen)
        out[name] = v.half()
        del v
    return out


class _Frozen(torch.nn.Module):
    """Stands in for a network in sgm_state / save_diffusers: its
    state_dict() is a fixed dict (f16), its config the real one's."""

    def __init__(self, sd, config):
        super().__init__()
        self._sd, self.config = sd, config

    def state_dict(self, *a, **kw):
        return self._sd

    def save_config(self, folder):
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(dict(self.config), f, indent=1, default=list)


def full(out):
    """Full-size random SDXL base (the real SDXL 1.0 sizes, random weights):
    one SGM file (f16) and a diffusers folder. Timing and memory only; the
    networks are never run here."""
    from accelerate import init_empty_weights
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(1)
    with init_empty_weights():
        unet = UNet2DConditionModel(**FULL_UNET)
        vae = AutoencoderKL(**FULL_VAE)
        tl_cfg, tg_cfg = CLIPTextConfig(**FULL_TEXT_L), CLIPTextConfig(**FULL_TEXT_G)
        text_l, text_g = CLIPTextModel(tl_cfg), CLIPTextModelWithProjection(tg_cfg)
    unet_f, vae_f, tl_f, tg_f = [_Frozen(randomized_state(m, gen), m.config)
                                 for m in (unet, vae, text_l, text_g)]
    save_file(sgm_state(unet_f, vae_f, tl_f, tg_f), os.path.join(out, "sdxl_full.safetensors"))
    folder = os.path.join(out, "sdxl_full_diffusers")
    for sub, m in [("unet", unet_f), ("vae", vae_f)]:
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        save_file(m.state_dict(), os.path.join(folder, sub, "diffusion_pytorch_model.safetensors"))
        m.save_config(os.path.join(folder, sub))
    for sub, m, cfg in [("text_encoder", tl_f, tl_cfg), ("text_encoder_2", tg_f, tg_cfg)]:
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        save_file(m.state_dict(), os.path.join(folder, sub, "model.safetensors"))
        cfg.to_json_file(os.path.join(folder, sub, "config.json"))
    print("full SDXL written to", out)


def parts(out):
    """The base's UNet alone, in the SGM and in the diffusers key layout (see
    the docstring), from the committed files: the values are those of the
    single file (both f16), so an assembly from them must equal it exactly."""
    from safetensors import safe_open
    with safe_open(os.path.join(out, "base.safetensors"), "pt") as f:
        cfg = json.loads(f.metadata()["lf.config"])
        sgm = {k: f.get_tensor(k) for k in f.keys() if k.startswith("model.diffusion_model.")}
    meta = {"lf.config": json.dumps({"unet": cfg["unet"]}, sort_keys=True)}
    save_file(sgm, os.path.join(out, "unet_sgm.safetensors"), metadata=meta)
    with safe_open(os.path.join(out, "base_diffusers", "unet",
                                "diffusion_pytorch_model.safetensors"), "pt") as f:
        dif = {k: f.get_tensor(k) for k in f.keys()}
    save_file(dif, os.path.join(out, "unet_diffusers.safetensors"), metadata=meta)
    folder = os.path.join(out, "base_diffusers")
    for name, sub, fname, key in [("clip_l", "text_encoder", "model", "text_encoder"),
                                  ("clip_g", "text_encoder_2", "model", "text_encoder"),
                                  ("vae", "vae", "diffusion_pytorch_model", "vae")]:
        with safe_open(os.path.join(folder, sub, fname + ".safetensors"), "pt") as f:
            sd = {k: f.get_tensor(k) for k in f.keys()}
        with open(os.path.join(folder, sub, "config.json")) as f:
            c = json.load(f)
        save_file(sd, os.path.join(out, name + ".safetensors"),
                  metadata={"lf.config": json.dumps({key: c}, sort_keys=True)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="also the full-size SDXL checkpoint")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--no-pipelines", action="store_true")
    ap.add_argument("--parts-only", action="store_true", help="only the UNet-only part files")
    a = ap.parse_args()
    if a.parts_only:
        parts(a.out)
        return 0
    torch.set_num_threads(2)
    os.makedirs(a.out, exist_ok=True)
    base = build(UNET_BASE, True, 200)
    refiner = build(UNET_REFINER, False, 201)
    # The refiner shares the base's VAE (as diffusers' base + refiner flow).
    refiner = (refiner[0], base[1], None, refiner[3])
    for name, (unet, vae, tl, tg), n_ids in [("base", base, 6), ("refiner", refiner, 5)]:
        save_file(sgm_state(unet, vae, tl, tg), os.path.join(a.out, "%s.safetensors" % name),
                  metadata={"lf.config": lf_config(unet, tl, tg)})
        save_file(references(unet, vae, tl, tg, torch.Generator().manual_seed(7), n_ids),
                  os.path.join(a.out, "%s_ref.safetensors" % name))
    save_diffusers(os.path.join(a.out, "base_diffusers"), *base)
    save_ckpt(os.path.join(a.out, "base.ckpt"), *base)
    parts(a.out)
    if not a.no_pipelines:
        if not os.path.exists(mpf.VOCAB):
            print("reference data %s absent: no pipeline references" % mpf.VOCAB)
        else:
            pipelines(a.out, base, refiner)
    if a.full:
        full(os.path.join(HERE, "out"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
