#!/usr/bin/env python3
"""End-to-end reference generations for tests/engine/test_pipeline_parity.c:
diffusers' own StableDiffusionPipeline on a tiny SD1.5-architecture model,
one run per sampler, for fixed prompt / negative prompt / seed / CFG.

The model is fixture config "a" of make_model_fixtures.py (rebuilt from its
seed and checked against tests/engine/fixtures/models/tiny_a.safetensors)
with the CLIP token embedding widened to 49,408 rows, row r = row r % 400 —
exactly what tests/engine/cli/lf_test_models.h writes for the C side — so
both sides tokenize with the real CLIP BPE (the merges file from the shared
reference data, read at run time, never copied into the repo).

Image 16x16 (the tiny VAE has 2 levels: vae scale 2), so the latent is 8x8.

Conventions reconciled (see the README written next to the fixtures):
  * initial noise: torch.randn(1x4x8x8) from a CPU generator seeded with the
    seed, drawn here and passed as `latents`, scaled to lightfarm's start
    x = noise * sigmas[0] (k-diffusion space) — for VE schedulers (Euler
    family, init_noise_sigma = sigmas[0]) that is the raw noise; for VP
    schedulers (DPM-Solver, DDIM, LCM, UniPC: init_noise_sigma = 1) it is
    noise * sigma0 / sqrt(1 + sigma0^2) (diffusers itself would start from
    plain unit noise, which is the VP latent of sigma = inf, not of sigmas[0]).
  * the SAME generator, advanced past the initial noise, is passed to the
    pipeline, so ancestral/SDE step noise continues it — as lightfarm does
    (one generator per image, initial noise then step noise).
  * the sigma schedule: diffusers' own timestep settings where they give
    lightfarm's schedule exactly (recorded per case); otherwise the
    scheduler's sigmas/timesteps are overwritten after set_timesteps with
    lightfarm's schedule (marked "override").
Outputs: tests/engine/fixtures/pipeline/<case>.safetensors (latent = final
latents before the VAE, image = VAE output before clamping, sigmas) and
cases.json.

  tests/reference/.venv/bin/python tests/reference/make_pipeline_fixtures.py
"""
import gzip
import json
import os
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_model_fixtures as mmf  # noqa: E402

try:  # DPMSolverSDEScheduler's module imports torchsde (which wants scipy);
    import torchsde  # noqa: F401  its Brownian tree is replaced below anyway
except ImportError:
    import types
    sys.modules["torchsde"] = types.ModuleType("torchsde")

from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler,  # noqa: E402
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler,
                       HeunDiscreteScheduler, KDPM2DiscreteScheduler, LCMScheduler,
                       StableDiffusionPipeline, UniPCMultistepScheduler)
try:
    from diffusers import DPMSolverSDEScheduler
    DPMSolverSDEScheduler(num_train_timesteps=1000)
except Exception:  # a dummy object when torchsde is not installed
    DPMSolverSDEScheduler = None
from transformers import CLIPTokenizer  # noqa: E402

OUT = os.path.join(HERE, "..", "engine", "fixtures", "pipeline")
MODELS = os.path.join(HERE, "..", "engine", "fixtures", "models")
VOCAB = os.path.join(HERE, "..", "..", "..", "shared", "refdata", "tokenizers", "clip",
                     "bpe_simple_vocab_16e6.txt.gz")

PROMPT = "a red circle on a blue square, highly detailed"
NEGATIVE = "blurry, ugly"
SEED = 1234
CFG = 5.0
SIZE = 16

BASE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            num_train_timesteps=1000, prediction_type="epsilon", steps_offset=1)

# ---- lightfarm's schedules (engine/sampling/lf_schedule.c), for the record and the
# cases diffusers cannot express ----


def ldm_sigmas():
    b = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    ac = np.cumprod(1.0 - b).astype(np.float32)
    return np.sqrt((1 - ac) / ac).astype(np.float32)


