"""Build the real CLIP BPE tokenizer (SD1.x's) from OpenAI's bpe_simple_vocab_16e6.txt.gz at run time.

The merges file is not part of the repository: $LF_CLIP_BPE, else assets/clip/ (installed by
tools/fetch_assets.sh), else ../shared/refdata/tokenizers/clip/. We derive
vocab.json + merges.txt into a cache directory and load a transformers CLIPTokenizer from them.
"""
import gzip
import json
import os

_REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BPE_CANDIDATES = [
    os.path.join(_REPO, "assets", "clip", "bpe_simple_vocab_16e6.txt.gz"),  # tools/fetch_assets.sh
    os.path.join(_REPO, "..", "shared", "refdata", "tokenizers", "clip", "bpe_simple_vocab_16e6.txt.gz"),
]
DEFAULT_BPE = os.environ.get("LF_CLIP_BPE") or next(
    (p for p in BPE_CANDIDATES if os.path.exists(p)), BPE_CANDIDATES[-1])


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def derive_files(bpe_path, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    vocab_path = os.path.join(out_dir, "vocab.json")
    merges_path = os.path.join(out_dir, "merges.txt")
    if os.path.exists(vocab_path) and os.path.exists(merges_path):
        return out_dir
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    assert len(merges) == 48894
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(merges_path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    return out_dir


def load_tokenizer(cache_dir, bpe_path=DEFAULT_BPE):
    from transformers import CLIPTokenizer
    if not os.path.exists(bpe_path):
        raise SystemExit(f"CLIP BPE file not found: {bpe_path} (set LF_CLIP_BPE)")
    d = derive_files(bpe_path, os.path.join(cache_dir, "clip_tokenizer"))
    tok = CLIPTokenizer(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"),
                        pad_token="<|endoftext|>", model_max_length=77)
    return tok


if __name__ == "__main__":
    import sys
    import tempfile
    tok = load_tokenizer(tempfile.mkdtemp())
    for p in sys.argv[1:] or ["a photo of a cat", "A photo of an astronaut riding a horse on mars"]:
        print(p, tok(p).input_ids)
