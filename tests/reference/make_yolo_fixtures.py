#!/usr/bin/env python3
"""YOLOv8 / YOLO11 reference fixtures (ADetailer's ultralytics detectors):
tiny random-weight models built by the ultralytics package from its own model
YAMLs, saved as ultralytics saves trained models, and what its predictor
returns for them.

Writes into tests/engine/fixtures/yolo/:
  <model>.pt           the checkpoint as ultralytics' trainer + strip_optimizer
                       leave it (pickled SegmentationModel/DetectionModel object
                       graph, f16 weights, "model" key), for
                       v8det, v8seg, v11det, v11seg
  <model>.safetensors  (v8det, v11seg) the same weights as a state dict (f16) with the yaml and
                       the class names as JSON in the metadata ("yolo.yaml",
                       "yolo.names")
  raw_input.png        a small synthetic RGB image (128 x 96) fed to the
                       network as is (/255, no letterbox)
  <model>_raw.f32      the Detect/Segment output for it: [4 + nc (+ 32)][anchors]
                       float32 LE (xywh in input pixels, class scores, mask
                       coefficients); seg models also <model>_proto.f32
                       ([32][h/4][w/4])
  synth.png            a synthetic 640 x 401 image (letterbox pads, no resize)
  results.txt          per (model, image): predict(image, conf=<conf>) as
                       ADetailer calls it: boxes xyxy in image pixels, conf,
                       class; for seg models the masks as ADetailer's
                       mask_to_pil makes them (process_mask at the letterboxed
                       size, to_pil_image, PIL resize to the image size) in
                       <model>_<image>_masks.png (the masks stacked vertically)
The astronaut photo itself is read from assets/images (tools/fetch_assets.sh).

Environment (tests/reference/requirements-yolo.txt; ultralytics is never a
test dependency, only this script's):
  /work/venv-torch2/bin/pip install --target /work/yolo-overlay --no-deps -r tests/reference/requirements-yolo.txt
  PYTHONPATH=/work/yolo-overlay YOLO_CONFIG_DIR=/tmp/yolocfg /work/venv-torch2/bin/python \
      tests/reference/make_yolo_fixtures.py [assets-dir]
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel, SegmentationModel, yaml_model_load
from ultralytics.utils import DEFAULT_CFG_DICT, IterableSimpleNamespace
from ultralytics.utils.torch_utils import strip_optimizer
from torchvision.transforms.functional import to_pil_image
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASSETS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "assets")
OUT = os.path.join(ROOT, "tests", "engine", "fixtures", "yolo")
ST_MODELS = ("v8det", "v11seg")  # also written as safetensors conversions
NBOX = 12  # boxes kept per case: the confidence is chosen for it

# name, ultralytics yaml, class names, scale (depth, width, max channels)
MODELS = [
    ("v8det", "yolov8n.yaml", {0: "face", 1: "hand"}, [0.33, 0.0625, 1024]),
    ("v8seg", "yolov8n-seg.yaml", {0: "person"}, [0.33, 0.0625, 1024]),
    ("v11det", "yolo11n.yaml", {0: "face", 1: "hand", 2: "eye"}, [0.5, 0.125, 1024]),
    ("v11seg", "yolo11n-seg.yaml", {0: "person"}, [0.5, 0.125, 1024]),
]


def build(yaml_name, names, scale, seed):
    torch.manual_seed(seed)
    d = yaml_model_load(yaml_name)
    d["scales"] = {"n": scale}
    d["scale"] = "n"
    d["nc"] = len(names)
    cls = SegmentationModel if "seg" in yaml_name else DetectionModel
    m = cls(d, ch=3, nc=len(names), verbose=False)
    m.names = dict(names)
    # Random weights that keep the signal alive through the depth (the
    # default init shrinks it to a constant): convolutions scaled up, the
    # BatchNorm statistics measured on a few images (train-mode passes with a
    # cumulative average), then BN affine terms randomised.
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        head = m.model[-1]
        last = {id(seq[-1]) for branch in ("cv2", "cv3", "cv4") for seq in getattr(head, branch, [])}
        for mod in m.modules():
            if isinstance(mod, torch.nn.Conv2d) and id(mod) not in last:
                mod.weight.mul_(2.5)
        for seq in head.cv3:  # class logits spread around 0 (not bias_init's rare-object prior)
            seq[-1].weight.mul_(4.0)
            seq[-1].bias.zero_()
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.momentum = None
                mod.reset_running_stats()
        m.train()
        for s in range(3):
            img = np.asarray(synth(320, 256, 50 + s), dtype=np.float32) / 255.0
            m(torch.from_numpy(img).permute(2, 0, 1)[None])
        m.eval()
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                n = mod.num_features
                mod.weight.copy_(0.8 + 0.4 * torch.rand(n, generator=g))
                mod.bias.copy_(0.1 * torch.randn(n, generator=g))
    m.eval()
    m.args = IterableSimpleNamespace(**DEFAULT_CFG_DICT)  # as the trainer leaves it
    return m


def save_pt(m, path):
    """As ultralytics' trainer saves (ema model, half) and strip_optimizer leaves it."""
    from copy import deepcopy
    from datetime import datetime
    ckpt = {
        "epoch": -1, "best_fitness": None, "model": None,
        "ema": deepcopy(m).half(), "updates": 0, "optimizer": None,
        "train_args": {"task": "segment" if isinstance(m, SegmentationModel) else "detect", "imgsz": 640},
        "train_metrics": {}, "train_results": {}, "date": datetime(2024, 1, 1).isoformat(),
        "version": "8.3.40", "license": "AGPL-3.0", "docs": "https://docs.ultralytics.com",
    }
    torch.save(ckpt, path)
    strip_optimizer(path)


