#!/usr/bin/env python3
"""Reference data for tests/engine/test_inpaint.c: A1111's inpainting, written
out here from its documented behaviour (modules/processing.py img2img init,
sample and apply_overlay; modules/masking.py; images.resize_image) over
Pillow 9.4, OpenCV 4.10 and diffusers' networks.

1. ops.safetensors: the 8-bit image steps on fixed inputs, each computed by
   the library A1111 calls: Pillow's convert("L"), ImageOps.invert,
   cv2.GaussianBlur with A1111's kernel size, the crop region and its
   expansion, resize_image modes 1 and 2 (LANCZOS), masking.fill, the
   overlay (RGBa paste with the inverted mask, back to RGBA), alpha_composite,
   and the latent mask (convert RGB, Image.resize default filter, /255,
   np.around). ops.json holds the parameters and the crop regions.
2. <case>.safetensors: whole inpainting runs on the tiny SD1.5 fixture model
   of make_pipeline_fixtures.py (CLIP embedding widened, real tokenizer),
   with A1111's rule written out by hand: the init latent (VAE mean x
   scaling factor; latent noise / nothing in the masked part), x = z0 +
   noise * multiplier * sigma_start, a k-diffusion Euler / Heun loop whose
   denoiser blends denoised * m + z0 * (1 - m) after the CFG mix, the final
   blend, the VAE decode truncated to 8 bits and apply_overlay. The 9-channel
   cases use the same model with conv_in widened to 9 inputs (channels 4..8
   are channel 0 negated and channels 3, 2, 1, 0: exact in float16, so the C
   test builds the same file from tiny_a.safetensors) fed [mask, latent of
   the masked image] as A1111's inpainting_image_conditioning (and its
   txt2img_image_conditioning for the txt2img case). "nine_diffusers" is
   diffusers' own StableDiffusionInpaintPipeline (see diffusers_case),
   "sdxl_diffusers" its StableDiffusionXLInpaintPipeline on the tiny SDXL base
   widened the same way (sdxl_case).
   Saved: "latent" (final latent, scaled, before the VAE) and "image" (the
   result's RGB bytes).

Requirements: requirements.txt's venv plus opencv-python-headless 4.10.0.84
(requirements-inpaint.txt, --no-deps). Run:
  /work/venv-ref/bin/python tests/reference/make_inpaint_fixtures.py
"""
import json
import os
import sys
import tempfile

import cv2
import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_pipeline_fixtures as mpf  # noqa: E402

OUT = os.path.join(HERE, "..", "engine", "fixtures", "inpaint")
LANCZOS = Image.LANCZOS


# ---- A1111's steps, written out ------------------------------------------

def a_blur(mask, sx, sy):
    """processing.py: cv2.GaussianBlur along x, then along y."""
    m = np.array(mask)
    if sx > 0:
        k = 2 * int(2.5 * sx + 0.5) + 1
        m = cv2.GaussianBlur(m, (k, 1), sx)
    if sy > 0:
        k = 2 * int(2.5 * sy + 0.5) + 1
        m = cv2.GaussianBlur(m, (1, k), sy)
    return Image.fromarray(m)


def a_crop_region(mask, pad):
    """masking.get_crop_region_v2: the box of non-zero pixels, padded."""
    box = mask.getbbox()
    if not box:
        return None
    x1, y1, x2, y2 = box
    w, h = mask.size
    return (max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, w), min(y2 + pad, h)) if pad else box


def a_expand(region, pw, ph, w, h):
    """masking.expand_crop_region: grow the box to the processing ratio."""
    x1, y1, x2, y2 = region
    rc, rp = (x2 - x1) / (y2 - y1), pw / ph
    if rc > rp:
        d = int((x2 - x1) / rp - (y2 - y1))
        y1 -= d // 2
        y2 += d - d // 2
        if y2 >= h:
            y1 -= y2 - h
            y2 = h
        if y1 < 0:
            y2 -= y1
            y1 = 0
        y2 = min(y2, h)
    else:
        d = int((y2 - y1) * rp - (x2 - x1))
        x1 -= d // 2
        x2 += d - d // 2
        if x2 >= w:
            x1 -= x2 - w
            x2 = w
        if x1 < 0:
            x2 -= x1
            x1 = 0
        x2 = min(x2, w)
    return x1, y1, x2, y2


