#!/usr/bin/env python3
"""The PyTorch side of bench_gen_mem: one whole 512x512 SD1.5 image in
diffusers on the CPU — the text encoder on CFG's two id rows, N steps of
EulerDiscreteScheduler (scale_model_input, UNet with CFG batch 2, step),
the whole VAE decode — on the same single-file checkpoint as the C side
(models built from SD1.5's configs and filled tensor by tensor:
bench_unet_torch.load_models; f32, as diffusers runs on the CPU). The peak
RSS of each phase is VmHWM after resetting it at the phase's start
(/proc/self/clear_refs), the whole run's the largest of them.

Last line (parsed by bench_gen_mem):
  RESULT torch load_s=.. text_s=.. step_s=.. decode_s=.. image_s=.. image_cpu_s=.. rss_load_kb=.. hwm_text_kb=..
         hwm_steps_kb=.. hwm_decode_kb=.. peak_rss_kb=..

  PYTHON bench/bench_gen_mem_torch.py --ckpt tests/reference/out/sd15_full.safetensors --steps 20
"""
import argparse
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_unet_torch import load_models, reset_hwm, status_kb  # noqa: E402


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=7.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latent", type=int, default=64, help="latent side (64: 512x512)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from diffusers import EulerDiscreteScheduler
    print("torch", torch.__version__, "diffusers", __import__("diffusers").__version__, flush=True)
    t0 = time.perf_counter()
    m = load_models(a.ckpt, False)
    load_s = time.perf_counter() - t0
    rss_load, hwm_load = status_kb("VmRSS"), status_kb("VmHWM")
    print("load %.2f s, RSS %.0f MiB (peak %.0f)" % (load_s, rss_load / 1024, status_kb("VmHWM") / 1024),
          flush=True)
    unet, vae, text = m["unet"], m["vae"], m["text"]
    B = 2 if a.cfg not in (0.0, 1.0) else 1
    ids = torch.tensor([[49406 if t == 0 else (320 + 37 * t + b if t < 9 + b else 49407)
                         for t in range(77)] for b in range(B)], dtype=torch.long)
    reset_hwm()
    t0 = time.perf_counter()
    c0 = time.process_time()
    ctx = text(ids).last_hidden_state
    text_s = time.perf_counter() - t0
    hwm_text = status_kb("VmHWM")
    sch = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                 num_train_timesteps=1000, steps_offset=1)
    sch.set_timesteps(a.steps)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(1, 4, a.latent, a.latent, generator=gen) * sch.init_noise_sigma
    reset_hwm()
    step_s = []
    for t in sch.timesteps:
        t1 = time.perf_counter()
        xin = sch.scale_model_input(torch.cat([x] * B), t)
        out = unet(xin, t, encoder_hidden_states=ctx).sample
        if B == 2:
            u, c = out.chunk(2)
            out = u + a.cfg * (c - u)
        x = sch.step(out, t, x).prev_sample
        step_s.append(time.perf_counter() - t1)
        print("step %2d: %.2f s, RSS %.0f MiB" % (len(step_s), step_s[-1], status_kb("VmRSS") / 1024),
              flush=True)
    hwm_steps = status_kb("VmHWM")
    reset_hwm()
    t1 = time.perf_counter()
    img = vae.decode(x / vae.config.scaling_factor).sample
    decode_s = time.perf_counter() - t1
    image_s, image_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    hwm_decode = status_kb("VmHWM")
    print("VAE decode %.2f s, image %s" % (decode_s, tuple(img.shape)), flush=True)
    peak = max(hwm_load, hwm_text, hwm_steps, hwm_decode)  # ru_maxrss follows the resets
    # The step time: the median, as bench_gen_mem's.
    print("RESULT torch load_s=%.2f text_s=%.2f step_s=%.3f decode_s=%.2f image_s=%.2f image_cpu_s=%.2f "
          "rss_load_kb=%d hwm_text_kb=%d hwm_steps_kb=%d hwm_decode_kb=%d peak_rss_kb=%d"
          % (load_s, text_s, statistics.median(step_s), decode_s, image_s, image_cpu_s, rss_load, hwm_text,
             hwm_steps, hwm_decode, peak), flush=True)


if __name__ == "__main__":
    main()
