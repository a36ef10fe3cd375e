#!/usr/bin/env python3
"""Writes a FULL-SIZE random-weight SDXL base model as a diffusers folder
(f16 safetensors, SDXL 1.0 base's published configs) for the engine's
full-size load test and for bench/ (one 1024x1024 UNet step against
diffusers/PyTorch on the same weights). Not committed: ~7 GB under
tests/reference/out/sdxl_full/.

Random weights (each module's own default initialisation, seeded) — the
architecture and the tensor sizes are what matter for loading and timing;
numerical parity is checked on the tiny committed fixtures instead.

  tests/reference/.venv/bin/python tests/reference/make_sdxl_full.py [--out DIR] [--seed N]

(venv: see requirements.txt; diffusers 0.27.2 / transformers 4.38.2 over
Debian's python3-torch.)
"""
import argparse
import json
import os

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

HERE = os.path.dirname(os.path.abspath(__file__))

# SDXL 1.0 base (stabilityai/stable-diffusion-xl-base-1.0 configs).
UNET = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
            down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            block_out_channels=[320, 640, 1280], attention_head_dim=[5, 10, 20],
            cross_attention_dim=2048, transformer_layers_per_block=[1, 2, 10],
            use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
            norm_num_groups=32, flip_sin_to_cos=True, freq_shift=0)
TEXT_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
              projection_dim=768, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
TEXT_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
              num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu",
              projection_dim=1280, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
           down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
           block_out_channels=[128, 256, 512, 512], sample_size=1024, scaling_factor=0.13025,
           norm_num_groups=32)
SCHEDULER = {"_class_name": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "steps_offset": 1,
             "timestep_spacing": "leading", "prediction_type": "epsilon", "interpolation_type": "linear",
             "use_karras_sigmas": False}
INDEX = {"_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.27.2",
         "force_zeros_for_empty_prompt": True,
         "scheduler": ["diffusers", "EulerDiscreteScheduler"],
         "text_encoder": ["transformers", "CLIPTextModel"],
         "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
         "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
         "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "out", "sdxl_full"))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(os.path.join(a.out, "scheduler"), exist_ok=True)
    with open(os.path.join(a.out, "model_index.json"), "w") as f:
        json.dump(INDEX, f, indent=2)
    with open(os.path.join(a.out, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SCHEDULER, f, indent=2)
    parts = [("text_encoder", lambda: CLIPTextModel(CLIPTextConfig(**TEXT_L))),
             ("text_encoder_2", lambda: CLIPTextModelWithProjection(CLIPTextConfig(**TEXT_G))),
             ("vae", lambda: AutoencoderKL(**VAE)),
             ("unet", lambda: UNet2DConditionModel(**UNET))]
    for i, (name, make) in enumerate(parts):
        torch.manual_seed(a.seed * 100 + i)
        m = make().half()
        m.save_pretrained(os.path.join(a.out, name), safe_serialization=True)
        print(name, sum(p.numel() for p in m.parameters()), "parameters", flush=True)
        del m
    print("wrote", a.out)


if __name__ == "__main__":
    main()