def a_resize(mode, im, w, h):
    """images.resize_image with the built-in LANCZOS resize, modes 1 and 2."""
    ratio, src_ratio = w / h, im.width / im.height
    if mode == 1:
        sw = w if ratio > src_ratio else im.width * h // im.height
        sh = h if ratio <= src_ratio else im.height * w // im.width
    else:
        sw = w if ratio < src_ratio else im.width * h // im.height
        sh = h if ratio >= src_ratio else im.height * w // im.width
    r = im.resize((sw, sh), resample=LANCZOS)
    res = Image.new("RGB", (w, h))
    res.paste(r, box=(w // 2 - sw // 2, h // 2 - sh // 2))
    if mode == 2:
        if ratio < src_ratio:
            fh = h // 2 - sh // 2
            if fh > 0:
                res.paste(r.resize((w, fh), box=(0, 0, w, 0)), box=(0, 0))
                res.paste(r.resize((w, fh), box=(0, r.height, w, r.height)), box=(0, fh + sh))
        elif ratio > src_ratio:
            fw = w // 2 - sw // 2
            if fw > 0:
                res.paste(r.resize((fw, h), box=(0, 0, 0, h)), box=(0, 0))
                res.paste(r.resize((fw, h), box=(r.width, 0, r.width, h)), box=(fw + sw, 0))
    return res


def a_fill(image, mask):
    """masking.fill: blurred premultiplied copies composited, coarse to fine."""
    mod = Image.new("RGBA", image.size)
    masked = Image.new("RGBa", image.size)
    masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    masked = masked.convert("RGBa")
    for radius, repeats in [(256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)]:
        blurred = masked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            mod.alpha_composite(blurred)
    return mod.convert("RGB")


def a_overlay(image, mask_for_overlay):
    """The overlay image of img2img init: the original where the mask is not."""
    m = Image.new("RGBa", image.size)
    m.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask_for_overlay.convert("L")))
    return m.convert("RGBA")


def a_apply_overlay(image, paste_loc, overlay):
    """processing.apply_overlay (with uncrop for "only masked")."""
    if paste_loc is not None:
        x, y, w, h = paste_loc
        base = Image.new("RGBA", (overlay.width, overlay.height))
        base.paste(a_resize(1, image, w, h), (x, y))
        image = base
    image = image.convert("RGBA")
    image.alpha_composite(overlay)
    return image.convert("RGB")


def a_latent_mask(mask, lw, lh):
    lm = mask.convert("RGB").resize((lw, lh))
    lm = np.moveaxis(np.array(lm, dtype=np.float32), 2, 0) / 255
    return np.around(lm[0])


# ---- inputs ---------------------------------------------------------------

