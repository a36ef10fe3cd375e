#!/usr/bin/env python3
"""Splits the tiny T5 of tests/engine/fixtures/flux/flux_t5_stub.safetensors
into two shards the way transformers saves a large text_encoder_2/ (FLUX.1's
T5-XXL: model-00001-of-00002.safetensors, model-00002-of-00002.safetensors
and model.safetensors.index.json with its "weight_map"), for
tests/engine/test_flux.c (a diffusers folder with a sharded text_encoder_2/
encodes as with the single file). Tensors are copied unchanged (same dtype
and bytes); the split is by transformers' own save_pretrained with a small
max_shard_size, so the index is the library's.

  /work/venv-torch2/bin/python tests/reference/make_flux_shards.py
"""
import json
import os
import tempfile

import torch
from safetensors.torch import load_file
from transformers import T5Config, T5EncoderModel

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "engine", "fixtures", "flux")


def main():
    sd = load_file(os.path.join(FIX, "flux_t5_stub.safetensors"))
    out = os.path.join(FIX, "t5_sharded")
    os.makedirs(out, exist_ok=True)
    emb = sd["encoder.embed_tokens.weight"] if "encoder.embed_tokens.weight" in sd else sd["shared.weight"]
    blk = [k for k in sd if k.startswith("encoder.block.0.layer.1.DenseReluDense.wi_0")][0]
    heads = sd["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].shape[1]
    inner = sd["encoder.block.0.layer.0.SelfAttention.q.weight"].shape[0]
    cfg = T5Config(vocab_size=emb.shape[0], d_model=emb.shape[1], d_kv=inner // heads, num_heads=heads,
                   d_ff=sd[blk].shape[0], num_layers=1, feed_forward_proj="gated-gelu",
                   is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False)
    m = T5EncoderModel(cfg).to(emb.dtype)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    with tempfile.TemporaryDirectory() as tmp:
        total = sum(v.numel() * v.element_size() for v in sd.values())
        m.save_pretrained(tmp, safe_serialization=True, max_shard_size=max(total // 2, 1024))
        index = json.load(open(os.path.join(tmp, "model.safetensors.index.json")))
        shards = sorted(set(index["weight_map"].values()))
        assert len(shards) >= 2, shards
        for f in os.listdir(out):
            os.remove(os.path.join(out, f))
        for f in shards + ["model.safetensors.index.json"]:
            os.replace(os.path.join(tmp, f), os.path.join(out, f))
    # Every tensor as in the single file (same bytes).
    got = {}
    for f in shards:
        got.update(load_file(os.path.join(out, f)))
    for k, v in sd.items():
        if k in got:
            assert torch.equal(got[k], v), k
    print("%d shards, %d tensors (single file %d)" % (len(shards), len(got), len(sd)))


if __name__ == "__main__":
    main()