def lf_schedule(kind, steps):
    s = ldm_sigmas().astype(np.float64)
    ls = np.log(s)

    def t_to_sigma(t):
        lo, hi = int(np.floor(t)), int(np.ceil(t))
        w = t - lo
        return float(np.exp((1 - w) * ls[lo] + w * ls[hi]))
    if kind == "normal":
        out = [t_to_sigma(999 * (1 - i / (steps - 1))) if steps > 1 else s[999] for i in range(steps)]
    elif kind == "sgm_uniform":
        out = [t_to_sigma(999 * (1 - i / steps)) for i in range(steps)]
    elif kind == "karras":
        lo, hi = s[0] ** (1 / 7), s[999] ** (1 / 7)
        out = [(hi + i / (steps - 1) * (lo - hi)) ** 7 for i in range(steps)]
    elif kind == "simple":
        ss = 1000 / steps
        out = [float(s[999 - int(i * ss)]) for i in range(steps)]
    elif kind == "ddim_uniform":
        ss = 1000 // steps
        out = [float(s[1 + i * ss]) for i in reversed(range(len(range(1, 1000, ss))))][:steps]
    else:
        raise KeyError(kind)
    return np.array(out + [0.0])


def sigma_to_t(sig):
    ls = np.log(ldm_sigmas().astype(np.float64))
    l = np.log(sig)
    lo = max(0, min(int(np.sum(l - ls >= 0)) - 1, 998))
    w = min(max((ls[lo] - l) / (ls[lo] - ls[lo + 1]), 0.0), 1.0)
    return (1 - w) * lo + w * (lo + 1)


def comfy_f32_alpha_sigma(sched):
    """UniPC's alpha_t / sigma_t computed as ComfyUI (and lightfarm) do, in
    float32 through log alpha: sigma_t = sqrt(1 - exp(2 log alpha)), which
    cancels badly at small sigma. diffusers' exact 1/sqrt(1+s^2) differs from
    it by ~2e-4 relative in the final latent of a 4-step run."""
    def f(sigma):
        s = torch.as_tensor(sigma, dtype=torch.float32)
        la = 0.5 * torch.log(1.0 / (s * s + 1.0))
        return torch.exp(la), torch.sqrt(1.0 - torch.exp(2.0 * la))
    sched._sigma_to_alpha_sigma_t = f


