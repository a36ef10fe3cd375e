#!/usr/bin/env python3
"""OpenVINO beside bench_unet (issue 21): one SD1.5 UNet step (512x512, CFG
batch 2) in OpenVINO, f32 and bf16 (INFERENCE_PRECISION_HINT), on the same
full-size random weights, with OpenVINO's per-layer performance counters
summed by layer type, then our own bench_unet (f32 and bf16, --profile) in
the same run for the side-by-side figures.

The model: the diffusers UNet that bench_unet_torch.py builds from the
single-file checkpoint (same weights, f16 values widened to f32), converted
with openvino.convert_model (what optimum-cli export openvino does for the
UNet of a pipeline; --xml reuses an IR written by an earlier run or by
optimum-cli export openvino --weight-format fp32). Inputs are the same
deterministic normal deviates as bench_unet's (an LCG + Box-Muller), so the
two sides see the same x, t and cond.

  /work/venv-ov/bin/python bench/bench_unet_openvino.py --ckpt tests/reference/out/sd15_full.safetensors \\
      --bench-unet build-bench/bench/bench_unet [--threads 2] [--reps 3] [--xml /tmp/ov_unet/unet.xml]

Needs openvino (PyPI) with torch and diffusers in the same Python
(bench/requirements-openvino.txt; the conversion traces the f32 UNet: run it
under flock /tmp/lf-bigmem.lock, ~14 GB peak); prints SKIP and exits 0
without them. Converting took 680 s on a loaded 2-core machine: --xml keeps
the IR for later runs. Peak RSS: this process's ru_maxrss. Last line:
  RESULT openvino f32_median_s=.. bf16_median_s=.. peak_rss_kb=..
"""
import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def lcg_randn(n, seed):
    """bench_unet's s_randn: the same floats, in the same order."""
    import numpy as np
    out = np.empty(n, dtype=np.float32)
    x = seed
    for i in range(0, n, 2):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        u1 = ((x >> 8) + 1.0) / 16777217.0
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        u2 = (x >> 8) / 16777216.0
        r = math.sqrt(-2.0 * math.log(u1))
        out[i] = r * math.cos(2 * math.pi * u2)
        if i + 1 < n:
            out[i + 1] = r * math.sin(2 * math.pi * u2)
    return out


def convert(ckpt, xml):
    import openvino as ov
    import torch
    import bench_unet_torch as bt

    unet = bt.load_models(ckpt, True)["unet"]

    class Step(torch.nn.Module):
        def __init__(self, u):
            super().__init__()
            self.u = u

        def forward(self, x, t, cond):
            return self.u(x, t, encoder_hidden_states=cond, return_dict=False)[0]

    ex = (torch.zeros(2, 4, 64, 64), torch.full((2,), 500.0), torch.zeros(2, 77, 768))
    with torch.no_grad():
        m = ov.convert_model(Step(unet).eval(), example_input=ex)
    ov.save_model(m, xml, compress_to_fp16=False)
    del m, unet


def our_kind(node_type, exec_type):
    """The lf_profile op an OpenVINO layer type corresponds to (bench_unet
    --profile's "by op" table), so the two profiles line up."""
    if node_type == "Convolution":
        return "CONV2D 1x1 (MATMUL in ours)" if "1x1" in exec_type else "CONV2D"
    if node_type == "FullyConnected":
        return "MATMUL"
    if node_type == "Subgraph":  # the fused Q.K^T, softmax, .V of each attention
        return "ATTENTION"
    if node_type == "MVN":
        return "GROUP_NORM / LAYER_NORM"
    if node_type in ("Reorder", "Transpose"):
        return "layout (reorders, permutes)"
    return "other elementwise"


