#!/usr/bin/env python3
"""Writes tiny random-weight upscaler models and reference outputs for
tests/engine/test_upscaler.c, with spandrel's own architecture classes and
its own loader as the reference (spandrel 0.4.0).

Models (weights rounded to f16 and stored as f16, so the files stay small; the
reference runs in f32 on those same rounded values):
  esrgan_old_x4.pth           ESRGAN old layout (model.N...), x4, nf 8, nb 1
  esrgan_new_x4.safetensors   Real-ESRGAN layout (conv_first, body.N.rdbK),
                              x4, nf 8, nb 2 (the x4plus / anime_6B shape)
  esrgan_new_x2.pth           Real-ESRGAN x2: pixel-unshuffle input (12
                              channels), nested under "params_ema" as
                              RealESRGAN_x2plus.pth is
  esrgan_bsrgan_x4.safetensors  BSRGAN / RealSR layout (RRDB_trunk, trunk_conv)
  compact_x4.pth / .safetensors  SRVGGNetCompact (realesr-general-x4v3's
                              shape: PReLU), nf 8, 2 convs
  not_an_upscaler.safetensors  tensors no architecture claims
Each model's reference (<model>.ref.safetensors) holds "x" (1x3xHxW in
[0, 1]), "y" (spandrel's forward) and, as metadata, what spandrel's loader
detected: arch, scale, in/out channels, nf, nb.

spandrel 0.4 crops a pixel-unshuffle model's output with the body's scale
(4) rather than the model's (2), so esrgan_new_x2's "y" (odd input sizes)
still holds the reflect padding's last output rows/columns; the C test
compares the image's own region.

Deviation, on purpose: spandrel's RRDBNet fixes the growth channels of the
dense blocks at 32; to keep the fixtures ~40 KB instead of ~400 KB each, the
script builds them with 4 (by wrapping spandrel's own B.RRDB while the models
are built and loaded). The C loader reads the growth channels from the
shapes, so the same code serves gc 32 (bench/ runs a full-size x4plus).

  /usr/bin/python3 -m venv --system-site-packages tests/reference/.venv-upscale
  tests/reference/.venv-upscale/bin/pip install --no-deps -r tests/reference/requirements-upscale.txt
  tests/reference/.venv-upscale/bin/python tests/reference/make_upscaler_fixtures.py
Outputs: tests/engine/fixtures/upscale/.
"""
import json
import os
from collections import OrderedDict

import torch
from safetensors.torch import save_file

import spandrel
from spandrel.architectures.__arch_helpers import block as B

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "engine", "fixtures", "upscale")
GC = 4

_rrdb = B.RRDB


def _small_rrdb(*a, **kw):
    kw["gc"] = GC
    return _rrdb(*a, **kw)


def randomize(model, gen):
    """Random weights (std ~ 1/sqrt(fan_in), so activations stay O(1) through
    the blocks), rounded to f16."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 4:
                fan = p.shape[1] * p.shape[2] * p.shape[3]
                v = torch.randn(p.shape, generator=gen) * (1.0 / fan) ** 0.5
            elif "body" in name and p.dim() == 1 and p.shape[0] > 0 and name.endswith("weight"):
                v = torch.rand(p.shape, generator=gen) * 0.5  # PReLU slopes
            else:
                v = torch.randn(p.shape, generator=gen) * 0.05
            p.copy_(v.half().float())


def new_layout(sd, bsrgan=False):
    """spandrel's old-layout state dict -> Real-ESRGAN (or BSRGAN) names: the
    inverse of spandrel.architectures.ESRGAN._new_to_old_arch."""
    out = OrderedDict()
    nb = max(int(k.split(".")[3]) for k in sd if k.startswith("model.1.sub.") and "RDB" in k) + 1
    last = max(int(k.split(".")[1]) for k in sd)
    for k, v in sd.items():
        p = k.split(".")
        i = int(p[1])
        if i == 0:
            n = "conv_first." + p[-1]
        elif i == 1 and p[3] == str(nb):
            n = ("trunk_conv." if bsrgan else "conv_body.") + p[-1]
        elif i == 1:
            # model.1.sub.B.RDBr.convc.0.weight
            b, r, c = int(p[3]), p[4][3:], p[5][4:]
            n = ("RRDB_trunk.%d.RDB%s.conv%s.%s" if bsrgan else "body.%d.rdb%s.conv%s.%s") % (
                b, r, c, p[-1])
        elif i == last:
            n = "conv_last." + p[-1]
        elif i == last - 2:
            n = ("HRconv." if bsrgan else "conv_hr.") + p[-1]
        else:
            n = ("upconv%d." if bsrgan else "conv_up%d.") % (i // 3) + p[-1]
        out[n] = v
    return out


def reference(name, sd, x):
    """Loads sd with spandrel's loader (detection included) and runs it."""
    desc = spandrel.ModelLoader().load_from_state_dict(
        spandrel.canonicalize_state_dict(sd) if "params_ema" in sd else sd)
    model = desc.model.float().eval()
    with torch.no_grad():
        y = model(x)
    h = desc.model.hyperparameters if hasattr(desc.model, "hyperparameters") else {}
    meta = {
        "arch": desc.architecture.id,
        "scale": str(desc.scale),
        "in_channels": str(desc.input_channels),
        "out_channels": str(desc.output_channels),
        "tags": json.dumps(desc.tags),
        "hyperparameters": json.dumps({k: v for k, v in h.items() if isinstance(v, (int, str))}),
    }
    save_file({"x": x.contiguous(), "y": y.contiguous()},
              os.path.join(OUT, name + ".ref.safetensors"), metadata=meta)
    print("%-22s %-8s x%s  x %s -> y %s  |y|max %.3f  %s" % (
        name, meta["arch"], meta["scale"], tuple(x.shape), tuple(y.shape), y.abs().max(),
        meta["tags"]))