def test_image(w, h, seed):
    """A smooth colour field with a few rectangles (deterministic)."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)),
                    ((xx + yy) * 97) % 256], -1).astype(np.int32)
    for _ in range(4):
        x0, y0 = r.integers(0, w - 2), r.integers(0, h - 2)
        img[y0:y0 + r.integers(2, 8), x0:x0 + r.integers(2, 8)] = r.integers(0, 256, 3)
    return Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB")


def test_mask(w, h, box, gray=None):
    m = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = 255
    if gray:  # a grey patch: luma and thresholds see mid values
        gx, gy, gv = gray
        m[gy:gy + 3, gx:gx + 4] = gv
    return Image.fromarray(m, "RGB")


def u8(im):
    return torch.from_numpy(np.ascontiguousarray(np.array(im, dtype=np.uint8)))


def ops():
    img = test_image(37, 29, 1)
    mrgb = test_mask(37, 29, (9, 7, 21, 18), gray=(25, 20, 100))
    # A coloured mask checks the luma weights.
    a = np.array(mrgb)
    a[2:5, 2:6] = (200, 30, 90)
    mrgb = Image.fromarray(a, "RGB")
    luma = mrgb.convert("L")
    out = {"img": u8(img), "mask_rgb": u8(mrgb), "luma": u8(luma), "inv": u8(ImageOps.invert(luma))}
    # create_binary_mask on an RGBA mask whose alpha varies: the alpha, thresholded.
    rgba = np.concatenate([np.array(mrgb), (np.arange(37 * 29) % 256).astype(np.uint8).reshape(29, 37, 1)], 2)
    im = Image.fromarray(rgba, "RGBA")
    out["mask_rgba"] = u8(im)
    out["binary_rgba"] = u8(im.split()[-1].convert("L").point(lambda x: 255 if x > 128 else 0))
    meta = {"blur": [], "crop": [], "resize": [], "latent": []}
    for name, sx, sy in [("blur_4_4", 4, 4), ("blur_2_7", 2, 7), ("blur_15_0", 15, 0), ("blur_1_1", 1, 1)]:
        out[name] = u8(a_blur(luma, sx, sy))
        meta["blur"].append([name, sx, sy])
    blurred = a_blur(luma, 4, 4)
    for pad, pw, ph in [(0, 16, 16), (4, 64, 32), (32, 16, 24), (2, 512, 512), (0, 8, 40)]:
        reg = a_crop_region(blurred, pad)
        meta["crop"].append([pad, pw, ph, list(a_expand(reg, pw, ph, 37, 29))])
    for name, mode, w, h in [("rs1_20_24", 1, 20, 24), ("rs1_48_16", 1, 48, 16), ("rs2_24_16", 2, 24, 16),
                             ("rs2_16_24", 2, 16, 24), ("rs2_40_40", 2, 40, 40)]:
        out[name] = u8(a_resize(mode, img, w, h))
        meta["resize"].append([name, mode, w, h])
    out["fill"] = u8(a_fill(img, blurred))
    mfo = Image.fromarray(np.clip(np.array(blurred).astype(np.float32) * 2, 0, 255).astype(np.uint8))
    ov = a_overlay(img, mfo)
    out["overlay"] = u8(ov)
    other = test_image(37, 29, 2)
    out["other"] = u8(other)
    out["composite"] = u8(a_apply_overlay(other, None, ov))
    big = test_mask(40, 32, (5, 9, 27, 20), gray=(30, 3, 140)).convert("L")
    big = a_blur(big, 3, 3)
    out["lmask_src"] = u8(big)
    for lw, lh in [(5, 4), (20, 16)]:
        out["lmask_%dx%d" % (lw, lh)] = torch.from_numpy(a_latent_mask(big, lw, lh))
        meta["latent"].append([lw, lh])
    save_file(out, os.path.join(OUT, "ops.safetensors"))
    with open(os.path.join(OUT, "ops.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return img, mrgb


# ---- whole runs -------------------------------------------------------------

def widen_conv_in(unet):
    """conv_in to 9 inputs: [c0..c3, -c0, c3, c2, c1, c0] (exact in f16)."""
    w = unet.conv_in.weight.data
    w9 = torch.cat([w, -w[:, 0:1], w[:, 3:4], w[:, 2:3], w[:, 1:2], w[:, 0:1]], 1)
    conv = torch.nn.Conv2d(9, w.shape[0], 3, padding=1)
    conv.weight.data.copy_(w9)
    conv.bias.data.copy_(unet.conv_in.bias.data)
    unet.conv_in = conv
    unet.register_to_config(in_channels=9)  # what StableDiffusionInpaintPipeline reads
    return unet


CASES = [
    # name, sampler, steps, denoise, fill, blur, full_res, pad, invert, mult, nine, txt2img
    dict(name="whole_original", sampler="euler", steps=4, denoise=0.75, fill=1, blur=0, mult=0.9),
    dict(name="whole_fill_heun", sampler="heun", steps=4, denoise=0.6, fill=0, blur=1),
    dict(name="whole_latent_noise", sampler="euler", steps=5, denoise=0.8, fill=2, blur=0),
    dict(name="whole_latent_nothing_inv", sampler="euler", steps=4, denoise=1.0, fill=3, blur=0, invert=1),
    dict(name="only_masked", sampler="euler", steps=4, denoise=0.75, fill=1, blur=1, full_res=1, pad=2),
    dict(name="nine_masked", sampler="euler", steps=4, denoise=0.75, fill=1, blur=0, nine=1),
    dict(name="nine_masked_heun", sampler="heun", steps=3, denoise=1.0, fill=0, blur=1, nine=1, weight=0.5),
    dict(name="nine_txt2img", sampler="euler", steps=4, nine=1, txt2img=1),
]


def run_case(c, unet, vae, emb, init, mrgb):
    S = mpf.SIZE
    sf = vae.config.scaling_factor
    steps, sampler = c["steps"], c["sampler"]
    sig = mpf.lf_schedule("normal", steps)
    nine = c.get("nine", 0)
    g = torch.Generator().manual_seed(mpf.SEED)
    noise = torch.randn((1, 4, S // 2, S // 2), generator=g)
    paste, overlay, mask_j = None, None, None
    if c.get("txt2img"):
        start = 0
        image = None
    else:
        t_enc = int(min(c["denoise"], 0.999) * steps)
        start = steps - t_enc - 1
        mask = mrgb.convert("L")
        if c.get("invert"):
            mask = ImageOps.invert(mask)
        mask = a_blur(mask, c["blur"], c["blur"])
        if c.get("full_res"):
            mfo = mask
            reg = a_expand(a_crop_region(mask, c["pad"]), S, S, mask.width, mask.height)
            mask_j = a_resize(2, mask.crop(reg), S, S).convert("L")
            paste = (reg[0], reg[1], reg[2] - reg[0], reg[3] - reg[1])
            overlay = a_overlay(init, mfo)
            image = a_resize(2, init.crop(reg), S, S)
        else:
            mask_j = mask.resize((S, S), resample=LANCZOS)
            mfo = Image.fromarray(np.clip(np.array(mask_j).astype(np.float32) * 2, 0, 255).astype(np.uint8))
            image = init.resize((S, S), resample=Image.BILINEAR)  # lightfarm's init resize
            overlay = a_overlay(image, mfo)
        if c["fill"] != 1:
            image = a_fill(image, mask_j)
    src = None
    if image is not None:
        src = torch.from_numpy(np.moveaxis(np.array(image).astype(np.float32) / 255.0, 2, 0))[None] * 2 - 1
        z0 = vae.encode(src).latent_dist.mean * sf
        nm = torch.from_numpy(a_latent_mask(mask_j, S // 2, S // 2))[None, None]
        if c["fill"] == 2:
            z0 = z0 * (1 - nm) + noise * nm
        elif c["fill"] == 3:
            z0 = z0 * (1 - nm)
        x = z0 + noise * c.get("mult", 1.0) * float(sig[start])
    else:
        x = noise * float(sig[0])
    concat = None
    if nine:
        if src is None:  # txt2img: a mid-grey image, mask all ones
            cm = torch.ones((1, 1, S, S))
            cimg = torch.zeros((1, 3, S, S))
        else:
            cm = torch.round(torch.from_numpy(np.array(mask_j.convert("L")).astype(np.float32) / 255.0)[None, None])
            cimg = torch.lerp(src, src * (1.0 - cm), c.get("weight", 1.0))
        lat = vae.encode(cimg).latent_dist.mean * sf
        concat = torch.cat([torch.nn.functional.interpolate(cm, size=(S // 2, S // 2)), lat], 1)

    def denoise(xx, s):
        c_in = 1 / (s * s + 1) ** 0.5
        t = torch.tensor([mpf.sigma_to_t(s)] * 2, dtype=torch.float32)
        xi = torch.cat([xx * c_in] * 2)
        if concat is not None:
            xi = torch.cat([xi, torch.cat([concat] * 2)], 1)
        eps = unet(xi, t, encoder_hidden_states=emb).sample
        den = xx - s * eps
        d = den[1:2] + mpf.CFG * (den[0:1] - den[1:2])
        if image is not None:
            d = d * nm + z0 * (1 - nm)
        return d
    for i in range(start, steps):
        s, sn = float(sig[i]), float(sig[i + 1])
        d = (x - denoise(x, s)) / s
        if sampler == "heun" and sn > 0:
            x2 = x + d * (sn - s)
            d2 = (x2 - denoise(x2, sn)) / sn
            x = x + (d + d2) / 2 * (sn - s)
        else:
            x = x + d * (sn - s)
    if image is not None:
        x = x * nm + z0 * (1 - nm)
    img = vae.decode(x / sf).sample
    img = torch.clamp((img + 1.0) / 2.0, 0.0, 1.0)
    arr = (255.0 * np.moveaxis(img[0].numpy(), 0, 2)).astype(np.uint8)
    out = Image.fromarray(arr)
    if overlay is not None:
        out = a_apply_overlay(out, paste, overlay)
    save_file({"latent": x.contiguous().float(), "image": u8(out)}, os.path.join(OUT, c["name"] + ".safetensors"))
    return out.size


def diffusers_case(unet9, vae, text, tok):
    """diffusers' own StableDiffusionInpaintPipeline on the 9-input model: a
    white mask over the whole image, strength 1, Euler over the linspace
    ("normal") schedule. There A1111's rule and diffusers' meet: diffusers
    starts from pure noise and A1111 from z0 * (1 - m) + noise (latent
    nothing: z0 * 0), the masked image is black on both sides, and the
    per-step blend and the overlay change nothing. The VAE's latent of the
    masked image is its mean (diffusers samples it: patched to the mode)."""
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_inpaint as dpi
    from diffusers import EulerDiscreteScheduler, StableDiffusionInpaintPipeline
    orig = dpi.retrieve_latents
    dpi.retrieve_latents = lambda out, generator=None, sample_mode="sample": orig(out, generator, "argmax")
    S, steps = mpf.SIZE, 4
    sched = EulerDiscreteScheduler(**mpf.BASE, timestep_spacing="linspace")
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet9, scheduler=sched,
                                          safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    init = Image.open(os.path.join(OUT, "init.png")).convert("RGB")
    white = Image.new("RGB", (S, S), (255, 255, 255))
    white.save(os.path.join(OUT, "mask_white.png"))
    g = torch.Generator().manual_seed(mpf.SEED)
    noise = torch.randn((1, 4, S // 2, S // 2), generator=g)
    lat = pipe(mpf.PROMPT, image=init, mask_image=white, negative_prompt=mpf.NEGATIVE, height=S, width=S,
               strength=1.0, num_inference_steps=steps, guidance_scale=mpf.CFG, generator=g, latents=noise,
               output_type="latent").images
    dpi.retrieve_latents = orig
    img = vae.decode(lat / vae.config.scaling_factor).sample
    img = torch.clamp((img + 1.0) / 2.0, 0.0, 1.0)
    arr = (255.0 * np.moveaxis(img[0].numpy(), 0, 2)).astype(np.uint8)
    save_file({"latent": lat.contiguous().float(), "image": u8(Image.fromarray(arr))},
              os.path.join(OUT, "nine_diffusers.safetensors"))
    print("nine_diffusers (StableDiffusionInpaintPipeline) done")
    return dict(name="nine_diffusers", sampler="euler", steps=steps, denoise=1.0, fill=3, blur=0, nine=1,
                mask="mask_white.png", diffusers="StableDiffusionInpaintPipeline", out_size=[S, S])


def sdxl_case():
    """diffusers' StableDiffusionXLInpaintPipeline on the tiny SDXL base of
    make_sdxl_fixtures.py (fixtures/sdxl/base.safetensors, rebuilt from its
    seed) with conv_in widened to 9 inputs, as diffusers_case: a white mask,
    strength 1, Euler "normal", 4 steps."""
    import make_sdxl_fixtures as msf
    import diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl_inpaint as dxi
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline
    unet, vae, text_l, text_g = msf.build(msf.UNET_BASE, True, 200)
    unet = widen_conv_in(unet)
    text_l, text_g = msf.widened(text_l), msf.widened(text_g)
    tok, tok2 = msf.tokenizers(tempfile.mkdtemp())
    orig = dxi.retrieve_latents
    dxi.retrieve_latents = lambda out, generator=None, sample_mode="sample": orig(out, generator, "argmax")
    S, steps = msf.SIZE, 4
    sched = EulerDiscreteScheduler(**mpf.BASE, timestep_spacing="linspace")
    pipe = StableDiffusionXLInpaintPipeline(vae=vae, text_encoder=text_l, text_encoder_2=text_g, tokenizer=tok,
                                            tokenizer_2=tok2, unet=unet, scheduler=sched,
                                            requires_aesthetics_score=False, force_zeros_for_empty_prompt=True)
    pipe.set_progress_bar_config(disable=True)
    init = Image.open(os.path.join(OUT, "init.png")).convert("RGB")
    white = Image.open(os.path.join(OUT, "mask_white.png")).convert("RGB")
    g = torch.Generator().manual_seed(msf.SEED)
    noise = torch.randn((1, 4, S // 2, S // 2), generator=g)
    lat = pipe(msf.PROMPT, image=init, mask_image=white, negative_prompt=msf.NEGATIVE, height=S, width=S,
               strength=1.0, num_inference_steps=steps, guidance_scale=msf.CFG, generator=g, latents=noise,
               output_type="latent").images
    dxi.retrieve_latents = orig
    img = vae.decode(lat / vae.config.scaling_factor).sample
    img = torch.clamp((img + 1.0) / 2.0, 0.0, 1.0)
    arr = (255.0 * np.moveaxis(img[0].numpy(), 0, 2)).astype(np.uint8)
    save_file({"latent": lat.contiguous().float(), "image": u8(Image.fromarray(arr))},
              os.path.join(OUT, "sdxl_diffusers.safetensors"))
    print("sdxl_diffusers (StableDiffusionXLInpaintPipeline) done")
    return dict(name="sdxl_diffusers", sampler="euler", steps=steps, denoise=1.0, fill=3, blur=0, sdxl=1,
                mask="mask_white.png", prompt=msf.PROMPT, negative=msf.NEGATIVE, cfg=msf.CFG, seed=msf.SEED,
                diffusers="StableDiffusionXLInpaintPipeline", out_size=[S, S])


@torch.no_grad()
def main():
    torch.set_num_threads(2)
    if not os.path.exists(mpf.VOCAB):
        print("reference data %s absent" % mpf.VOCAB)
        return 1
    os.makedirs(OUT, exist_ok=True)
    ops()
    unet, vae, text = mpf.model()
    tmp = tempfile.mkdtemp()
    tok = mpf.tokenizer(tmp)
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=EulerDiscreteScheduler(**mpf.BASE), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pe, ne = pipe.encode_prompt(mpf.PROMPT, "cpu", 1, True, mpf.NEGATIVE)
    emb = torch.cat([pe, ne])
    unet9 = widen_conv_in(mpf.model()[0])
    # Inputs: the whole-picture cases at the job size, "only masked" on a
    # larger image (its crop is resized to the job size and back).
    S = mpf.SIZE
    init = test_image(S, S, 3)
    mrgb = test_mask(S, S, (4, 5, 11, 12))
    init_big = test_image(24, 20, 4)
    mrgb_big = test_mask(24, 20, (13, 6, 18, 12))
    init.save(os.path.join(OUT, "init.png"))
    mrgb.save(os.path.join(OUT, "mask.png"))
    init_big.save(os.path.join(OUT, "init_big.png"))
    mrgb_big.save(os.path.join(OUT, "mask_big.png"))
    meta = []
    for c in CASES:
        big = c.get("full_res")
        size = run_case(c, unet9 if c.get("nine") else unet, vae, emb, init_big if big else init,
                        mrgb_big if big else mrgb)
        meta.append(dict(c, out_size=list(size)))
        print("%-26s done, output %dx%d" % (c["name"], size[0], size[1]))
    meta.append(diffusers_case(unet9, vae, text, tok))
    meta.append(sdxl_case())
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(dict(prompt=mpf.PROMPT, negative=mpf.NEGATIVE, seed=mpf.SEED, cfg=mpf.CFG, size=S,
                       cases=meta, pillow=Image.__version__, opencv=cv2.__version__,
                       diffusers=__import__("diffusers").__version__), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
