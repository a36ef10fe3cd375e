#!/usr/bin/env python3
"""Reference outputs of step caching (tests/engine/test_stepcache.c) on the
tiny SD1.5 fixture tiny_a (rebuilt here exactly as make_model_fixtures.py
makes it: same config, seed 100, f16-rounded weights; checked against
tiny_a_ref.safetensors' UNet output).

Two denoiser evaluations: A (tiny_a_ref's unet_x, unet_t, unet_ctx), then B
(x moved towards fresh noise, t lowered by 50), each with diffusers'
UNet2DConditionModel:

  - FBCache, WaveSpeed's UNet variant: the first block is conv_in plus
    down_blocks[0].resnets[0] + attentions[0] (ComfyUI's input_blocks 0-1);
    r = its output - conv_in's output. fb_rel_l1 = mean|rA - rB| / mean|rA|;
    fb_reuse_out = conv_out(SiLU(conv_norm_out(h1B + (hendA - h1A)))) where
    hend is the input of conv_norm_out (the up path's output).
  - DeepCache, as its DeepCacheSDHelper skips modules: every down resnet /
    attention / downsampler, the mid block and every up resnet / attention
    / upsampler keeps its output on A; on B, with branch (block b, layer l),
    a down module (block i, layer j; a downsampler's layer is the resnet
    count) is skipped when i > b or (i == b and j >= l), an up module with
    (reversed block i, reversed layer j; an upsampler's layer 0) when i > b
    or (i == b and j > l), and the mid block always: a skipped module
    returns its output from A. dc_out_<D> for D = b * (layers + 1) + l
    (lightfarm's `depth`; DeepCache's cache_branch_id for 2 layers).

  /work/venv-ref/bin/python tests/reference/make_stepcache_fixtures.py
Output: tests/engine/fixtures/models/stepcache_ref.safetensors (a few kB).
"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_model_fixtures as mmf  # noqa: E402

OUT = os.path.join(HERE, "..", "engine", "fixtures", "models")


def main():
    torch.set_num_threads(2)
    names = sorted(mmf.CONFIGS)
    unet, _, _ = mmf.build(mmf.CONFIGS["a"], 100 + names.index("a"))
    unet.eval()
    ref = load_file(os.path.join(OUT, "tiny_a_ref.safetensors"))
    xa, ta, ctx = ref["unet_x"], ref["unet_t"], ref["unet_ctx"]
    gen = torch.Generator().manual_seed(11)
    xb = 0.9 * xa + 0.1 * torch.randn(xa.shape, generator=gen)
    tb = ta - 50.0
    cap = {}

    def keep(name, pick):
        def hook(mod, inp, out):
            cap[name] = pick(inp, out).detach().clone()
        return hook

    hooks = [unet.conv_in.register_forward_hook(keep("h0", lambda i, o: o)),
             unet.down_blocks[0].attentions[0].register_forward_hook(
                 keep("h1", lambda i, o: o[0] if isinstance(o, tuple) else o.sample)),
             unet.conv_norm_out.register_forward_hook(keep("hend", lambda i, o: i[0]))]
    with torch.no_grad():
        out_a = unet(xa, ta, encoder_hidden_states=ctx).sample
        assert (out_a - ref["unet_out"]).abs().max() < 1e-5, "tiny_a rebuilt differently"
        a = dict(cap)
        out_b = unet(xb, tb, encoder_hidden_states=ctx).sample
        b = dict(cap)
    for h in hooks:
        h.remove()
    ra, rb = a["h1"] - a["h0"], b["h1"] - b["h0"]
    rel = (ra - rb).abs().mean() / ra.abs().mean()
    with torch.no_grad():
        h = b["h1"] + (a["hend"] - a["h1"])
        fb = unet.conv_out(unet.conv_act(unet.conv_norm_out(h)))
    r = {"x_a": xa, "t_a": ta, "x_b": xb, "t_b": tb, "ctx": ctx, "out_a": out_a, "out_b": out_b,
         "fb_rel_l1": rel.reshape(1).float(), "fb_reuse_out": fb}

    # DeepCache: the modules and their (block, layer) as the helper numbers them.
    mods = []
    for i, blk in enumerate(unet.down_blocks):
        for j, m in enumerate(blk.resnets):
            mods.append(("down", i, j, m))
        for j, m in enumerate(getattr(blk, "attentions", None) or []):
            mods.append(("down", i, j, m))
        for m in blk.downsamplers or []:
            mods.append(("down", i, len(blk.resnets), m))
    mods.append(("mid", 0, 0, unet.mid_block))
    nb = len(unet.up_blocks)
    for i, blk in enumerate(unet.up_blocks):
        nl = len(blk.resnets)
        for j, m in enumerate(blk.resnets):
            mods.append(("up", nb - i - 1, nl - j - 1, m))
        for j, m in enumerate(getattr(blk, "attentions", None) or []):
            mods.append(("up", nb - i - 1, nl - j - 1, m))
        for m in blk.upsamplers or []:
            mods.append(("up", nb - i - 1, 0, m))
    layers = unet.config.layers_per_block
    n_depths = 1 + len(unet.down_blocks) * layers + len(unet.down_blocks) - 1
    for depth in range(n_depths):
        cb, cl = depth // (layers + 1), depth % (layers + 1)
        state = {"skip": False}
        saved, originals = {}, []
        for k, (kind, bi, li, m) in enumerate(mods):
            if kind == "mid":
                skip = True
            elif bi != cb:
                skip = bi > cb
            else:
                skip = li >= cl if kind == "down" else li > cl
            orig = m.forward

            def fwd(*args, _k=k, _orig=orig, _skip=skip, **kw):
                if state["skip"] and _skip:
                    return saved[_k]
                y = _orig(*args, **kw)
                if not state["skip"]:
                    saved[_k] = y
                return y
            m.forward = fwd
            originals.append((m, orig))
        with torch.no_grad():
            full = unet(xa, ta, encoder_hidden_states=ctx).sample
            assert (full - out_a).abs().max() < 1e-6
            state["skip"] = True
            r["dc_out_%d" % depth] = unet(xb, tb, encoder_hidden_states=ctx).sample
        for m, orig in originals:
            m.forward = orig
        print("depth %d (block %d, layer %d): |dc - full B| max %.3g" % (
            depth, cb, cl, (r["dc_out_%d" % depth] - out_b).abs().max()))
    print("fbcache rel L1 %.5f, |reuse - full B| max %.3g" % (rel, (fb - out_b).abs().max()))
    save_file({k: v.contiguous() for k, v in r.items()}, os.path.join(OUT, "stepcache_ref.safetensors"))


if __name__ == "__main__":
    sys.exit(main())
