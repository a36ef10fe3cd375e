#!/usr/bin/env python3
"""OpenVINO beside bench_unet (issue 21), in one run: the SD1.5 UNet step
(512x512, CFG batch 2) and the VAE decode (latent 64x64 -> 512x512) in
OpenVINO f32 and bf16 (INFERENCE_PRECISION_HINT) and in lightfarm f32 and
bf16 (bench_unet --precision, the steady state of a job that stays in one
precision), at each thread count asked for, with each side's per-op profile
(OpenVINO's per-layer performance counters, our lf_profile) summed by the
same op kinds, the peak RSS of each and the ratios ours / OpenVINO.

Every measured thing runs in its own process, one after another, so each
peak RSS is that run's alone (ru_maxrss of the process; ours includes the
whole checkpoint's mapped pages it touched), and OpenVINO and ours at one
precision and thread count run back to back, so both see about the same
load. At 1 thread the figure to compare is the process CPU time per call
(on a shared machine it counts the work, not the waiting); at 2 threads,
the wall time. Both are printed for every run.

The models: the diffusers UNet and VAE decoder that bench_unet_torch.py's
loaders build from the single-file checkpoint (same weights, f16 values
widened to f32), converted with openvino.convert_model (what optimum-cli
export openvino does for a pipeline's parts) and kept as IR: --xml and
--vae-xml name them and are written when absent (the UNet's conversion
took 680 s and ~14 GB on a loaded 2-core machine: run it once under
flock /tmp/lf-bigmem.lock, e.g. with --convert-only). Inputs are the same
deterministic normal deviates as bench_unet's (an LCG + Box-Muller): x, t
and cond for the UNet, x's first latent for the VAE. Outputs are compared
(max |ours - OpenVINO| at the same precision; bench_unet --dump).

  /work/venv-ov/bin/python bench/bench_unet_openvino.py --ckpt /work/models/sd15_f16.safetensors \\
      --xml /work/models/ov_unet/unet.xml --vae-xml /work/models/ov_vae/vae_decoder.xml \\
      --bench-unet build/rel/bench/bench_unet --threads 1,2 --reps 2

Needs openvino with torch and diffusers in the same Python
(bench/requirements-openvino.txt); prints SKIP and exits 0 without them.
Last lines: one RESULT line per (part, precision, threads) with both sides'
figures and the ratios.
"""
import argparse
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

B, C, S, L, D = 2, 4, 64, 77, 768

# The op kinds both profiles are summed into, in print order.
KINDS = ["conv 3x3", "conv 1x1", "linear", "attention", "norms", "elementwise", "layout", "other"]


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


def inputs(part):
    import numpy as np
    x = lcg_randn(B * C * S * S, 11).reshape(B, C, S, S)
    if part == "vae":
        return [np.ascontiguousarray(x[:1])]
    cond = lcg_randn(B * L * D, 12).reshape(B, L, D)
    t = np.full((B,), 500.0, dtype=np.float32)
    return [x, t, cond]


# ---- conversion (a child process each: ~14 GB for the UNet) ----

def load_vae(ckpt):
    """The diffusers AutoencoderKL of the checkpoint (bench_unet_torch's
    loader, VAE only: the UNet and text encoder are not built)."""
    import torch
    from diffusers import AutoencoderKL
    from safetensors import safe_open
    import bench_unet_torch as bt
    import make_model_fixtures as mmf
    import sd_convert as sc

    vae = AutoencoderKL(**mmf.FULL["vae"])
    with safe_open(ckpt, "pt") as f:
        keys = {k: bt._Key(k) for k in f.keys()}
        names = sc.vae_from_sd(keys, dict(vae.config))
        state = dict(vae.named_parameters())
        state.update(dict(vae.named_buffers()))
        with torch.no_grad():
            for hf, key in names.items():
                state[hf].copy_(f.get_tensor(key).reshape(state[hf].shape))
    return vae.eval()