def save_st(m, path):
    sd = {k: v.half().contiguous() for k, v in m.state_dict().items() if v.dtype.is_floating_point}
    meta = {"yolo.yaml": json.dumps(m.yaml), "yolo.names": json.dumps({str(k): v for k, v in m.names.items()})}
    save_file(sd, path, metadata=meta)


def synth(w, h, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 3) % 256], -1)
    img = img.astype(np.int64)
    for _ in range(6):  # a few blobs
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(h // 10, h // 3)
        col = rng.integers(0, 256, 3)
        m = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        img[m] = col
    return Image.fromarray(img.astype(np.uint8), "RGB")


def main():
    os.makedirs(OUT, exist_ok=True)
    raw_img = synth(128, 96, 1)
    raw_img.save(os.path.join(OUT, "raw_input.png"))
    synth_img = synth(640, 401, 2)
    synth_img.save(os.path.join(OUT, "synth.png"))
    photo = Image.open(os.path.join(ASSETS, "images", "astronaut.png")).convert("RGB")
    images = [("astronaut", photo), ("synth", synth_img)]
    lines = ["# YOLO predictions, by tests/reference/make_yolo_fixtures.py (ultralytics 8.3.40, torch 2.5.1)",
             "# case <model> <image> <w> <h> <conf> <n>: predict(image, conf=conf) as ADetailer calls it",
             "# box <x1> <y1> <x2> <y2> <conf> <class>  (image pixels, after scale_boxes)",
             "# masks <file>: seg models, the n masks (mask_to_pil) stacked top to bottom"]
    for seed, (name, yaml_name, names, scale) in enumerate(MODELS):
        m = build(yaml_name, names, scale, 100 + seed)
        pt = os.path.join(OUT, name + ".pt")
        save_pt(m, pt)
        # Raw head outputs from the model as the predictor runs it (the .pt
        # loaded back: f16 weights to float32, Conv+BN fused).
        yolo = YOLO(pt)
        net = yolo.model
        if name in ST_MODELS:  # the unfused state dict (Conv + BatchNorm), as a conversion holds it
            save_st(net, os.path.join(OUT, name + ".safetensors"))
        net.float().fuse(verbose=False).eval()
        x = torch.from_numpy(np.asarray(raw_img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()
        with torch.no_grad():
            y = net(x)
        y0 = y[0][0]
        y0.numpy().astype("<f4").tofile(os.path.join(OUT, name + "_raw.f32"))
        if "seg" in name:
            y[1][2][0].numpy().astype("<f4").tofile(os.path.join(OUT, name + "_proto.f32"))
        lines.append("raw %s %d %d" % (name, y0.shape[0], y0.shape[1]))
        for iname, img in images:
            # The confidence: halfway between the NBOX-th and the next score
            # after NMS at a low threshold, so NBOX boxes survive.
            yolo = YOLO(pt)
            allc = sorted((float(c) for c in yolo(img, conf=0.001, verbose=False)[0].boxes.conf), reverse=True)
            conf = 0.5 * (allc[NBOX - 1] + allc[NBOX])
            yolo = YOLO(pt)
            pred = yolo(img, conf=conf, verbose=False)[0]
            b = pred.boxes
            n = len(b)
            lines.append("case %s %s %d %d %.9g %d" % (name, iname, img.width, img.height, conf, n))
            for k in range(n):
                v = [float(t) for t in b.xyxy[k]] + [float(b.conf[k]), int(b.cls[k])]
                lines.append("box %.9g %.9g %.9g %.9g %.9g %d" % tuple(v))
            if pred.masks is not None and n:
                masks = [to_pil_image(pred.masks.data[k], mode="L").resize(img.size) for k in range(n)]
                sheet = Image.new("L", (img.width, img.height * n))
                for k, mk in enumerate(masks):
                    sheet.paste(mk, (0, img.height * k))
                fn = "%s_%s_masks.png" % (name, iname)
                sheet.save(os.path.join(OUT, fn), optimize=True)
                lines.append("masks %s" % fn)
    with open(os.path.join(OUT, "results.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
