"""Model configs for lf-tiny-shapes: SD1.5's architecture (same classes, blocks and key layout), tiny widths."""
import math

import torch

TEXT_CONFIG = dict(
    vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=64,
    bos_token_id=49406, eos_token_id=49407, pad_token_id=1,
)

UNET_CONFIG = dict(
    sample_size=32, in_channels=4, out_channels=4,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[32, 64, 64, 64], layers_per_block=2, cross_attention_dim=64,
    attention_head_dim=2,  # as in SD1.5's config this diffusers name means the number of heads (2 in every block)
    norm_num_groups=8, norm_eps=1e-5, act_fn="silu", flip_sin_to_cos=True, freq_shift=0,
    use_linear_projection=False, transformer_layers_per_block=1,
)

VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=256,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[32, 32, 64, 64], layers_per_block=1, norm_num_groups=8, act_fn="silu",
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


def _layout(cpg, K):
    """channel -> (colour index or None, sign, constant) for a GroupNorm-transparent layout: each group holds
    +X and -X (so silu(+x) - silu(-x) = x recovers X exactly after the SiLU) and +K/-K constants that fix the
    group's variance, so GroupNorm(affine weight = that std) is (almost exactly) the identity."""
    if cpg == 8:
        return {0: (0, 1, 0), 1: (0, -1, 0), 2: (1, 1, 0), 3: (1, -1, 0), 4: (2, 1, 0), 5: (2, -1, 0),
                6: (None, 0, K), 7: (None, 0, -K)}
    if cpg == 4:
        out = {}
        for c in range(3):
            out.update({4 * c: (c, 1, 0), 4 * c + 1: (c, -1, 0), 4 * c + 2: (None, 0, K), 4 * c + 3: (None, 0, -K)})
        return out
    raise ValueError(f"analytic VAE needs 4 or 8 channels per group, not {cpg}")


@torch.no_grad()
def analytic_vae(vae, K=24.0, logvar=-12.0):
    """Hand-set AutoencoderKL weights: the encoder is an exact 8x8 average pool of RGB into latent channels
    0-2 (channel 3 = 0), the decoder a nearest-neighbour 8x upsampling back to RGB. Residual branches and the
    attention outputs are zeroed (identity blocks); the GroupNorms before the encoder's and decoder's conv_out
    are made transparent with the +/-X, +/-K channel layout of _layout(). Used because on a shared 2-core
    machine a learned VAE could not be trained in the time budget; every tensor is still a real SD1.5 VAE
    tensor, and the model goes through the real VAE code path."""
    from diffusers.models.attention_processor import Attention
    from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D

    def eye_(w):
        w.zero_()
        n = min(w.shape[0], w.shape[1])
        kh, kw = w.shape[2] // 2, w.shape[3] // 2
        w[torch.arange(n), torch.arange(n), kh, kw] = 1.0

    for m in vae.modules():
        if isinstance(m, ResnetBlock2D):
            m.conv2.weight.zero_()
            m.conv2.bias.zero_()
            if m.conv_shortcut is not None:
                eye_(m.conv_shortcut.weight)
                m.conv_shortcut.bias.zero_()
        elif isinstance(m, Attention):
            m.to_out[0].weight.zero_()
            m.to_out[0].bias.zero_()
        elif isinstance(m, Downsample2D):
            w = m.conv.weight
            w.zero_()
            n = w.shape[0]
            for dy in (0, 1):
                for dx in (0, 1):
                    w[torch.arange(n), torch.arange(n), dy, dx] = 0.25
            m.conv.bias.zero_()
        elif isinstance(m, Upsample2D):
            eye_(m.conv.weight)
            m.conv.bias.zero_()
    G = vae.config.norm_num_groups
    L = vae.config.latent_channels
    for part, cin in ((vae.encoder, None), (vae.decoder, None)):
        C = part.conv_norm_out.num_channels
        lay = _layout(C // G, K)
        # conv_in: put the signal into the layout
        w, b = part.conv_in.weight, part.conv_in.bias
        w.zero_()
        b.zero_()
        for ch, (ci, sign, const) in lay.items():
            if ci is not None:
                w[ch, ci, 1, 1] = sign
            b[ch] = const
        # conv_norm_out: weight = the group's std so the GroupNorm is ~identity on the layout channels
        nchan = {}
        for ch in lay:
            nchan.setdefault(ch // (C // G), []).append(ch)
        part.conv_norm_out.weight.fill_(1.0)
        part.conv_norm_out.bias.zero_()
        for g, chans in nchan.items():
            ex2 = sum(const ** 2 + (0.3 if ci is not None else 0.0) for ci, _, const in (lay[c] for c in chans))
            part.conv_norm_out.weight[chans] = math.sqrt(ex2 / (C // G))
        # conv_out: silu(+x) - silu(-x) = x
        w, b = part.conv_out.weight, part.conv_out.bias
        w.zero_()
        b.zero_()
        for ch, (ci, sign, const) in lay.items():
            if ci is not None:
                w[ci, ch, 1, 1] = sign
        if part is vae.encoder:
            b[L:] = logvar
    eye_(vae.quant_conv.weight)
    vae.quant_conv.bias.zero_()
    eye_(vae.post_quant_conv.weight)
    vae.post_quant_conv.bias.zero_()
    return vae
