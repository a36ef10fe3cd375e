#!/usr/bin/env python3
"""Writes tests/engine/fixtures/samplers.txt: final latents of each sampler
on an analytic denoiser, for lf_sampler's test.

The samplers below are re-implementations of k-diffusion's sampling.py
(euler, euler_ancestral, heun, dpm_2, dpmpp_2m, dpmpp_2m_sde midpoint,
dpmpp_sde) and ComfyUI's lcm, in torch float32 as those run; ComfyUI's
"ddim" is euler. Run with Debian's torch: /usr/bin/python3 (apt-get install
python3-torch).

Conventions (the C test does the same):
  * latent of 64 floats; x0 = randn(64) from torch.manual_seed(seed),
    multiplied by sigmas[0];
  * ancestral/SDE noise: a second generator seeded with the same seed,
    torch.randn(64, generator=g) per draw (ComfyUI's default noise sampler);
  * denoiser: D(x, sigma) = x * (a / (sigma^2 + b)) + c_i, a = 0.8, b = 0.6,
    c_i = float32(((i % 5) - 2) * 0.1): the exact posterior mean for Gaussian
    data, plus a fixed offset so the latent does not collapse to 0.
  * sigmas: SD1.x schedule, written into the fixture so the test uses the
    exact same values.
  * CFG++ samplers (*_cfg_pp): the denoiser also gives an unconditional
    estimate U = x * a / (sigma^2 + b); denoised = U + 0.8 * c_i.

Format: "case <sampler> <steps> <seed>", "sigmas v...", "x v..." (%.9g).
"""
import math
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "engine", "fixtures", "samplers.txt")
N = 64
A, B = 0.8, 0.6
C = torch.tensor([((i % 5) - 2) * 0.1 for i in range(N)], dtype=torch.float32)


def model(x, sigma):
    return x * (A / (sigma * sigma + B)) + C


def sd15_sigmas():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    ac = torch.cumprod(1 - betas, 0).float()
    return ((1 - ac) / ac) ** 0.5


def schedule(kind, n):
    s = sd15_sigmas()
    log_s = s.log()
    if kind == "karras":
        rho = 7.0
        ramp = torch.linspace(0, 1, n)
        lo, hi = float(s[0]) ** (1 / rho), float(s[-1]) ** (1 / rho)
        sig = (hi + ramp * (lo - hi)) ** rho
    else:  # normal / discrete
        t = torch.linspace(999, 0, n)
        low = t.floor().long()
        high = t.ceil().long()
        w = t.frac()
        sig = ((1 - w) * log_s[low] + w * log_s[high]).exp()
    return torch.cat([sig, sig.new_zeros([1])])


K_CFGPP = 0.8


def model_cfgpp(x, sigma):
    """CFG++ cases: uncond U = x * a / (sigma^2 + b), cond = U + c, guidance
    K = 0.8: denoised = U + K * (cond - U). Returns (denoised, uncond)."""
    u = x * (A / (sigma * sigma + B))
    return u + K_CFGPP * C, u


def run_cfgpp(name, x, sig):
    """ComfyUI's sample_euler_cfg_pp / sample_dpmpp_2m_cfg_pp (eps models:
    alpha = 1)."""
    old_u = None
    for i in range(len(sig) - 1):
        s, sn = sig[i], sig[i + 1]
        den, u = model_cfgpp(x, s)
        if name == "euler_cfg_pp":
            x = den if sn == 0 else den + to_d(x, s, u) * sn
        else:
            t, tn = -s.log(), -sn.log()
            h = tn - t
            if old_u is None or sn == 0:
                mix = -torch.exp(-h) * u
            else:
                hl = t - (-sig[i - 1].log())
                r = hl / h
                mix = -torch.exp(-h) * u - torch.expm1(-h) * (1 / (2 * r)) * (den - old_u)
            x = den + mix + torch.exp(-h) * x
            old_u = u
    return x


def to_d(x, sigma, den):
    return (x - den) / sigma


def ancestral(sf, st, eta=1.0):
    if not eta:
        return st, 0.0
    up = min(st, eta * (st ** 2 * (sf ** 2 - st ** 2) / sf ** 2) ** 0.5)
    down = (st ** 2 - up ** 2) ** 0.5
    return down, up


