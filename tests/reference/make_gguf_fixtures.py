#!/usr/bin/env python3
"""Writes GGUF files with the gguf package's own writer (gguf.GGUFWriter) and
the package's numpy dequantization (gguf.quants.dequantize) as the
reference, for tests/engine/test_gguf.c and tests/kernels/test_quant.c.

tests/engine/fixtures/gguf/types.gguf (GGUF v3, alignment 32):
  "<T>.w" for T in F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
  Q6_K: a [3, 512] tensor of type T whose blocks are random bytes (every bit
  pattern of the quants and scale bytes occurs) with finite random f16
  scales, and "<T>.ref" (F32): gguf.quants.dequantize of those bytes.
  "Q8_0.q" / "Q4_0.q" / "Q5_1.q": a seeded N(0, 1) [4, 64] tensor quantized by
  gguf.quants.quantize, with "<T>.qref" its dequantization and "<T>.src" the
  f32 source (known tensors through the package's quantizer).
  "vol.w": a 3-d Q8_0 tensor [2, 3, 64]; metadata of every value type (the
  test checks them against the values below).
tests/engine/fixtures/gguf/quantize.gguf: "src" (F32 [8, 256]: N(0, 1) rows
  with edge blocks: all zero, constant, +max and -max in one block, one huge
  value, halves at the rounding boundaries) and "<T>.q" = gguf.quants.quantize
  (src, T) for T in Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (the quantizer's bytes, for
  lf_quant_quantize and quantize-on-load).
tests/engine/fixtures/gguf/align64.gguf (GGUF v2 header, alignment 64): two
  small tensors, for the alignment path.
tests/fuzz/corpus/gguf/: tiny files (a few hundred bytes) for the fuzz
  target's replay.

  /work/venv-ref/bin/pip install --no-deps -r tests/reference/requirements-gguf.txt
  /work/venv-ref/bin/python tests/reference/make_gguf_fixtures.py
(the venv is the shared reference one, tests/reference/requirements.txt).
"""
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "engine", "fixtures", "gguf")
FUZZ = os.path.join(ROOT, "tests", "fuzz", "corpus", "gguf")

rng = np.random.default_rng(1234)


def f16_bytes(n, lo=-3.0, hi=3.0):
    """n finite f16 values as bytes (scales: small, mixed signs, some subnormal)."""
    v = rng.uniform(lo, hi, n).astype(np.float16)
    v[::7] = (v[::7] * np.float16(1e-5)).astype(np.float16)  # subnormal-range scales
    return v.view(np.uint8).reshape(n, 2)


