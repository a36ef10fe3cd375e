#!/usr/bin/env python3
"""Writes a full-size random Flux.1-dev transformer (the BFL layout and
shapes: 19 double + 38 single blocks, hidden 3072, 24 heads of 128, MLP
12288, T5 width 4096, pooled 768, guidance embedding) directly as GGUF, block
by block, never holding it in f32: the matrices are random blocks of the
type asked for (make_flux_gguf_fixture.random_blocks: weights of about
1/sqrt(columns)), the vectors f32. Rows that are not whole blocks (img_in's
64 columns for the K types) are f16. Output under tests/reference/out/ (not
committed; delete when done):

  flux_dev_full_q4_k.gguf  ~6.7 GB     flux_dev_full_q8_0.gguf  ~12.7 GB

For stable-diffusion.cpp, which needs every part of the pipeline, --parts
also writes a random T5-XXL encoder (HF names, Q4_K matrices: t5xxl_full_q4_k
.gguf, ~2.7 GB) and, with --torch-parts (run under the torch venv), a random
CLIP-L (clip_l_full_f16.safetensors, text_model.* names) and the Flux VAE in
the BFL ae.safetensors layout (ae_full_f16.safetensors):

  /work/venv-ref/bin/python tests/reference/make_flux_full_gguf.py --type q4_k [--parts]
  /work/venv-torch2/bin/python tests/reference/make_flux_full_gguf.py --torch-parts

A mid-size model for memory measurements (bench_gen_mem --flux): --double 2 --single 4 --t5-layers 4
writes flux_dev_d2s4_<type>.gguf and t5xxl_l4_q4_k.gguf.

bench/bench_flux_sdcpp.sh runs one step of each with the engine and with
stable-diffusion.cpp.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")

D, MLP, HEAD, IN, TXT, VEC, FREQ = 3072, 12288, 128, 64, 4096, 768, 256


def flux_tensors(n_double=19, n_single=38):
    """(name, shape) of Flux.1-dev in BFL names, PyTorch order."""
    t = []

    def lin(name, rows, cols):
        t.append((name + ".weight", (rows, cols)))
        t.append((name + ".bias", (rows,)))

    lin("img_in", D, IN)
    lin("txt_in", D, TXT)
    for emb, cols in (("time_in", FREQ), ("vector_in", VEC), ("guidance_in", FREQ)):
        lin(emb + ".in_layer", D, cols)
        lin(emb + ".out_layer", D, D)
    for i in range(n_double):
        p = f"double_blocks.{i}."
        for s in ("img", "txt"):
            lin(p + s + "_mod.lin", 6 * D, D)
            lin(p + s + "_attn.qkv", 3 * D, D)
            t.append((p + s + "_attn.norm.query_norm.scale", (HEAD,)))
            t.append((p + s + "_attn.norm.key_norm.scale", (HEAD,)))
            lin(p + s + "_attn.proj", D, D)
            lin(p + s + "_mlp.0", MLP, D)
            lin(p + s + "_mlp.2", D, MLP)
    for i in range(n_single):
        p = f"single_blocks.{i}."
        lin(p + "linear1", 3 * D + MLP, D)
        lin(p + "linear2", D, D + MLP)
        t.append((p + "norm.query_norm.scale", (HEAD,)))
        t.append((p + "norm.key_norm.scale", (HEAD,)))
        lin(p + "modulation.lin", 3 * D, D)
    lin("final_layer.adaLN_modulation.1", 2 * D, D)
    lin("final_layer.linear", IN, D)
    return t


def t5_tensors(layers=24, d=4096, ff=10240, vocab=32128):
    """(name, shape) of the T5 v1.1 XXL encoder in HF names."""
    t = [("shared.weight", (vocab, d))]
    for i in range(layers):
        p = f"encoder.block.{i}.layer."
        for x in "qkvo":
            t.append((f"{p}0.SelfAttention.{x}.weight", (d, d)))
        if i == 0:
            t.append((p + "0.SelfAttention.relative_attention_bias.weight", (32, 64)))
        t.append((p + "0.layer_norm.weight", (d,)))
        t.append((p + "1.DenseReluDense.wi_0.weight", (ff, d)))
        t.append((p + "1.DenseReluDense.wi_1.weight", (ff, d)))
        t.append((p + "1.DenseReluDense.wo.weight", (d, ff)))
        t.append((p + "1.layer_norm.weight", (d,)))
    t.append(("encoder.final_layer_norm.weight", (d,)))
    return t


def write_gguf(path, arch, tensors, qtype, seed):
    """Streams the tensors to path: matrices whose rows are whole blocks of
    qtype as random blocks, other matrices f16, vectors f32 (norm scales
    near 1)."""
    import gguf
    sys.path.insert(0, HERE)
    from make_flux_gguf_fixture import random_blocks
    rng = np.random.default_rng(seed)
    blk = gguf.GGML_QUANT_SIZES[qtype][0]
    w = gguf.GGUFWriter(path, arch)
    plan = []
    for name, shape in tensors:
        if len(shape) == 2 and shape[1] % blk == 0 and "relative_attention_bias" not in name:
            bb = gguf.GGML_QUANT_SIZES[qtype][1]
            nbytes = shape[0] * shape[1] // blk * bb
            w.add_tensor_info(name, (shape[0], shape[1] // blk * bb), np.dtype(np.uint8), nbytes,
                              raw_dtype=qtype)
            plan.append((name, shape, "q"))
        elif len(shape) == 2:
            w.add_tensor_info(name, shape, np.dtype(np.float16), shape[0] * shape[1] * 2)
            plan.append((name, shape, "f16"))
        else:
            w.add_tensor_info(name, shape, np.dtype(np.float32), shape[0] * 4)
            plan.append((name, shape, "f32"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    total = 0
    for i, (name, shape, kind) in enumerate(plan):
        if kind == "q":
            a = random_blocks(qtype, shape[0], shape[1], rng, check=False)
        elif kind == "f16":
            a = (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[1])).astype(np.float16)
        elif "norm" in name or name.endswith(".scale"):
            a = (1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
        else:
            a = (0.02 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
        w.write_tensor_data(a)
        total += a.nbytes
        if i % 50 == 0:
            print(f"  {i}/{len(plan)} tensors, {total / 2**30:.2f} GiB", flush=True)
    w.close()
    print("wrote", path, f"{total / 2**30:.2f} GiB")


def torch_parts(out):
    """CLIP-L and the Flux VAE, random, f16 (stable-diffusion.cpp's other parts)."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel
    from diffusers import AutoencoderKL
    sys.path.insert(0, HERE)
    import make_flux_fixtures as mf
    torch.manual_seed(0)
    clip = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                        num_attention_heads=12, projection_dim=768, hidden_act="quick_gelu"))
    sd = {k: v.half().contiguous() for k, v in clip.state_dict().items() if "position_ids" not in k}
    sd["text_projection.weight"] = (torch.randn(768, 768) / 768 ** 0.5).half()
    save_file(sd, os.path.join(out, "clip_l_full_f16.safetensors"))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=[128, 256, 512, 512],
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        layers_per_block=2, norm_num_groups=32, use_quant_conv=False, use_post_quant_conv=False)
    mf.NLEV = 4
    sd = {k: v.half().contiguous() for k, v in mf.vae_bfl_state(vae.state_dict()).items()}
    save_file(sd, os.path.join(out, "ae_full_f16.safetensors"))
    print("wrote clip_l_full_f16.safetensors, ae_full_f16.safetensors")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--type", choices=["q4_k", "q8_0", "none"], default="q4_k",
                    help="the transformer's block type (none: no transformer)")
    ap.add_argument("--parts", action="store_true", help="also the T5-XXL encoder (Q4_K GGUF)")
    ap.add_argument("--torch-parts", action="store_true", help="only CLIP-L and the VAE (needs torch, diffusers)")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--double", type=int, default=19, help="double-stream blocks (a mid-size model: fewer)")
    ap.add_argument("--single", type=int, default=38, help="single-stream blocks")
    ap.add_argument("--t5-layers", type=int, default=24, help="T5 encoder layers (with --parts)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.torch_parts:
        torch_parts(a.out)
        return
    import gguf
    T = gguf.GGMLQuantizationType
    if a.type != "none":
        q = T.Q4_K if a.type == "q4_k" else T.Q8_0
        size = "full" if (a.double, a.single) == (19, 38) else f"d{a.double}s{a.single}"
        write_gguf(os.path.join(a.out, f"flux_dev_{size}_{a.type}.gguf"), "flux", flux_tensors(a.double, a.single),
                   q, 1)
    if a.parts:
        size = "full" if a.t5_layers == 24 else f"l{a.t5_layers}"
        write_gguf(os.path.join(a.out, f"t5xxl_{size}_q4_k.gguf"), "t5encoder", t5_tensors(a.t5_layers), T.Q4_K, 2)


if __name__ == "__main__":
    main()
