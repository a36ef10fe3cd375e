#!/usr/bin/env python3
"""Whole generations with a LoRA, by diffusers, for
tests/engine/test_pipeline_lora_parity.c: the tiny SD1.5 fixture (tiny_a) and
the tiny SDXL base (tests/engine/fixtures/sdxl), each with LoRA files written
here from known factors, loaded by diffusers' own `load_lora_weights` and
fused with `fuse_lora`, then run through StableDiffusionPipeline /
StableDiffusionXLPipeline exactly as make_pipeline_fixtures.py /
make_sdxl_fixtures.py run their "euler" case (prompt, negative prompt, seed,
CFG, 16x16, 4 steps; token embeddings widened to CLIP's 49,408 rows).

LoRA files (tests/engine/fixtures/lora/):
  sd15_diffusers.safetensors  diffusers format, as its training scripts save it
        (PEFT adapters on the UNet's attention projections, proj_in/out, the
        ResNets' 3x3 conv1 and the text encoder's attention and MLP layers;
        get_peft_model_state_dict -> convert_state_dict_to_diffusers ->
        StableDiffusionPipeline.save_lora_weights, which writes a mix of
        "….lora.down/up.weight" and "….lora_A/B.weight"); rank 4, alpha = rank.
  sdxl_diffusers.safetensors  the same for SDXL (StableDiffusionXLPipeline.
        save_lora_weights: "unet.", "text_encoder.", "text_encoder_2."; the
        second encoder's q/k/v separately, which lightfarm's OpenCLIP layout
        keeps packed in one in_proj).
  sdxl_kohya.safetensors      kohya sd-scripts' SDXL names: "lora_unet_" + the
        SGM (original) UNet path, "lora_te1_" / "lora_te2_" + the HF text-model
        path; f16 factors, alpha = rank / 2 (scale 0.5).
  sdxl_lycoris.safetensors    LyCORIS networks on OpenCLIP's q/k/v (kohya
        "lora_te2_" names), which lightfarm keeps packed in one in_proj: layer 0
        q LoHa, k LoKr (whole w1, factored w2), v LoHa; layer 1 q LoKr (factored
        w1, whole w2), k a plain LoRA, v untouched. Only "w.<pool name>" in its
        .ref (diffusers does not load LyCORIS files: no generation), at
        multiplier 0.6, ΔW by lycoris.functional.{loha,lokr,locon}.diff_weight.
Each with <name>.ref.safetensors: "latent" (final latents before the VAE),
"image" (VAE output before clamping) of the fused pipeline, and "w.<pool
name>" = W0 + multiplier * ΔW (f32) for every layer the file touches, under
lightfarm's pool names ("unet.…", "clip.…" for the first text encoder,
"clip2.…" for SDXL's second, whose q/k/v land in rows 0..D / D..2D / 2D..3D
of "clip2.encoder.layers.N.self_attn.in_proj.weight"). ΔW is the
lycoris-lora math (lycoris.functional.locon.diff_weight: up · down · alpha /
rank, in float64 on the stored factors); the script asserts that the weights
diffusers fused equal it (PEFT's get_delta_weight) before saving.
Multipliers: sd15_diffusers 0.75 (fuse_lora(lora_scale=0.75)), the SDXL files 1.

  /work/venv-ref/bin/python tests/reference/make_lora_pipeline_fixtures.py [--lycoris]
(diffusers 0.27.2, transformers 4.38.2, peft 0.10, lycoris-lora 3.1.1 on torch
1.13: tests/reference/requirements*.txt; needs the shared reference data's
CLIP merges file, as make_pipeline_fixtures.py.)
"""
import os
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_model_fixtures as mmf  # noqa: E402
import make_pipeline_fixtures as mpf  # noqa: E402
import make_sdxl_fixtures as msf  # noqa: E402

from diffusers import (EulerDiscreteScheduler, StableDiffusionPipeline,  # noqa: E402
                       StableDiffusionXLPipeline)
from diffusers.utils import convert_state_dict_to_diffusers  # noqa: E402
from lycoris.functional import locon, loha, lokr  # noqa: E402
from peft import LoraConfig  # noqa: E402
from peft.utils import get_peft_model_state_dict  # noqa: E402

