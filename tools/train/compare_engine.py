#!/usr/bin/env python3
"""The C engine's images of lf-tiny-shapes beside diffusers' own StableDiffusionPipeline for the same checkpoint,
prompt, sampler (Euler, "normal" = diffusers' linspace spacing), steps, CFG and seed.

Both start from the same noise: torch.randn((1, 4, H/8, W/8)) from a CPU generator seeded with the seed, which
is what `lightfarm-engine generate --rng cpu` draws (bit-compatible). The diffusers image is cut to 8 bits the
way the engine does it (truncation, as A1111's astype(np.uint8)); the script prints the largest and mean
absolute difference per image in 0..255 steps.

Run (from the repository root, after `deploy/lightfarm setup`):
  tools/train/.venv/bin/python tools/train/compare_engine.py [--n 8] [--engine build/release/engine/cli/lightfarm-engine]
Exit status 1 when any pixel differs by more than --tol (default 2) steps.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import eval_shapes as E  # noqa: E402
import train  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "lf-tiny-shapes.safetensors"))
    ap.add_argument("--engine", default=os.path.join(REPO, "build", "release", "engine", "cli", "lightfarm-engine"))
    ap.add_argument("--n", type=int, default=8, help="how many of eval_shapes' prompt/seed pairs")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--tol", type=int, default=2, help="largest allowed difference in 0..255 steps")
    a = ap.parse_args()
    from diffusers import EulerDiscreteScheduler
    from PIL import Image
    torch.set_num_threads(2)
    targs = argparse.Namespace(cache=os.path.join(HERE, "cache"), out=os.path.join(HERE, "out"))
    pipe = train.load_pipeline(targs, a.model)
    pipe.scheduler = EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                            beta_schedule="scaled_linear", prediction_type="epsilon",
                                            steps_offset=1, timestep_spacing="linspace")
    res = pipe.vae.config.sample_size
    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, c in enumerate(E.eval_cases()[:a.n]):
            out = os.path.join(tmp, f"{i:02d}.png")
            subprocess.run([a.engine, "generate", "-m", a.model, "-p", c["prompt"], "-o", out, "--sampler", "euler",
                            "--scheduler", "normal", "--steps", str(a.steps), "--cfg", str(a.cfg), "--seed",
                            str(c["seed"]), "-W", str(res), "-H", str(res), "--rng", "cpu"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ours = np.asarray(Image.open(out).convert("RGB")).astype(np.int32)
            g = torch.Generator().manual_seed(c["seed"])
            lat = torch.randn((1, 4, res // 8, res // 8), generator=g)
            with torch.no_grad():
                img = pipe(c["prompt"], height=res, width=res, num_inference_steps=a.steps, guidance_scale=a.cfg,
                           latents=lat, output_type="np").images[0]
            ref = (img * 255).astype(np.uint8).astype(np.int32)  # truncation, as the engine and A1111
            d = np.abs(ours - ref)
            worst = max(worst, int(d.max()))
            print(f"{i:2d} seed {c['seed']} {c['prompt']!r}: max |diff| {d.max()} mean {d.mean():.4f} "
                  f"(pixels off by > 1: {(d > 1).sum()})")
    print(f"RESULT max |diff| over {a.n} images: {worst} (tolerance {a.tol})")
    return 0 if worst <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
