#!/usr/bin/env python3
"""The PyTorch side of bench_unet: one SD1.5 UNet step (512x512, CFG batch 2)
in diffusers' UNet2DConditionModel on the CPU, with the same weights and the
same inputs as the C engine.

The model is built with SD1.5's configs (those of
tests/reference/make_model_fixtures.py --full, which wrote the checkpoint)
and filled tensor by tensor from the single-file checkpoint in the original
(LDM) layout, names mapped by tools/train/sd_convert.py. Weights are f32
(as the engine's default), and by default the text encoder and the VAE are
loaded too, since lf_model_load holds them as well: both processes then hold
the same model (--unet-only loads the UNet alone, for the split). With
--diffusers --pipeline the whole StableDiffusionXLPipeline is assembled in f32
(both text encoders, UNet, VAE: what CPU users run) and its text encoders run
once on the C side's ids before the steps. --reps 0 times the warm-up step
alone; --no-flops skips the FLOP count (one more forward).

Inputs come from bench_unet (--io DIR: unet_in.bin = x[2,4,64,64], t[2],
cond[2,77,768] as float32); if DIR/unet_out.bin exists, the output is
compared with it. With --interleave the steps are run one at a time on
request (bench_unet alternates them with its own). Peak RSS: ru_maxrss of this process (load included) and
the high-water mark during the steps alone (VmHWM after clear_refs).

Last line (parsed by bench_unet):
  RESULT torch median_s=.. min_s=.. load_s=.. rss_load_kb=.. peak_rss_kb=..
         step_hwm_kb=.. flops=.. max_abs=.. rel_err=.. threads=..

  tests/reference/.venv/bin/python bench/bench_unet_torch.py --ckpt CK --io DIR
  PYTHON bench/bench_unet_torch.py --diffusers FOLDER --io DIR   (SD1.5 or SDXL
         folder; SDXL inputs carry the pooled text embedding and time ids)
"""
import argparse
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def reset_hwm():
    """Resets VmHWM to the current RSS (Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Key(str):
    """A checkpoint key standing in for its tensor while names are mapped
    (sd_convert's mappers look at .ndim for the VAE's 1x1-conv attention)."""
    ndim = 2


def load_models(ckpt, unet_only):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors import safe_open
    from transformers import CLIPTextConfig, CLIPTextModel
    import make_model_fixtures as mmf
    import sd_convert as sc

    full = mmf.FULL
    parts = [("unet", UNet2DConditionModel(**full["unet"]))]
    if not unet_only:
        parts.append(("vae", AutoencoderKL(**full["vae"])))
        parts.append(("text", CLIPTextModel(CLIPTextConfig(**full["text"]))))
    with safe_open(ckpt, "pt") as f:
        keys = {k: _Key(k) for k in f.keys()}
        used = 0
        for name, model in parts:
            if name == "unet":
                names = sc.unet_from_sd(keys, dict(model.config))
            elif name == "vae":
                names = sc.vae_from_sd(keys, dict(model.config))
            else:
                names = sc.text_from_sd(keys)
            state = dict(model.named_parameters())
            state.update(dict(model.named_buffers()))
            want = {k for k in state if not k.endswith("position_ids")}
            if set(names) != want:
                miss, extra = sorted(want - set(names)), sorted(set(names) - want)
                raise KeyError(f"{name}: missing {miss[:4]} unexpected {extra[:4]}")
            with torch.no_grad():
                for hf, key in names.items():
                    p = state[hf]
                    p.copy_(f.get_tensor(key).reshape(p.shape))  # f16 -> f32, one at a time
            used += len(names)
            model.eval()
        if unet_only is False and used != len(keys):
            raise KeyError(f"{len(keys) - used} tensors in {ckpt} belong to no model")
    return {n: m for n, m in parts}


def _text_encoder(cls, sub):
    """cls.from_pretrained(sub) in f32; a model.safetensors without the
    {"format": "pt"} metadata (make_sdxl_fixtures.py's, written with
    safetensors' save_file) is refused by transformers >= 4.4x, so it is then
    built from its config and filled with load_state_dict, which is what
    from_pretrained does with the file (same f32 parameters)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(os.path.join(sub, "model.safetensors"), "pt") as f:
        meta = f.metadata()
    if meta and meta.get("format") == "pt":
        return cls.from_pretrained(sub, torch_dtype=torch.float32)
    m = cls(cls.config_class.from_pretrained(sub)).float()
    state = load_file(os.path.join(sub, "model.safetensors"))
    missing, unexpected = m.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise KeyError(f"{sub}: missing {missing[:4]} unexpected {unexpected[:4]}")
    del state
    return m


def load_diffusers(folder, unet_only):
    """A diffusers folder (e.g. tests/reference/make_sdxl_fixtures.py --full's sdxl_full_diffusers) in
    f32, as bench_unet's engine side loads the same files."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    out = {"unet": UNet2DConditionModel.from_pretrained(os.path.join(folder, "unet"),
                                                       torch_dtype=torch.float32)}
    if not unet_only:
        out["vae"] = AutoencoderKL.from_pretrained(os.path.join(folder, "vae"), torch_dtype=torch.float32)
        out["text"] = _text_encoder(CLIPTextModel, os.path.join(folder, "text_encoder"))
        if os.path.isdir(os.path.join(folder, "text_encoder_2")):
            out["text_2"] = _text_encoder(CLIPTextModelWithProjection,
                                          os.path.join(folder, "text_encoder_2"))
    for m in out.values():
        m.eval()
    return out


def load_pipeline(folder):
    """The whole SDXL (or SD1.5) pipeline as users run it on a CPU: every part
    from_pretrained in f32 (diffusers refuses f16 pipelines on the CPU:
    "Pipelines loaded with dtype=torch.float16 cannot run with cpu device"),
    assembled into StableDiffusionXLPipeline as its from_pretrained does.
    The folder has no tokenizer files (ids come from the C side), so the
    tokenizers are None; their memory is negligible beside the weights."""
    import diffusers
    from diffusers import EulerDiscreteScheduler

    parts = load_diffusers(folder, False)
    sdxl = "text_2" in parts
    cls = diffusers.StableDiffusionXLPipeline if sdxl else diffusers.StableDiffusionPipeline
    kw = dict(vae=parts["vae"], text_encoder=parts["text"], tokenizer=None, unet=parts["unet"],
              scheduler=EulerDiscreteScheduler())
    if sdxl:
        kw.update(text_encoder_2=parts["text_2"], tokenizer_2=None)
    else:
        kw.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe = cls(**kw)
    parts["pipe"] = pipe
    return parts


def encode_text(models, B):
    """Both encoders (as StableDiffusionXLPipeline.encode_prompt: penultimate
    hidden states, pooled from the second) on B chunks of 77 ids, the C
    side's bench ids, so that the text encoders' activations count too."""
    ids = torch.tensor([[49406 if t == 0 else (320 + 37 * t + b if t < 9 + b else 49407)
                         for t in range(77)] for b in range(B)])
    ids = ids % models["text"].config.vocab_size  # no-op at full size; lets tiny test models run
    with torch.inference_mode():
        h1 = models["text"](ids, output_hidden_states=True).hidden_states[-2]
        out = models["text_2"](ids, output_hidden_states=True)
        return torch.cat([h1, out.hidden_states[-2]], dim=-1), out.text_embeds


def count_flops(unet, x, t, cond, added=None):
    """Multiply-add = 2 over Conv2d, Linear and the attention products (the
    convention of lf_node_flops): hooks on the layers, and torch.bmm /
    torch.baddbmm wrapped for one forward (diffusers' AttnProcessor computes
    Q K^T and P V with them)."""
    total = [0.0]
    hooks = []

    def conv_hook(m, inp, out):
        k = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        total[0] += 2.0 * out.numel() * k

    def lin_hook(m, inp, out):
        total[0] += 2.0 * out.numel() * m.in_features

    for mod in unet.modules():
        if isinstance(mod, torch.nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, torch.nn.Linear):
            hooks.append(mod.register_forward_hook(lin_hook))
    bmm, baddbmm = torch.bmm, torch.baddbmm

    def my_bmm(a, b, *args, **kw):
        total[0] += 2.0 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
        return bmm(a, b, *args, **kw)

    def my_baddbmm(c, a, b, *args, **kw):
        total[0] += 2.0 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
        return baddbmm(c, a, b, *args, **kw)

    torch.bmm, torch.baddbmm = my_bmm, my_baddbmm
    try:
        unet(x, t, encoder_hidden_states=cond, added_cond_kwargs=added)
    finally:
        torch.bmm, torch.baddbmm = bmm, baddbmm
        for hk in hooks:
            hk.remove()
    return total[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", help="SD1.5 single-file checkpoint (original layout)")
    src.add_argument("--diffusers", help="diffusers folder (SD1.5 or SDXL)")
    ap.add_argument("--io", required=True, help="folder with unet_in.bin (and unet_out.bin)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=64, help="latent height = width")
    ap.add_argument("--unet-only", action="store_true")
    ap.add_argument("--pipeline", action="store_true",
                    help="load the whole StableDiffusionXLPipeline (f32, every part) and run its text "
                         "encoders once before the steps (with --diffusers)")
    ap.add_argument("--no-flops", action="store_true", help="skip the FLOP count (one more forward)")
    ap.add_argument("--interleave", action="store_true",
                    help="after the warm-up print READY, then run one step per 'step' line on stdin")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    B, S = a.batch, a.size

    t0 = time.perf_counter()
    if a.pipeline and not a.diffusers:
        sys.exit("--pipeline needs --diffusers")
    if a.pipeline:
        models = load_pipeline(a.diffusers)
    elif a.diffusers:
        models = load_diffusers(a.diffusers, a.unet_only)
    else:
        models = load_models(a.ckpt, a.unet_only)
    load_s = time.perf_counter() - t0
    unet = models["unet"]
    rss_load = status_kb("VmRSS")

    # unet_in.bin: x[B,4,S,S], t[B], cond[B,77,D] and, for an SDXL UNet
    # (addition_embed_type "text_time"), pooled[B,P] and time_ids[B,6].
    cfg = unet.config
    D = cfg.cross_attention_dim
    n_ids, P = 0, 0
    if cfg.addition_embed_type == "text_time":
        n_ids = 6
        P = cfg.projection_class_embeddings_input_dim - cfg.addition_time_embed_dim * n_ids
    raw = np.fromfile(os.path.join(a.io, "unet_in.bin"), dtype=np.float32)
    nx, nc = B * 4 * S * S, B * 77 * D
    want = nx + B + nc + B * (P + n_ids)
    if raw.size != want:
        sys.exit(f"unet_in.bin: {raw.size} floats, expected {want}")
    x = torch.from_numpy(raw[:nx].copy()).reshape(B, 4, S, S)
    t = torch.from_numpy(raw[nx:nx + B].copy())
    o = nx + B
    cond = torch.from_numpy(raw[o:o + nc].copy()).reshape(B, 77, D)
    o += nc
    added = None
    if n_ids:
        pooled = torch.from_numpy(raw[o:o + B * P].copy()).reshape(B, P)
        o += B * P
        ids = torch.from_numpy(raw[o:o + B * n_ids].copy()).reshape(B, n_ids)
        added = {"text_embeds": pooled, "time_ids": ids}

    flops = -1.0
    times = []
    if a.pipeline and "text_2" in models:
        t0 = time.perf_counter()
        encode_text(models, B)
        print(f"torch text (both encoders, {B} chunks) {time.perf_counter() - t0:.2f} s", flush=True)
    with torch.inference_mode():
        t0 = time.perf_counter()
        y = unet(x, t, encoder_hidden_states=cond, added_cond_kwargs=added).sample  # warm-up
        warm = time.perf_counter() - t0
        print(f"torch warm-up {warm:.2f} s", flush=True)
        hwm_ok = reset_hwm()
        if a.interleave:
            # One step per "step" line on stdin, so that bench_unet can
            # alternate its steps with ours under the same machine load.
            print("READY", flush=True)
            for line in sys.stdin:
                if line.strip() != "step":
                    break
                t0 = time.perf_counter()
                y = unet(x, t, encoder_hidden_states=cond, added_cond_kwargs=added).sample
                times.append(time.perf_counter() - t0)
                print(f"STEP {times[-1]:.4f}", flush=True)
        else:
            for i in range(a.reps):
                t0 = time.perf_counter()
                y = unet(x, t, encoder_hidden_states=cond, added_cond_kwargs=added).sample
                times.append(time.perf_counter() - t0)
                print(f"torch step {i + 1}/{a.reps} {times[-1]:.2f} s", flush=True)
        if not times and a.reps == 0:
            times = [warm]  # --reps 0: the warm-up (first, planning) step is the figure
        if not times:
            sys.exit("no step was run")
        step_hwm = status_kb("VmHWM") if hwm_ok else -1
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if not a.no_flops:
            flops = count_flops(unet, x, t, cond, added)

    max_abs = rel = -1.0
    outp = os.path.join(a.io, "unet_out.bin")
    if os.path.exists(outp):
        c = torch.from_numpy(np.fromfile(outp, dtype=np.float32)).reshape(y.shape)
        d = (c - y).abs().max().item()
        max_abs, rel = d, d / max(y.abs().max().item(), 1e-30)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"attention processor {type(unet.attn_processors[next(iter(unet.attn_processors))]).__name__}")
    print(f"RESULT torch median_s={statistics.median(times):.4f} min_s={min(times):.4f} "
          f"load_s={load_s:.2f} rss_load_kb={rss_load} peak_rss_kb={peak} step_hwm_kb={step_hwm} "
          f"flops={flops:.6g} max_abs={max_abs:.4g} rel_err={rel:.4g} threads={torch.get_num_threads()}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