def convert(part, ckpt, xml):
    import openvino as ov
    import torch
    import bench_unet_torch as bt

    if part == "unet":
        net = bt.load_models(ckpt, True)["unet"]

        class Wrap(torch.nn.Module):
            def __init__(self, u):
                super().__init__()
                self.u = u

            def forward(self, x, t, cond):
                return self.u(x, t, encoder_hidden_states=cond, return_dict=False)[0]

        ex = (torch.zeros(B, C, S, S), torch.full((B,), 500.0), torch.zeros(B, L, D))
    else:
        net = load_vae(ckpt)

        class Wrap(torch.nn.Module):  # what diffusers' vae.decode(z) runs: post_quant_conv, decoder
            def __init__(self, v):
                super().__init__()
                self.v = v

            def forward(self, z):
                return self.v.decode(z, return_dict=False)[0]

        ex = (torch.zeros(1, C, S, S),)
    with torch.no_grad():
        m = ov.convert_model(Wrap(net).eval(), example_input=ex)
    os.makedirs(os.path.dirname(os.path.abspath(xml)), exist_ok=True)
    ov.save_model(m, xml, compress_to_fp16=False)


# ---- OpenVINO runs (a child process each) ----

def ov_kind(node_type, exec_type, name):
    """The kind an OpenVINO layer is summed into (bench_unet's by-op table
    uses the same ones: kind_of_ours)."""
    if node_type == "Convolution":
        return "conv 1x1" if "1x1" in exec_type else "conv 3x3"
    if node_type in ("FullyConnected",):
        return "linear"
    if node_type in ("ScaledDotProductAttention", "MatMul", "Softmax", "SoftMax"):
        return "attention"
    if node_type == "Subgraph":  # a snippets kernel: the fused Q.K^T, softmax, .V of each attention
        n = name.lower()
        return "attention" if any(w in n for w in ("matmul", "softmax", "bmm", "attn", "attention",
                                                    "scaled_dot_product")) else "elementwise"
    if node_type in ("MVN", "GroupNormalization", "NormalizeL2"):
        return "norms"
    if node_type in ("Reorder", "Transpose", "Concatenation", "Split", "Reshape", "Gather",
                     "StridedSlice", "Broadcast", "VariadicSplit", "Interpolate"):
        return "layout" if node_type != "Interpolate" else "elementwise"
    if node_type in ("Eltwise", "Multiply", "Add", "Subtract", "Divide", "Math", "Power", "Sqrt"):
        return "elementwise"
    return "other"


def kind_of_ours(kind):
    """bench_unet's PROF kinds (lf_profile's rows) -> the shared kinds."""
    op = kind.split(" ", 1)[0]
    if op == "CONV2D":
        m = re.search(r" k(\d+) ", kind)
        return "conv 1x1" if m and m.group(1) == "1" else "conv 3x3"
    if op == "MATMUL":
        return "linear"
    if op in ("ATTENTION", "SOFTMAX"):
        return "attention"
    if op in ("GROUP_NORM", "LAYER_NORM", "RMS_NORM"):
        return "norms"
    if op in ("CONCAT", "SPLIT", "PERMUTE", "CPY"):
        return "layout"
    if op in ("GELU", "GEGLU", "SILU", "QUICK_GELU", "ADD", "MUL", "SCALE", "CLAMP", "UPSAMPLE2X",
              "AVG_POOL2D", "TIMESTEP_EMBED", "ROPE", "ADD_LOWRANK"):
        return "elementwise"
    return "other"


def ov_child(part, xml, precision, threads, reps, out_path):
    import numpy as np
    import openvino as ov
    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads,
           "PERF_COUNT": True, "PERFORMANCE_HINT": "LATENCY"}
    print(f"  OpenVINO {ov.get_version()}, {core.get_property('CPU', 'FULL_DEVICE_NAME')}", flush=True)
    t0 = time.perf_counter()
    cm = core.compile_model(xml, "CPU", cfg)
    print(f"  compile {time.perf_counter() - t0:.1f} s", flush=True)
    req = cm.create_infer_request()
    ins = inputs(part)
    t0, c0 = time.perf_counter(), time.process_time()
    req.infer(ins)
    print(f"  warm-up {time.perf_counter() - t0:.2f} s (cpu {time.process_time() - c0:.2f} s)", flush=True)
    walls, cpus = [], []
    for i in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        req.infer(ins)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        print(f"  {'step' if part == 'unet' else 'decode'} {i + 1}/{reps}  {precision} {walls[-1]:.2f} s "
              f"(cpu {cpus[-1]:.2f} s)", flush=True)
    by_type = defaultdict(lambda: [0.0, 0])
    for p in req.profiling_info:  # the last call's
        if p.status.name != "EXECUTED":
            continue
        sec = p.real_time.total_seconds()
        by_type[f"{p.node_type} ({p.exec_type})"][0] += sec
        by_type[f"{p.node_type} ({p.exec_type})"][1] += 1
        print(f"PROF ov s={sec:.6f} type={p.node_type} exec={p.exec_type} name={p.node_name}")
    total = sum(v[0] for v in by_type.values())
    print(f"  per-layer counters of the last call by type (sum {total:.3f} s):")
    for k, (sec, n) in sorted(by_type.items(), key=lambda kv: -kv[1][0])[:16]:
        print(f"    {k:<52} {n:5d} {sec:8.3f} s {100 * sec / total if total else 0:5.1f} %")
    out = req.get_output_tensor(0).data
    if out_path:
        np.ascontiguousarray(out, dtype=np.float32).tofile(out_path)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"BENCH ov_{part} precision={precision} threads={threads} reps={reps} "
          f"wall_median_s={statistics.median(walls):.4f} wall_min_s={min(walls):.4f} "
          f"cpu_median_s={statistics.median(cpus):.4f} cpu_min_s={min(cpus):.4f} peak_rss_kb={peak} "
          f"max_abs_out={float(np.abs(out).max()):.4g}", flush=True)
    return 0


