#!/usr/bin/env python3
"""Whole-generation references for tests/engine/test_pipeline_fewstep.c: the
few-step distilled models' samplers, schedules and prediction types, run by
diffusers' own StableDiffusionXLPipeline on the tiny random SDXL base of
make_sdxl_fixtures.py (rebuilt here from its seed, the same f16-rounded
weights as tests/engine/fixtures/sdxl/base.safetensors) — no new weights:
a "sample"-prediction model is the same UNet with the scheduler's
prediction_type changed (lightfarm: lf_model_opts_t.prediction).

Cases (lightfarm sampler / scheduler <- diffusers scheduler):
  lightning_eps_N  euler / trailing, cfg 1   <- EulerDiscreteScheduler(timestep_spacing=
                   "trailing"), N = 1, 2, 4, 8 (SDXL-Lightning's 2/4/8-step UNets)
  lightning_x0_N   the same with prediction_type="sample" (the 1-step x0 UNet)
  turbo_N          euler_ancestral / trailing, cfg 0 <- EulerAncestralDiscreteScheduler(
                   timestep_spacing="trailing"), guidance_scale 0 (SDXL-Turbo), N = 1, 2, 4
  lcm_4            lcm / lcm, cfg 1 <- LCMScheduler (its default timesteps 999 759 499 259)
  dmd2_4           lcm / trailing, cfg 0 <- LCMScheduler with timesteps=[999, 749, 499, 249]
  tcd_4, tcd_2     tcd / lcm, cfg 1 <- TCDScheduler (eta = gamma 0.3, its default timesteps)
  tcd_g0_4, tcd_g07_4  the same at 4 steps with gamma (eta) 0 and 0.7 (request tcd_gamma)
  hyper_1          tcd, timesteps [800], gamma 1, cfg 1 <- TCDScheduler, timesteps=[800], eta 1.0
                   (Hyper-SD's 1-step UNet / LoRA as its model card runs it)
  euler_ts_3       euler, timesteps [999, 850, 500], cfg 1 <- EulerDiscreteScheduler with
                   timesteps=[999, 850, 500] (diffusers >= 0.28; an older one skips the case)
  lightning_cfg_4  euler / trailing, cfg 2 with the negative prompt (guidance still works)
  lora_lightning_4 euler / trailing, cfg 1 with lora_lightning.safetensors merged at 1.0 <-
                   pipe.load_lora_weights(file) + pipe.fuse_lora() (a random rank-4 UNet LoRA
                   in kohya's layout with diffusers module paths — lora_unet_<path>.lora_down /
                   .lora_up / .alpha — over every attention, feed-forward and projection
                   Linear and every resnet conv, as SDXL-Lightning's LoRAs cover the whole
                   UNet; f32 merge: the C test loads the model with f32 weights)

Conventions as make_pipeline_fixtures.py: the start latents are
torch.randn(seed) scaled to lightfarm's noise * sigmas[0] (sigmas[0]: the
training sigma of the first timestep, 999 unless explicit; VE schedulers:
the raw noise; VP ones — LCM, TCD — noise * s0 / sqrt(1 + s0^2)), and the
same generator continues into the step noise.

  /work/venv-ref/bin/python tests/reference/make_fewstep_fixtures.py
  LF_FEWSTEP_CASES=euler_ts_3 /work/venv-torch2/bin/python tests/reference/make_fewstep_fixtures.py
The second run (diffusers 0.31: EulerDiscreteScheduler's timesteps= came in
0.28; 0.27 skips the case) writes only the cases named and merges them into
cases.json; the cases both versions run agree to 2e-6.
Outputs tests/engine/fixtures/fewstep/<case>.safetensors (latent, image) and
cases.json. Needs the CLIP merges file of the shared reference data.
"""
import inspect
import json
import os
import sys
import tempfile

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_pipeline_fixtures as mpf  # noqa: E402
import make_sdxl_fixtures as msf  # noqa: E402

from diffusers import (EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,  # noqa: E402
                       LCMScheduler, StableDiffusionXLPipeline, TCDScheduler)

OUT = os.environ.get("LF_FEWSTEP_OUT") or os.path.join(HERE, "..", "engine", "fixtures", "fewstep")
BASE = {k: v for k, v in mpf.BASE.items() if k != "prediction_type"}


def euler(pred="epsilon"):
    return EulerDiscreteScheduler(**BASE, timestep_spacing="trailing", prediction_type=pred)