def randn_noise_sampler(sched, gen):
    """DPMSolverSDEScheduler's step noise from the pipeline's generator
    (torch.randn, continuing after the initial latents) instead of torchsde's
    Brownian tree: lightfarm's (and ComfyUI's default non-tree) convention.
    Two draws per step, midpoint first, as both do."""
    orig = sched.set_timesteps

    def set_timesteps(*a, **kw):
        orig(*a, **kw)
        sched.noise_sampler = lambda s, sn: torch.randn((1, 4, SIZE // 2, SIZE // 2), generator=gen)
    sched.set_timesteps = set_timesteps


# ---- cases: (name, lightfarm sampler, lightfarm scheduler, steps, scheduler
# factory, VP?, how the schedule is matched[, patch(scheduler, generator)]) ----

CASES = [
    ("euler", "euler", "normal", 4,
     lambda: EulerDiscreteScheduler(**BASE, timestep_spacing="linspace"), False, "native"),
    ("euler_karras", "euler", "karras", 5,
     lambda: EulerDiscreteScheduler(**BASE, timestep_spacing="linspace", use_karras_sigmas=True),
     False, "native"),
    ("euler_a", "euler_ancestral", "normal", 4,
     lambda: EulerAncestralDiscreteScheduler(**BASE, timestep_spacing="linspace"), False, "native"),
    ("heun", "heun", "normal", 4,
     lambda: HeunDiscreteScheduler(**BASE, timestep_spacing="linspace"), False, "native"),
    ("dpm_2", "dpm_2", "normal", 4,
     lambda: KDPM2DiscreteScheduler(**BASE, timestep_spacing="linspace"), False, "native"),
    ("dpmpp_2m", "dpmpp_2m", "sgm_uniform", 9,
     lambda: DPMSolverMultistepScheduler(**BASE, timestep_spacing="linspace",
                                         algorithm_type="dpmsolver++", solver_order=2,
                                         final_sigmas_type="zero"), True, "native"),
    ("dpmpp_2m_karras", "dpmpp_2m", "karras", 6,
     lambda: DPMSolverMultistepScheduler(**BASE, timestep_spacing="linspace",
                                         algorithm_type="dpmsolver++", solver_order=2,
                                         use_karras_sigmas=True, final_sigmas_type="zero"),
     True, "native"),
    ("dpmpp_2m_sde", "dpmpp_2m_sde", "sgm_uniform", 9,
     lambda: DPMSolverMultistepScheduler(**BASE, timestep_spacing="linspace",
                                         algorithm_type="sde-dpmsolver++", solver_order=2,
                                         final_sigmas_type="zero"), True, "native"),
    ("ddim", "ddim", "ddim_uniform", 4,
     lambda: DDIMScheduler(**BASE, timestep_spacing="leading",
                           set_alpha_to_one=True, clip_sample=False), True, "native"),
    ("lcm", "lcm", "simple", 4,
     lambda: LCMScheduler(**BASE, original_inference_steps=4, clip_sample=False), True, "native"),
    ("uni_pc", "uni_pc", "normal", 4,
     lambda: UniPCMultistepScheduler(**BASE, timestep_spacing="linspace", solver_order=3,
                                     predict_x0=True, solver_type="bh1", lower_order_final=True),
     True, "override"),
    ("uni_pc_f32", "uni_pc", "normal", 4,
     lambda: UniPCMultistepScheduler(**BASE, timestep_spacing="linspace", solver_order=3,
                                     predict_x0=True, solver_type="bh1", lower_order_final=True),
     True, "override", lambda s, g: comfy_f32_alpha_sigma(s)),
    ("uni_pc_bh2", "uni_pc_bh2", "normal", 4,
     lambda: UniPCMultistepScheduler(**BASE, timestep_spacing="linspace", solver_order=3,
                                     predict_x0=True, solver_type="bh2", lower_order_final=True),
     True, "override", lambda s, g: comfy_f32_alpha_sigma(s)),
]
if DPMSolverSDEScheduler is not None:
    CASES.append(("dpmpp_sde", "dpmpp_sde", "normal", 4,
                  lambda: DPMSolverSDEScheduler(**BASE, timestep_spacing="linspace"), False,
                  "native", randn_noise_sampler))
else:
    print("DPMSolverSDEScheduler unavailable (torchsde not installed): dpmpp_sde skipped")


def tokenizer(tmp):
    """A transformers CLIPTokenizer built from the OpenAI merges file."""
    with gzip.open(VOCAB, "rt", encoding="utf-8") as f:
        merges = f.read().split("\n")[1:49152 - 256 - 2 + 1]
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    units = [chr(c) for c in cs]
    vocab = units + [u + "</w>" for u in units] + ["".join(m.split()) for m in merges] + \
        ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(tmp, "vocab.json"), "w") as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f)
    with open(os.path.join(tmp, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt"),
                         pad_token="<|endoftext|>", model_max_length=77)


def model():
    cfg = mmf.CONFIGS["a"]
    unet, vae, text = mmf.build(cfg, 100)  # config "a" is built with seed 100
    ref = load_file(os.path.join(MODELS, "tiny_a.safetensors"))
    mine = mmf.ldm_state(cfg, unet, vae, text)
    assert set(ref) == set(mine) and all(torch.equal(ref[k], mine[k]) for k in ref), \
        "rebuilt model differs from tiny_a.safetensors"
    # Widen the token embedding to CLIP's vocabulary, as lf_test_models.h.
    emb = text.text_model.embeddings.token_embedding.weight.data
    rows = torch.arange(49408) % emb.shape[0]
    wide = torch.nn.Embedding(49408, emb.shape[1])
    wide.weight.data.copy_(emb[rows])
    text.text_model.embeddings.token_embedding = wide
    text.config.vocab_size = 49408
    text.eval()
    return unet, vae, text


def override_schedule(sched, sigmas, vp):
    """Makes sched run over lightfarm's sigma list after set_timesteps."""
    orig = sched.set_timesteps

    def set_timesteps(n, device=None, **kw):
        orig(n, device=device, **kw)
        ts = np.array([sigma_to_t(s) for s in sigmas[:-1]])
        last = sigmas[-1]
        if isinstance(sched, UniPCMultistepScheduler) and last == 0:
            last = 0.001  # ComfyUI / lightfarm uni_pc end at sigma 0.001
        sched.sigmas = torch.from_numpy(np.append(sigmas[:-1], last).astype(np.float32))
        sched.timesteps = torch.from_numpy(ts).to(torch.float32 if not vp else torch.int64)
        if vp:  # discrete-time samplers want integer timesteps
            sched.timesteps = torch.from_numpy(np.round(ts).astype(np.int64))
        sched.num_inference_steps = len(ts)
    sched.set_timesteps = set_timesteps


def used_sigmas(sched, vp):
    if isinstance(sched, (DDIMScheduler, LCMScheduler)):
        ac = sched.alphas_cumprod
        s = [float(((1 - ac[t]) / ac[t]) ** 0.5) for t in sched.timesteps]
        return s + [0.0]
    # Heun / DPM2 list each inner sigma twice (two stages); one of each.
    out = []
    for v in sched.sigmas:
        if not out or float(v) != out[-1]:
            out.append(float(v))
    return out


@torch.no_grad()
def main():
    torch.set_num_threads(2)
    if not os.path.exists(VOCAB):
        print("reference data %s absent" % VOCAB)
        return 1
    os.makedirs(OUT, exist_ok=True)
    unet, vae, text = model()
    tmp = tempfile.mkdtemp()
    tok = tokenizer(tmp)
    ids = tok(PROMPT, padding="max_length", max_length=77, truncation=True).input_ids
    cases = []
    for name, sampler, schedule, steps, make, vp, how, *patch in CASES:
        sched = make()
        gen = torch.Generator().manual_seed(SEED)
        if patch:
            patch[0](sched, gen)
        lf = lf_schedule(schedule, steps)
        if how == "override":
            override_schedule(sched, lf, vp)
        sched.set_timesteps(steps)
        s0 = float(lf[0])
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                       scheduler=sched, safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        noise = torch.randn((1, 4, SIZE // 2, SIZE // 2), generator=gen)
        x0 = noise * (s0 / (1 + s0 * s0) ** 0.5 if vp else s0)
        lat = pipe(PROMPT, negative_prompt=NEGATIVE, height=SIZE, width=SIZE,
                   num_inference_steps=steps, guidance_scale=CFG, generator=gen,
                   latents=x0 / float(sched.init_noise_sigma), output_type="latent").images
        img = vae.decode(lat / vae.config.scaling_factor).sample
        used = used_sigmas(sched, vp)
        save_file({"latent": lat.contiguous().float(), "image": img.contiguous().float(),
                   "sigmas": torch.tensor(used, dtype=torch.float64)},
                  os.path.join(OUT, name + ".safetensors"))
        dev = float(np.max(np.abs(np.array(used[:steps]) / lf[:steps] - 1)))
        cases.append(dict(case=name, sampler=sampler, scheduler=schedule, steps=steps,
                          diffusers=type(sched).__name__,
                          diffusers_config={k: v for k, v in sched.config.items()
                                            if not k.startswith("_") and k not in BASE and
                                            k != "trained_betas"},
                          schedule_match=how, sigmas_diffusers=used,
                          sigmas_lightfarm=[float(v) for v in lf],
                          sigma_rel_dev=dev, vp_latents=vp))
        print("%-16s %-32s sigma rel dev %.2e  |lat| %.3f" % (name, type(sched).__name__, dev,
                                                               float(lat.abs().max())))
    meta = dict(model="tiny_a.safetensors with token embedding widened to 49408 rows (r %% 400)",
                prompt=PROMPT, negative=NEGATIVE, seed=SEED, cfg=CFG, width=SIZE, height=SIZE,
                token_ids=ids, diffusers=__import__("diffusers").__version__,
                torch=torch.__version__, cases=cases)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
