#!/usr/bin/env python3
"""The PyTorch side of bench_lora (--torch PYTHON): switching LoRA sets on a
resident full-size SD1.5 UNet in diffusers, the ways a diffusers user does,
on the same checkpoint and LoRA file as the C side.

The UNet is built with SD1.5's config and filled from the single-file
checkpoint (bench_unet_torch.load_models, f32 as diffusers runs on the
CPU), wrapped in a StableDiffusionPipeline with no text encoder or VAE (the
LoRA file has UNet layers only). The LoRA file is loaded twice as two PEFT
adapters, "set_a" and "set_b" (the C side's sets A = the file at 1.0, B = at
0.7). Not "a" / "b": diffusers 0.31 reports as "missing" every LoRA key of the
model that contains the adapter's name as a substring (lora_pipeline.py:
`adapter_name in k`), so loading "b" warned about all of "a"'s keys
("down_blocks…lora_B.a.weight") although both loaded. After loading, the
script checks that each adapter's lora_B weights are the file's (non-zero)
and that an active adapter changes the UNet's output.
Timed (medians of --reps):
  load_s         pipe.load_lora_weights(file, adapter_name=...) (one adapter)
  set_adapters_s pipe.set_adapters(["set_b"], [0.7]) <-> (["set_a"], [1.0]): the switch
                 of unfused adapters (every later UNet call then runs the LoRA
                 layers beside the base ones)
  fused_switch_s pipe.unfuse_lora(); pipe.set_adapters(other); pipe.fuse_lora():
                 the switch that leaves the weights merged, as lightfarm's
  reload_fuse_s  pipe.unload_lora_weights(); pipe.load_lora_weights(file);
                 pipe.fuse_lora(lora_scale=0.7): from the file again
  step_plain_s / step_lora_s  one UNet call (batch 2, 8x8 latent) without an
                 adapter and with one unfused adapter active (its overhead)
  rss            RSS after the model, after the two adapters (MB)

Needs peft (diffusers' LoRA loading requires it); /work/venv-torch2 has none,
so it is put beside it without touching that venv:
  /work/venv-torch2/bin/pip install --no-deps --target /tmp/lf_peft_overlay peft==0.13.2
  PYTHONPATH=/tmp/lf_peft_overlay /work/venv-torch2/bin/python bench/bench_lora_torch.py \\
      --ckpt CK --lora L [--reps N] [--threads N]

Last line (parsed by bench_lora):
  RESULT torch load_s=.. set_adapters_s=.. fused_switch_s=.. reload_fuse_s=..
         step_plain_s=.. step_lora_s=.. rss_model_mb=.. rss_adapters_mb=..
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--lora", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import bench_unet_torch as but
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline

    unet = but.load_models(a.ckpt, True)["unet"]
    rss_model = rss_mb()
    # diffusers 0.31's constructor reads vae.config: a default (tiny, random,
    # never run) AutoencoderKL stands in; the LoRA touches the UNet only.
    pipe = StableDiffusionPipeline(vae=AutoencoderKL(), text_encoder=None, tokenizer=None, unet=unet,
                                   scheduler=EulerDiscreteScheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    t = torch.tensor([500.0, 500.0])
    ctx = torch.randn(2, 77, 768, generator=gen)

    def step():
        with torch.no_grad():
            unet(x, t, encoder_hidden_states=ctx)

    step()  # warm-up
    plain = [timed(step) for _ in range(a.reps)]
    with torch.no_grad():
        out_plain = unet(x, t, encoder_hidden_states=ctx).sample
    load = [timed(lambda: pipe.load_lora_weights(a.lora, adapter_name="set_a"))]
    load.append(timed(lambda: pipe.load_lora_weights(a.lora, adapter_name="set_b")))
    rss_adapters = rss_mb()
    for name in ("set_a", "set_b"):
        bs = [p for n, p in unet.named_parameters() if ".lora_B.%s." % name in n]
        mx = max(float(p.detach().abs().max()) for p in bs)
        print("adapter %s: %d lora_B tensors, max |lora_B| = %.3g" % (name, len(bs), mx))
        assert bs and mx > 0, "adapter %s did not load the file's weights" % name
    pipe.set_adapters(["set_a"], [1.0])
    with torch.no_grad():
        moved = float((unet(x, t, encoder_hidden_states=ctx).sample - out_plain).abs().max())
    print("the adapter moves the UNet output by %.3g (max |plain| %.3g)" % (moved, float(out_plain.abs().max())))
    assert moved > 0, "the adapter does not change the UNet"
    step()
    with_lora = [timed(step) for _ in range(a.reps)]
    sw = []
    for r in range(a.reps):
        sw.append(timed(lambda: pipe.set_adapters(["set_b"], [0.7])))
        sw.append(timed(lambda: pipe.set_adapters(["set_a"], [1.0])))
    pipe.fuse_lora(adapter_names=["set_a"])
    fused = []
    cur = "set_a"
    for r in range(2 * a.reps):
        nxt, w = ("set_b", 0.7) if cur == "set_a" else ("set_a", 1.0)

        def switch():
            pipe.unfuse_lora()
            pipe.set_adapters([nxt], [w])
            pipe.fuse_lora(adapter_names=[nxt])
        fused.append(timed(switch))
        cur = nxt
    pipe.unfuse_lora()
    reload = []
    for r in range(a.reps):
        def again():
            pipe.unload_lora_weights()
            pipe.load_lora_weights(a.lora)
            pipe.fuse_lora(lora_scale=0.7)
        reload.append(timed(again))
        pipe.unfuse_lora()
    med = statistics.median
    print("torch %s, diffusers %s, %d threads" % (torch.__version__, __import__("diffusers").__version__,
                                                    torch.get_num_threads()))
    print("RESULT torch load_s=%.4f set_adapters_s=%.6f fused_switch_s=%.4f reload_fuse_s=%.4f "
          "step_plain_s=%.4f step_lora_s=%.4f rss_model_mb=%.0f rss_adapters_mb=%.0f" %
          (med(load), med(sw), med(fused), med(reload), med(plain), med(with_lora), rss_model, rss_adapters))
    return 0


if __name__ == "__main__":
    sys.exit(main())
