#!/usr/bin/env python3
"""Round-trip check of the SD1.5 single-file layout (sd_convert.py).

1. Random-weight models built from lf_models configs: diffusers -> single file -> diffusers (own inverse
   mapping) must give bit-identical tensors and outputs (weights pre-rounded to f16, as stored).
2. With --trained: the committed models/lf-tiny-shapes.safetensors loaded back must give the same text
   embeddings, UNet eps and VAE decode as the diffusers folder tools/train/out/diffusers (weights rounded
   to f16), i.e. the converter loses nothing but the f16 rounding.
Exit status 0 on success.
"""
import argparse
import os
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lf_models as M  # noqa: E402
import sd_convert as C  # noqa: E402


def round_f16(*models):
    with torch.no_grad():
        for m in models:
            for p in m.parameters():
                p.copy_(p.half().float())


def outputs(unet, vae, te):
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, 49408, (2, 77), generator=g)
    ids[:, 0] = 49406
    z = torch.randn(2, 4, 16, 16, generator=g)
    x = torch.rand(2, 3, 128, 128, generator=g) * 2 - 1
    with torch.no_grad():
        h = te(ids)[0]
        eps = unet(z, torch.tensor([999, 321]), h).sample
        img = vae.decode(z / 0.18215).sample
        enc = vae.encode(x).latent_dist.mean
    return {"text": h, "unet": eps, "vae_decode": img, "vae_encode": enc}


def compare(a, b, tag):
    ok = True
    for k in a:
        d = (a[k] - b[k]).abs().max().item()
        print(f"  {tag} {k}: max |diff| {d:.3g}")
        ok &= d == 0.0
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trained", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    u, v, t = M.make_unet().eval(), M.make_vae().eval(), M.make_text_encoder().eval()
    round_f16(u, v, t)
    path = os.path.join(tempfile.mkdtemp(), "rt.safetensors")
    n = C.save_single_file(path, u, v, t)
    u2, v2, t2 = C.load_single_file(path)
    ok = True
    for m1, m2, name in ((u, u2, "unet"), (v, v2, "vae"), (t, t2, "text")):
        s1, s2 = m1.state_dict(), m2.state_dict()
        same = s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
        print(f"random {name}: {len(s1)} tensors, identical after round trip: {same}")
        ok &= same
    print(f"random model: {n} tensors in the single file")
    ok &= compare(outputs(u, v, t), outputs(u2, v2, t2), "random")
    if a.trained:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel
        d = os.path.join(HERE, "out", "diffusers")
        u = UNet2DConditionModel.from_pretrained(os.path.join(d, "unet")).eval()
        v = AutoencoderKL.from_pretrained(os.path.join(d, "vae")).eval()
        t = CLIPTextModel.from_pretrained(os.path.join(d, "text_encoder")).eval()
        round_f16(u, v, t)
        u2, v2, t2 = C.load_single_file(os.path.join(HERE, "..", "..", "models", "lf-tiny-shapes.safetensors"))
        ok &= compare(outputs(u, v, t), outputs(u2, v2, t2), "trained")
    print("ROUND TRIP OK" if ok else "ROUND TRIP FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
