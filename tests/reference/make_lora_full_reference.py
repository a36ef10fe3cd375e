#!/usr/bin/env python3
"""Reference for the real SD1.5 LoRA merged into a full-size random SD1.5
model (tests/engine/test_lora_full.c): what diffusers' LoRA loading and
fuse_lora make of it.

The model is make_model_fixtures.py's full-size random checkpoint
(build(FULL, 1), the same weights as its --full output; written to
tests/reference/out/sd15_full.safetensors when not there yet). The LoRA is
../shared/refdata/lora/sd15_diffusers_lora_rank4.safetensors (diffusers
attention-processor names, rank 4, 128 UNet layers). diffusers loads it into
the UNet (LoraLoaderMixin.lora_state_dict + load_lora_into_unet, as
pipe.load_lora_weights does) and fuses it at scale 1 (fuse_lora: W += up @ down
in float32 on the f16-rounded weights); this script then saves, under
tests/reference/out/sd15_full_lora_ref.safetensors (not committed):
  - "w.<pool name>": three fused layers (f32), one per UNet level kind,
  - "unet_x", "unet_t", "unet_ctx", "unet_out": one UNet step on an 8x8
    latent with the fused weights, and "unet_out_plain" without the LoRA;
  - "pipe_latent", "pipe_image" (and "pipe_latent_plain" before the LoRA):
    a whole StableDiffusionPipeline generation with the fused LoRA, 64x64,
    euler / normal, 4 steps, CFG 5, seed 1234, the prompt and negative prompt
    of make_pipeline_fixtures.py, real CLIP BPE (the reference data's merges
    file), started as that script starts its euler case (the final latents
    before the VAE, the VAE's float output before clamping).

  /work/venv-ref/bin/python tests/reference/make_lora_full_reference.py
  ... --sdxl-lora   only writes tests/reference/out/sdxl_full_lora_rank8.safetensors:
                    a kohya LoRA (sd-scripts' SDXL names: lora_unet_ + SGM paths,
                    lora_te1_, lora_te2_) for the full-size SDXL of
                    make_sdxl_fixtures.py --full, rank 8, random f16 factors, on
                    every attention projection and feed-forward of the UNet and the
                    attention and MLP layers of both text encoders (bench_lora --sdxl;
                    shapes from meta-device models, no weights made)
(diffusers 0.27.2 + peft 0.10 on torch 1.13; see requirements.txt.)
"""
import os
import sys

import torch
from diffusers.loaders import LoraLoaderMixin
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_model_fixtures as mm  # noqa: E402
import make_pipeline_fixtures as mpf  # noqa: E402

OUT = os.path.join(HERE, "out")
LORA = os.path.join(HERE, "..", "..", "..", "shared", "refdata", "lora",
                    "sd15_diffusers_lora_rank4.safetensors")
LAYERS = ["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
          "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight",
          "up_blocks.3.attentions.2.transformer_blocks.0.attn1.to_out.0.weight"]


SIZE, STEPS = 64, 4