CASES = []  # (name, sampler, scheduler, steps, cfg, make, vp, prediction, extra pipe kwargs)
for n in (1, 2, 4, 8):
    CASES.append(("lightning_eps_%d" % n, "euler", "trailing", n, 1.0, euler, False, "epsilon", {}))
    CASES.append(("lightning_x0_%d" % n, "euler", "trailing", n, 1.0, lambda: euler("sample"),
                  False, "sample", {}))
for n in (1, 2, 4):
    CASES.append(("turbo_%d" % n, "euler_ancestral", "trailing", n, 0.0,
                  lambda: EulerAncestralDiscreteScheduler(**BASE, timestep_spacing="trailing"),
                  False, "epsilon", {}))
CASES += [
    ("lcm_4", "lcm", "lcm", 4, 1.0, lambda: LCMScheduler(**BASE), True, "epsilon", {}),
    ("dmd2_4", "lcm", "trailing", 4, 0.0, lambda: LCMScheduler(**BASE), True, "epsilon",
     {"timesteps": [999, 749, 499, 249]}),
    ("tcd_4", "tcd", "lcm", 4, 1.0, lambda: TCDScheduler(**BASE), True, "epsilon", {"eta": 0.3}),
    ("tcd_2", "tcd", "lcm", 2, 1.0, lambda: TCDScheduler(**BASE), True, "epsilon", {"eta": 0.3}),
    ("lightning_cfg_4", "euler", "trailing", 4, 2.0, euler, False, "epsilon", {}),
    ("tcd_g0_4", "tcd", "lcm", 4, 1.0, lambda: TCDScheduler(**BASE), True, "epsilon", {"eta": 0.0}),
    ("tcd_g07_4", "tcd", "lcm", 4, 1.0, lambda: TCDScheduler(**BASE), True, "epsilon", {"eta": 0.7}),
    ("hyper_1", "tcd", "trailing", 1, 1.0, lambda: TCDScheduler(**BASE), True, "epsilon",
     {"eta": 1.0, "timesteps": [800]}),
    ("euler_ts_3", "euler", "trailing", 3, 1.0, euler, False, "epsilon", {"timesteps": [999, 850, 500]}),
]


def lightning_lora(unet, gen, rank=4):
    """A random UNet LoRA (kohya names over diffusers module paths), and its
    tensors as saved (f16-rounded values in f32)."""
    sd = {}
    for name, mod in unet.named_modules():
        conv = isinstance(mod, torch.nn.Conv2d) and ".resnets." in name and name.endswith(("conv1", "conv2"))
        lin = isinstance(mod, torch.nn.Linear) and (".attentions." in name)
        if not (conv or lin):
            continue
        key = "lora_unet_" + name.replace(".", "_")
        if lin:
            down = torch.randn(rank, mod.in_features, generator=gen) / mod.in_features ** 0.5
            up = 0.5 * torch.randn(mod.out_features, rank, generator=gen) / rank ** 0.5
        else:
            kh, kw = mod.kernel_size
            down = torch.randn(rank, mod.in_channels, kh, kw, generator=gen) / (mod.in_channels * kh * kw) ** 0.5
            up = 0.5 * torch.randn(mod.out_channels, rank, 1, 1, generator=gen) / rank ** 0.5
        sd[key + ".lora_down.weight"] = down.half().float()
        sd[key + ".lora_up.weight"] = up.half().float()
        sd[key + ".alpha"] = torch.tensor(float(rank) / 2)
    return sd


def lf_sigma0(sched_name, steps, timesteps=None):
    """lightfarm's first sigma: the LDM table at the first timestep (999 for every
    schedule here)."""
    return float(mpf.ldm_sigmas()[timesteps[0] if timesteps else 999])


