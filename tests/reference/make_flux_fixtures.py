#!/usr/bin/env python3
"""Writes tiny random-weight Flux parts and their reference outputs for
tests/engine/test_flux.c (diffusers 0.31 / torch 2.5 are the reference).

Weights are rounded to f16 and stored as f16; the references run in f32 on
the same rounded values. Every weights file carries an "lf.config" metadata
entry with the diffusers config (what shapes cannot say for these sizes:
heads, RoPE axes, VAE groups and factors).

Transformers (FluxTransformer2DModel, attention_head_dim 16 = axes 4+6+6):
  dev      guidance_embeds, 2 double + 2 single blocks, batch 2
           flux_dev_diffusers.safetensors  diffusers names (to_q/to_k/to_v split)
           flux_dev_bfl.safetensors        the original BFL layout as ComfyUI and
                                           single-file users have it, under
                                           model.diffusion_model. (img_attn.qkv fused,
                                           linear1 = q,k,v,mlp, final adaLN as
                                           (shift, scale): the inverse of diffusers'
                                           convert_flux_transformer_checkpoint_to_diffusers)
  schnell  no guidance, 1 double + 1 single block, batch 1, BFL layout without
           a prefix (flux_schnell_bfl.safetensors)
  *_ref.safetensors: the inputs (x packed [B, N, 64], txt [B, T, J], pooled,
  t, guidance, img_ids, txt_ids) and the output.

CLIP-L stand-in (CLIPTextModel, hidden 20 = the transformers' pooled width):
flux_clip_l.safetensors (text_model.* names) and flux_clip_l_ref.safetensors
(ids, pooler_output).

T5 stub (T5EncoderModel, d_model 24, one layer, vocabulary 64):
flux_t5_stub.safetensors and flux_t5_stub_ref.safetensors (ids [1, 256]
padded as schnell's max_sequence_length, out: last_hidden_state).

VAE (AutoencoderKL, 16 latent channels, no quant convs, scaling 0.3611, shift
0.1159): flux_vae.safetensors in the BFL ae.safetensors layout (encoder.down.N,
decoder.up.N, mid.block_1, ...) and flux_vae_ref.safetensors: z -> image
(decode) and image -> latent mean (encode).

Generation from a prompt (FluxPipeline, the dev transformer, 3 steps,
guidance 3.5, 16x24 pixels, PROMPT tokenized by the real CLIP and T5
tokenizers from the shared refdata): flux_prompt_clip_l.safetensors (CLIP's
whole vocabulary, hidden 20), flux_prompt_t5.safetensors (d_model 24, the
vocabulary's first 2048 ids: the prompt's fit) and, in flux_gen_ref,
"prompt.latent" (the final latent, unpacked NCHW) and "prompt.image" ([0, 1]).

Generation (FluxPipeline with prompt_embeds / pooled_prompt_embeds given, a
fixed packed initial latent, output_type "latent" and "pt"):
  gen_schnell: the schnell transformer, 3 steps, shift 1.0, no dynamic shift
  gen_dev:     the dev transformer, 3 steps, dynamic shift (mu from the
               sequence length), guidance 3.5
flux_gen_ref.safetensors holds per case the sigmas, the final packed latent
and the image, and FlowMatchEulerDiscreteScheduler's sigmas for 1, 4, 20 and
28 steps: dynamic (mu for sequence lengths 64 .. 6000) and static shift 1 / 3
("sigmas.dynamic.<steps>.<seq>", "sigmas.shift.<steps>.<shift>").

  /work/venv-torch2/bin/python tests/reference/make_flux_fixtures.py
"""
import argparse
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from diffusers.pipelines.flux.pipeline_flux import calculate_shift

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "engine", "fixtures", "flux")


def f16_round(m):
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().float())
    return m