OUT = os.path.join(HERE, "..", "engine", "fixtures", "lora")
SDXL = os.path.join(HERE, "..", "engine", "fixtures", "sdxl")
PROMPT, NEGATIVE, SEED, CFG, SIZE, STEPS = mpf.PROMPT, mpf.NEGATIVE, 1234, 5.0, 16, 4

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "conv1"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def euler():
    s = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                               num_train_timesteps=1000, prediction_type="epsilon",
                               steps_offset=1, timestep_spacing="linspace")
    return s


def randomize_lora(model, cfg, gen):
    """Adds a PEFT adapter and fills its A and B with f16-representable
    random values (B is zero at init: the LoRA would do nothing)."""
    model.add_adapter(cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_((torch.randn(p.shape, generator=gen) * 0.15).half().float())
    return convert_state_dict_to_diffusers(get_peft_model_state_dict(model))


def pool_name(key):
    """A diffusers module name ("unet.x", "text_encoder.text_model.x",
    "text_encoder_2.text_model.x") -> lightfarm's pool name of its weight, and
    the q/k/v slice (0, 1, 2; -1 = whole tensor)."""
    if key.startswith("unet."):
        return key + ".weight", -1
    for pre, pool in [("text_encoder_2.text_model.", "clip2."), ("text_encoder.text_model.", "clip.")]:
        if key.startswith(pre):
            rest = key[len(pre):]
            if pool == "clip2.":
                for i, x in enumerate("qkv"):
                    if rest.endswith(".self_attn.%s_proj" % x):
                        return pool + rest[:-len("q_proj")] + "in_proj.weight", i
            return pool + rest + ".weight", -1
    raise KeyError(key)


def module_of(models, key):
    """The torch module of a diffusers module name in {prefix: model}."""
    for pre, m in models.items():
        if key.startswith(pre + "."):
            return m.get_submodule(key[len(pre) + 1:])
    raise KeyError(key)


def expected_weights(models, deltas, mult):
    """{pool name: W0 + mult * ΔW} (f64 math, f32 out); deltas: {module: ΔW}.
    models are the plain (f16-valued) networks."""
    out = {}
    for key, d in sorted(deltas.items()):
        name, sl = pool_name(key)
        w0 = module_of(models, key).weight.detach().double()
        w = w0 + mult * d.reshape(w0.shape)
        if sl < 0:
            out["w." + name] = w.float()
        else:
            if "w." + name not in out:  # the plain packed tensor, then the slices
                qkv = [module_of(models, key.rsplit(".", 1)[0] + ".%s_proj" % x).weight.detach()
                       for x in "qkv"]
                out["w." + name] = torch.cat(qkv, 0).float()
            D = w0.shape[0]
            out["w." + name][sl * D:(sl + 1) * D] = w.float()
    return out


def check_fused(models, deltas, mult, label):
    """diffusers' fused weights (PEFT math) against W0 + mult * ΔW (lycoris)."""
    worst = 0.0
    for key, d in deltas.items():
        m = module_of(models, key)
        base = m.base_layer if hasattr(m, "base_layer") else m
        w = base.weight.detach().double()
        w0 = torch.tensor(0.0)
        worst = max(worst, float((w - deltas_w0[key] - mult * d.reshape(w.shape)).abs().max()))
        del w0
    print("%s: %d layers fused by diffusers, max |fused - (W0 + ΔW)| = %.3g" % (label, len(deltas), worst))
    assert worst < 1e-5, label + ": diffusers fused something else"


deltas_w0 = {}


def run_pipe(pipe, gen_latents=True):
    gen = torch.Generator().manual_seed(SEED)
    noise = torch.randn((1, 4, SIZE // 2, SIZE // 2), generator=gen)
    s0 = float(mpf.lf_schedule("normal", STEPS)[0])
    lat = pipe(PROMPT, negative_prompt=NEGATIVE, height=SIZE, width=SIZE, num_inference_steps=STEPS,
               guidance_scale=CFG, generator=gen, latents=noise * s0 / float(pipe.scheduler.init_noise_sigma),
               output_type="latent").images
    vae = pipe.vae
    img = vae.decode(lat / vae.config.scaling_factor).sample
    return lat, img


def save_ref(name, lat, img, weights):
    r = {"latent": lat.contiguous().float(), "image": img.contiguous().float()}
    r.update({k: v.contiguous() for k, v in weights.items()})
    save_file(r, os.path.join(OUT, name + ".ref.safetensors"))


def lora_deltas(sd):
    """{module: ΔW} from a diffusers-format state dict (alpha = rank)."""
    out = {}
    for k, down in sd.items():
        for d, u in [(".lora.down.weight", ".lora.up.weight"), (".lora_A.weight", ".lora_B.weight"),
                     (".lora_linear_layer.down.weight", ".lora_linear_layer.up.weight")]:
            if k.endswith(d):
                mod = k[:-len(d)]
                up = sd[mod + u]
                out[mod] = locon.diff_weight(down.double(), up.double(), None, gamma=1.0)
    return out


@torch.no_grad()
def sd15(tmp, tok):
    cfg_u = LoraConfig(r=4, lora_alpha=4, init_lora_weights=True, target_modules=UNET_TARGETS)
    cfg_t = LoraConfig(r=4, lora_alpha=4, init_lora_weights=True, target_modules=TEXT_TARGETS)
    unet, vae, text = mpf.model()
    gen = torch.Generator().manual_seed(31)
    su = randomize_lora(unet, cfg_u, gen)
    st = randomize_lora(text, cfg_t, gen)
    StableDiffusionPipeline.save_lora_weights(tmp, unet_lora_layers=su, text_encoder_lora_layers=st,
                                              weight_name="sd15_diffusers.safetensors")
    path = os.path.join(OUT, "sd15_diffusers.safetensors")
    sd = load_file(os.path.join(tmp, "sd15_diffusers.safetensors"))
    save_file(sd, path)
    print("wrote", path, os.path.getsize(path), "bytes,", len(sd), "tensors")
    mult = 0.75
    unet, vae, text = mpf.model()
    models = {"unet": unet, "text_encoder": text}
    # text_encoder.text_model.x: the module path inside CLIPTextModel.
    deltas = lora_deltas(sd)
    for k in deltas:
        deltas_w0[k] = module_of(models, k).weight.detach().double().clone()
    weights = expected_weights(models, deltas, mult)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=euler(),
                                   safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    plain, _ = run_pipe(pipe)
    print("plain |latent| %.3g" % float(plain.abs().max()))
    pipe.load_lora_weights(path)
    pipe.fuse_lora(lora_scale=mult)
    check_fused(models, deltas, mult, "sd15_diffusers")
    lat, img = run_pipe(pipe)
    print("sd15_diffusers: the LoRA moves the latent by %.3g (max |plain| %.3g)" %
          (float((lat - plain).abs().max()), float(plain.abs().max())))
    save_ref("sd15_diffusers", lat, img, weights)


def sdxl_models():
    unet, vae, text_l, text_g = msf.build(msf.UNET_BASE, True, 200)
    ref = load_file(os.path.join(SDXL, "base.safetensors"))
    mine = msf.sgm_state(unet, vae, text_l, text_g)
    assert set(ref) == set(mine) and all(torch.equal(ref[k], mine[k]) for k in ref), \
        "rebuilt SDXL differs from base.safetensors"
    return unet, vae, msf.widened(text_l), msf.widened(text_g)


def sdxl_pipe(tok, tok2):
    unet, vae, text_l, text_g = sdxl_models()
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_l, text_encoder_2=text_g, tokenizer=tok,
                                     tokenizer_2=tok2, unet=unet, scheduler=euler(),
                                     force_zeros_for_empty_prompt=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe, {"unet": unet, "text_encoder": text_l, "text_encoder_2": text_g}


@torch.no_grad()
def sdxl_diffusers(tmp, tok, tok2):
    cfg_u = LoraConfig(r=4, lora_alpha=4, init_lora_weights=True, target_modules=UNET_TARGETS)
    cfg_t = LoraConfig(r=4, lora_alpha=4, init_lora_weights=True, target_modules=TEXT_TARGETS)
    unet, _, text_l, text_g = sdxl_models()
    gen = torch.Generator().manual_seed(32)
    su, s1, s2 = (randomize_lora(unet, cfg_u, gen), randomize_lora(text_l, cfg_t, gen),
                  randomize_lora(text_g, cfg_t, gen))
    StableDiffusionXLPipeline.save_lora_weights(tmp, unet_lora_layers=su, text_encoder_lora_layers=s1,
                                                text_encoder_2_lora_layers=s2,
                                                weight_name="sdxl_diffusers.safetensors")
    sd = load_file(os.path.join(tmp, "sdxl_diffusers.safetensors"))
    path = os.path.join(OUT, "sdxl_diffusers.safetensors")
    save_file(sd, path)
    print("wrote", path, os.path.getsize(path), "bytes,", len(sd), "tensors")
    pipe, models = sdxl_pipe(tok, tok2)
    deltas = lora_deltas(sd)
    for k in deltas:
        deltas_w0[k] = module_of(models, k).weight.detach().double().clone()
    weights = expected_weights(models, deltas, 1.0)
    plain, _ = run_pipe(pipe)
    print("plain |latent| %.3g" % float(plain.abs().max()))
    pipe.load_lora_weights(path)
    pipe.fuse_lora(lora_scale=1.0)
    check_fused(models, deltas, 1.0, "sdxl_diffusers")
    lat, img = run_pipe(pipe)
    print("sdxl_diffusers: the LoRA moves the latent by %.3g (max |plain| %.3g)" %
          (float((lat - plain).abs().max()), float(plain.abs().max())))
    save_ref("sdxl_diffusers", lat, img, weights)


@torch.no_grad()
def sdxl_kohya(tok, tok2):
    """kohya names written from the SGM checkpoint's own keys (UNet) and the
    HF text models' (te1, te2), as sd-scripts' SDXL LoRAs are."""
    gen = torch.Generator().manual_seed(33)
    unet, vae, text_l, text_g = sdxl_models()
    layers = unet.config.layers_per_block
    up_attn = [t.startswith("CrossAttn") for t in unet.config.up_block_types]
    t, deltas, r = {}, {}, 4
    alpha = r / 2

    def add(kohya, module_key, shape):
        out, inp, *k = shape
        down = (torch.randn(r, inp, *k, generator=gen) * 0.15).half()
        up = (torch.randn(out, r, *[1 for _ in k], generator=gen) * 0.15).half()
        t[kohya + ".lora_down.weight"], t[kohya + ".lora_up.weight"] = down, up
        t[kohya + ".alpha"] = torch.tensor(alpha, dtype=torch.float16)
        deltas[module_key] = locon.diff_weight(down.double(), up.double(), None, gamma=alpha / r)

    for n, p in unet.named_parameters():
        mod = n[:-len(".weight")]
        if n.endswith(".weight") and p.dim() >= 2 and any(
                mod.endswith(s) for s in ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "ff.net.0.proj",
                                          "conv1")):
            # (diffusers' SGM name mapping takes blocks only: no time_embed / label_emb.)
            ldm = mmf.unet_to_ldm(n, layers, up_attn)[:-len(".weight")]
            add("lora_unet_" + ldm.replace(".", "_"), "unet." + mod, tuple(p.shape))
    for pre, kp, m in [("text_encoder", "lora_te1_", text_l), ("text_encoder_2", "lora_te2_", text_g)]:
        for n, p in m.named_parameters():
            mod = n[:-len(".weight")]
            if n.endswith(".weight") and p.dim() == 2 and any(mod.endswith(s) for s in TEXT_TARGETS):
                add(kp + mod.replace(".", "_"), pre + "." + mod, tuple(p.shape))
    path = os.path.join(OUT, "sdxl_kohya.safetensors")
    save_file(t, path, metadata={"ss_output_name": "sdxl_kohya_style"})
    print("wrote", path, os.path.getsize(path), "bytes,", len(t), "tensors")
    pipe, models = sdxl_pipe(tok, tok2)
    for k in deltas:
        deltas_w0[k] = module_of(models, k).weight.detach().double().clone()
    weights = expected_weights(models, deltas, 1.0)
    plain, _ = run_pipe(pipe)
    print("plain |latent| %.3g" % float(plain.abs().max()))
    pipe.load_lora_weights(path)
    pipe.fuse_lora(lora_scale=1.0)
    check_fused(models, deltas, 1.0, "sdxl_kohya")
    lat, img = run_pipe(pipe)
    print("sdxl_kohya: the LoRA moves the latent by %.3g (max |plain| %.3g)" %
          (float((lat - plain).abs().max()), float(plain.abs().max())))
    save_ref("sdxl_kohya", lat, img, weights)


@torch.no_grad()
def sdxl_lycoris():
    """LoHa / LoKr / LoRA on the second text encoder's q/k/v slices."""
    gen = torch.Generator().manual_seed(44)
    _, _, _, text_g = sdxl_models()
    D = text_g.config.hidden_size
    t, deltas, mult = {}, {}, 0.6

    def rnd(*shape):
        return (torch.randn(*shape, generator=gen) * 0.3).half()

    def f64(x):
        return None if x is None else x.double()

    def put(layer, proj, kind, alpha, **w):
        mod = "text_model.encoder.layers.%d.self_attn.%s_proj" % (layer, proj)
        name = "lora_te2_" + mod.replace(".", "_")
        for k, v in w.items():
            t[name + "." + k] = v
        t[name + ".alpha"] = torch.tensor(alpha, dtype=torch.float16)
        g = w.get
        if kind == "loha":
            r = g("hada_w1_b").shape[0]
            d = loha.diff_weight(f64(g("hada_w1_b")), f64(g("hada_w1_a")), f64(g("hada_w2_b")),
                                 f64(g("hada_w2_a")), None, None, gamma=alpha / r)
        elif kind == "lokr":
            d = lokr.diff_weight(f64(g("lokr_w1")), f64(g("lokr_w1_a")), f64(g("lokr_w1_b")),
                                 f64(g("lokr_w2")), f64(g("lokr_w2_a")), f64(g("lokr_w2_b")), None,
                                 gamma=alpha)
        else:
            r = g("lora_down.weight").shape[0]
            d = locon.diff_weight(f64(g("lora_down.weight")), f64(g("lora_up.weight")), None,
                                  gamma=alpha / r)
        deltas["text_encoder_2." + mod] = d.reshape(D, D)

    a, b = 4, 3  # kron factors of D x D: [a, b] x [D / a, D / b]
    put(0, "q", "loha", 1.0, hada_w1_a=rnd(D, 2), hada_w1_b=rnd(2, D), hada_w2_a=rnd(D, 2),
        hada_w2_b=rnd(2, D))
    put(0, "k", "lokr", 2.0, lokr_w1=rnd(a, b), lokr_w2_a=rnd(D // a, 2), lokr_w2_b=rnd(2, D // b))
    put(0, "v", "loha", 3.0, hada_w1_a=rnd(D, 3), hada_w1_b=rnd(3, D), hada_w2_a=rnd(D, 3),
        hada_w2_b=rnd(3, D))
    put(1, "q", "lokr", 1.0, lokr_w1_a=rnd(a, 1), lokr_w1_b=rnd(1, b), lokr_w2=rnd(D // a, D // b))
    put(1, "k", "lora", 2.0, **{"lora_down.weight": rnd(4, D), "lora_up.weight": rnd(D, 4)})
    path = os.path.join(OUT, "sdxl_lycoris.safetensors")
    save_file(t, path)
    print("wrote", path, os.path.getsize(path), "bytes,", len(t), "tensors")
    weights = expected_weights({"text_encoder_2": text_g}, deltas, mult)
    save_file({k: v.contiguous() for k, v in weights.items()},
              os.path.join(OUT, "sdxl_lycoris.ref.safetensors"))


def main():
    torch.set_num_threads(2)
    if sys.argv[1:] == ["--lycoris"]:  # only sdxl_lycoris (needs no tokenizer)
        sdxl_lycoris()
        return 0
    if not os.path.exists(mpf.VOCAB):
        print("reference data %s absent" % mpf.VOCAB)
        return 1
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp()
    tok, tok2 = msf.tokenizers(tmp)
    sd15(tmp, tok)
    sdxl_diffusers(tmp, tok, tok2)
    sdxl_kohya(tok, tok2)
    sdxl_lycoris()
    return 0


if __name__ == "__main__":
    sys.exit(main())
