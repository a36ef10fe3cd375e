#!/usr/bin/env python3
"""bench_yolo's reference: ultralytics' predict (as ADetailer calls it) on the
same .pt and image, torch on the given thread count; --make writes a random
full-size model first (yolov8n.yaml / yolo11n.yaml / *-seg, ultralytics' own
YAMLs at their real scale, saved as make_yolo_fixtures.py saves them).

  PYTHONPATH=/work/yolo-overlay YOLO_CONFIG_DIR=/tmp/yolocfg /work/venv-torch2/bin/python \
      bench/bench_yolo_torch.py --make yolov8n-seg.yaml --model /tmp/yolov8n-seg.pt [--threads N]
"""
import argparse
import os
import sys
import time

import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--make")
    ap.add_argument("--image", default=os.path.join(HERE, "..", "assets", "images", "astronaut.png"))
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.make:
        from ultralytics.nn.tasks import DetectionModel, SegmentationModel, yaml_model_load
        import make_yolo_fixtures as mk
        torch.manual_seed(0)
        d = yaml_model_load(a.make)
        cls = SegmentationModel if "seg" in a.make else DetectionModel
        m = cls(d, ch=3, nc=1, verbose=False)
        m.names = {0: "person" if "seg" in a.make else "face"}
        m.eval()
        from ultralytics.utils import DEFAULT_CFG_DICT, IterableSimpleNamespace
        m.args = IterableSimpleNamespace(**DEFAULT_CFG_DICT)
        mk.save_pt(m, a.model)
    from ultralytics import YOLO
    img = Image.open(a.image).convert("RGB")
    y = YOLO(a.model)
    y(img, conf=a.conf, verbose=False)
    t = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        r = y(img, conf=a.conf, verbose=False)[0]
        t.append((time.perf_counter() - t0) * 1e3)
    t.sort()
    print("ultralytics predict %dx%d: median %.1f ms (min %.1f) over %d, %d boxes, %d torch threads"
          % (img.width, img.height, t[len(t) // 2], t[0], a.reps, len(r.boxes), torch.get_num_threads()))


if __name__ == "__main__":
    main()