def randomize(m, seed, scale=0.2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("norm_q.weight") or name.endswith("norm_k.weight") or \
                    name.endswith("norm_added_q.weight") or name.endswith("norm_added_k.weight") or \
                    ("norm" in name and name.endswith(".weight") and p.ndim == 1):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[1] if p.ndim > 1 else 1
                s = scale if p.ndim == 1 else 1.0 / fan_in ** 0.5
                p.copy_(s * torch.randn(p.shape, generator=g))
    return f16_round(m)


def bfl_state(sd):
    """diffusers FluxTransformer2DModel names -> BFL flux/model.py names."""
    o = {}
    cat = lambda *ks: torch.cat([sd[k] for k in ks], 0)
    o["img_in.weight"], o["img_in.bias"] = sd["x_embedder.weight"], sd["x_embedder.bias"]
    o["txt_in.weight"], o["txt_in.bias"] = sd["context_embedder.weight"], sd["context_embedder.bias"]
    for bfl, dif in (("time_in", "timestep_embedder"), ("vector_in", "text_embedder"),
                     ("guidance_in", "guidance_embedder")):
        for a, b in (("in_layer", "linear_1"), ("out_layer", "linear_2")):
            for s in ("weight", "bias"):
                k = f"time_text_embed.{dif}.{b}.{s}"
                if k in sd:
                    o[f"{bfl}.{a}.{s}"] = sd[k]
    i = 0
    while f"transformer_blocks.{i}.norm1.linear.weight" in sd:
        p, q = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        for s in ("weight", "bias"):
            o[q + "img_mod.lin." + s] = sd[p + "norm1.linear." + s]
            o[q + "txt_mod.lin." + s] = sd[p + "norm1_context.linear." + s]
            o[q + "img_attn.qkv." + s] = cat(*(p + f"attn.to_{x}.{s}" for x in "qkv"))
            o[q + "txt_attn.qkv." + s] = cat(*(p + f"attn.add_{x}_proj.{s}" for x in "qkv"))
            o[q + "img_attn.proj." + s] = sd[p + "attn.to_out.0." + s]
            o[q + "txt_attn.proj." + s] = sd[p + "attn.to_add_out." + s]
            o[q + "img_mlp.0." + s] = sd[p + "ff.net.0.proj." + s]
            o[q + "img_mlp.2." + s] = sd[p + "ff.net.2." + s]
            o[q + "txt_mlp.0." + s] = sd[p + "ff_context.net.0.proj." + s]
            o[q + "txt_mlp.2." + s] = sd[p + "ff_context.net.2." + s]
        o[q + "img_attn.norm.query_norm.scale"] = sd[p + "attn.norm_q.weight"]
        o[q + "img_attn.norm.key_norm.scale"] = sd[p + "attn.norm_k.weight"]
        o[q + "txt_attn.norm.query_norm.scale"] = sd[p + "attn.norm_added_q.weight"]
        o[q + "txt_attn.norm.key_norm.scale"] = sd[p + "attn.norm_added_k.weight"]
        i += 1
    n_double, i = i, 0
    while f"single_transformer_blocks.{i}.norm.linear.weight" in sd:
        p, q = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        for s in ("weight", "bias"):
            o[q + "modulation.lin." + s] = sd[p + "norm.linear." + s]
            o[q + "linear1." + s] = cat(p + f"attn.to_q.{s}", p + f"attn.to_k.{s}",
                                         p + f"attn.to_v.{s}", p + f"proj_mlp.{s}")
            o[q + "linear2." + s] = sd[p + "proj_out." + s]
        o[q + "norm.query_norm.scale"] = sd[p + "attn.norm_q.weight"]
        o[q + "norm.key_norm.scale"] = sd[p + "attn.norm_k.weight"]
        i += 1
    n_single = i
    swap = lambda w: torch.cat(w.chunk(2, 0)[::-1], 0)  # diffusers (scale, shift) -> BFL (shift, scale)
    for s in ("weight", "bias"):
        o["final_layer.adaLN_modulation.1." + s] = swap(sd["norm_out.linear." + s])
        o["final_layer.linear." + s] = sd["proj_out." + s]
    # fused: 12 q/k/v tensors -> 4 per double block, 8 q/k/v/mlp -> 2 per single block
    assert len(o) == len(sd) - 8 * n_double - 6 * n_single, (len(o), len(sd))
    return o


def save(tensors, name, config=None, prefix=""):
    meta = {"lf.config": json.dumps(config)} if config is not None else None
    save_file({prefix + k: v.detach().half().contiguous() if v.is_floating_point() else v
               for k, v in tensors.items()}, os.path.join(OUT, name), metadata=meta)


def ids_for(h2, w2, t):
    img = torch.zeros(h2, w2, 3)
    img[..., 1] += torch.arange(h2)[:, None]
    img[..., 2] += torch.arange(w2)[None, :]
    return img.reshape(h2 * w2, 3), torch.zeros(t, 3)


def tiny_transformer(guidance, layers, single, seed):
    cfg = dict(patch_size=1, in_channels=64, num_layers=layers, num_single_layers=single,
               attention_head_dim=16, num_attention_heads=2, joint_attention_dim=24,
               pooled_projection_dim=20, guidance_embeds=guidance, axes_dims_rope=[4, 6, 6])
    m = randomize(FluxTransformer2DModel(**cfg), seed).eval()
    return m, cfg


def transformer_case(name, guidance, layers, single, batch, seed, layouts):
    m, cfg = tiny_transformer(guidance, layers, single, seed)
    sd = m.state_dict()
    for layout in layouts:
        if layout == "diffusers":
            save(sd, f"flux_{name}_diffusers.safetensors", {"transformer": cfg})
        elif layout == "bfl_prefixed":
            save(bfl_state(sd), f"flux_{name}_bfl.safetensors", {"transformer": cfg},
                 "model.diffusion_model.")
        else:
            save(bfl_state(sd), f"flux_{name}_bfl.safetensors", {"transformer": cfg})
    g = torch.Generator().manual_seed(seed + 1)
    h2, w2, T = 3, 4, 5
    x = torch.randn(batch, h2 * w2, 64, generator=g)
    txt = torch.randn(batch, T, 24, generator=g)
    pooled = torch.randn(batch, 20, generator=g)
    t = torch.tensor([0.75, 0.3][:batch])
    gd = torch.tensor([3.5, 2.0][:batch]) if guidance else None
    img_ids, txt_ids = ids_for(h2, w2, T)
    with torch.no_grad():
        out = m(hidden_states=x, encoder_hidden_states=txt, pooled_projections=pooled, timestep=t,
                img_ids=img_ids, txt_ids=txt_ids, guidance=gd, return_dict=False)[0]
    ref = {"x": x, "txt": txt, "pooled": pooled, "t": t, "img_ids": img_ids, "txt_ids": txt_ids,
           "out": out}
    if gd is not None:
        ref["guidance"] = gd
    save_file({k: v.float().contiguous() for k, v in ref.items()},
              os.path.join(OUT, f"flux_{name}_ref.safetensors"))
    return m


def vae_bfl_state(sd):
    """diffusers AutoencoderKL names -> the original (BFL ae.safetensors / LDM) names."""
    o = {}
    for k, v in sd.items():
        n = k
        for half in ("encoder", "decoder"):
            n = n.replace(f"{half}.mid_block.resnets.0.", f"{half}.mid.block_1.")
            n = n.replace(f"{half}.mid_block.resnets.1.", f"{half}.mid.block_2.")
            n = n.replace(f"{half}.mid_block.attentions.0.", f"{half}.mid.attn_1.")
            n = n.replace(f"{half}.conv_norm_out.", f"{half}.norm_out.")
        n = n.replace("mid.attn_1.group_norm.", "mid.attn_1.norm.")
        n = n.replace("mid.attn_1.to_q.", "mid.attn_1.q.").replace("mid.attn_1.to_k.", "mid.attn_1.k.")
        n = n.replace("mid.attn_1.to_v.", "mid.attn_1.v.").replace("mid.attn_1.to_out.0.", "mid.attn_1.proj_out.")
        if "mid.attn_1." in n and n.endswith(".weight") and v.ndim == 2:
            v = v[:, :, None, None]
        n = n.replace(".conv_shortcut.", ".nin_shortcut.")
        if n.startswith("encoder.down_blocks."):
            parts = n.split(".")
            lvl = parts[2]
            rest = ".".join(parts[3:])
            rest = rest.replace("resnets.", "block.").replace("downsamplers.0.", "downsample.")
            n = f"encoder.down.{lvl}.{rest}"
        if n.startswith("decoder.up_blocks."):
            parts = n.split(".")
            lvl = NLEV - 1 - int(parts[2])
            rest = ".".join(parts[3:])
            rest = rest.replace("resnets.", "block.").replace("upsamplers.0.", "upsample.")
            n = f"decoder.up.{lvl}.{rest}"
        o[n] = v
    return o


NLEV = 2


def tiny_vae(seed):
    cfg = dict(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=[8, 16],
               down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
               layers_per_block=1, norm_num_groups=4, scaling_factor=0.3611, shift_factor=0.1159,
               use_quant_conv=False, use_post_quant_conv=False, sample_size=32)
    m = randomize(AutoencoderKL(**cfg), seed).eval()
    return m, cfg


PROMPT = "a cat in the house"
PROMPT_SEED = 1234
REFDATA = os.path.join(HERE, "..", "..", "..", "shared", "refdata", "tokenizers")


def prompt_case(dev, vae):
    """FluxPipeline from a prompt: the real CLIP and T5 tokenizers (refdata),
    a CLIP-L stand-in with CLIP's whole vocabulary and a T5 whose vocabulary
    covers the prompt's ids; initial noise torch.randn(1x16x8x12) from a CPU
    generator seeded PROMPT_SEED, packed and passed as latents."""
    import tempfile
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel, T5TokenizerFast
    from make_pipeline_fixtures import tokenizer as clip_tokenizer
    tok2 = T5TokenizerFast(tokenizer_file=os.path.join(REFDATA, "t5", "tokenizer.json"))
    t5_vocab = 2048
    assert max(tok2(PROMPT).input_ids) < t5_vocab
    ccfg = CLIPTextConfig(vocab_size=49408, hidden_size=20, intermediate_size=40, num_hidden_layers=2,
                          num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                          bos_token_id=49406, eos_token_id=49407)
    clip = f16_round(randomize(CLIPTextModel(ccfg), 7000)).eval()
    save(clip.state_dict(), "flux_prompt_clip_l.safetensors",
         {"text_encoder": {"num_attention_heads": 2, "hidden_act": "quick_gelu"}})
    t5 = f16_round(randomize(T5EncoderModel(T5Config(vocab_size=t5_vocab, d_model=24, d_kv=8, d_ff=32,
                                                     num_layers=1, num_heads=3,
                                                     feed_forward_proj="gated-gelu")), 7001)).eval()
    save(t5.state_dict(), "flux_prompt_t5.safetensors")
    sch = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                          base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                          max_image_seq_len=4096)
    with tempfile.TemporaryDirectory() as tmp:
        pipe = FluxPipeline(scheduler=sch, vae=vae, text_encoder=clip, tokenizer=clip_tokenizer(tmp),
                            text_encoder_2=t5, tokenizer_2=tok2, transformer=dev)
        noise = torch.randn((1, 16, 8, 12), generator=torch.Generator().manual_seed(PROMPT_SEED))
        lat = FluxPipeline._pack_latents(noise, 1, 16, 8, 12)
        with torch.no_grad():
            kw = dict(prompt=PROMPT, height=16, width=24, num_inference_steps=3, guidance_scale=3.5,
                      max_sequence_length=512)
            out = pipe(latents=lat.clone(), output_type="latent", **kw).images
            image = pipe(latents=lat.clone(), output_type="pt", **kw).images
    latent = out.view(1, 4, 6, 16, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(1, 16, 8, 12)
    return {"prompt.latent": latent, "prompt.image": image}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    dev = transformer_case("dev", True, 2, 2, 2, 1000, ("diffusers", "bfl_prefixed"))
    schnell = transformer_case("schnell", False, 1, 1, 1, 2000, ("bfl",))

    vae, vcfg = tiny_vae(3000)
    save(vae_bfl_state(vae.state_dict()), "flux_vae.safetensors", {"vae": vcfg})
    g = torch.Generator().manual_seed(3001)
    z = torch.randn(1, 16, 6, 8, generator=g)
    img = torch.rand(1, 3, 12, 16, generator=g) * 2 - 1
    with torch.no_grad():
        dec = vae.decode(z).sample
        enc = vae.encode(img).latent_dist.mean
    save_file({"z": z, "image": dec.contiguous(), "x": img, "mean": enc.contiguous()},
              os.path.join(OUT, "flux_vae_ref.safetensors"))

    # CLIP-L stand-in: a CLIPTextModel whose pooled output (pooler_output:
    # the final-norm'd state at the EOS, the largest id) is the transformer's
    # pooled_projection_dim (20), HF names as ComfyUI's clip_l.safetensors.
    from transformers import CLIPTextConfig, CLIPTextModel
    ccfg = CLIPTextConfig(vocab_size=1000, hidden_size=20, intermediate_size=40, num_hidden_layers=2,
                          num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                          bos_token_id=998, eos_token_id=999)
    clip = randomize(CLIPTextModel(ccfg), 5000).eval()
    save(clip.state_dict(), "flux_clip_l.safetensors",
         {"text_encoder": {"num_attention_heads": 2, "hidden_act": "quick_gelu"}})
    ids = torch.tensor([[998, 5, 17, 300, 999] + [999] * 72])
    with torch.no_grad():
        co = clip(ids)
    save_file({"ids": ids.float(), "pooled": co.pooler_output.contiguous()},
              os.path.join(OUT, "flux_clip_l_ref.safetensors"))

    # A tiny T5 encoder (d_model 24 = the transformers' joint_attention_dim)
    # for the assembly of parts: recognised as Flux's T5 by its names and width.
    from transformers import T5Config, T5EncoderModel
    t5 = randomize(T5EncoderModel(T5Config(vocab_size=64, d_model=24, d_kv=8, d_ff=32, num_layers=1,
                                           num_heads=3, feed_forward_proj="gated-gelu")), 6000)
    save(t5.state_dict(), "flux_t5_stub.safetensors")
    # Its last hidden state for one schnell-length (256) id row, on the f16
    # weights (what lf_model_encode_t5 gives a schnell model with this part).
    f16_round(t5).eval()
    t5_ids = torch.tensor([[7, 21, 3, 60, 12, 1] + [0] * 250])
    with torch.no_grad():
        t5_out = t5(t5_ids).last_hidden_state
    save_file({"ids": t5_ids.float(), "out": t5_out.contiguous()},
              os.path.join(OUT, "flux_t5_stub_ref.safetensors"))

    ref = {}
    for name, tr, steps, dyn, guidance in (("schnell", schnell, 3, False, 0.0), ("dev", dev, 3, True, 3.5)):
        sch = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0 if not dyn else 3.0,
                                              use_dynamic_shifting=dyn, base_shift=0.5, max_shift=1.15,
                                              base_image_seq_len=256, max_image_seq_len=4096)
        pipe = FluxPipeline(scheduler=sch, vae=vae, text_encoder=None, tokenizer=None,
                            text_encoder_2=None, tokenizer_2=None, transformer=tr)
        g = torch.Generator().manual_seed(4000)
        H, W = 16, 24  # pixels: latent 8 x 12 (VAE scale 2), packed 4 x 6 = 24 tokens
        lat = torch.randn(1, 4 * 6, 64, generator=g)
        pe = torch.randn(1, 7, 24, generator=g)
        pooled = torch.randn(1, 20, generator=g)
        sigmas = []
        def cb(p, i, t, kw):
            sigmas.append(float(t) / 1000)
            return {}
        with torch.no_grad():
            out = pipe(prompt_embeds=pe, pooled_prompt_embeds=pooled, height=H, width=W,
                       num_inference_steps=steps, guidance_scale=guidance, latents=lat.clone(),
                       output_type="latent", callback_on_step_end=cb).images
            image = pipe(prompt_embeds=pe, pooled_prompt_embeds=pooled, height=H, width=W,
                         num_inference_steps=steps, guidance_scale=guidance, latents=lat.clone(),
                         output_type="pt").images
        ref[f"{name}.init"] = lat
        ref[f"{name}.prompt_embeds"] = pe
        ref[f"{name}.pooled"] = pooled
        ref[f"{name}.sigmas"] = pipe.scheduler.sigmas.float()
        ref[f"{name}.latent"] = out
        ref[f"{name}.image"] = image  # [0, 1]
    ref.update(prompt_case(dev, vae))
    # Schedules as FluxPipeline sets them (sigmas linspace(1, 1/n, n), mu from
    # the sequence length) for the sizes and step counts users run.
    for steps in (1, 4, 20, 28):
        for seq in (64, 256, 1024, 4096, 6000):
            sch = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                  base_image_seq_len=256, max_image_seq_len=4096)
            mu = calculate_shift(seq, 256, 4096, 0.5, 1.15)
            sch.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
            ref[f"sigmas.dynamic.{steps}.{seq}"] = sch.sigmas.float()
        for shift in (1.0, 3.0):
            sch = FlowMatchEulerDiscreteScheduler(shift=shift)
            sch.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps))
            ref[f"sigmas.shift.{steps}.{shift:g}"] = sch.sigmas.float()
    save_file({k: v.float().contiguous() for k, v in ref.items()},
              os.path.join(OUT, "flux_gen_ref.safetensors"))
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
