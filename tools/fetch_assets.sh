#!/usr/bin/env bash
# fetch_assets.sh: installs the engine's run-time assets into assets/ (git-ignored).
#
# Today that is one file, the CLIP BPE merges list bpe_simple_vocab_16e6.txt.gz
# (OpenAI CLIP, MIT licence), which the SD1.x tokenizer needs. It is taken from
# the open_clip_torch wheel on PyPI (open_clip/bpe_simple_vocab_16e6.txt.gz),
# fetched with `pip download --no-deps` (no install, no dependencies) and
# checked against a known SHA-256. Called by `deploy/lightfarm setup`;
# idempotent: an asset already present with the right hash is kept.
#
# Environment: LF_ASSETS_DIR (default <repo>/assets), PIP (default: pip3 or
# pip, else python3 -m pip), OPEN_CLIP_VERSION (default 3.3.0; the file has
# not changed between releases, the hash is what is checked).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASSETS="${LF_ASSETS_DIR:-$ROOT/assets}"
VOCAB="$ASSETS/clip/bpe_simple_vocab_16e6.txt.gz"
VOCAB_SHA256=924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a
PKG="open_clip_torch==${OPEN_CLIP_VERSION:-3.3.0}"
MEMBER="open_clip/bpe_simple_vocab_16e6.txt.gz"

say() { printf 'fetch_assets: %s\n' "$*" >&2; }

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if sha_ok "$VOCAB" "$VOCAB_SHA256"; then
  say "present: $VOCAB"
  exit 0
fi

if [ -n "${PIP:-}" ]; then read -r -a pip <<<"$PIP"
elif command -v pip3 >/dev/null; then pip=(pip3)
elif command -v pip >/dev/null; then pip=(pip)
else pip=(python3 -m pip)
fi
command -v unzip >/dev/null || { say "unzip is required (apt-get install unzip)"; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
say "downloading $PKG (wheel only, no dependencies)"
if ! "${pip[@]}" download --quiet --no-deps --only-binary=:all: "$PKG" -d "$tmp" >&2; then
  say "pip download $PKG failed"
  exit 1
fi
whl="$(ls "$tmp"/open_clip_torch-*.whl 2>/dev/null | head -n1)"
[ -n "$whl" ] || { say "no open_clip_torch wheel was downloaded"; exit 1; }
unzip -p "$whl" "$MEMBER" >"$tmp/vocab.gz" || { say "$whl has no $MEMBER"; exit 1; }
if ! sha_ok "$tmp/vocab.gz" "$VOCAB_SHA256"; then
  say "$MEMBER from $whl has an unexpected SHA-256; not installed"
  exit 1
fi
mkdir -p "$(dirname "$VOCAB")"
mv "$tmp/vocab.gz" "$VOCAB.tmp" && mv "$VOCAB.tmp" "$VOCAB"
say "installed $VOCAB (from $(basename "$whl"))"
