#!/usr/bin/env python3
"""Writes a tiny random TAEF1-style preview decoder and its reference output
for tests/engine/test_model_taesd.c (issue 17: Flux previews).

TAEF1 (madebyollin/taef1) is the TAESD architecture with 16 latent
channels; diffusers loads it as AutoencoderTiny(latent_channels=16). The
reference is diffusers' own AutoencoderTiny (not a re-implementation): a
tiny random config (8 channels wide, one block per level), its decoder's
weights rounded to f16 and stored with diffusers' names (decoder.layers.N),
and decode(z) in f32 on the rounded weights, mapped from diffusers' [-1, 1]
back to TAESD's [0, 1] ((x + 1) / 2), which lf_taesd_decode gives.

  fixtures/flux/taef1_tiny.safetensors      the decoder
  fixtures/flux/taef1_tiny_ref.safetensors  z [1, 16, 8, 8], rgb [1, 3, 64, 64] and z_vae
                                            (z as a Flux VAE's unscaled latent)

  /work/venv-torch2/bin/python tests/reference/make_taef1_fixture.py
"""
import argparse
import os

import torch
from diffusers import AutoencoderTiny
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "engine", "fixtures", "flux"))
    a = ap.parse_args()
    torch.manual_seed(17)
    m = AutoencoderTiny(latent_channels=16, encoder_block_out_channels=(8, 8, 8, 8),
                        decoder_block_out_channels=(8, 8, 8, 8), num_encoder_blocks=(1, 1, 1, 1),
                        num_decoder_blocks=(1, 1, 1, 1)).eval()
    gen = torch.Generator().manual_seed(17)
    # Random weights at a scale that keeps the activations alive through
    # the ReLUs (the default init leaves an 8-wide decoder nearly flat).
    for name, p in m.decoder.named_parameters():
        scale = 1.0 / p[0].numel() ** 0.5 if name.endswith("weight") else 0.05
        p.copy_((torch.randn(p.shape, generator=gen) * scale).half().float())
    sd = {"decoder." + k: v.half().contiguous() for k, v in m.decoder.state_dict().items()}
    save_file(sd, os.path.join(a.out, "taef1_tiny.safetensors"))
    z = torch.randn(1, 16, 8, 8, generator=gen) * 1.5
    rgb = (m.decode(z).sample + 1) / 2
    # The same latent as the VAE's own (unscaled) latent of a Flux model
    # (scaling 0.3611, shift 0.1159: ComfyUI's process_out), which a Flux
    # model's preview takes: z_vae = z / scale + shift.
    z_vae = z / 0.3611 + 0.1159
    save_file({"z": z.contiguous(), "rgb": rgb.contiguous(), "z_vae": z_vae.contiguous()},
              os.path.join(a.out, "taef1_tiny_ref.safetensors"))
    print("rgb range %.3f .. %.3f, std %.3f" % (rgb.min(), rgb.max(), rgb.std()))


if __name__ == "__main__":
    main()
