#!/usr/bin/env python3
"""Writes a kohya LoRA for the tiny fixture checkpoint
tests/engine/fixtures/models/tiny_a.safetensors, for the facade and worker
tests of LoRA application (tests/engine/test_pipeline_lora.c).

The LoRA is built from the checkpoint's own shapes: rank-2 up/down factors
(fixed seed, float16, alpha 1) for every UNet attention projection (to_q,
to_k, to_v, to_out.0), named in the original LDM layout as A1111-era kohya
files are ("lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q"),
a LoCon 3x3 conv of the first ResNet, the text encoder's q_proj / v_proj
("lora_te_text_model_encoder_layers_N_self_attn_q_proj"), and one module
no model has ("lora_unet_no_such_layer"), which the engine must report.
Output: tests/engine/fixtures/lora/tiny_a_kohya.safetensors (a few KB), and
the same kind of LoRA for the built-in model models/lf-tiny-shapes.safetensors
(lf_tiny_shapes_kohya.safetensors, for the farm test
tests/integration/test_lora_farm.c).

  /work/venv-ref/bin/python tests/reference/make_lora_model_fixtures.py
(any Python with torch and safetensors; see make_lora_fixtures.py for the venv).
"""
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "engine", "fixtures")
gen = torch.Generator().manual_seed(77)


def factors(shape, r=2):
    out, inp, *k = shape
    down = (torch.randn(r, inp, *k, generator=gen) * 0.5).half()
    up = (torch.randn(out, r, *[1 for _ in k], generator=gen) * 0.5).half()
    return down, up


def make(ck, name, alias):
    t = {}
    with safe_open(ck, "pt") as f:
        for key in sorted(f.keys()):
            shape = tuple(f.get_slice(key).get_shape())
            mod = None
            if key.startswith("model.diffusion_model.") and key.endswith(".weight") and any(
                    s in key for s in (".to_q.", ".to_k.", ".to_v.", ".to_out.0.")):
                mod = "lora_unet_" + key[len("model.diffusion_model."):-len(".weight")].replace(".", "_")
            elif key == "model.diffusion_model.input_blocks.1.0.in_layers.2.weight":
                mod = "lora_unet_input_blocks_1_0_in_layers_2"
            elif key.startswith("cond_stage_model.transformer.text_model.encoder.layers.") and (
                    key.endswith("q_proj.weight") or key.endswith("v_proj.weight")):
                mod = "lora_te_" + key[len("cond_stage_model.transformer."):-len(".weight")].replace(".", "_")
            if mod:
                down, up = factors(shape)
                t[mod + ".lora_down.weight"], t[mod + ".lora_up.weight"] = down, up
                t[mod + ".alpha"] = torch.tensor(1.0)
    t["lora_unet_no_such_layer.lora_down.weight"] = torch.zeros(2, 4).half()
    t["lora_unet_no_such_layer.lora_up.weight"] = torch.zeros(4, 2).half()
    out = os.path.join(FIX, "lora", name + ".safetensors")
    save_file(t, out, metadata={"ss_output_name": alias})
    print("wrote", out, os.path.getsize(out), "bytes,", len(t), "tensors")


def main():
    make(os.path.join(FIX, "models", "tiny_a.safetensors"), "tiny_a_kohya", "tiny_a_style")
    make(os.path.join(HERE, "..", "..", "models", "lf-tiny-shapes.safetensors"), "lf_tiny_shapes_kohya",
         "shapes_style")


if __name__ == "__main__":
    main()
