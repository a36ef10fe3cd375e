#!/usr/bin/env python3
"""The reference half of bench_blazeface: TFLite's own interpreter
(tflite-runtime 2.14, XNNPACK, one thread) on the same .tflite file and the
same all-zero input, median of REPS invokes after a warm-up. Prints one line:
"tflite_ms <median>". Environment: tests/reference/requirements-face.txt.

Usage: bench_blazeface_tflite.py MODEL.tflite REPS"""
import sys
import time

import numpy as np
from tflite_runtime.interpreter import Interpreter

it = Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
inp = it.get_input_details()[0]
x = np.zeros(inp["shape"], np.float32)
it.set_tensor(inp["index"], x)
it.invoke()
ts = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    it.set_tensor(inp["index"], x)
    it.invoke()
    ts.append(time.perf_counter() - t)
print("tflite_ms %.3f" % (sorted(ts)[len(ts) // 2] * 1e3))