def f16(sd):
    return OrderedDict((k, v.detach().half().contiguous()) for k, v in sd.items())


def main():
    B.RRDB = _small_rrdb  # see "Deviation" above
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.Compact import Compact

    # ESRGAN x4, old layout, .pth (torch zip of an OrderedDict).
    m = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4)
    randomize(m, gen)
    sd = f16(m.state_dict())
    torch.save(sd, os.path.join(OUT, "esrgan_old_x4.pth"))
    x = torch.rand((1, 3, 10, 12), generator=gen)
    reference("esrgan_old_x4", OrderedDict((k, v.float()) for k, v in sd.items()), x)

    # ESRGAN x4, new layout, .safetensors.
    m = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=2, scale=4)
    randomize(m, gen)
    sd = new_layout(f16(m.state_dict()))
    save_file(sd, os.path.join(OUT, "esrgan_new_x4.safetensors"))
    x = torch.rand((1, 3, 9, 11), generator=gen)
    reference("esrgan_new_x4", OrderedDict((k, v.float()) for k, v in sd.items()), x)

    # BSRGAN layout, x4.
    m = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4)
    randomize(m, gen)
    sd = new_layout(f16(m.state_dict()), bsrgan=True)
    save_file(sd, os.path.join(OUT, "esrgan_bsrgan_x4.safetensors"))
    x = torch.rand((1, 3, 8, 8), generator=gen)
    reference("esrgan_bsrgan_x4", OrderedDict((k, v.float()) for k, v in sd.items()), x)

    # Real-ESRGAN x2: pixel-unshuffle by 2 in front of an x4 body (12 input
    # channels), odd sizes so the reflect padding to a multiple of 2 is used.
    m = ESRGAN(in_nc=12, out_nc=3, num_filters=8, num_blocks=1, scale=4, shuffle_factor=2)
    randomize(m, gen)
    sd = new_layout(f16(m.state_dict()))
    torch.save({"params_ema": sd}, os.path.join(OUT, "esrgan_new_x2.pth"))
    x = torch.rand((1, 3, 11, 13), generator=gen)
    reference("esrgan_new_x2", {"params_ema": OrderedDict((k, v.float()) for k, v in sd.items())},
              x)

    # Compact (realesr-general-x4v3's shape), .pth and .safetensors; a larger
    # input for the tiled-against-reference check.
    m = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4)
    randomize(m, gen)
    sd = f16(m.state_dict())
    torch.save(sd, os.path.join(OUT, "compact_x4.pth"))
    save_file(sd, os.path.join(OUT, "compact_x4.safetensors"))
    x = torch.rand((1, 3, 30, 26), generator=gen)
    reference("compact_x4", OrderedDict((k, v.float()) for k, v in sd.items()), x)

    save_file({"encoder.weight": torch.zeros(4, 4)},
              os.path.join(OUT, "not_an_upscaler.safetensors"))


if __name__ == "__main__":
    main()
