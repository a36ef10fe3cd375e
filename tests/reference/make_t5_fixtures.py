#!/usr/bin/env python3
"""Reference fixtures for the T5 encoder (engine/text/lf_t5) and its
SentencePiece tokenizer (engine/text/lf_t5_tokenizer), read by
tests/engine/test_t5.c.

Network: a tiny random T5 v1.1 encoder (transformers' T5EncoderModel, gated
GELU "gelu_new", RMS layer norm, relative position bias in block 0) written as
  tests/engine/fixtures/t5/text_encoder_2/{config.json,model.safetensors}
    diffusers' FluxPipeline folder layout (save_pretrained, f32)
  tests/engine/fixtures/t5/t5_tiny_f16.safetensors, t5_tiny_bf16.safetensors
    single files as ComfyUI's models/clip/t5xxl_fp16.safetensors (the same HF
    names, no config); the f16 one holds the embedding as
    "encoder.embed_tokens.weight" only, the bf16 one as "shared.weight" only
  tests/engine/fixtures/t5/t5_tiny_q8_0.gguf
    the weights in a GGUF file written by the gguf package with llama.cpp's
    T5 names (token_embd, enc.blk.N.attn_q, ...): Q8_0 for the matrices, F32
    for the norms and the position bias
  tests/engine/fixtures/t5/t5_ref.safetensors
    ids_a [40] / ids_b [7]: token ids; out_<w>_a / out_<w>_b: the encoder's
    last_hidden_state for w = f32, f16, bf16 (the model run in f32 on the
    weights rounded to that type) and q8_0 (on gguf's dequantization of the
    Q8_0 matrices); bucket: HF's _relative_position_bucket for relative
    positions -64..64 (bidirectional, 32 buckets, max distance 20).
Tokenizer: tests/engine/fixtures/t5/tokenizer_cases.json, ids from
T5TokenizerFast(tokenizer_file=<refdata>/tokenizers/t5/tokenizer.json) with
padding="max_length", truncation=True for texts chosen to exercise the
normalizer (NFKC charsmap, whitespace), unknown characters, special tokens
and truncation. The tokenizer files themselves are not copied.

  /work/venv-ref/bin/python tests/reference/make_t5_fixtures.py [--refdata DIR]
(the shared reference venv: tests/reference/requirements.txt and
requirements-gguf.txt; torch 1.13, transformers 4.38.2, tokenizers 0.15,
gguf 0.10.0).
"""
import argparse
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import T5Config, T5EncoderModel, T5TokenizerFast

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "engine", "fixtures", "t5")

TEXTS = [
    "a photo of a cat",
    "The quick brown fox jumps over the lazy dog.",
    "naïve résumé",
    "  two  spaces\tand\ttabs\n and a newline  ",
    "<extra_id_0> hello</s>x <extra_id_99>",
    "ﬁ ① Ｈｅｌｌｏ 日本語 😀 e\u0301 Ⅻ ＡＢＣ ｶﾀｶﾅ ½",
    "",
    "   ",
    "A cinematic shot of a baby racoon wearing an intricate italian priest robe, "
    "photorealistic, 8k, highly detailed, trending on artstation -- (masterpiece:1.2) [cat|dog]",
    "Numbers 1234567 and symbols #@$%^&*()_+={}|\\:\";'<>?,./~` ‘quotes’ “double” — dash…",
    "ÀÉÎÕÜ àéîõü ß ç ñ Straße Ελληνικά Русский ‱ ﷺ",
    # combining sequences and compatibility forms the charsmap composes
    "Ａ\u0301 e\u0301\u0302 ｶﾞｷﾞ ﾊﾟﾝ \u1100\u1161 \u212b ﬀ ㍿ ①② x\u200dy 🏳️‍🌈",
    "\u00a0nbsp\u3000ideo\u2028line\r\nCRLF\x0bvt\x0cff\u200bzw \u2581lit",
]


