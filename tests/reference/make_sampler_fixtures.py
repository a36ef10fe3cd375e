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


def to_d(x, sigma, den):
    return (x - den) / sigma


def ancestral(sf, st, eta=1.0):
    if not eta:
        return st, 0.0
    up = min(st, eta * (st ** 2 * (sf ** 2 - st ** 2) / sf ** 2) ** 0.5)
    down = (st ** 2 - up ** 2) ** 0.5
    return down, up


def run(name, x, sig, noise):
    n = len(sig) - 1
    old = None
    h_last = None
    for i in range(n):
        s, sn = sig[i], sig[i + 1]
        den = model(x, s)
        if name in ("euler", "ddim"):
            x = x + to_d(x, s, den) * (sn - s)
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
        elif name == "lcm":
            x = den
            if sn > 0:
                x = x + sn * noise()
        else:
            raise ValueError(name)
    return x


def fmt(v):
    return " ".join("%.9g" % float(a) for a in v)


def main():
    cases = [
        ("euler", "normal", 10, 1), ("euler_ancestral", "karras", 10, 2), ("heun", "karras", 8, 3),
        ("dpm_2", "normal", 8, 4), ("dpmpp_2m", "karras", 12, 5), ("dpmpp_2m_sde", "karras", 12, 6),
        ("dpmpp_sde", "normal", 8, 7), ("ddim", "normal", 10, 8), ("lcm", "normal", 4, 9),
    ]
    out = ["# Generated by tests/reference/make_sampler_fixtures.py (torch %s); do not edit." % torch.__version__]
    for name, sched, steps, seed in cases:
        sig = schedule(sched, steps)
        torch.manual_seed(seed)
        x = torch.randn(N) * sig[0]
        g = torch.Generator()
        g.manual_seed(seed)
        res = run(name, x, sig, lambda: torch.randn(N, generator=g))
        out.append("case %s %d %d" % (name, steps, seed))
        out.append("sigmas " + fmt(sig))
        out.append("x " + fmt(res))
    with open(OUT, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
