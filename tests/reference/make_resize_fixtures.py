#!/usr/bin/env python3
"""Writes reference resizes for tests/engine/test_resize.c: the latent
upscale modes of A1111's Hires-Fix (torch.nn.functional.interpolate with
align_corners=False, as modules/shared_items / processing.py call it) and
Pillow's 8-bit resampling filters (Image.resize, as A1111's Lanczos and
Nearest upscalers and the img2img init image resize use it).

Outputs tests/engine/fixtures/resize/:
  latent.safetensors  "x" (4 x 9 x 7 float32), and "<mode>_<aa>_<h>x<w>" for
                      every mode in (nearest, nearest-exact, bilinear,
                      bicubic), antialias 0/1 (bilinear and bicubic only) and
                      size in SIZES (up, exactly 2x, down, mixed)
  pil.safetensors     "x" (17 x 23 x 3 uint8, a smooth field plus noise and
                      a few hard edges), and "<filter>_<h>x<w>" (uint8) for
                      NEAREST, BILINEAR, BICUBIC, LANCZOS and size in PIL_SIZES

  tests/reference/.venv-upscale/bin/python tests/reference/make_resize_fixtures.py
(the venv of requirements-upscale.txt: Debian's torch 1.13 and Pillow 9.4).
"""
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "engine", "fixtures", "resize")

SIZES = [(18, 14), (13, 17), (5, 4), (9, 7), (20, 3), (27, 21)]
PIL_SIZES = [(34, 46), (41, 57), (8, 11), (17, 23), (30, 9), (5, 70)]


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn((1, 4, 9, 7), generator=gen)
    t = {"x": x[0].contiguous()}
    for mode in ("nearest", "nearest-exact", "bilinear", "bicubic"):
        for aa in (0, 1):
            if aa and mode.startswith("nearest"):
                continue
            for h, w in SIZES:
                kw = {} if mode.startswith("nearest") else {"align_corners": False}
                y = F.interpolate(x, size=(h, w), mode=mode, antialias=bool(aa), **kw)
                t["%s_%d_%dx%d" % (mode, aa, h, w)] = y[0].contiguous()
    save_file(t, os.path.join(OUT, "latent.safetensors"))

    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:17, 0:23]
    img = np.stack([128 + 100 * np.sin(xx * 0.4 + c) * np.cos(yy * 0.3 - c) for c in range(3)], -1)
    img += rng.normal(0, 20, img.shape)
    img[5:9, 3:11] = (250, 10, 10)
    img[11:, 15:] = (0, 0, 255)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    im = Image.fromarray(img, "RGB")
    p = {"x": torch.from_numpy(img.copy())}
    for name, f in (("NEAREST", Image.NEAREST), ("BILINEAR", Image.BILINEAR),
                    ("BICUBIC", Image.BICUBIC), ("LANCZOS", Image.LANCZOS)):
        for h, w in PIL_SIZES:
            r = np.asarray(im.resize((w, h), resample=f))
            p["%s_%dx%d" % (name, h, w)] = torch.from_numpy(r.copy())
    save_file(p, os.path.join(OUT, "pil.safetensors"))
    print("wrote", OUT, "(%d latent, %d Pillow cases)" % (len(t) - 1, len(p) - 1))


if __name__ == "__main__":
    main()