def run(core, xml, precision, threads, reps, inputs):
    cfg = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads,
           "PERF_COUNT": True, "PERFORMANCE_HINT": "LATENCY"}
    t0 = time.perf_counter()
    cm = core.compile_model(xml, "CPU", cfg)
    compile_s = time.perf_counter() - t0
    req = cm.create_infer_request()
    req.infer(inputs)  # warm-up
    times, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        req.infer(inputs)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)  # the fair figure on a loaded machine, with --threads 1
    by_type = defaultdict(lambda: [0.0, 0])
    for p in req.profiling_info:
        if p.status.name != "EXECUTED":
            continue
        key = f"{p.node_type} ({p.exec_type})"
        by_type[key][0] += p.real_time.total_seconds()
        by_type[key][1] += 1
    out = req.get_output_tensor(0).data.copy()
    del req, cm
    return times, cpu, compile_s, by_type, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--xml", default="/tmp/lf_ov_unet/unet.xml",
                    help="OpenVINO IR of the UNet (written from --ckpt when absent)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--bench-unet", help="our bench_unet binary, run after OpenVINO (--bf16 --profile)")
    a = ap.parse_args()
    try:
        import numpy as np
        import openvino as ov
    except ImportError as e:
        print(f"SKIP bench_unet_openvino: {e} (pip install openvino into a venv over venv-torch2)")
        return 0
    if not os.path.exists(a.xml):
        os.makedirs(os.path.dirname(a.xml), exist_ok=True)
        t0 = time.perf_counter()
        convert(a.ckpt, a.xml)
        print(f"converted to {a.xml} in {time.perf_counter() - t0:.1f} s", flush=True)
    B, C, S, L, D = 2, 4, 64, 77, 768
    x = lcg_randn(B * C * S * S, 11).reshape(B, C, S, S)
    cond = lcg_randn(B * L * D, 12).reshape(B, L, D)
    t = np.full((B,), 500.0, dtype=np.float32)
    core = ov.Core()
    print(f"OpenVINO {ov.get_version()}, CPU: {core.get_property('CPU', 'FULL_DEVICE_NAME')}, "
          f"{a.threads} threads, load average {os.getloadavg()}", flush=True)
    med = {}
    outs = {}
    for prec in ("f32", "bf16"):
        times, cpu, cs, by_type, outs[prec] = run(core, a.xml, prec, a.threads, a.reps, [x, t, cond])
        med[prec] = statistics.median(times)
        total = sum(v[0] for v in by_type.values())
        print(f"\n== OpenVINO {prec}: compile {cs:.1f} s, steps " + " ".join(f"{s:.2f}" for s in times)
              + f" s, median {med[prec]:.2f} s; process cpu " + " ".join(f"{s:.2f}" for s in cpu)
              + f" s, median {statistics.median(cpu):.2f} s ==", flush=True)
        print(f"  per-layer counters by type (sum {total:.2f} s):")
        for k, (sec, n) in sorted(by_type.items(), key=lambda kv: -kv[1][0])[:20]:
            print(f"  {k:<46} {n:5d} {sec:8.3f} s {100 * sec / total if total else 0:5.1f} %")
        ours = defaultdict(float)
        for k, (sec, _) in by_type.items():
            node_type, exec_type = k.split(" (", 1)
            ours[our_kind(node_type, exec_type)] += sec
        print("  the same, by lightfarm's op kinds:")
        for k, sec in sorted(ours.items(), key=lambda kv: -kv[1]):
            print(f"  {k:<46} {sec:8.3f} s {100 * sec / total if total else 0:5.1f} %")
    diff = float(np.abs(outs["bf16"] - outs["f32"]).max())
    print(f"\nOpenVINO f32 / bf16 {med['f32'] / med['bf16']:.2f}x; max |bf16 - f32| {diff:.3g} "
          f"(max |f32| {float(np.abs(outs['f32']).max()):.3g})")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"RESULT openvino f32_median_s={med['f32']:.4f} bf16_median_s={med['bf16']:.4f} "
          f"peak_rss_kb={peak} threads={a.threads}", flush=True)
    if a.bench_unet:
        print("\n== lightfarm bench_unet, same weights and inputs ==", flush=True)
        subprocess.run([a.bench_unet, "--ckpt", a.ckpt, "--torch", "none", "--bf16", "--profile",
                        "--threads", str(a.threads), "--reps", str(a.reps)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
