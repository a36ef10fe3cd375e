#!/usr/bin/env python3
"""The PyTorch side of bench_flux: a Flux.1-dev transformer at full width
(hidden 3072, 24 heads of 128, MLP 12288, T5 width 4096, CLIP 768, RoPE axes
16/56/56) with fewer blocks (--double, --single), random weights, run by
diffusers 0.31's FluxTransformer2DModel on the CPU in float32, on the same
weights and inputs as the C engine.

  --write DIR   writes DIR/flux.safetensors (BFL layout as ComfyUI holds
                Flux files, bf16), the same values in diffusers names
                (DIR/diffusers.safetensors, what --run loads) and DIR/inputs.safetensors (x, txt, vec, t,
                guidance, img_ids, txt_ids for --size px and --tokens T5
                tokens), then exits
  --run DIR     loads both, runs one warm-up and --reps timed forwards in f32,
                writes DIR/torch_out.safetensors

Last line of --run (parsed by bench_flux):
  RESULT torch s_median=.. s_min=.. load_s=.. peak_rss_kb=.. threads=..

  /work/venv-torch2/bin/python bench/bench_flux_torch.py --write /tmp/flux_bench
"""
import argparse
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402


def config(a):
    return dict(patch_size=1, in_channels=64, num_layers=a.double, num_single_layers=a.single,
                attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=[16, 56, 56])


def write(a):
    from diffusers import FluxTransformer2DModel
    from make_flux_fixtures import bfl_state, ids_for
    os.makedirs(a.write, exist_ok=True)
    torch.manual_seed(7)
    m = FluxTransformer2DModel(**config(a))
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.05 * torch.randn(p.shape) if "norm" in name else 0.02 * torch.randn(p.shape))
            else:
                p.copy_(torch.randn(p.shape) / p.shape[1] ** 0.5)
    sd = {k: v.to(torch.bfloat16).contiguous() for k, v in m.state_dict().items()}
    save_file(bfl_state(sd), os.path.join(a.write, "flux.safetensors"))
    save_file(sd, os.path.join(a.write, "diffusers.safetensors"))  # the same values, for --run
    h2 = w2 = a.size // 16
    img_ids, txt_ids = ids_for(h2, w2, a.tokens)
    g = torch.Generator().manual_seed(8)
    inp = {"x": torch.randn(1, h2 * w2, 64, generator=g), "txt": torch.randn(1, a.tokens, 4096, generator=g),
           "vec": torch.randn(1, 768, generator=g), "t": torch.tensor([0.6]), "guidance": torch.tensor([3.5]),
           "img_ids": img_ids, "txt_ids": txt_ids}
    save_file(inp, os.path.join(a.write, "inputs.safetensors"))
    print("wrote", a.write, sum(v.numel() for v in sd.values()), "weights")


def run(a):
    from diffusers import FluxTransformer2DModel
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    sd = load_file(os.path.join(a.run, "diffusers.safetensors"))  # bf16; load_state_dict widens
    m = FluxTransformer2DModel(**config(a))
    m.load_state_dict(sd)
    del sd
    m = m.eval()
    load_s = time.perf_counter() - t0
    i = load_file(os.path.join(a.run, "inputs.safetensors"))
    times = []
    with torch.inference_mode():
        for r in range(a.reps + 1):
            t = time.perf_counter()
            out = m(hidden_states=i["x"], encoder_hidden_states=i["txt"], pooled_projections=i["vec"],
                    timestep=i["t"], guidance=i["guidance"], img_ids=i["img_ids"], txt_ids=i["txt_ids"],
                    return_dict=False)[0]
            if r:
                times.append(time.perf_counter() - t)
    save_file({"out": out.contiguous()}, os.path.join(a.run, "torch_out.safetensors"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("RESULT torch s_median=%.3f s_min=%.3f load_s=%.2f peak_rss_kb=%d threads=%d" % (
        statistics.median(times), min(times), load_s, peak, torch.get_num_threads()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write")
    ap.add_argument("--run")
    ap.add_argument("--double", type=int, default=1)
    ap.add_argument("--single", type=int, default=2)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.write:
        write(a)
    elif a.run:
        run(a)
    else:
        ap.error("--write or --run")


if __name__ == "__main__":
    main()