@torch.no_grad()
def main():
    torch.set_num_threads(2)
    if not os.path.exists(mpf.VOCAB):
        print("reference data %s absent" % mpf.VOCAB)
        return 1
    os.makedirs(OUT, exist_ok=True)
    unet, vae, text_l, text_g = msf.build(msf.UNET_BASE, True, 200)
    text_l, text_g = msf.widened(text_l), msf.widened(text_g)
    tok, tok2 = msf.tokenizers(tempfile.mkdtemp())
    meta = []
    only = [c for c in os.environ.get("LF_FEWSTEP_CASES", "").split(",") if c]
    for name, sampler, schedule, steps, cfg, make, vp, pred, kw in CASES:
        if only and name not in only:
            continue
        sched = make()
        if "timesteps" in kw and "timesteps" not in inspect.signature(sched.set_timesteps).parameters:
            print("%s: skipped (this diffusers' %s takes no timesteps=)" % (name, type(sched).__name__))
            continue
        gen = torch.Generator().manual_seed(mpf.SEED)
        pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_l, text_encoder_2=text_g,
                                         tokenizer=tok, tokenizer_2=tok2, unet=unet,
                                         scheduler=sched, force_zeros_for_empty_prompt=True)
        pipe.set_progress_bar_config(disable=True)
        # init_noise_sigma is set by set_timesteps (trailing: sigma_max).
        if "timesteps" in kw:
            sched.set_timesteps(timesteps=kw["timesteps"])
        else:
            sched.set_timesteps(steps)
        lat0 = msf.start_latents(gen, lf_sigma0(schedule, steps, kw.get("timesteps")), vp, sched)
        args = dict(kw)
        if "timesteps" not in args:
            args["num_inference_steps"] = steps
        lat = pipe(mpf.PROMPT, negative_prompt=mpf.NEGATIVE, height=mpf.SIZE, width=mpf.SIZE,
                   guidance_scale=cfg, generator=gen, latents=lat0, output_type="latent",
                   **args).images
        ts = [int(t) for t in sched.timesteps]
        img = vae.decode(lat / vae.config.scaling_factor).sample
        save_file({"latent": lat.contiguous().float(), "image": img.contiguous().float()},
                  os.path.join(OUT, "%s.safetensors" % name))
        meta.append(dict(case=name, sampler=sampler, scheduler=schedule, steps=steps, cfg=cfg,
                         prediction=pred, diffusers=type(sched).__name__, timesteps=ts,
                         **{k: v for k, v in kw.items() if k != "timesteps"}))
        print("%-16s %-16s %-9s %d cfg %.0f %-8s t=%s |lat| %.3f" %
              (name, sampler, schedule, steps, cfg, pred, ts, float(lat.abs().max())))
    if only:  # merge into the full run's cases.json
        with open(os.path.join(OUT, "cases.json")) as f:
            full = json.load(f)
        full["cases"] = [c for c in full["cases"] if c["case"] not in only] + meta
        for m in meta:
            m["diffusers_version"] = __import__("diffusers").__version__
        with open(os.path.join(OUT, "cases.json"), "w") as f:
            json.dump(full, f, indent=1)
        return 0
    # A Lightning-style LoRA merged by diffusers (fuse_lora) into the same UNet.
    lsd = lightning_lora(unet, torch.Generator().manual_seed(20))
    lpath = os.path.join(OUT, "lora_lightning.safetensors")
    save_file({k: v.contiguous() for k, v in lsd.items()}, lpath)
    sched = euler()
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_l, text_encoder_2=text_g,
                                     tokenizer=tok, tokenizer_2=tok2, unet=unet, scheduler=sched,
                                     force_zeros_for_empty_prompt=True)
    pipe.set_progress_bar_config(disable=True)
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    pipe.load_lora_weights(lpath)
    pipe.fuse_lora(lora_scale=1.0)
    after = {k.replace(".base_layer", ""): v for k, v in pipe.unet.state_dict().items()
             if "lora_" not in k}
    changed = sum(1 for k, v in after.items() if k in before and not torch.equal(v, before[k]))
    gen = torch.Generator().manual_seed(mpf.SEED)
    sched.set_timesteps(4)
    lat0 = msf.start_latents(gen, lf_sigma0("trailing", 4), False, sched)
    lat = pipe(mpf.PROMPT, negative_prompt=mpf.NEGATIVE, height=mpf.SIZE, width=mpf.SIZE,
               guidance_scale=1.0, generator=gen, latents=lat0, output_type="latent",
               num_inference_steps=4).images
    img = vae.decode(lat / vae.config.scaling_factor).sample
    save_file({"latent": lat.contiguous().float(), "image": img.contiguous().float()},
              os.path.join(OUT, "lora_lightning_4.safetensors"))
    meta.append(dict(case="lora_lightning_4", sampler="euler", scheduler="trailing", steps=4, cfg=1.0,
                     prediction="epsilon", diffusers="EulerDiscreteScheduler", lora="lora_lightning",
                     lora_tensors=len(lsd) // 3, unet_weights_changed=changed))
    print("lora_lightning_4: %d LoRA layers, %d UNet weights changed by fuse_lora, |lat| %.3f"
          % (len(lsd) // 3, changed, float(lat.abs().max())))
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(dict(prompt=mpf.PROMPT, negative=mpf.NEGATIVE, seed=mpf.SEED, width=mpf.SIZE,
                       height=mpf.SIZE, diffusers=__import__("diffusers").__version__,
                       torch=torch.__version__, cases=meta), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
