#!/usr/bin/env python3
"""Train lf-tiny-shapes, the farm's built-in default model (SD1.5 architecture, tiny widths), on CPU.

Stages (all deterministic for a given --seed and thread count; outputs under --out; images --res, 256x256):
  vae      the VAE: by default (--vae-steps 0) the hand-set analytic one (8x8 averages in, nearest-neighbour out);
           with --vae-steps, trained (L1+MSE, small KL) and rescaled so that SD1.5's 0.18215 gives unit variance
  decoder  a fresh VAE decoder trained on the fixed encoder's latents
  latents  render a fixed dataset of shape images and store their VAE posterior (mean, std) + attributes
  unet     train UNet2DConditionModel + CLIP text encoder jointly on the latents (eps prediction,
           scaled_linear betas, 10 % empty captions for CFG, min-SNR-5 weighting, offset noise, EMA, and an
           auxiliary attribute read-out loss on the text encoder)
  export   write the single-file SD1.5-layout checkpoint (f16 safetensors) + the diffusers folder
  samples  render the sample grid (EulerDiscrete, 20 steps, CFG 5, fixed seeds)
  all      everything above in order, at one --res

Usage (from the repository root): the progressive 128 -> 256 recipe in tools/README.md, or for one size
  nice -n 19 tools/train/.venv/bin/python tools/train/train.py all --res 256
"""
import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lf_models as M  # noqa: E402
import lf_shapes as S  # noqa: E402
from lf_tok import load_tokenizer  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
T0 = time.time()
LOG = None


def log(msg):
    line = f"[{time.time() - T0:8.1f}s] {msg}"
    print(line, flush=True)
    if LOG:
        with open(LOG, "a") as f:
            f.write(line + "\n")


def to_tensor(imgs):
    """list/array of HxWx3 uint8 -> Bx3xHxW float in [-1, 1]"""
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def heldout_images(a, n=64):
    """The fixed held-out renders both VAE stages report their reconstruction on."""
    rng = np.random.default_rng(a.seed + 2)
    return to_tensor([S.render(S.sample_attrs(rng)) for _ in range(n)])


