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
  tests/engine/fixtures/t5/t5_tiny_prefixed.safetensors
    the bf16 one under ComfyUI's all-in-one prefix "text_encoders.t5xxl.transformer."
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
  /work/venv-ref/bin/python tests/reference/make_t5_fixtures.py --full
    (only tests/reference/out/t5xxl_full_f16.safetensors, 9.5 GB, for
    bench/bench_t5.c; not committed)
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
FUZZ = os.path.join(ROOT, "tests", "fuzz", "corpus", "t5_tokenizer")

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


def write_cases(path, cases):
    with open(path, "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]\n")


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
    write_cases(os.path.join(OUT, "tokenizer_cases.json"), cases)


def pb_fields(buf):
    """(number, wire type, value) of a protobuf message's fields (LEN: bytes)."""
    i, out = 0, []
    def varint():
        nonlocal i
        v = sh = 0
        while True:
            c = buf[i]; i += 1
            v |= (c & 0x7F) << sh; sh += 7
            if not c & 0x80:
                return v
    while i < len(buf):
        key = varint(); num, wire = key >> 3, key & 7
        if wire == 0:
            out.append((num, wire, varint()))
        elif wire == 2:
            n = varint(); out.append((num, wire, buf[i:i + n])); i += n
        elif wire == 5:
            out.append((num, wire, buf[i:i + 4])); i += 4
        elif wire == 1:
            out.append((num, wire, buf[i:i + 8])); i += 8
    return out


TINY_TEXTS = ["a cat and a dog", "the cats sat on the mats", "Ａ ﬁsh cafe\u0301 ① two\u3000spaces",
              "unknown zq \u65e5\u672c <extra_id_1>x </s>", "  lead and trail  ", "", "cat " * 40]


