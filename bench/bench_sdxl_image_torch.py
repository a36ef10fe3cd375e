#!/usr/bin/env python3
"""The PyTorch side of bench_sdxl --steps: one 1024x1024 SDXL image in
diffusers on the CPU, the loop StableDiffusionXLPipeline runs — both text
encoders (penultimate hidden states, pooled), EulerDiscreteScheduler with
the given timestep spacing (scale_model_input, UNet, step), the whole VAE
decode — on the same weights (a diffusers folder, f32) and the same token
ids as the C side (no tokenizer: the folder has none). cfg 1 (and 0) is one
UNet pass per step, as diffusers' guidance_scale <= 1; else CFG with the
negative ids. Each phase timed; peak RSS from getrusage.

Last line (parsed by bench_sdxl):
  RESULT torch steps=.. text_s=.. steps_s=.. decode_s=.. image_s=.. at=.. image_at_s=.. load_s=..
         peak_rss_kb=..

  PYTHON bench/bench_sdxl_image_torch.py --diffusers FOLDER --steps 8 --report-at 4
"""
import argparse
import os
import resource
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def load(folder):
    """UNet, VAE (diffusers from_pretrained) and both text encoders (built
    from their config.json and filled from model.safetensors: the folder's
    files carry no "format" metadata, which transformers' from_pretrained
    insists on), all f32, eval mode."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    out = {"unet": UNet2DConditionModel.from_pretrained(os.path.join(folder, "unet"),
                                                       torch_dtype=torch.float32),
           "vae": AutoencoderKL.from_pretrained(os.path.join(folder, "vae"), torch_dtype=torch.float32)}
    for key, sub, cls in [("text", "text_encoder", CLIPTextModel),
                          ("text_2", "text_encoder_2", CLIPTextModelWithProjection)]:
        d = os.path.join(folder, sub)
        mdl = cls(CLIPTextConfig.from_pretrained(d))
        sd = {k: v.float() for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
        missing, unexpected = mdl.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise SystemExit("%s: missing %s, unexpected %s" % (d, missing[:3], unexpected[:3]))
        out[key] = mdl
    for mdl in out.values():
        mdl.eval()
    return out


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--diffusers", required=True)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--cfg", type=float, default=1.0)
    ap.add_argument("--spacing", default="trailing")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--report-at", type=int, default=0)
    ap.add_argument("--latent", type=int, default=128, help="latent side (128: 1024x1024)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from diffusers import EulerDiscreteScheduler
    print("torch", torch.__version__, "diffusers", __import__("diffusers").__version__, flush=True)
    t0 = time.perf_counter()
    m = load(a.diffusers)
    load_s = time.perf_counter() - t0
    print("load %.2f s" % load_s, flush=True)
    unet, vae, te1, te2 = m["unet"], m["vae"], m["text"], m["text_2"]
    B = 1 if a.cfg in (0.0, 1.0) else 2
    ids = torch.tensor([[49406 if t == 0 else (320 + 37 * t + b if t < 9 + b else 49407)
                         for t in range(77)] for b in range(B)], dtype=torch.long)
    ids = ids % te1.config.vocab_size  # (a tiny test model's small vocabulary)
    t0 = time.perf_counter()
    h1 = te1(ids, output_hidden_states=True).hidden_states[-2]
    o2 = te2(ids, output_hidden_states=True)
    ctx = torch.cat([h1, o2.hidden_states[-2]], dim=-1)
    pooled = o2.text_embeds
    text_s = time.perf_counter() - t0
    print("text %.2f s" % text_s, flush=True)
    px = 8 * a.latent
    time_ids = torch.tensor([[px, px, 0, 0, px, px]] * B, dtype=torch.float32)
    sch = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                 num_train_timesteps=1000, timestep_spacing=a.spacing, steps_offset=1)
    sch.set_timesteps(a.steps)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(1, 4, a.latent, a.latent, generator=gen) * sch.init_noise_sigma
    step_s = []
    for t in sch.timesteps:
        t1 = time.perf_counter()
        xin = sch.scale_model_input(torch.cat([x] * B), t)
        out = unet(xin, t, encoder_hidden_states=ctx,
                   added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
        if B == 2:
            c, u = out.chunk(2)
            out = u + a.cfg * (c - u)
        x = sch.step(out, t, x).prev_sample
        step_s.append(time.perf_counter() - t1)
        print("step %2d t %4d: %.2f s" % (len(step_s), int(t), step_s[-1]), flush=True)
    t1 = time.perf_counter()
    img = vae.decode(x / vae.config.scaling_factor).sample
    decode_s = time.perf_counter() - t1
    print("VAE decode %.2f s, image %s" % (decode_s, tuple(img.shape)), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    k = a.report_at
    print("RESULT torch steps=%d text_s=%.2f steps_s=%.2f decode_s=%.2f image_s=%.2f at=%d image_at_s=%.2f "
          "load_s=%.2f peak_rss_kb=%d" % (a.steps, text_s, sum(step_s), decode_s,
                                          text_s + sum(step_s) + decode_s, k,
                                          text_s + sum(step_s[:k]) + decode_s, load_s, peak))


if __name__ == "__main__":
    main()