# ---- the orchestrator ----

def fields(line):
    return {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', line)}


RAW = None  # --raw: every child's every line (the per-layer PROF lines too) is appended there


def run_child(cmd, label, env=None):
    """Runs cmd, echoing its output indented; the BENCH fields and the
    profile by shared kind ({kind: seconds})."""
    print(f"\n-- {label}: {' '.join(cmd)}", flush=True)
    if RAW:
        RAW.write(f"\n-- {label}: {' '.join(cmd)}\n")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    bench, prof = parse_lines(p.stdout, echo=True)
    rc = p.wait()
    print(f"-- {label}: exit {rc}, {time.perf_counter() - t0:.0f} s", flush=True)
    return (bench if rc == 0 else None), prof


def parse_lines(lines, echo):
    """A child's output -> its BENCH fields and its profile by shared kind."""
    bench, prof = None, defaultdict(float)
    for line in lines:
        if RAW and echo:
            RAW.write(line)
        if line.startswith("PROF ov "):
            f = fields(line[8:].split(" name=", 1)[0])
            name = line.split(" name=", 1)[1].strip() if " name=" in line else ""
            prof[ov_kind(f["type"], f["exec"], name)] += float(f["s"])
            continue  # one line per layer: not echoed
        if line.startswith("PROF "):
            head, kind = line.rstrip("\n").split(" kind=", 1)
            prof[kind_of_ours(kind)] += float(fields(head)["s"])
            continue  # the table above it says the same
        if line.startswith("PROFPART "):
            continue  # parts of a PROF line's seconds (reorders): in the table, not added again
        if line.startswith("BENCH "):
            bench = fields(line)
        if echo:
            sys.stdout.write("  | " + line)
            sys.stdout.flush()
    return bench, dict(prof)


def regroup(raw):
    """The results of an earlier run from its --raw log (no output
    differences: those are not in it)."""
    sections, cur = [], None
    with open(raw) as f:
        for line in f:
            m = re.match(r"-- (OpenVINO|lightfarm) (\w+) (\w+), (\d+) thread\(s\): ", line)
            if m:
                cur = [m.groups(), []]
                sections.append(cur)
            elif cur:
                cur[1].append(line)
    res = {}
    for (side, part, prec, nt), lines in sections:
        bench, prof = parse_lines(lines, echo=False)
        r = res.setdefault((part, prec, int(nt)), [None, None, {}, {}])
        if side == "OpenVINO":
            r[0], r[2] = bench, prof
        else:
            r[1], r[3] = bench, prof
    out = []
    for (part, prec, nt), (ov, ours, ovp, lp) in res.items():
        la = " -> ".join(x for x in ((ov or {}).get("loadavg", ""), (ours or {}).get("loadavg", "")) if x)
        out.append((part, prec, nt, ov, ours, ovp, lp, None, la))
    return out


def max_diff(a_path, b_path):
    import numpy as np
    try:
        a, b = np.fromfile(a_path, dtype=np.float32), np.fromfile(b_path, dtype=np.float32)
    except OSError:
        return None
    if a.size == 0 or a.size != b.size:
        return None
    return float(np.abs(a - b).max()), float(np.abs(b).max())


def loadavg():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--xml", default="/tmp/lf_ov_unet/unet.xml", help="UNet IR (written when absent)")
    ap.add_argument("--vae-xml", default="/tmp/lf_ov_vae/vae_decoder.xml",
                    help="VAE decoder IR (written when absent)")
    ap.add_argument("--bench-unet", help="our bench_unet binary (without it: OpenVINO only)")
    ap.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    ap.add_argument("--precisions", default="f32,bf16")
    ap.add_argument("--parts", default="unet,vae")
    ap.add_argument("--reps", type=int, default=2, help="timed UNet steps per run (after a warm-up)")
    ap.add_argument("--vae-reps", type=int, default=2, help="timed VAE decodes per run")
    ap.add_argument("--vae-bf16", action="store_true",
                    help="also our VAE with the backend's bf16 compute (the engine keeps it f32)")
    ap.add_argument("--convert-only", action="store_true")
    ap.add_argument("--raw", help="append every child's output to this file (per-layer counters included)")
    ap.add_argument("--regroup", metavar="RAW", help="print the summary of an earlier run's --raw log, run nothing")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # convert-unet, convert-vae, ov-unet, ov-vae
    ap.add_argument("--precision", default="f32", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    try:
        import numpy  # noqa: F401
        import openvino  # noqa: F401
    except ImportError as e:
        print(f"SKIP bench_unet_openvino: {e} (pip install -r bench/requirements-openvino.txt)")
        return 0
    if a.regroup:
        summarize(regroup(a.regroup), "regrouped from " + a.regroup)
        return 0
    if a.child:
        sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
        sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
        kind, part = a.child.split("-", 1)
        xml = a.xml if part == "unet" else a.vae_xml
        if kind == "convert":
            t0 = time.perf_counter()
            convert(part, a.ckpt, xml)
            print(f"converted the {part} to {xml} in {time.perf_counter() - t0:.1f} s, peak RSS "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1048576:.1f} GiB", flush=True)
            return 0
        return ov_child(part, xml, a.precision, int(a.threads), a.reps if part == "unet" else a.vae_reps, a.out)

    parts = [p for p in a.parts.split(",") if p]
    global RAW
    RAW = open(a.raw, "a", buffering=1) if a.raw else None
    me = [sys.executable, os.path.abspath(__file__), "--ckpt", a.ckpt, "--xml", a.xml, "--vae-xml", a.vae_xml]
    for part in parts:
        xml = a.xml if part == "unet" else a.vae_xml
        if not os.path.exists(xml):
            bench, _ = run_child(me + ["--child", f"convert-{part}"], f"convert the {part}")
            if not os.path.exists(xml):
                print(f"bench_unet_openvino: converting the {part} failed")
                return 1
    if a.convert_only:
        return 0
    print(f"\nbench_unet_openvino: {a.ckpt}, parts {a.parts}, precisions {a.precisions}, threads {a.threads}, "
          f"{a.reps} UNet steps / {a.vae_reps} VAE decodes per run after a warm-up; load average {loadavg()}",
          flush=True)
    tmp = tempfile.mkdtemp(prefix="lf_bench_ov.")
    env = dict(os.environ)
    results = []  # (part, precision, threads, ov, ours, ov_prof, our_prof, diff)
    t_start = time.perf_counter()
    for nt in [int(t) for t in a.threads.split(",") if t]:
        for part in parts:
            precs = [p for p in a.precisions.split(",") if p]
            for prec in precs:
                reps = a.reps if part == "unet" else a.vae_reps
                ov_out, our_out = os.path.join(tmp, "ov.bin"), os.path.join(tmp, "ours.bin")
                la0 = loadavg()
                ov, ov_prof = run_child(me + ["--child", f"ov-{part}", "--precision", prec, "--threads", str(nt),
                                              "--reps", str(a.reps), "--vae-reps", str(a.vae_reps),
                                              "--out", ov_out],
                                        f"OpenVINO {part} {prec}, {nt} thread(s)")
                ours, our_prof = None, {}
                if a.bench_unet and (part == "unet" or prec == "f32" or a.vae_bf16):
                    cmd = [a.bench_unet, "--ckpt", a.ckpt, "--torch", "none", "--precision", prec, "--profile",
                           "--threads", str(nt), "--reps", str(reps), "--dump", our_out]
                    if part == "vae":
                        cmd += ["--vae", "--no-ceiling"]
                    ours, our_prof = run_child(cmd, f"lightfarm {part} {prec}, {nt} thread(s)", env)
                diff = max_diff(our_out, ov_out) if ours and ov else None
                for p in (ov_out, our_out):
                    if os.path.exists(p):
                        os.unlink(p)
                results.append((part, prec, nt, ov, ours, ov_prof, our_prof, diff, la0 + " -> " + loadavg()))
    os.rmdir(tmp)
    summarize(results, f"{time.perf_counter() - t_start:.0f} s; load average now {loadavg()}")
    return 0


def summarize(results, what):
    print(f"\n==== summary ({what}) ====")
    print("seconds per call (UNet: one 512x512 CFG step, batch 2; VAE: one 64x64 -> 512x512 decode); "
          "cpu = process CPU time, wall = wall time; ratio = ours / OpenVINO (below 1: ours faster)")
    print(f"{'part':<5} {'prec':<5} {'thr':>3} | {'OV wall':>8} {'OV cpu':>8} {'OV RSS':>8} | "
          f"{'our wall':>8} {'our cpu':>8} {'our RSS':>8} | {'wall x':>6} {'cpu x':>6} {'RSS x':>6} | max|diff|  load")
    for part, prec, nt, ov, ours, _, _, diff, la in results:
        def g(r, k, scale=1.0):
            return float(r[k]) * scale if r and k in r else float("nan")
        ow, oc, orss = g(ov, "wall_median_s"), g(ov, "cpu_median_s"), g(ov, "peak_rss_kb", 1 / 1048576)
        lw, lc, lrss = g(ours, "wall_median_s"), g(ours, "cpu_median_s"), g(ours, "peak_rss_kb", 1 / 1048576)
        ds = f"{diff[0]:.3g} of {diff[1]:.3g}" if diff else "-"
        print(f"{part:<5} {prec:<5} {nt:>3} | {ow:8.2f} {oc:8.2f} {orss:7.2f}G | {lw:8.2f} {lc:8.2f} {lrss:7.2f}G | "
              f"{lw / ow:6.2f} {lc / oc:6.2f} {lrss / orss:6.2f} | {ds}  {la}")
    print("\nper-op profile of one call by shared kind (OpenVINO: its per-layer counters of the last timed call; "
          "ours: lf_profile of one extra call), seconds and share:")
    for part, prec, nt, ov, ours, ov_prof, our_prof, _, _ in results:
        if not ov_prof and not our_prof:
            continue
        ot, lt = sum(ov_prof.values()) or 1.0, sum(our_prof.values()) or 1.0
        print(f"  {part} {prec}, {nt} thread(s): OpenVINO sum {sum(ov_prof.values()):.2f} s, "
              f"ours sum {sum(our_prof.values()):.2f} s")
        for k in KINDS:
            o, l_ = ov_prof.get(k, 0.0), our_prof.get(k, 0.0)
            if o == 0 and l_ == 0:
                continue
            r = f"{l_ / o:6.2f}x" if o > 0 else "     -"
            print(f"    {k:<12} OV {o:8.3f} s {100 * o / ot:5.1f} %   ours {l_:8.3f} s {100 * l_ / lt:5.1f} %   "
                  f"ours/OV {r}")
    for part, prec, nt, ov, ours, _, _, diff, la in results:
        line = f"RESULT {part} precision={prec} threads={nt}"
        for side, r in (("ov", ov), ("lf", ours)):
            if r:
                line += (f" {side}_wall_s={r['wall_median_s']} {side}_cpu_s={r['cpu_median_s']} "
                         f"{side}_peak_rss_kb={r['peak_rss_kb']}")
        if ov and ours:
            line += (f" wall_ratio={float(ours['wall_median_s']) / float(ov['wall_median_s']):.3f}"
                     f" cpu_ratio={float(ours['cpu_median_s']) / float(ov['cpu_median_s']):.3f}"
                     f" rss_ratio={float(ours['peak_rss_kb']) / float(ov['peak_rss_kb']):.3f}")
        if diff:
            line += f" max_abs_diff={diff[0]:.4g} max_abs_ov={diff[1]:.4g}"
        print(line + f' load="{la}"')


if __name__ == "__main__":
    sys.exit(main())