def tokenizer_cases(refdata):
    path = os.path.join(refdata, "tokenizers", "t5", "tokenizer.json")
    tok = T5TokenizerFast(tokenizer_file=path)
    cases = []
    for t in TEXTS:
        for n in (77, 8):
            ids = tok(t, padding="max_length", max_length=n, truncation=True).input_ids
            cases.append({"text": t, "n": n, "ids": ids})
    long = " ".join(["word%d" % i for i in range(300)])
    for n in (256, 512):
        cases.append({"text": long, "n": n,
                      "ids": tok(long, padding="max_length", max_length=n, truncation=True).input_ids})
    with open(os.path.join(OUT, "tokenizer_cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)


CFG = dict(vocab_size=64, d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2,
           relative_attention_num_buckets=32, relative_attention_max_distance=128,
           feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, dropout_rate=0.0,
           is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False)


def build():
    torch.manual_seed(17)
    model = T5EncoderModel(T5Config(**CFG)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif "relative_attention_bias" in name:
                p.copy_(torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    return model


def run(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).last_hidden_state[0].contiguous()


def rounded(model, dtype):
    m = build()
    m.load_state_dict({k: v.to(dtype).float() for k, v in model.state_dict().items()})
    return m.eval()


def gguf_file(model, path):
    import gguf
    from gguf.quants import dequantize, quantize
    w = gguf.GGUFWriter(path, "t5encoder")
    deq = {}
    top = {"shared.weight": "token_embd.weight",
           "encoder.final_layer_norm.weight": "enc.output_norm.weight"}
    layer = {"layer.0.SelfAttention.q": "attn_q", "layer.0.SelfAttention.k": "attn_k",
             "layer.0.SelfAttention.v": "attn_v", "layer.0.SelfAttention.o": "attn_o",
             "layer.0.SelfAttention.relative_attention_bias": "attn_rel_b",
             "layer.0.layer_norm": "attn_norm", "layer.1.DenseReluDense.wi_0": "ffn_gate",
             "layer.1.DenseReluDense.wi_1": "ffn_up", "layer.1.DenseReluDense.wo": "ffn_down",
             "layer.1.layer_norm": "ffn_norm"}
    for k, v in model.state_dict().items():
        if k == "encoder.embed_tokens.weight":
            continue
        if k in top:
            name = top[k]
        else:
            parts = k.split(".")  # encoder.block.N.<rest>.weight
            name = "enc.blk.%s.%s.weight" % (parts[2], layer[".".join(parts[3:-1])])
        a = v.numpy().astype(np.float32)
        if a.ndim == 2 and a.shape[1] % 32 == 0 and "rel_b" not in name:
            q = quantize(a, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            deq[k] = torch.from_numpy(dequantize(q, gguf.GGMLQuantizationType.Q8_0).copy())
        else:
            w.add_tensor(name, a)
            deq[k] = v.clone()
    deq["encoder.embed_tokens.weight"] = deq["shared.weight"]
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    m = build()
    m.load_state_dict(deq)
    return m.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--refdata", default=os.path.join(ROOT, "..", "shared", "refdata"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    tokenizer_cases(args.refdata)

    model = build()
    model.save_pretrained(os.path.join(OUT, "text_encoder_2"), safe_serialization=True)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    f16 = {k: v.half() for k, v in sd.items() if k != "shared.weight"}
    bf16 = {k: v.bfloat16() for k, v in sd.items() if k != "encoder.embed_tokens.weight"}
    save_file(f16, os.path.join(OUT, "t5_tiny_f16.safetensors"))
    save_file(bf16, os.path.join(OUT, "t5_tiny_bf16.safetensors"))
    mq = gguf_file(model, os.path.join(OUT, "t5_tiny_q8_0.gguf"))

    g = torch.Generator().manual_seed(5)
    ids_a = torch.randint(0, CFG["vocab_size"], (40,), generator=g).tolist()
    ids_a[-3:] = [1, 0, 0]  # an EOS then padding, as the pipeline gives them
    ids_b = torch.randint(0, CFG["vocab_size"], (7,), generator=g).tolist()
    ref = {"ids_a": torch.tensor(ids_a, dtype=torch.int32),
           "ids_b": torch.tensor(ids_b, dtype=torch.int32)}
    models = {"f32": model, "f16": rounded(model, torch.float16),
              "bf16": rounded(model, torch.bfloat16), "q8_0": mq}
    for name, m in models.items():
        ref["out_%s_a" % name] = run(m, ids_a)
        ref["out_%s_b" % name] = run(m, ids_b)
    rel = torch.arange(-64, 65)
    ref["bucket"] = model.encoder.block[0].layer[0].SelfAttention._relative_position_bucket(
        rel, bidirectional=True, num_buckets=32, max_distance=20).to(torch.int32)
    save_file(ref, os.path.join(OUT, "t5_ref.safetensors"))
    for k, v in ref.items():
        print(k, tuple(v.shape))


if __name__ == "__main__":
    main()