def run(name, x, sig, noise, flow=False):
    n = len(sig) - 1
    old = None
    h_last = None
    for i in range(n):
        s, sn = sig[i], sig[i + 1]
        den = model(x, s)
        if name in ("euler", "ddim"):
            x = x + to_d(x, s, den) * (sn - s)
        elif name == "euler_ancestral" and flow:
            # ComfyUI's sample_euler_ancestral_RF (CONST model sampling)
            if sn == 0:
                x = den
            else:
                down = sn * (1 + (sn / s - 1) * 1.0)
                a1, ad = 1 - sn, 1 - down
                renoise = (sn ** 2 - down ** 2 * a1 ** 2 / ad ** 2) ** 0.5
                ratio = down / s
                x = ratio * x + (1 - ratio) * den
                x = (a1 / ad) * x + noise() * renoise
        elif name == "lcm" and flow:
            x = den
            if sn > 0:
                x = sn * noise() + (1 - sn) * x  # CONST noise_scaling
        elif name == "euler_ancestral":
            down, up = ancestral(s, sn)
            x = x + to_d(x, s, den) * (down - s)
            if sn > 0:
                x = x + noise() * up
        elif name == "heun":
            d = to_d(x, s, den)
            dt = sn - s
            if sn == 0:
                x = x + d * dt
            else:
                x2 = x + d * dt
                d2 = to_d(x2, sn, model(x2, sn))
                x = x + (d + d2) / 2 * dt
        elif name == "dpm_2":
            d = to_d(x, s, den)
            if sn == 0:
                x = x + d * (sn - s)
            else:
                mid = s.log().lerp(sn.log(), 0.5).exp()
                x2 = x + d * (mid - s)
                d2 = to_d(x2, mid, model(x2, mid))
                x = x + d2 * (sn - s)
        elif name == "dpmpp_2m":
            t, tn = -s.log(), -sn.log()
            h = tn - t
            if old is None or sn == 0:
                x = ((-tn).exp() / (-t).exp()) * x - (-h).expm1() * den
            else:
                hl = t - (-sig[i - 1].log())
                r = hl / h
                dd = (1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old
                x = ((-tn).exp() / (-t).exp()) * x - (-h).expm1() * dd
            old = den
        elif name == "dpmpp_2m_sde":
            if sn == 0:
                x = den
            else:
                t, tt = -s.log(), -sn.log()
                h = tt - t
                eh = h
                x = sn / s * (-eh).exp() * x + (-h - eh).expm1().neg() * den
                if old is not None:
                    r = h_last / h
                    x = x + 0.5 * (-h - eh).expm1().neg() * (1 / r) * (den - old)
                x = x + noise() * sn * (-2 * eh).expm1().neg().sqrt()
            old = den
            h_last = h if sn != 0 else h_last
        elif name == "dpmpp_sde":
            if sn == 0:
                x = x + to_d(x, s, den) * (sn - s)
            else:
                sfn = lambda t: t.neg().exp()
                tfn = lambda v: v.log().neg()
                t, tn = tfn(s), tfn(sn)
                h = tn - t
                ss = t + h * 0.5
                fac = 1.0
                sd, su = ancestral(sfn(t), sfn(ss))
                s_ = tfn(sd)
                x2 = (sfn(s_) / sfn(t)) * x - (t - s_).expm1() * den
                x2 = x2 + noise() * su
                den2 = model(x2, sfn(ss))
                sd, su = ancestral(sfn(t), sfn(tn))
                tn_ = tfn(sd)
                dd = (1 - fac) * den + fac * den2
                x = (sfn(tn_) / sfn(t)) * x - (t - tn_).expm1() * dd
                x = x + noise() * su
        elif name in ("uni_pc", "uni_pc_bh2"):
            return unipc(x, sig, "bh1" if name == "uni_pc" else "bh2")
        elif name == "lcm":
            x = den
            if sn > 0:
                x = x + sn * noise()
        else:
            raise ValueError(name)
    return x


def unipc(x, sig, variant):
    """ComfyUI's sample_unipc in sigma space (SigmaConvert): VP-scaled latent,
    data prediction, multistep UniPC with B(h) = h (bh1) or expm1(h) (bh2),
    order min(3, steps - 1), lower order at the end, no corrector on the
    last step, final sigma 0 replaced by 0.001."""
    ts = sig.clone()
    if ts[-1] == 0:
        ts[-1] = 0.001
    log_alpha = lambda s: 0.5 * torch.log(1 / (s * s + 1))
    alpha = lambda s: torch.exp(log_alpha(s))
    std = lambda s: torch.sqrt(1.0 - torch.exp(2.0 * log_alpha(s)))
    lam = lambda s: log_alpha(s) - 0.5 * torch.log(1.0 - torch.exp(2.0 * log_alpha(s)))

    def model_x0(xv, s):
        xin = xv * ((s ** 2 + 1.0) ** 0.5)
        eps = (xin - model(xin, s)) / s
        return (xv - std(s) * eps) / alpha(s)

    def update(xv, mlist, tlist, t, order, use_corrector):
        t0 = tlist[-1]
        m0 = mlist[-1]
        h = lam(t) - lam(t0)
        rks, d1s = [], []
        for i in range(1, order):
            rk = (lam(tlist[-(i + 1)]) - lam(t0)) / h
            rks.append(float(rk))
            d1s.append((mlist[-(i + 1)] - m0) / rk)
        rks.append(1.0)
        rks = torch.tensor(rks)
        hh = -h
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        fact = 1
        bh = hh if variant == "bh1" else torch.expm1(hh)
        R, b = [], []
        for i in range(1, order + 1):
            R.append(torch.pow(rks, i - 1))
            b.append(float(h_phi_k * fact / bh))
            fact *= i + 1
            h_phi_k = h_phi_k / hh - 1 / fact
        R = torch.stack(R)
        b = torch.tensor(b)
        at = alpha(t)
        x_ = (std(t) / std(t0)) * xv - (at * h_phi_1) * m0
        if d1s:
            rp = torch.tensor([0.5]) if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
            pred = sum(rp[k] * d1s[k] for k in range(len(d1s)))
        else:
            pred = 0
        xt = x_ - (at * bh) * pred
        mt = None
        if use_corrector:
            rc = torch.tensor([0.5]) if order == 1 else torch.linalg.solve(R, b)
            mt = model_x0(xt, t)
            corr = sum(rc[k] * d1s[k] for k in range(len(d1s))) if d1s else 0
            xt = x_ - (at * bh) * (corr + rc[-1] * (mt - m0))
        return xt, mt

    steps = len(ts) - 1
    order = min(3, len(ts) - 2)
    xv = x / torch.sqrt(1.0 + ts[0] ** 2.0)
    for si in range(steps):
        if si == 0:
            mlist, tlist = [model_x0(xv, ts[0])], [ts[0]]
        elif si < order:
            xv, mx = update(xv, mlist, tlist, ts[si], si, True)
            mlist.append(mx)
            tlist.append(ts[si])
        else:
            for st in range(si, si + 1 + (1 if si == steps - 1 else 0)):
                so = min(order, steps + 1 - st)
                xv, mx = update(xv, mlist, tlist, ts[st], so, st != steps)
                for i in range(order - 1):
                    tlist[i] = tlist[i + 1]
                    mlist[i] = mlist[i + 1]
                tlist[-1] = ts[st]
                if st < steps:
                    mlist[-1] = mx
    return xv / alpha(ts[-1])


def fmt(v):
    return " ".join("%.9g" % float(a) for a in v)


def main():
    cases = [
        ("euler", "normal", 10, 1), ("euler_ancestral", "karras", 10, 2), ("heun", "karras", 8, 3),
        ("dpm_2", "normal", 8, 4), ("dpmpp_2m", "karras", 12, 5), ("dpmpp_2m_sde", "karras", 12, 6),
        ("dpmpp_sde", "normal", 8, 7), ("ddim", "normal", 10, 8), ("lcm", "normal", 4, 9),
        ("uni_pc", "karras", 10, 10), ("uni_pc_bh2", "normal", 6, 11), ("uni_pc", "normal", 3, 12),
        ("euler_cfg_pp", "normal", 10, 13), ("dpmpp_2m_cfg_pp", "karras", 12, 14),
    ]
    out = ["# Generated by tests/reference/make_sampler_fixtures.py (torch %s); do not edit." % torch.__version__]
    # Flow-matching cases ("flow" after the seed): Flux's sigmas (1 -> 0,
    # shift 3), the samplers whose re-noising differs for ComfyUI's CONST
    # model sampling, and plain Euler / DPM++ 2M, which do not change.
    flow_cases = [("euler_ancestral", 10, 15), ("lcm", 4, 16), ("euler", 6, 17), ("dpmpp_2m", 8, 18)]
    for name, sched, steps, seed in cases:
        sig = schedule(sched, steps)
        torch.manual_seed(seed)
        x = torch.randn(N) * sig[0]
        g = torch.Generator()
        g.manual_seed(seed)
        if name.endswith("_cfg_pp"):
            res = run_cfgpp(name, x, sig)
        else:
            res = run(name, x, sig, lambda: torch.randn(N, generator=g))
        out.append("case %s %d %d" % (name, steps, seed))
        out.append("sigmas " + fmt(sig))
        out.append("x " + fmt(res))
    for name, steps, seed in flow_cases:
        lin = torch.linspace(1.0, 1.0 / steps, steps, dtype=torch.float64)
        sig = torch.cat([(3.0 * lin / (1 + 2.0 * lin)).float(), torch.zeros(1)])
        torch.manual_seed(seed)
        x = torch.randn(N) * sig[0]
        g = torch.Generator()
        g.manual_seed(seed)
        res = run(name, x, sig, lambda: torch.randn(N, generator=g), flow=True)
        out.append("case %s %d %d flow" % (name, steps, seed))
        out.append("sigmas " + fmt(sig))
        out.append("x " + fmt(res))
    with open(OUT, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
