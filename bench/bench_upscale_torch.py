#!/usr/bin/env python3
"""The PyTorch side of bench_upscale: a full-size RealESRGAN x4plus
(RRDBNet: 64 features, 23 blocks, growth 32, x4; random weights) run by
spandrel 0.4 on the CPU, on the same weights and inputs as the C engine.

  --write PATH   writes the random model as RealESRGAN_x4plus.pth is laid
                 out (Real-ESRGAN names under "params_ema", f32), then exits
  --io DIR       reads DIR/x64.bin (3x64x64 float32) and DIR/x256.bin
                 (3x256x256), runs the model on each (64: one warm-up, then
                 --reps timed runs; 256: one run, untiled, the reference for
                 the engine's tiled run), compares with DIR/y64.bin and
                 DIR/y256.bin when present

Last line (parsed by bench_upscale):
  RESULT torch s64_median=.. s64_min=.. s256=.. load_s=.. peak_rss_kb=..
         rel64=.. rel256=.. threads=..
(rel: max |ours - torch| / max |torch|; for 256 ours is tiled and torch's
is not, so rel256 is the largest difference the seams make)

  tests/reference/.venv-upscale/bin/python bench/bench_upscale_torch.py --write /tmp/x4plus.pth
"""
import argparse
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def write(path):
    from spandrel.architectures.ESRGAN import ESRGAN
    from make_upscaler_fixtures import new_layout
    torch.manual_seed(4)
    m = ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 4:
                p.copy_(torch.randn(p.shape) * (1.0 / (p.shape[1] * 9)) ** 0.5)
            else:
                p.copy_(torch.randn(p.shape) * 0.05)
    sd = new_layout({k: v.contiguous() for k, v in m.state_dict().items()})
    torch.save({"params_ema": sd}, path)
    print("wrote", path, sum(v.numel() for v in sd.values()), "weights")


def load_bin(path, shape):
    return torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(shape))


def rel(a, b, mask=None):
    d = (a - b).abs()
    if mask is not None:
        d = d[..., mask]
    return float(d.max() / b.abs().max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write")
    ap.add_argument("--weights")
    ap.add_argument("--io")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--size", type=int, default=256)  # side of x256.bin (the tiled run's input)
    a = ap.parse_args()
    if a.write:
        write(a.write)
        return
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    import spandrel
    t0 = time.perf_counter()
    desc = spandrel.ModelLoader().load_from_file(a.weights)
    model = desc.model.float().eval()
    load_s = time.perf_counter() - t0
    x64 = load_bin(os.path.join(a.io, "x64.bin"), (1, 3, 64, 64))
    x256 = load_bin(os.path.join(a.io, "x256.bin"), (1, 3, a.size, a.size))
    times = []
    with torch.inference_mode():
        y64 = model(x64)
        for _ in range(a.reps):
            t = time.perf_counter()
            y64 = model(x64)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        y256 = model(x256)
        s256 = time.perf_counter() - t
    r64 = r256 = float("nan")
    p = os.path.join(a.io, "y64.bin")
    if os.path.exists(p):
        r64 = rel(load_bin(p, y64.shape), y64)
    p = os.path.join(a.io, "y256.bin")
    if os.path.exists(p):
        ours = load_bin(p, y256.shape)
        r256 = rel(ours, y256)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("RESULT torch s64_median=%.4f s64_min=%.4f s256=%.3f load_s=%.3f peak_rss_kb=%d "
          "rel64=%.3g rel256=%.3g threads=%d" % (
              statistics.median(times), min(times), s256, load_s, peak, r64, r256,
              torch.get_num_threads()))


if __name__ == "__main__":
    main()