def save_recon_grid(xs, rec, path):
    """Eight held-out images above their reconstructions."""
    from PIL import Image
    grid = torch.cat([xs[:8], rec[:8]]).clamp(-1, 1)
    grid = ((grid + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    g = np.concatenate([np.concatenate(list(grid[:8]), 1), np.concatenate(list(grid[8:]), 1)], 0)
    Image.fromarray(g).save(path)


# ----------------------------------------------------------------------------------------------- VAE
def stage_vae(a):
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed + 1)
    if a.vae_resume:
        from diffusers import AutoencoderKL
        vae = AutoencoderKL.from_pretrained(os.path.join(a.out, "vae"))
        vae.register_to_config(sample_size=a.res)
        log(f"vae: resuming from {os.path.join(a.out, 'vae')}")
    else:
        vae = M.make_vae()
    if a.vae_init == "analytic":
        M.analytic_vae(vae)
        log("vae: analytic init (8x8 average-pool encoder, nearest-neighbour decoder; see lf_models.analytic_vae)")
    log(f"vae: params {M.nparams(vae)}; steps {a.vae_steps} batch {a.vae_batch}")
    opt = torch.optim.AdamW(vae.parameters(), lr=a.vae_lr, weight_decay=0.0, foreach=True)
    full_from = a.vae_crop_steps
    t_start = time.time()
    run = []
    step = 0
    for step in range(1, a.vae_steps + 1):
        lr = a.vae_lr * min(1.0, step / 50) * (0.3 if step > full_from else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        imgs = [S.render(S.sample_attrs(rng)) for _ in range(a.vae_batch)]
        x = to_tensor(imgs)
        if step < full_from and a.res > 64:  # 64x64 crops first (cheaper), full images at the end
            crops = []
            for i in range(x.shape[0]):
                oy, ox = rng.integers(0, a.res - 64 + 1, 2)
                crops.append(x[i:i + 1, :, oy:oy + 64, ox:ox + 64])
            x = torch.cat(crops)
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        l_rec = F.mse_loss(rec, x) + F.l1_loss(rec, x)
        l_kl = post.kl().mean() / (x.shape[2] * x.shape[3] * 3)
        loss = l_rec + a.vae_kl * l_kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        run.append((l_rec.item(), l_kl.item()))
        if step % 25 == 0 or step == a.vae_steps:
            r = np.mean(run, 0)
            run = []
            log(f"vae step {step} rec(L1+MSE) {r[0]:.5f} kl/px {r[1]:.4f} lr {lr:.2e} "
                f"({(time.time() - t_start) / step:.2f}s/step)")
        if a.vae_minutes and time.time() - t_start > a.vae_minutes * 60:
            log(f"vae: time budget reached at step {step}")
            break
    vae.eval()
    # measure the latent scale on held-out images and fold it into quant_conv / post_quant_conv so that
    # SD1.5's scaling factor 0.18215 gives unit variance
    with torch.no_grad():
        xs = heldout_images(a)
        mean = vae.encode(xs).latent_dist.mean
        std = mean.std().item()
        k = (1.0 / 0.18215) / std
        C = vae.config.latent_channels
        vae.quant_conv.weight[:C] *= k
        vae.quant_conv.bias[:C] *= k
        vae.quant_conv.bias[C:] += 2 * math.log(k)
        vae.post_quant_conv.weight /= k
        mean2 = vae.encode(xs).latent_dist.mean
        rec = vae.decode(mean2).sample
        mse = F.mse_loss(rec, xs).item()
    log(f"vae: trained {step} steps in {time.time() - t_start:.0f}s; latent std {std:.4f} -> rescaled by "
        f"{k:.4f} (scaled latent std now {(mean2 * 0.18215).std().item():.4f}, mean "
        f"{(mean2 * 0.18215).mean().item():.4f}); held-out recon MSE {mse:.5f} (PSNR "
        f"{10 * math.log10(4 / mse):.2f} dB on [-1,1])")
    vae.save_pretrained(os.path.join(a.out, "vae"))
    save_recon_grid(xs, rec, os.path.join(a.out, "vae_recon.png"))


# ------------------------------------------------------------------------------------------- decoder
def stage_decoder(a):
    """Fine-tune the VAE decoder (post_quant_conv + decoder) with the encoder frozen, so the latent space the
    UNet learns is unchanged (the analytic encoder's 8x8 colour averages). Starting from the analytic
    nearest-neighbour decoder it learns to draw sharp shapes from the averaged blocks (anti-aliased blocks
    carry each edge's coverage). Latents get a little noise so that imperfect UNet latents decode cleanly.
    64x64 crops (8x8 latents, on the 8-pixel grid) first, full images at the end."""
    from diffusers import AutoencoderKL
    torch.manual_seed(a.seed + 6)
    rng = np.random.default_rng(a.seed + 7)
    vae = AutoencoderKL.from_pretrained(os.path.join(a.out, "vae"))
    if a.dec_init == "fresh":
        # the hand-set decoder is a badly conditioned starting point (gradient norm ~60, one Adam step of 1e-5
        # triples the loss): start the decoder and post_quant_conv from diffusers' own initialisation
        fresh = M.make_vae()
        vae.decoder.load_state_dict(fresh.decoder.state_dict())
        vae.post_quant_conv.load_state_dict(fresh.post_quant_conv.state_dict())
    vae.requires_grad_(False)
    params = list(vae.post_quant_conv.parameters()) + list(vae.decoder.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=a.dec_lr, weight_decay=0.0, foreach=True)
    log(f"decoder: params {sum(p.numel() for p in params)}; init {a.dec_init}; steps {a.dec_steps} "
        f"batch {a.dec_batch} lr {a.dec_lr} latent noise {a.dec_noise}")
    t_start, run, step = time.time(), [], 0
    full_from = int(a.dec_steps * 0.8)
    for step in range(1, a.dec_steps + 1):
        # warm-up, then cosine down to a tenth
        lr = a.dec_lr * min(1.0, step / 50) * (0.55 + 0.45 * math.cos(math.pi * step / a.dec_steps))
        for g in opt.param_groups:
            g["lr"] = lr
        x = to_tensor([S.render(S.sample_attrs(rng)) for _ in range(a.dec_batch)])
        with torch.no_grad():
            z = vae.encode(x).latent_dist.mean
            z = z + a.dec_noise / 0.18215 * torch.randn_like(z)  # noise in the scaled (unit-variance) space
        if step < full_from:
            oy, ox = (int(v) * 8 for v in rng.integers(0, (a.res - 64) // 8 + 1, 2))
            x = x[:, :, oy:oy + 64, ox:ox + 64]
            z = z[:, :, oy // 8:oy // 8 + 8, ox // 8:ox // 8 + 8]
        rec = vae.decode(z).sample
        loss = F.mse_loss(rec, x) + F.l1_loss(rec, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        run.append(loss.item())
        if step % 25 == 0 or step == a.dec_steps:
            log(f"decoder step {step} loss(L1+MSE) {np.mean(run):.5f} lr {lr:.2e} "
                f"({(time.time() - t_start) / step:.2f}s/step)")
            run = []
        if a.dec_minutes and time.time() - t_start > a.dec_minutes * 60:
            log(f"decoder: time budget reached at step {step}")
            break
    vae.eval()
    with torch.no_grad():
        xs = heldout_images(a)
        rec = vae.decode(vae.encode(xs).latent_dist.mean).sample
        mse = F.mse_loss(rec, xs).item()
    log(f"decoder: trained {step} steps in {time.time() - t_start:.0f}s; held-out recon MSE {mse:.5f} "
        f"(PSNR {10 * math.log10(4 / mse):.2f} dB on [-1,1])")
    vae.save_pretrained(os.path.join(a.out, "vae"))
    prev = 0
    sf = os.path.join(a.out, "decoder_step.txt")
    if a.dec_init == "keep" and os.path.exists(sf):
        prev = int(open(sf).read().strip())
    with open(sf, "w") as f:
        f.write(f"{prev + step}\n")
    save_recon_grid(xs, rec, os.path.join(a.out, "vae_recon.png"))


# ------------------------------------------------------------------------------------------- latents
def affine_of_pool(pooled, mean, std):
    """If the VAE encoder's posterior is an affine map of the 8x8 block averages (the analytic encoder: the
    encoder's conv stack costs ~9 s per 64 images at 256x256 on one core) return (A, b, std) fitted on this
    batch, else None. Fitted by least squares and accepted only if it reproduces the encoder to 0.5 % of the
    latents' range (the hand-set GroupNorms are transparent only up to their eps)."""
    n, c, h, w = pooled.shape
    X = torch.cat([pooled.permute(0, 2, 3, 1).reshape(-1, c), torch.ones(n * h * w, 1)], 1).double()
    Y = mean.permute(0, 2, 3, 1).reshape(-1, mean.shape[1]).double()
    sol = torch.linalg.lstsq(X, Y).solution  # (c+1) x L
    err = (X @ sol - Y).abs().max().item()
    s = std.amax(dim=(0, 2, 3))
    rel = err / Y.abs().max().item()
    if rel > 5e-3 or (std - s.view(1, -1, 1, 1)).abs().max().item() > 1e-6:
        log(f"latents: encoder is not an affine map of 8x8 averages (fit error {err:.2e}, {100 * rel:.2f} % of range); running it on every batch")
        return None
    log(f"latents: encoder == affine map of 8x8 block averages (max error {err:.2e}, {100 * rel:.2f} % of range); using that for the rest")
    return sol[:c].T.float().contiguous(), sol[c].float(), s


def stage_latents(a):
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(os.path.join(a.out, "vae")).eval()
    rng = np.random.default_rng(a.seed + 3)
    attrs = [S.sample_attrs(rng) for _ in range(a.n_images)]
    means, stds = [], []
    t = time.time()
    fast = None  # (A, b, std) once the encoder is checked to be an affine map of 8x8 block averages
    with torch.no_grad():
        for i in range(0, a.n_images, 64):
            x = to_tensor([S.render(at) for at in attrs[i:i + 64]])
            if fast is None:
                d = vae.encode(x).latent_dist
                mean, std = d.mean, d.std
                if i == 0:
                    fast = affine_of_pool(F.avg_pool2d(x, 8), mean, std)
            else:
                A, b, s = fast
                mean = torch.einsum("lc,nchw->nlhw", A, F.avg_pool2d(x, 8)) + b.view(1, -1, 1, 1)
                std = s.view(1, -1, 1, 1).expand_as(mean)
            means.append(mean.half())
            stds.append(std.half())
            if (i // 64) % 20 == 0:
                log(f"latents: {i + x.shape[0]}/{a.n_images}")
    torch.save({"mean": torch.cat(means), "std": torch.cat(stds), "attrs": attrs},
               os.path.join(a.out, "latents.pt"))
    log(f"latents: {a.n_images} images encoded in {time.time() - t:.0f}s")


# ---------------------------------------------------------------------------------------------- UNet
class Captioner:
    def __init__(self, tok):
        self.tok = tok
        self.cache = {}

    def ids(self, captions):
        out = []
        for c in captions:
            if c not in self.cache:
                self.cache[c] = self.tok(c, padding="max_length", max_length=77, truncation=True).input_ids
            out.append(self.cache[c])
        return torch.tensor(out)


class AttrProbe(torch.nn.Module):
    """Linear read-outs of the caption's attributes from the text encoder's output averaged over all 77
    positions -- what a cross-attention with still-uniform weights sees. Its cross-entropy is an auxiliary
    loss on the text encoder only (the UNet is untouched), so that the averaged text features carry colour,
    shape, background, size and position from the start and the UNet's cross-attention has a strong signal
    to pick up. Not part of the exported model."""
    HEADS = (("colour", S.COLOUR_NAMES), ("shape", S.SHAPES), ("bg", S.COLOUR_NAMES), ("size", S.SIZE_NAMES),
             ("pos", S.POSITION_NAMES))

    def __init__(self, d):
        super().__init__()
        self.heads = torch.nn.ModuleList(torch.nn.Linear(d, len(v)) for _, v in self.HEADS)

    @staticmethod
    def labels(at, c):
        """Targets for one caption: -100 (ignored) for attributes the caption does not name."""
        if not c:
            return [-100] * 5
        return [S.COLOUR_NAMES.index(at["colour"]), S.SHAPES.index(at["shape"]),
                S.COLOUR_NAMES.index(at["bg"]) if at["bg"] + " background" in c else -100,
                S.SIZE_NAMES.index(at["size"]) if at["size"] + " " in c else -100,
                S.POSITION_NAMES.index(at["pos"]) if any(ph in c for ph in S.POSITION_PHRASES[at["pos"]])
                else -100]

    def forward(self, h, labels):
        pooled = h.mean(1)
        loss, accs = 0.0, []
        for k, head in enumerate(self.heads):
            y = labels[:, k]
            m = y >= 0
            if not m.any():
                accs.append(float("nan"))
                continue
            logits = head(pooled[m])
            loss = loss + F.cross_entropy(logits, y[m])
            accs.append((logits.argmax(1) == y[m]).float().mean().item())
        return loss, accs

    @classmethod
    def describe(cls, accs):
        """'colour 0.97 shape 1.00 ...' for the log."""
        return " ".join(f"{n} {x:.2f}" for (n, _), x in zip(cls.HEADS, accs))


def make_scheduler_tensors():
    b = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    ac = torch.cumprod(1 - b, 0)
    return ac.float()


def stage_unet(a):
    torch.manual_seed(a.seed + 4)
    rng = np.random.default_rng(a.seed + 5)
    data = torch.load(os.path.join(a.out, "latents.pt"))
    lmean, lstd, attrs = data["mean"].float(), data["std"].float(), data["attrs"]
    N = lmean.shape[0]
    tok = load_tokenizer(a.cache)
    cap = Captioner(tok)
    if a.unet_resume:
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel
        unet = UNet2DConditionModel.from_pretrained(os.path.join(a.out, "unet"))
        te = CLIPTextModel.from_pretrained(os.path.join(a.out, "text_encoder"))
        prev = open(os.path.join(a.out, "unet_step.txt")).read().strip()
        log(f"unet: resuming from the saved (EMA) weights of step {prev} in {a.out}; fresh optimizer state")
        a.step0 = int(prev)
    else:
        te, unet = M.make_text_encoder(), M.make_unet()
        a.step0 = 0
    params = list(unet.parameters()) + list(te.parameters())
    probe = AttrProbe(te.config.hidden_size) if a.aux > 0 else None
    log(f"unet: params unet {M.nparams(unet)} text {M.nparams(te)}; dataset {N}; steps {a.unet_steps} "
        f"batch {a.batch} lr {a.lr} warmup {a.warmup} ema {a.ema} aux {a.aux} te_pretrain {a.te_pretrain}")
    opt = torch.optim.AdamW(params + (list(probe.parameters()) if probe else []), lr=a.lr, weight_decay=0.01,
                            betas=(0.9, 0.99), foreach=True)
    if probe and a.te_pretrain:
        # the text encoder alone on the attribute read-outs first (cheap: no UNet)
        t_pre = time.time()
        for k in range(1, a.te_pretrain + 1):
            idx = rng.integers(0, N, a.batch)
            caps = [S.caption(attrs[i], rng) for i in idx]
            labels = torch.tensor([AttrProbe.labels(attrs[i], c) for i, c in zip(idx, caps)])
            l_aux, accs = probe(te(cap.ids(caps))[0], labels)
            opt.zero_grad(set_to_none=True)
            l_aux.backward()
            opt.step()
            if k % 50 == 0 or k == a.te_pretrain:
                log(f"text pretrain step {k} aux {l_aux.item():.4f} acc {AttrProbe.describe(accs)} "
                    f"({time.time() - t_pre:.0f}s)")
    ema = [p.detach().clone() for p in params]
    init = [p.detach().clone() for p in params]  # for the EMA's bias correction
    ac = make_scheduler_tensors()
    snr = ac / (1 - ac)
    t_start = time.time()
    run = []
    step = 0
    for step in range(1, a.unet_steps + 1):
        lr = a.lr * min(1.0, step / a.warmup)
        if a.lr_cosine:  # down to a tenth by the last step
            lr *= 0.55 + 0.45 * math.cos(math.pi * min(1.0, step / a.unet_steps))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.from_numpy(rng.integers(0, N, a.batch))
        flip = torch.from_numpy(rng.random(a.batch) < a.hflip)
        caps, labels = [], []
        for i, f in zip(idx.tolist(), flip.tolist()):
            at = attrs[i]
            if f:  # mirrored image: left <-> right (shapes are left-right symmetric)
                at = dict(at, pos=at["pos"].replace("left", "@").replace("right", "left").replace("@", "right"))
            caps.append(S.caption(at, rng) if rng.random() >= a.uncond else "")
            labels.append(AttrProbe.labels(at, caps[-1]))
        ids = cap.ids(caps)
        z = (lmean[idx] + lstd[idx] * torch.randn_like(lmean[idx])) * 0.18215
        z = torch.where(flip.view(-1, 1, 1, 1), z.flip(-1), z)
        noise = torch.randn_like(z)
        if a.offset_noise:  # a per-image, per-channel constant: see --offset-noise
            noise = noise + a.offset_noise * torch.randn(z.shape[0], z.shape[1], 1, 1)
        t = torch.randint(0, 1000, (a.batch,))
        s = ac[t].view(-1, 1, 1, 1)
        zt = s.sqrt() * z + (1 - s).sqrt() * noise
        h = te(ids)[0]
        pred = unet(zt, t, h).sample
        w = torch.clamp(snr[t], max=5.0) / snr[t]  # min-SNR-5 weighting for eps prediction
        mse = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
        loss = (w * mse).mean()
        accs = []
        if probe:
            l_aux, accs = probe(h, torch.tensor(labels))
            loss = loss + a.aux * l_aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_mul_(ema, a.ema)
            torch._foreach_add_(ema, [p.detach() for p in params], alpha=1 - a.ema)
        run.append((mse.mean().item(), loss.item(), gn.item()))
        if step % 25 == 0 or step == a.unet_steps:
            r = np.mean(run, 0)
            run = []
            el = time.time() - t_start
            probe_txt = " probe acc " + AttrProbe.describe(accs) if accs else ""
            log(f"unet step {step} mse {r[0]:.4f} loss {r[1]:.4f} gradnorm {r[2]:.3f} lr {lr:.2e}{probe_txt} "
                f"({el / step:.2f}s/step, {el / 60:.1f} min)")
        if step % a.save_every == 0:
            save_unet(a, te, unet, params, ema_debias(ema, init, a.ema, step), a.step0 + step)
        if a.unet_minutes and time.time() - t_start > a.unet_minutes * 60:
            log(f"unet: time budget reached at step {step}")
            break
    save_unet(a, te, unet, params, ema_debias(ema, init, a.ema, step), a.step0 + step)
    log(f"unet: trained {step} steps (total {a.step0 + step}) in {time.time() - t_start:.0f}s")


def ema_debias(ema, init, decay, n):
    """EMA started at the initial weights, bias-corrected as Adam's moments: (ema - d^n init) / (1 - d^n),
    i.e. a proper average of the n trained weights with no share of the random initialisation."""
    c = decay ** n
    return [(e - c * i) / (1 - c) for e, i in zip(ema, init)]


def save_unet(a, te, unet, params, ema, step):
    # save the EMA weights as the model
    raw = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    unet.save_pretrained(os.path.join(a.out, "unet"))
    te.save_pretrained(os.path.join(a.out, "text_encoder"))
    with torch.no_grad():
        for p, r in zip(params, raw):
            p.copy_(r)
    with open(os.path.join(a.out, "unet_step.txt"), "w") as f:
        f.write(f"{step}\n")


# -------------------------------------------------------------------------------------------- export
def load_pipeline(a, single_file=None):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel
    tok = load_tokenizer(a.cache)
    if single_file:
        import sd_convert
        unet, vae, te = sd_convert.load_single_file(single_file)
    else:
        unet = UNet2DConditionModel.from_pretrained(os.path.join(a.out, "unet"))
        vae = AutoencoderKL.from_pretrained(os.path.join(a.out, "vae"))
        te = CLIPTextModel.from_pretrained(os.path.join(a.out, "text_encoder"))
        # the size the model was last trained at (the pipeline's default; the single file's lf.config
        # "resolution"): the folders may come from a stage run at another --res
        unet.register_to_config(sample_size=a.res // 8)
        vae.register_to_config(sample_size=a.res)
    sched = EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                   beta_schedule="scaled_linear", prediction_type="epsilon", steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def stage_export(a):
    import sd_convert
    pipe = load_pipeline(a)
    d = os.path.join(a.out, "diffusers")
    pipe.save_pretrained(d)
    step = open(os.path.join(a.out, "unet_step.txt")).read().strip()
    sf = os.path.join(a.out, "decoder_step.txt")
    dec = int(open(sf).read().strip()) if os.path.exists(sf) else 0
    extra = {"lf.train": json.dumps({"seed": a.seed, "unet_steps": int(step), "vae_steps": a.vae_steps,
                                     "vae_encoder": "analytic", "vae_decoder_steps": dec,
                                     "recipe": "tools/train/train.py"})}
    path = os.path.join(REPO, "models", "lf-tiny-shapes.safetensors")
    n = sd_convert.save_single_file(path, pipe.unet, pipe.vae, pipe.text_encoder, extra)
    log(f"export: {path} ({n} tensors, {os.path.getsize(path) / 1e6:.2f} MB); diffusers folder {d}")


# ------------------------------------------------------------------------------------------- samples
SAMPLE_PROMPTS = [
    "a red circle on a white background",
    "a small blue star in the top left",
    "a large yellow square on a black background",
    "a green triangle on a white background",
    "a purple circle in the bottom right on a yellow background",
    "an orange star on a blue background",
    "a large pink square in the center on a gray background",
    "a small cyan triangle in the top right on a black background",
    "a white circle on a red background",
    "a black star in the center on a white background",
    "a large brown circle on a cyan background",
    "a blue square in the bottom left on a yellow background",
    "a small red triangle at the bottom on a green background",
    "a gray star on a pink background",
    "a large green circle on the left on a purple background",
    "a yellow triangle on the right on a blue background",
]


def stage_samples(a):
    from PIL import Image
    pipe = load_pipeline(a, os.path.join(REPO, "models", "lf-tiny-shapes.safetensors"))
    gens = [torch.Generator().manual_seed(1000 + i) for i in range(len(SAMPLE_PROMPTS))]
    with torch.no_grad():
        imgs = pipe(SAMPLE_PROMPTS, height=a.res, width=a.res, num_inference_steps=20, guidance_scale=5.0,
                    generator=gens, output_type="np").images
    tiles = [(img * 255).round().astype(np.uint8) for img in imgs]
    for i, p in enumerate(SAMPLE_PROMPTS):
        log(f"sample {i} (row {i // 4}, col {i % 4}, seed {1000 + i}): {p}")
    grid = np.concatenate([np.concatenate(tiles[r * 4:(r + 1) * 4], 1) for r in range(4)], 0)
    path = os.path.join(REPO, "models", "lf-tiny-shapes.samples.png")
    Image.fromarray(grid).save(path)
    log(f"samples: {path} (EulerDiscreteScheduler, 20 steps, CFG 5.0, {a.res}x{a.res}, seeds 1000..1015)")


def main():
    global LOG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["vae", "decoder", "latents", "unet", "export", "samples", "all"])
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--cache", default=os.path.join(HERE, "cache"))
    ap.add_argument("--log", default=os.path.join(REPO, "models", "lf-tiny-shapes.train.log"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--res", type=int, default=M.VAE_CONFIG["sample_size"], help="image size (latents are res/8)")
    ap.add_argument("--vae-resume", action="store_true", help="continue training out/vae")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vae-init", choices=["random", "analytic"], default="analytic")
    ap.add_argument("--vae-steps", type=int, default=0, help="VAE training steps (0: the analytic VAE as is)")
    ap.add_argument("--vae-crop-steps", type=int, default=300, help="steps on 64x64 crops before full images")
    ap.add_argument("--vae-batch", type=int, default=8)
    ap.add_argument("--vae-lr", type=float, default=1e-3)
    ap.add_argument("--vae-kl", type=float, default=1e-4)
    ap.add_argument("--vae-minutes", type=float, default=0, help="optional wall-time cap (breaks determinism)")
    ap.add_argument("--dec-steps", type=int, default=3200, help="decoder fine-tuning steps (0: keep it analytic)")
    ap.add_argument("--dec-batch", type=int, default=8)
    ap.add_argument("--dec-lr", type=float, default=1e-3)
    ap.add_argument("--dec-init", choices=["fresh", "keep"], default="fresh",
                    help="fresh: diffusers' init; keep: continue from the decoder in out/vae")
    ap.add_argument("--dec-noise", type=float, default=0.05, help="latent noise (scaled space) while tuning")
    ap.add_argument("--dec-minutes", type=float, default=0, help="optional wall-time cap (breaks determinism)")
    ap.add_argument("--n-images", type=int, default=8192)
    ap.add_argument("--unet-steps", type=int, default=2000)
    ap.add_argument("--unet-minutes", type=float, default=0, help="optional wall-time cap (breaks determinism)")
    ap.add_argument("--unet-resume", action="store_true",
                    help="continue from out/unet + out/text_encoder (the saved EMA weights; new optimizer)")
    ap.add_argument("--aux", type=float, default=0.05,
                    help="weight of the text encoder's attribute read-out loss (AttrProbe; 0 = off)")
    ap.add_argument("--te-pretrain", type=int, default=300, help="text-encoder-only steps on that loss first")
    ap.add_argument("--save-every", type=int, default=250, help="save the EMA weights every N steps")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--lr-cosine", action="store_true", help="cosine decay of the UNet lr to a tenth at --unet-steps")
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--uncond", type=float, default=0.1)
    ap.add_argument("--offset-noise", type=float, default=0.3,
                    help="std of a per-channel constant added to the training noise ('offset noise'): SD1.5's "
                         "schedule leaves 7 %% of the signal at t=999, so without it the UNet reads the image's "
                         "mean colour from the noise instead of the prompt and backgrounds come out gray "
                         "(0.1 was not enough: background 27.5 %%; 0.3: 97.5 %%)")
    ap.add_argument("--hflip", type=float, default=0.5, help="mirror latents (and left/right in captions)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    LOG = a.log
    S.RES = a.res
    M.UNET_CONFIG["sample_size"] = a.res // 8
    M.VAE_CONFIG["sample_size"] = a.res
    torch.set_num_threads(a.threads)
    import diffusers
    import transformers
    log(f"=== {' '.join(sys.argv)}")
    log(f"versions: python {platform.python_version()} torch {torch.__version__} diffusers {diffusers.__version__} "
        f"transformers {transformers.__version__} numpy {np.__version__}; threads {torch.get_num_threads()}; "
        f"host {platform.machine()} {os.cpu_count()} cpus")
    log(f"args: {json.dumps(vars(a))}")
    stages = ["vae", "decoder", "latents", "unet", "export", "samples"] if a.stage == "all" else [a.stage]
    for s in stages:
        t = time.time()
        globals()["stage_" + s](a)
        log(f"stage {s} done in {time.time() - t:.0f}s (wall)")


if __name__ == "__main__":
    main()