# Byte offsets of the f16 scale fields (d, then dmin/m) in each block.
SCALES = {T.Q8_0: [0], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2],
          T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def random_blocks(qt, rows, cols):
    bsize, tsize = gguf.GGML_QUANT_SIZES[qt]
    nb = rows * cols // bsize
    b = rng.integers(0, 256, (nb, tsize), dtype=np.uint8)
    for off in SCALES[qt]:
        b[:, off:off + 2] = f16_bytes(nb)
    return b.reshape(rows, cols // bsize * tsize)


def types_file(path):
    w = gguf.GGUFWriter(path, "lightfarm-test")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.15625)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo gguf")
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", -2.5e-300)
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_str", ["a", "", "ccc"])
    w.add_array("t.arr_f32", [0.5, 1.5])
    rows, cols = 3, 512
    # Plain types.
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    w.add_tensor("F32.w", x)
    w.add_tensor("F32.ref", x)
    h = rng.integers(0, 0x7c00, (rows, cols), dtype=np.uint16)  # finite positive halves...
    h |= (rng.integers(0, 2, (rows, cols), dtype=np.uint16) << 15)  # ...with random signs
    w.add_tensor("F16.w", h.view(np.float16))
    w.add_tensor("F16.ref", h.view(np.float16).astype(np.float32))
    bf = rng.integers(0, 0x7f80, (rows, cols), dtype=np.uint16)
    bf |= (rng.integers(0, 2, (rows, cols), dtype=np.uint16) << 15)
    braw = bf.view(np.uint8).reshape(rows, cols * 2)
    w.add_tensor("BF16.w", braw, raw_dtype=T.BF16)
    w.add_tensor("BF16.ref", dequantize(braw, T.BF16))
    for qt in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q4_K, T.Q5_K, T.Q6_K):
        raw = random_blocks(qt, rows, cols)
        ref = dequantize(raw, qt)
        assert ref.shape == (rows, cols) and ref.dtype == np.float32 and np.isfinite(ref).all()
        w.add_tensor(f"{qt.name}.w", raw, raw_dtype=qt)
        w.add_tensor(f"{qt.name}.ref", ref)
    # Known tensors through the package's quantizer.
    src = rng.standard_normal((4, 64)).astype(np.float32)
    for qt in (T.Q8_0, T.Q4_0, T.Q5_1):
        q = quantize(src, qt)
        w.add_tensor(f"{qt.name}.q", q, raw_dtype=qt)
        w.add_tensor(f"{qt.name}.qref", dequantize(q, qt))
        w.add_tensor(f"{qt.name}.src", src)
    vol = quantize(rng.standard_normal((2, 3, 64)).astype(np.float32), T.Q8_0)
    w.add_tensor("vol.w", vol, raw_dtype=T.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def align_file(path):
    w = gguf.GGUFWriter(path, "lightfarm-align")
    w.add_custom_alignment(64)
    w.add_tensor("a", np.arange(5, dtype=np.float32))
    w.add_tensor("b", quantize(np.linspace(-1, 1, 32, dtype=np.float32).reshape(1, 32), T.Q8_0),
                 raw_dtype=T.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    # The writer always says version 3; make this one a v2 file (same layout).
    with open(path, "r+b") as f:
        f.seek(4)
        f.write((2).to_bytes(4, "little"))


def quantize_file(path):
    r = np.random.default_rng(4321)
    src = r.standard_normal((8, 256)).astype(np.float32)
    src[0, 0:32] = 0                                   # all zero: d = 0, id = 0
    src[0, 32:64] = 0.75                               # constant
    src[0, 64:96] = r.standard_normal(32) * 0.1
    src[0, 64], src[0, 70] = 2.0, -2.0                 # +max then -max: the first wins
    src[0, 96:128] = r.standard_normal(32) * 1e-3
    src[0, 100] = 1e4                                  # one huge value
    src[1, 0:32] = (np.arange(32, dtype=np.float32) - 16) / 8   # exact multiples and halves
    src[1, 32:64] = (np.arange(32, dtype=np.float32) - 15.5) * np.float32(127 / 15.5) / 127
    src[2] *= 100                                      # large scales
    src[3] *= 1e-6                                     # tiny, subnormal f16 scales
    w = gguf.GGUFWriter(path, "lightfarm-quantize")
    w.add_tensor("src", src)
    for qt in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1):
        w.add_tensor(f"{qt.name}.q", quantize(src, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def fuzz_files():
    os.makedirs(FUZZ, exist_ok=True)
    small = {
        "q8_0.gguf": [("w", quantize(np.linspace(-2, 2, 64, dtype=np.float32).reshape(2, 32), T.Q8_0), T.Q8_0)],
        "q4_k.gguf": [("w", random_blocks(T.Q4_K, 1, 256), T.Q4_K)],
        "f16.gguf": [("a", np.ones((2, 3), np.float16), None), ("b", np.zeros(4, np.float32), None)],
        "empty.gguf": [],
    }
    for name, tensors in small.items():
        p = os.path.join(FUZZ, name)
        w = gguf.GGUFWriter(p, "fz")
        w.add_array("k.arr", [1, 2])
        w.add_string("k.s", "x")
        for tn, arr, qt in tensors:
            if qt is None:
                w.add_tensor(tn, arr)
            else:
                w.add_tensor(tn, arr, raw_dtype=qt)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    types_file(os.path.join(OUT, "types.gguf"))
    align_file(os.path.join(OUT, "align64.gguf"))
    quantize_file(os.path.join(OUT, "quantize.gguf"))
    fuzz_files()
    for d in (OUT, FUZZ):
        for n in sorted(os.listdir(d)):
            print(os.path.join(d, n), os.path.getsize(os.path.join(d, n)))
