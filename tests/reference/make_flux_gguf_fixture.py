#!/usr/bin/env python3
"""Writes tests/engine/fixtures/flux/flux_schnell_q8_0.gguf: the tiny schnell
transformer of make_flux_fixtures.py (flux_schnell_bfl.safetensors, BFL
names as ComfyUI-GGUF and stable-diffusion.cpp files have them) as GGUF by
the gguf package's own writer, its matrices whose rows are whole Q8_0 blocks
(32 values) quantized by gguf.quants.quantize, the rest (txt_in: 24 columns,
the vectors) as stored (f16) -- as ComfyUI-GGUF's convert script leaves small
tensors. test_flux.c loads it and bounds the output's distance from the f32
run (flux_schnell_ref.safetensors).

Also tests/engine/fixtures/flux/flux_schnell_k.gguf: the same schnell
transformer with three inputs 256 wide (as K blocks need rows of 256) whose
matrices are random K blocks: time_in.in_layer Q4_K, txt_in Q5_K (joint
attention width 256), vector_in.in_layer Q6_K (pooled width 256); the other
matrices Q8_0 as above. test_flux.c runs it with the blocks kept (MATMUL on
block types) and widened to f32 on load, and bounds the difference.

  /work/venv-ref/bin/python tests/reference/make_flux_gguf_fixture.py
(the gguf package: tests/reference/requirements-gguf.txt)
"""
import json
import os

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize
from safetensors import safe_open
from safetensors.numpy import load_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "engine", "fixtures", "flux")


def random_blocks(qtype, rows, cols, rng, check=True):
    """Random blocks of a [rows, cols] matrix (bytes as gguf stores them):
    random levels and sub-block scales, f16 d (and dmin) giving weights of
    about 1/sqrt(cols), as a trained layer's. Q8_0, Q4_K, Q5_K, Q6_K."""
    size = gguf.GGML_QUANT_SIZES[qtype][1]
    nb = rows * cols // gguf.GGML_QUANT_SIZES[qtype][0]
    b = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    a = 1.0 / np.sqrt(cols)
    if qtype == T.Q8_0:  # d, then 32 int8 (uniform: rms 74)
        b[:, 0:2] = np.full(nb, a / 74, np.float16).view(np.uint8).reshape(nb, 2)
    elif qtype == T.Q6_K:  # ql[128] qh[64] scales[16] (int8) d
        b[:, 208:210] = np.full(nb, a / (64 * 32), np.float16).view(np.uint8).reshape(nb, 2)
    else:  # Q4_K / Q5_K: d dmin scales[12] ...
        top = 15 if qtype == T.Q4_K else 31
        d = np.full(nb, a / (63 * top / 2), np.float16).view(np.uint8).reshape(nb, 2)
        b[:, 0:2] = d
        b[:, 2:4] = np.full(nb, a / 63, np.float16).view(np.uint8).reshape(nb, 2)
    if check:
        w = gguf.quants.dequantize(b.reshape(rows, -1), qtype)
        assert w.shape == (rows, cols) and np.isfinite(w).all()
    return b.reshape(rows, -1)


def write(path, sd, config, k=None):
    w = gguf.GGUFWriter(path, "flux")
    w.add_string("lf.config", json.dumps(config))  # the tiny sizes' RoPE axes, as the safetensors file says
    nq = 0
    for name in sorted(sd):
        v = sd[name]
        if k and name in k:
            w.add_tensor(name, k[name][1], raw_dtype=k[name][0])
        elif v.ndim == 2 and v.shape[1] % 32 == 0:
            w.add_tensor(name, quantize(v.astype(np.float32), T.Q8_0), raw_dtype=T.Q8_0)
            nq += 1
        else:
            w.add_tensor(name, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote", path, len(sd), "tensors,", nq, "as Q8_0,", len(k or {}), "as K types")


def main():
    sd = load_file(os.path.join(OUT, "flux_schnell_bfl.safetensors"))
    src = os.path.join(OUT, "flux_schnell_bfl.safetensors")
    with safe_open(src, "np") as f:
        config = json.loads(f.metadata()["lf.config"])
    write(os.path.join(OUT, "flux_schnell_q8_0.gguf"), sd, config)
    rng = np.random.default_rng(17)
    D = sd["img_in.weight"].shape[0]
    k = {"time_in.in_layer.weight": (T.Q4_K, random_blocks(T.Q4_K, D, 256, rng)),
         "txt_in.weight": (T.Q5_K, random_blocks(T.Q5_K, D, 256, rng)),
         "vector_in.in_layer.weight": (T.Q6_K, random_blocks(T.Q6_K, D, 256, rng))}
    sd["txt_in.weight"] = np.zeros((D, 256), np.float16)  # placeholders: the K blocks are written
    sd["vector_in.in_layer.weight"] = np.zeros((D, 256), np.float16)
    tc = dict(config["transformer"], joint_attention_dim=256, pooled_projection_dim=256)
    write(os.path.join(OUT, "flux_schnell_k.gguf"), sd, dict(config, transformer=tc), k)


if __name__ == "__main__":
    main()
