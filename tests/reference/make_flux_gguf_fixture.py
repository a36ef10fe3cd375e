#!/usr/bin/env python3
"""Writes tests/engine/fixtures/flux/flux_schnell_q8_0.gguf: the tiny schnell
transformer of make_flux_fixtures.py (flux_schnell_bfl.safetensors, BFL
names as ComfyUI-GGUF and stable-diffusion.cpp files have them) as GGUF by
the gguf package's own writer, its matrices whose rows are whole Q8_0 blocks
(32 values) quantized by gguf.quants.quantize, the rest (txt_in: 24 columns,
the vectors) as stored (f16) -- as ComfyUI-GGUF's convert script leaves small
tensors. test_flux.c loads it and bounds the output's distance from the f32
run (flux_schnell_ref.safetensors).

  /work/venv-ref/bin/python tests/reference/make_flux_gguf_fixture.py
(the gguf package: tests/reference/requirements-gguf.txt)
"""
import os

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize
from safetensors import safe_open
from safetensors.numpy import load_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "engine", "fixtures", "flux")


def main():
    sd = load_file(os.path.join(OUT, "flux_schnell_bfl.safetensors"))
    src = os.path.join(OUT, "flux_schnell_bfl.safetensors")
    with safe_open(src, "np") as f:
        config = f.metadata()["lf.config"]
    w = gguf.GGUFWriter(os.path.join(OUT, "flux_schnell_q8_0.gguf"), "flux")
    w.add_string("lf.config", config)  # the tiny sizes' RoPE axes, as the safetensors file says
    nq = 0
    for name in sorted(sd):
        v = sd[name]
        if v.ndim == 2 and v.shape[1] % 32 == 0:
            w.add_tensor(name, quantize(v.astype(np.float32), T.Q8_0), raw_dtype=T.Q8_0)
            nq += 1
        else:
            w.add_tensor(name, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote", len(sd), "tensors,", nq, "as Q8_0")


if __name__ == "__main__":
    main()
