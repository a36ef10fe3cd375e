#!/usr/bin/env python3
"""Seconds per training step of lf-tiny-shapes' UNet + text encoder (AdamW, forward + backward), for choosing
the training set-up. Prints the median of --steps timed steps after one warm-up step per configuration.

  tools/train/.venv/bin/python tools/train/bench_step.py                      # torch from the venv (PyPI)
  /usr/bin/python3 tools/train/bench_step.py                                  # Debian's python3-torch, if the
                                                                              # venv's diffusers/transformers are
                                                                              # on PYTHONPATH
Configurations: batch 64 on 16x16 latents (128x128 images), batch 32 on 32x32 (256x256), each in fp32 and
with CPU bf16 autocast."""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lf_models as M  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for batch, side in ((64, 16), (32, 32)):
        for bf16 in (False, True):
            te, un = M.make_text_encoder(), M.make_unet()
            opt = torch.optim.AdamW(list(un.parameters()) + list(te.parameters()), 1e-4)
            ids = torch.randint(0, 49408, (batch, 77))
            x = torch.randn(batch, 4, side, side)
            times = []
            try:
                for i in range(a.steps + 1):
                    t = time.perf_counter()
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        out = un(x, torch.randint(0, 1000, (batch,)), te(ids)[0]).sample
                    out.float().square().mean().backward()
                    opt.step()
                    opt.zero_grad()
                    if i:
                        times.append(time.perf_counter() - t)
                res = f"{statistics.median(times):.2f} s/step"
            except RuntimeError as e:  # e.g. torch 1.13: no bf16 group_norm on CPU
                res = "fails: " + str(e).splitlines()[0]
            print(f"batch {batch:2d} latents {side}x{side} {'bf16' if bf16 else 'fp32'}: {res}", flush=True)


if __name__ == "__main__":
    main()