def generate(unet, vae, text):
    """make_pipeline_fixtures.py's euler case at SIZE x SIZE."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
    import tempfile
    tok = mpf.tokenizer(tempfile.mkdtemp())
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   num_train_timesteps=1000, prediction_type="epsilon", steps_offset=1,
                                   timestep_spacing="linspace")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator().manual_seed(mpf.SEED)
    noise = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=gen)
    s0 = float(mpf.lf_schedule("normal", STEPS)[0])
    lat = pipe(mpf.PROMPT, negative_prompt=mpf.NEGATIVE, height=SIZE, width=SIZE,
               num_inference_steps=STEPS, guidance_scale=mpf.CFG, generator=gen,
               latents=noise * s0 / float(sched.init_noise_sigma), output_type="latent").images
    img = vae.decode(lat / vae.config.scaling_factor).sample
    return lat.float(), img.float()


def sdxl_lora(path, r=8):
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    import make_sdxl_fixtures as msf
    with init_empty_weights():
        unet = UNet2DConditionModel(**msf.FULL_UNET)
        te1 = CLIPTextModel(CLIPTextConfig(**msf.FULL_TEXT_L))
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**msf.FULL_TEXT_G))
    layers = unet.config.layers_per_block
    up_attn = [t.startswith("CrossAttn") for t in unet.config.up_block_types]
    gen = torch.Generator().manual_seed(8)
    t = {}

    def add(name, shape):
        out, inp = shape
        t[name + ".lora_down.weight"] = (torch.randn(r, inp, generator=gen) * 0.02).half()
        t[name + ".lora_up.weight"] = (torch.randn(out, r, generator=gen) * 0.02).half()
        t[name + ".alpha"] = torch.tensor(float(r), dtype=torch.float16)

    for n, p in unet.named_parameters():
        if n.endswith(".weight") and p.dim() == 2 and ".transformer_blocks." in n and any(
                k in n for k in (".to_q.", ".to_k.", ".to_v.", ".to_out.0.", ".ff.net.0.proj.", ".ff.net.2.")):
            add("lora_unet_" + mm.unet_to_ldm(n, layers, up_attn)[:-len(".weight")].replace(".", "_"),
                tuple(p.shape))
    for kp, m in (("lora_te1_", te1), ("lora_te2_", te2)):
        for n, p in m.named_parameters():
            if n.endswith(".weight") and p.dim() == 2 and ".encoder.layers." in n:
                add(kp + n[:-len(".weight")].replace(".", "_"), tuple(p.shape))
    save_file(t, path, metadata={"ss_output_name": "sdxl_full_rank8"})
    print("wrote", path, os.path.getsize(path) // 1000000, "MB,", len(t) // 3, "modules")


def main():
    torch.set_num_threads(2)
    if "--sdxl-lora" in sys.argv:
        os.makedirs(OUT, exist_ok=True)
        return sdxl_lora(os.path.join(OUT, "sdxl_full_lora_rank8.safetensors"))
    os.makedirs(OUT, exist_ok=True)
    unet, vae, text = mm.build(mm.FULL, 1)
    ck = os.path.join(OUT, "sd15_full.safetensors")
    if not os.path.exists(ck):
        save_file(mm.ldm_state(mm.FULL, unet, vae, text), ck)
        print("wrote", ck)
    # The checkpoint holds f16: run on exactly those values.
    unet = unet.half().float().eval()
    vae, text = vae.half().float().eval(), text.half().float().eval()
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(1, 4, 8, 8, generator=gen)
    t = torch.tensor([500.0])
    ctx = torch.randn(1, 77, 768, generator=gen)
    r = {"unet_x": x, "unet_t": t, "unet_ctx": ctx}
    with torch.no_grad():
        r["unet_out_plain"] = unet(x, t, encoder_hidden_states=ctx).sample
        r["pipe_latent_plain"], _ = generate(unet, vae, text)
    # What pipe.load_lora_weights does for the UNet (diffusers 0.27 with PEFT:
    # the attention-processor names are converted, then PEFT layers wrap the
    # Linear ones; UNet2DConditionModel.load_attn_procs alone leaves this old
    # format unapplied, silently).
    state_dict, alphas = LoraLoaderMixin.lora_state_dict(load_file(LORA))
    LoraLoaderMixin.load_lora_into_unet(state_dict, alphas, unet=unet)
    unet.fuse_lora(lora_scale=1.0)
    sd = unet.state_dict()
    for n in LAYERS:
        key = n if n in sd else n.replace(".weight", ".base_layer.weight")
        r["w.unet." + n] = sd[key].float()
    with torch.no_grad():
        r["unet_out"] = unet(x, t, encoder_hidden_states=ctx).sample
        r["pipe_latent"], r["pipe_image"] = generate(unet, vae, text)
    d = (r["pipe_latent"] - r["pipe_latent_plain"]).abs().max() / r["pipe_latent_plain"].abs().max()
    print("the LoRA moves the 64x64 generation's latent by", float(d), "relative")
    save_file({k: v.contiguous() for k, v in r.items()}, os.path.join(OUT, "sd15_full_lora_ref.safetensors"))
    d = (r["unet_out"] - r["unet_out_plain"]).abs().max().item()
    print("LoRA changes the UNet output by up to", d)
    if d == 0:
        sys.exit("the LoRA was not applied")


if __name__ == "__main__":
    main()
