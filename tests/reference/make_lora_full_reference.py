#!/usr/bin/env python3
"""Reference for the real SD1.5 LoRA merged into a full-size random SD1.5
model (tests/engine/test_lora_full.c): what diffusers' LoRA loading and
fuse_lora make of it.

The model is make_model_fixtures.py's full-size random checkpoint
(build(FULL, 1), the same weights as its --full output; written to
tests/reference/out/sd15_full.safetensors when not there yet). The LoRA is
../shared/refdata/lora/sd15_diffusers_lora_rank4.safetensors (diffusers
attention-processor names, rank 4, 128 UNet layers). diffusers loads it into
the UNet (LoraLoaderMixin.lora_state_dict + load_lora_into_unet, as
pipe.load_lora_weights does) and fuses it at scale 1 (fuse_lora: W += up @ down
in float32 on the f16-rounded weights); this script then saves, under
tests/reference/out/sd15_full_lora_ref.safetensors (not committed):
  - "w.<pool name>": three fused layers (f32), one per UNet level kind,
  - "unet_x", "unet_t", "unet_ctx", "unet_out": one UNet step on an 8x8
    latent with the fused weights, and "unet_out_plain" without the LoRA.

  /work/venv-ref/bin/python tests/reference/make_lora_full_reference.py
(diffusers 0.27.2 + peft 0.10 on torch 1.13; see requirements.txt.)
"""
import os
import sys

import torch
from diffusers.loaders import LoraLoaderMixin
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_model_fixtures as mm  # noqa: E402

OUT = os.path.join(HERE, "out")
LORA = os.path.join(HERE, "..", "..", "..", "shared", "refdata", "lora",
                    "sd15_diffusers_lora_rank4.safetensors")
LAYERS = ["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
          "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight",
          "up_blocks.3.attentions.2.transformer_blocks.0.attn1.to_out.0.weight"]


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    unet, vae, text = mm.build(mm.FULL, 1)
    ck = os.path.join(OUT, "sd15_full.safetensors")
    if not os.path.exists(ck):
        save_file(mm.ldm_state(mm.FULL, unet, vae, text), ck)
        print("wrote", ck)
    del vae, text
    # The checkpoint holds f16: run on exactly those values.
    unet = unet.half().float().eval()
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(1, 4, 8, 8, generator=gen)
    t = torch.tensor([500.0])
    ctx = torch.randn(1, 77, 768, generator=gen)
    r = {"unet_x": x, "unet_t": t, "unet_ctx": ctx}
    with torch.no_grad():
        r["unet_out_plain"] = unet(x, t, encoder_hidden_states=ctx).sample
    # What pipe.load_lora_weights does for the UNet (diffusers 0.27 with PEFT:
    # the attention-processor names are converted, then PEFT layers wrap the
    # Linear ones; UNet2DConditionModel.load_attn_procs alone leaves this old
    # format unapplied, silently).
    state_dict, alphas = LoraLoaderMixin.lora_state_dict(load_file(LORA))
    LoraLoaderMixin.load_lora_into_unet(state_dict, alphas, unet=unet)
    unet.fuse_lora(lora_scale=1.0)
    sd = unet.state_dict()
    for n in LAYERS:
        key = n if n in sd else n.replace(".weight", ".base_layer.weight")
        r["w.unet." + n] = sd[key].float()
    with torch.no_grad():
        r["unet_out"] = unet(x, t, encoder_hidden_states=ctx).sample
    save_file({k: v.contiguous() for k, v in r.items()}, os.path.join(OUT, "sd15_full_lora_ref.safetensors"))
    d = (r["unet_out"] - r["unet_out_plain"]).abs().max().item()
    print("LoRA changes the UNet output by up to", d)
    if d == 0:
        sys.exit("the LoRA was not applied")


if __name__ == "__main__":
    main()
