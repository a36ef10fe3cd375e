"""Model configs for lf-tiny-shapes: SD1.5's architecture (same classes, blocks and key layout), tiny widths."""
import torch

TEXT_CONFIG = dict(
    vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=64,
    bos_token_id=49406, eos_token_id=49407, pad_token_id=1,
)

UNET_CONFIG = dict(
    sample_size=16, in_channels=4, out_channels=4,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[32, 64, 64, 64], layers_per_block=2, cross_attention_dim=64,
    attention_head_dim=2,  # as in SD1.5's config this diffusers name means the number of heads (2 in every block)
    norm_num_groups=32, norm_eps=1e-5, act_fn="silu", flip_sin_to_cos=True, freq_shift=0,
    use_linear_projection=False, transformer_layers_per_block=1,
)

VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=128,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[32, 32, 64, 64], layers_per_block=1, norm_num_groups=32, act_fn="silu",
    scaling_factor=0.18215,
)

SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    prediction_type="epsilon", steps_offset=1, clip_sample=False, set_alpha_to_one=False,
)


def make_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel
    return CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))


def make_unet():
    from diffusers import UNet2DConditionModel
    return UNet2DConditionModel(**UNET_CONFIG)


def make_vae():
    from diffusers import AutoencoderKL
    return AutoencoderKL(**VAE_CONFIG)


def nparams(m):
    return sum(p.numel() for p in m.parameters())


if __name__ == "__main__":
    import time
    torch.set_num_threads(2)
    te, un, va = make_text_encoder(), make_unet(), make_vae()
    print("params text %d unet %d vae %d total %.1f MB f16" % (
        nparams(te), nparams(un), nparams(va), 2 * (nparams(te) + nparams(un) + nparams(va)) / 1e6))
    B = 32
    ids = torch.randint(0, 49408, (B, 77))
    x = torch.randn(B, 4, 16, 16)
    opt = torch.optim.AdamW(list(un.parameters()) + list(te.parameters()), 1e-4)
    for i in range(4):
        t = time.time()
        h = te(ids)[0]
        out = un(x, torch.randint(0, 1000, (B,)), h).sample
        out.square().mean().backward()
        opt.step(); opt.zero_grad()
        print("unet+te step B=%d: %.3fs" % (B, time.time() - t))
    img = torch.randn(16, 3, 64, 64)
    vopt = torch.optim.AdamW(va.parameters(), 1e-4)
    for i in range(3):
        t = time.time()
        post = va.encode(img).latent_dist
        rec = va.decode(post.sample()).sample
        (rec - img).square().mean().backward()
        vopt.step(); vopt.zero_grad()
        print("vae step B=16 64x64: %.3fs" % (time.time() - t))
    with torch.no_grad():
        img = torch.randn(64, 3, 128, 128)
        t = time.time()
        va.encode(img)
        print("vae encode 64 imgs 128x128: %.3fs" % (time.time() - t))
