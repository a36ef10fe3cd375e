#!/usr/bin/env python3
"""Reference data for tests/engine/test_pipeline_detailer.c: the mask steps of
the ADetailer extension (Bing-su/adetailer, adetailer/mask.py, common.py and
scripts/!adetailer.py), each computed by the library the extension calls:

- box masks: create_mask_from_bbox = Image.new("L") + ImageDraw.rectangle(bbox,
  fill=255) with float boxes (inside, across and outside the borders);
- ImageChops.offset(mask, x, -y) (mask_preprocess's offset);
- cv2.dilate / cv2.erode with cv2.getStructuringElement(MORPH_RECT, (v, v)),
  iterations 1 (dilate_erode), odd and even sizes, on random masks;
- filter_by_ratio and filter_k_largest (written as mask.py has them, numpy's
  argsort) on boxes with equal areas;
- _get_prompt's re.split(r"\\s*\\[SEP\\]\\s*") / [PROMPT] / empty-part rules.

Writes tests/engine/fixtures/detailer/ops.json (masks as hex strings).
Requirements: requirements.txt's venv plus opencv-python-headless 4.10.0.84
(requirements-inpaint.txt, --no-deps); Pillow 9.4 (Debian). Run:
  /work/venv-ref/bin/python tests/reference/make_detailer_fixtures.py
"""
import json
import os
import re

import cv2
import numpy as np
from PIL import Image, ImageChops, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "engine", "fixtures", "detailer")
W, H = 41, 29


def hexm(a):
    return np.asarray(a, dtype=np.uint8).tobytes().hex()


def box_mask(bbox):
    m = Image.new("L", (W, H), 0)
    ImageDraw.Draw(m).rectangle(bbox, fill=255)
    return np.array(m)


def dilate_erode(arr, v):
    if v == 0:
        return arr
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (abs(v), abs(v)))
    return cv2.dilate(arr, k, iterations=1) if v > 0 else cv2.erode(arr, k, iterations=1)


def bbox_area(b):
    return (b[2] - b[0]) * (b[3] - b[1])


def filter_by_ratio(bboxes, low, high):
    orig = W * H
    return [b for b in bboxes if low <= bbox_area(b) / orig <= high]


def filter_k_largest(bboxes, k):
    if not bboxes or k == 0:
        return bboxes
    idx = np.argsort([bbox_area(b) for b in bboxes])[-k:][::-1]
    return [bboxes[i] for i in idx]


def get_prompt(ad_prompt, default):
    prompts = re.split(r"\s*\[SEP\]\s*", ad_prompt)
    for n in range(len(prompts)):
        if not prompts[n]:
            prompts[n] = default
        elif "[PROMPT]" in prompts[n]:
            prompts[n] = prompts[n].replace("[PROMPT]", f" {default} ")
    return prompts


def main():
    rng = np.random.default_rng(16)
    out = {"w": W, "h": H}

    boxes = [[3.7, 2.2, 20.9, 15.5], [-4.5, -3.2, 8.8, 6.1], [30.2, 20.7, 55.0, 40.0],
             [0.0, 0.0, 40.0, 28.0], [12.0, 9.99, 12.0, 9.99], [-0.6, 5.5, 2.4, 7.5]]
    out["box_masks"] = [{"box": b, "mask": hexm(box_mask(b))} for b in boxes]

    base = box_mask([5.3, 4.1, 17.8, 19.6])
    out["offsets"] = []
    for x, y in [(3, 0), (0, 4), (-7, -2), (45, 31)]:
        m = np.array(ImageChops.offset(Image.fromarray(base), x, -y))
        out["offsets"].append({"x": x, "y": y, "in": hexm(base), "out": hexm(m)})

    out["morph"] = []
    for v in [4, 3, 2, 7, 1, -4, -3, -6, -2]:
        src = np.zeros((H, W), np.uint8)
        for _ in range(4):
            x0, y0 = rng.integers(-5, W), rng.integers(-5, H)
            src[max(y0, 0):y0 + rng.integers(2, 14), max(x0, 0):x0 + rng.integers(2, 14)] = 255
        src[rng.random((H, W)) < 0.03] = 255  # specks
        src[0, :3] = 255  # at the border
        out["morph"].append({"value": v, "in": hexm(src), "out": hexm(dilate_erode(src, v))})

    dets = [[1, 1, 11, 11], [20, 2, 30, 12], [5, 15, 9, 19], [0, 0, 40, 28], [22, 14, 32, 24],
            [2, 20, 4, 21]]
    out["filters"] = []
    for low, high, k in [(0, 1, 0), (0, 1, 2), (0.05, 0.5, 0), (0.05, 0.5, 2), (0, 1, 10),
                         (0.01, 0.2, 1)]:
        kept = filter_k_largest(filter_by_ratio(dets, low, high), k)
        out["filters"].append({"min": low, "max": high, "k": k, "in": dets, "out": kept})

    out["prompts"] = []
    for p in ["", "a face", "face [SEP] hands", "  a [SEP]  [SEP] [PROMPT], detailed ",
              "[PROMPT] and [PROMPT]", "x[SEP]", " [SEP] y"]:
        out["prompts"].append({"ad_prompt": p, "default": "photo, woman",
                               "parts": get_prompt(p, "photo, woman")})

    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "ops.json"), "w") as f:
        json.dump(out, f, indent=0)
    print("wrote", os.path.join(OUT, "ops.json"))


if __name__ == "__main__":
    main()
