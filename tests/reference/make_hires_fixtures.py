#!/usr/bin/env python3
"""Hires-Fix reference for tests/engine/test_hires.c: A1111's two-pass
txt2img (processing.py StableDiffusionProcessingTxt2Img.sample /
sample_hr_pass) run by hand with diffusers on the built-in model
models/lf-tiny-shapes.safetensors.

  pass 1  StableDiffusionPipeline, 64x64, Euler, diffusers' linspace
          spacing (= lightfarm's "normal"), from torch.randn(1x4x8x8) of a
          CPU generator seeded with SEED (output_type="latent");
  upscale "Latent": F.interpolate(latent, size=(h/8, w/8), mode="bilinear",
          antialias=False) (A1111's latent_upscale_modes["Latent"]);
          "Lanczos": VAE decode, clamp((x+1)/2) * 255 truncated to uint8
          (A1111's astype), PIL LANCZOS to the target (A1111's
          UpscalerLanczos through images.resize_image), /255, *2-1, VAE
          encode (posterior mean, as lightfarm's img2img) * scaling factor;
  pass 2  StableDiffusionImg2ImgPipeline on those latents with
          num_inference_steps = int(HR_STEPS / DENOISE) and strength =
          DENOISE: diffusers runs the last HR_STEPS of that schedule, which
          is A1111's setup_img2img_steps with explicit steps (the hires
          pass); its noise is torch.randn(1x4xH/8xW/8) from a FRESH
          generator seeded with SEED (A1111 builds a new ImageRNG for the
          second pass), added as z + noise * sigma_start.
Output (tests/engine/fixtures/hires/): <case>.u8 (the final 128x128 RGB
image, HWC uint8, truncated as the engine writes it) and cases.json.

  /work/venv-ref/bin/python tests/reference/make_hires_fixtures.py
(the venv: tests/reference/requirements.txt; needs the shared reference
data's CLIP BPE file, as tools/train does.)
"""
import json
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "train"))
os.environ.setdefault("LF_CLIP_BPE", os.path.join(REPO, "..", "shared", "refdata", "tokenizers", "clip",
                                                  "bpe_simple_vocab_16e6.txt.gz"))
import lf_tok  # noqa: E402
import sd_convert  # noqa: E402

OUT = os.path.join(HERE, "..", "engine", "fixtures", "hires")
MODEL = os.path.join(REPO, "models", "lf-tiny-shapes.safetensors")
PROMPT = "a large yellow square in the center on a black background"
NEGATIVE = "blurry"
SEED = 7
STEPS = 6
CFG = 5.0
SIZE = 64
SCALE = 2.0
HR_STEPS = 4
DENOISE = 0.5
CASES = [("latent", "Latent"), ("lanczos", "Lanczos")]


def to_u8(img):  # [-1,1] NCHW -> HWC uint8, truncated (astype(np.uint8))
    x = torch.clamp((img[0] + 1.0) / 2.0, 0.0, 1.0)
    return (x.permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)


def main():
    from diffusers import (EulerDiscreteScheduler, StableDiffusionImg2ImgPipeline,
                           StableDiffusionPipeline)
    from PIL import Image
    torch.set_num_threads(2)
    unet, vae, te = sd_convert.load_single_file(MODEL)
    tok = lf_tok.load_tokenizer(tempfile.mkdtemp())
    sched = EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                   beta_schedule="scaled_linear", prediction_type="epsilon", steps_offset=1,
                                   timestep_spacing="linspace")
    kw = dict(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched, safety_checker=None,
              feature_extractor=None, requires_safety_checker=False)
    t2i = StableDiffusionPipeline(**kw)
    i2i = StableDiffusionImg2ImgPipeline(**kw)
    for p in (t2i, i2i):
        p.set_progress_bar_config(disable=True)
    sf = vae.config.scaling_factor
    H = int(SIZE * SCALE)
    total = int(HR_STEPS / min(DENOISE, 0.999))
    assert int(total * DENOISE) == HR_STEPS, "pick values where diffusers' strength rule is A1111's"
    os.makedirs(OUT, exist_ok=True)
    cases = []
    with torch.no_grad():
        g = torch.Generator().manual_seed(SEED)
        lat = torch.randn((1, 4, SIZE // 8, SIZE // 8), generator=g)
        z1 = t2i(PROMPT, negative_prompt=NEGATIVE, height=SIZE, width=SIZE, num_inference_steps=STEPS,
                 guidance_scale=CFG, latents=lat, generator=g,  # the pipeline scales by init_noise_sigma
                 output_type="latent").images
        for name, upscaler in CASES:
            if upscaler == "Latent":
                z = F.interpolate(z1, size=(H // 8, H // 8), mode="bilinear", antialias=False)
            else:
                first = to_u8(vae.decode(z1 / sf).sample)
                big = Image.fromarray(first).resize((H, H), resample=Image.LANCZOS)
                x = torch.from_numpy(np.asarray(big).astype(np.float32) / 255.0).permute(2, 0, 1)[None]
                z = vae.encode(x * 2.0 - 1.0).latent_dist.mean * sf
            g2 = torch.Generator().manual_seed(SEED)
            z2 = i2i(PROMPT, image=z, negative_prompt=NEGATIVE, strength=DENOISE, num_inference_steps=total,
                     guidance_scale=CFG, generator=g2, output_type="latent").images
            img = to_u8(vae.decode(z2 / sf).sample)
            img.tofile(os.path.join(OUT, name + ".u8"))
            cases.append({"name": name, "hr_upscaler": upscaler, "width": H, "height": H})
            print(name, img.shape, img.mean())
    meta = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": SEED, "steps": STEPS, "cfg": CFG,
            "sampler": "euler", "scheduler": "normal", "width": SIZE, "height": SIZE, "hr_scale": SCALE,
            "hr_second_pass_steps": HR_STEPS, "denoising_strength": DENOISE, "cases": cases}
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