def tiny_tokenizer(fuzz_dir):
    """A 48-piece unigram model trained by sentencepiece with a few custom
    normalization rules (a small precompiled charsmap), as spiece.model and as
    a T5-style tokenizer.json; ids of TINY_TEXTS from the tokenizers library
    (what T5TokenizerFast runs) for n = 16 and 64. No refdata needed."""
    import base64
    import io
    import sentencepiece as spm
    from tokenizers import Tokenizer
    words = ("a the cat cats dog dogs sat sitting on mat mats and fish fishes cafe two spaces lead "
             "trail trailing unknown running walked quickly slowly brown lazy fox jumps over").split()
    rng = np.random.default_rng(3)
    corpus = [" ".join(rng.choice(words, 8)) for _ in range(400)]
    rules = "FF21\t41\nFB01\t66 69\n65 301\tE9\n2460\t31\n3000\t20\n9\t20\n"
    rule_path = os.path.join(fuzz_dir, "..", "rules.tsv")
    with open(rule_path, "w") as f:
        f.write(rules)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=48, model_type="unigram", hard_vocab_limit=False,
        normalization_rule_tsv=rule_path, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        character_coverage=1.0, minloglevel=2)
    os.remove(rule_path)
    blob = model.getvalue()
    pieces, cmap = [], b""
    for num, wire, v in pb_fields(blob):
        if num == 1:
            f = {n: x for n, w, x in pb_fields(v)}
            pieces.append((f[1].decode(), float(np.frombuffer(f.get(2, b"\0\0\0\0"), "<f4")[0]),
                           f.get(3, 1)))
        if num == 3:
            cmap = {n: x for n, w, x in pb_fields(v)}.get(2, b"")
    n = len(pieces)
    vocab = [[p, 0.0 if t != 1 else s] for p, s, t in pieces]
    vocab += [["<extra_id_%d>" % (99 - j), 0.0] for j in range(100)]
    added = [{"id": i, "content": p, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, (p, s, t) in enumerate(pieces) if t in (2, 3)]
    added += [{"id": n + 99 - k, "content": "<extra_id_%d>" % k, "single_word": False,
               "lstrip": False, "rstrip": False, "normalized": False, "special": True}
              for k in range(100)]
    meta = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True,
            "prepend_scheme": "first"}
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
          "normalizer": {"type": "Sequence", "normalizers": [
              {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(cmap).decode()},
              {"type": "Strip", "strip_left": False, "strip_right": True},
              {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "\u2581"}]},
          "pre_tokenizer": meta,
          "post_processor": {"type": "TemplateProcessing",
                             "single": [{"Sequence": {"id": "A", "type_id": 0}},
                                        {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                             "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                             "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
          "decoder": dict(meta, prepend_scheme="always"),
          "model": {"type": "Unigram", "unk_id": 2, "vocab": vocab, "byte_fallback": False}}
    with open(os.path.join(fuzz_dir, "tiny.model"), "wb") as f:
        f.write(blob)
    jpath = os.path.join(fuzz_dir, "tiny_tokenizer.json")
    with open(jpath, "w") as f:
        json.dump(tj, f, ensure_ascii=False)
    tok = Tokenizer.from_file(jpath)
    cases = []
    for t in TINY_TEXTS:
        ids = tok.encode(t).ids  # </s> appended by the template
        for m in (16, 64):
            cut = ids[:m - 1] + [1] if len(ids) > m else ids
            cases.append({"text": t, "n": m, "ids": cut + [0] * (m - len(cut))})
    write_cases(os.path.join(OUT, "tiny_tokenizer_cases.json"), cases)


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


def llama_name(k):
    """llama.cpp's name of an HF T5 encoder tensor (None: the tied copy)."""
    top = {"shared.weight": "token_embd.weight",
           "encoder.final_layer_norm.weight": "enc.output_norm.weight"}
    layer = {"layer.0.SelfAttention.q": "attn_q", "layer.0.SelfAttention.k": "attn_k",
             "layer.0.SelfAttention.v": "attn_v", "layer.0.SelfAttention.o": "attn_o",
             "layer.0.SelfAttention.relative_attention_bias": "attn_rel_b",
             "layer.0.layer_norm": "attn_norm", "layer.1.DenseReluDense.wi_0": "ffn_gate",
             "layer.1.DenseReluDense.wi_1": "ffn_up", "layer.1.DenseReluDense.wo": "ffn_down",
             "layer.1.layer_norm": "ffn_norm"}
    if k == "encoder.embed_tokens.weight":
        return None
    if k in top:
        return top[k]
    parts = k.split(".")  # encoder.block.N.<rest>.weight
    return "enc.blk.%s.%s.weight" % (parts[2], layer[".".join(parts[3:-1])])


def gguf_add(w, name, a):
    """Adds a as Q8_0 when it is a matrix of whole blocks (not the position
    bias), else as F32; returns the values the file holds, as f32."""
    import gguf
    from gguf.quants import dequantize, quantize
    if a.ndim == 2 and a.shape[1] % 32 == 0 and "rel_b" not in name:
        q = quantize(a, gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        return dequantize(q, gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor(name, a)
    return a


def gguf_file(model, path):
    import gguf
    w = gguf.GGUFWriter(path, "t5encoder")
    deq = {}
    for k, v in model.state_dict().items():
        name = llama_name(k)
        if name:
            deq[k] = torch.from_numpy(gguf_add(w, name, v.numpy().astype(np.float32)).copy())
    deq["encoder.embed_tokens.weight"] = deq["shared.weight"]
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    m = build()
    m.load_state_dict(deq)
    return m.eval()


def full_size(path, blocks=24):
    """A full-size T5-XXL encoder (T5 v1.1 XXL shapes: d_model 4096, 64 heads
    of 64, d_ff 10240, 24 blocks, vocab 32128; 4.76 B parameters) with random
    f16 weights in HF names, as ComfyUI's t5xxl_fp16.safetensors (9.5 GB), for
    bench/bench_t5.c. Random N(0, 0.02) values drawn once per 16 Mi and
    repeated (timing and memory only). Not committed. blocks < 24: the first
    blocks only (a file small enough to time without the big-memory lock;
    per-block costs are the same)."""
    D, H, F, L, V = 4096, 64, 10240, blocks, 32128
    shapes = [("shared.weight", (V, D))]
    for i in range(L):
        p = "encoder.block.%d.layer." % i
        shapes += [(p + "0.layer_norm.weight", (D,))]
        shapes += [(p + "0.SelfAttention.%s.weight" % n, (D, D)) for n in "qkvo"]
        if i == 0:
            shapes += [(p + "0.SelfAttention.relative_attention_bias.weight", (32, H))]
        shapes += [(p + "1.layer_norm.weight", (D,)),
                   (p + "1.DenseReluDense.wi_0.weight", (F, D)),
                   (p + "1.DenseReluDense.wi_1.weight", (F, D)),
                   (p + "1.DenseReluDense.wo.weight", (D, F))]
    shapes += [("encoder.final_layer_norm.weight", (D,))]
    header, off = {}, 0
    for name, shp in shapes:
        n = int(np.prod(shp)) * 2
        header[name] = {"dtype": "F16", "shape": list(shp), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    chunk = (np.random.default_rng(7).standard_normal(16 << 20) * 0.02).astype(np.float16)
    ones = np.ones(D, np.float16)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h)
        for name, shp in shapes:
            n = int(np.prod(shp))
            if len(shp) == 1:
                f.write(ones.tobytes())
                continue
            src = chunk if "relative" not in name else chunk * np.float16(50)
            for a in range(0, n, len(src)):
                f.write(src[:min(len(src), n - a)].tobytes())
    print(path, off / 1e9, "GB of weights")


def full_q8(src, path):
    """The full-size file's tensors as a Q8_0 GGUF with llama.cpp's names."""
    import gguf
    from safetensors.numpy import safe_open
    w = gguf.GGUFWriter(path, "t5encoder")
    with safe_open(src, "np") as f:
        for k in f.keys():
            gguf_add(w, llama_name(k), f.get_tensor(k).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--refdata", default=os.path.join(ROOT, "..", "shared", "refdata"))
    ap.add_argument("--full", action="store_true",
                    help="only write tests/reference/out/t5xxl_full_f16.safetensors (9.5 GB)")
    ap.add_argument("--blocks", type=int, default=24,
                    help="with --full: that many blocks (t5xxl_<N>blocks_f16.safetensors when < 24)")
    ap.add_argument("--q8_0", action="store_true",
                    help="with --full: also the same weights as a Q8_0 GGUF (llama.cpp names)")
    args = ap.parse_args()
    if args.full:
        os.makedirs(os.path.join(ROOT, "tests", "reference", "out"), exist_ok=True)
        name = "t5xxl_full_f16" if args.blocks >= 24 else "t5xxl_%dblocks_f16" % args.blocks
        out = os.path.join(ROOT, "tests", "reference", "out", name)
        full_size(out + ".safetensors", min(args.blocks, 24))
        if args.q8_0:
            full_q8(out + ".safetensors", out.replace("_f16", "_q8_0") + ".gguf")
        return
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(FUZZ, exist_ok=True)
    tiny_tokenizer(FUZZ)
    tokenizer_cases(args.refdata)

    model = build()
    model.save_pretrained(os.path.join(OUT, "text_encoder_2"), safe_serialization=True)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    f16 = {k: v.half() for k, v in sd.items() if k != "shared.weight"}
    bf16 = {k: v.bfloat16() for k, v in sd.items() if k != "encoder.embed_tokens.weight"}
    save_file(f16, os.path.join(OUT, "t5_tiny_f16.safetensors"))
    save_file(bf16, os.path.join(OUT, "t5_tiny_bf16.safetensors"))
    save_file({"text_encoders.t5xxl.transformer." + k: v for k, v in bf16.items()},
              os.path.join(OUT, "t5_tiny_prefixed.safetensors"))
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
