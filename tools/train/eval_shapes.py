#!/usr/bin/env python3
"""Automatic prompt-following check for lf-tiny-shapes (and for the C engine's output of it later).

Image statistics (pure numpy, easy to mirror in C):
  background   median RGB of the 3-pixel border, named by the nearest palette colour
  foreground   pixels farther than FG_DIST (RGB distance) from that background median
  colour       the most frequent nearest-palette name among foreground pixels whose 3x3 neighbourhood is all
               foreground (the shape's core, no anti-aliased edge), leaving out the background's own name
  shape        from the foreground's fill ratio (area / bounding-box area, box from the 1st..99th percentile
               of the foreground coordinates) and the centroid's vertical offset in the box (triangles are
               bottom-heavy): nearest of the prototypes measured on the training renders
  position     the centroid's cell in a 3x3 grid cut at 40 % / 60 % of the width and height

Run (from the repository root):
  tools/train/.venv/bin/python tools/train/eval_shapes.py              # 40 prompt/seed pairs on the model
  tools/train/.venv/bin/python tools/train/eval_shapes.py --truth      # the same statistics on true renders
  tools/train/.venv/bin/python tools/train/eval_shapes.py --images DIR # PNGs named NN.png, made elsewhere
                                                                         (e.g. by the C engine) for PROMPTS
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lf_shapes as S  # noqa: E402

FG_DIST = 60.0
# (fill ratio, centroid y offset in the box / box height) per shape, measured on lf_shapes renders
PROTOTYPES = {"circle": (0.84, 0.0), "square": (1.0, 0.0), "triangle": (0.61, 0.133), "star": (0.49, 0.036)}
PROTO_Y_WEIGHT = 2.0
N_EVAL = 40
EVAL_SEED = 777


def nearest_colour(rgb):
    names = S.COLOUR_NAMES
    pal = np.array([S.COLOURS[n] for n in names], dtype=np.float32)
    d = ((np.asarray(rgb, dtype=np.float32)[..., None, :] - pal) ** 2).sum(-1)
    return np.array(names)[d.argmin(-1)]


def analyse(img):
    """HxWx3 uint8 -> dict of statistics (see module docstring)."""
    img = np.asarray(img)[..., :3].astype(np.float32)
    H, W, _ = img.shape
    border = np.concatenate([img[:3].reshape(-1, 3), img[-3:].reshape(-1, 3),
                             img[:, :3].reshape(-1, 3), img[:, -3:].reshape(-1, 3)])
    bg_rgb = np.median(border, 0)
    bg = str(nearest_colour(bg_rgb))
    fg = np.sqrt(((img - bg_rgb) ** 2).sum(-1)) > FG_DIST
    out = {"bg": bg, "bg_rgb": [round(float(c)) for c in bg_rgb], "fg_pixels": int(fg.sum()),
           "colour": None, "shape": None, "position": None, "fill": None, "yoff": None}
    if fg.sum() < 12:
        return out
    core = fg.copy()
    core[1:-1, 1:-1] = np.all([fg[1 + dy:H - 1 + dy, 1 + dx:W - 1 + dx]
                               for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    core[0, :] = core[-1, :] = core[:, 0] = core[:, -1] = False
    px = img[core] if core.sum() >= 6 else img[fg]
    names = nearest_colour(px)
    names = names[names != bg]
    if len(names):
        u, c = np.unique(names, return_counts=True)
        out["colour"] = str(u[c.argmax()])
    ys, xs = np.nonzero(fg)
    x0, x1 = np.percentile(xs, [1, 99])
    y0, y1 = np.percentile(ys, [1, 99])
    bw, bh = x1 - x0 + 1, y1 - y0 + 1
    fill = float(((xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)).sum() / (bw * bh))
    yoff = float((ys.mean() - (y0 + y1) / 2) / bh)
    out["fill"], out["yoff"] = round(fill, 3), round(yoff, 3)
    out["shape"] = min(PROTOTYPES, key=lambda s: (fill - PROTOTYPES[s][0]) ** 2 +
                       (PROTO_Y_WEIGHT * (yoff - PROTOTYPES[s][1])) ** 2)
    cx, cy = xs.mean() / W, ys.mean() / H
    h = "left" if cx < 0.4 else "right" if cx > 0.6 else ""
    v = "top" if cy < 0.4 else "bottom" if cy > 0.6 else ""
    out["position"] = (v + " " + h).strip() or "center"
    out["centroid"] = [round(float(cx), 3), round(float(cy), 3)]
    return out


def eval_cases():
    """The fixed 40 (prompt, seed, attrs) cases: even ones name every attribute, odd ones only colour,
    shape and background."""
    rng = np.random.default_rng(EVAL_SEED)
    cases = []
    for i in range(N_EVAL):
        a = S.sample_attrs(rng)
        if i % 2 == 0:
            p = S.full_caption(a)
        else:
            p = f"{S.art(a['colour'])} {a['colour']} {a['shape']} on {S.art(a['bg'])} {a['bg']} background"
        cases.append({"prompt": p, "seed": 2000 + i, "attrs": a, "has_pos": i % 2 == 0})
    return cases


def score(cases, stats):
    n = len(cases)
    acc = {"colour": 0, "shape": 0, "background": 0, "colour+shape": 0}
    npos = pos_ok = 0
    for c, s in zip(cases, stats):
        a = c["attrs"]
        ok_c, ok_s = s["colour"] == a["colour"], s["shape"] == a["shape"]
        acc["colour"] += ok_c
        acc["shape"] += ok_s
        acc["background"] += s["bg"] == a["bg"]
        acc["colour+shape"] += ok_c and ok_s
        if c["has_pos"]:
            npos += 1
            pos_ok += s["position"] == a["pos"]
    res = {k: round(100.0 * v / n, 1) for k, v in acc.items()}
    res["position"] = round(100.0 * pos_ok / max(npos, 1), 1)
    res["n"] = n
    res["n_position"] = npos
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(HERE, "..", "..", "models", "lf-tiny-shapes.safetensors"))
    ap.add_argument("--checkpoint", action="store_true",
                    help="use the training folders (--out: unet, text_encoder, vae) instead of --model")
    ap.add_argument("--out", default=os.path.join(HERE, "out"), help="training folder for --checkpoint")
    ap.add_argument("--res", type=int, help="image size (default: the model's own, 256 for lf-tiny-shapes)")
    ap.add_argument("--truth", action="store_true", help="score true renders (checks the statistics)")
    ap.add_argument("--images", help="score NN.png files in this folder instead of running the model")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--save", help="write the 40 images as a grid PNG here")
    ap.add_argument("--json", help="write per-case results here")
    a = ap.parse_args()
    cases = eval_cases()
    imgs = []
    if a.truth:
        imgs = [S.render(c["attrs"]) for c in cases]
    elif a.images:
        from PIL import Image
        imgs = [np.asarray(Image.open(os.path.join(a.images, f"{i:02d}.png")).convert("RGB"))
                for i in range(len(cases))]
    else:
        import torch
        import train
        torch.set_num_threads(int(os.environ.get("LF_THREADS", "2")))
        import lf_models
        targs = argparse.Namespace(cache=os.path.join(HERE, "cache"), out=a.out,
                                   res=a.res or lf_models.VAE_CONFIG["sample_size"])
        pipe = train.load_pipeline(targs, None if a.checkpoint else a.model)
        S.RES = a.res or pipe.vae.config.sample_size
        for k in range(0, len(cases), 20):  # batched; each image has its own seeded generator
            cs = cases[k:k + 20]
            with torch.no_grad():
                ims = pipe([c["prompt"] for c in cs], height=S.RES, width=S.RES, num_inference_steps=a.steps,
                           guidance_scale=a.cfg, generator=[torch.Generator().manual_seed(c["seed"]) for c in cs],
                           output_type="np").images
            imgs += [(im * 255).round().astype(np.uint8) for im in ims]
    stats = [analyse(im) for im in imgs]
    for i, (c, s) in enumerate(zip(cases, stats)):
        at = c["attrs"]
        flags = "".join(["C" if s["colour"] == at["colour"] else "c", "S" if s["shape"] == at["shape"] else "s",
                         "B" if s["bg"] == at["bg"] else "b",
                         ("P" if s["position"] == at["pos"] else "p") if c["has_pos"] else "-"])
        print(f"{i:2d} seed {c['seed']} [{flags}] {c['prompt']!r}: got {s['colour']} {s['shape']} "
              f"(fill {s['fill']}, yoff {s['yoff']}) {s['position']} on {s['bg']}")
    res = score(cases, stats)
    print("RESULT " + json.dumps(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"result": res, "cases": [dict(c, stats=s) for c, s in zip(cases, stats)]}, f, indent=1)
    if a.save:
        from PIL import Image
        rows = [np.concatenate(imgs[r * 8:(r + 1) * 8], 1) for r in range(len(imgs) // 8)]
        Image.fromarray(np.concatenate(rows, 0)).save(a.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
