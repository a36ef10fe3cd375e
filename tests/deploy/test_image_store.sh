#!/usr/bin/env bash
# test_image_store: result images outside Redis (LF_IMAGE_STORE), on a farm started by
# deploy/lightfarm up. Three stores:
#  - s3: moto's S3-API server (pinned, from PyPI, tests/deploy/requirements-s3.txt) with signature
#    checking on: an IAM user's key (s3ctl.py setup), so every request of the farm must carry a
#    valid SigV4 signature. txt2img -> the image through the gateway's URL equals the object in the
#    bucket (read with boto3), Redis holds its name only (imgref:, no img:), /healthz says the store
#    is ok; after the result TTL the object is gone and the URL answers 404.
#  - dir: the same with a folder.
#  - broken stores: a wrong secret key (403 from moto) and an endpoint nobody listens on. The job
#    is accepted and ends failed with the store's sentence (never lost), /healthz is degraded
#    naming the store.
#   test_image_store.sh SOURCE_DIR BUILD_DIR
# Exits 77 (skipped) without PyPI (moto) or the CLIP merges file the tiny model needs.
set -euo pipefail
SRC="$(cd "$1" && pwd)"
BUILD="$(cd "$2" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
T="$(mktemp -d /tmp/lf-test-imgstore.XXXXXX)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# shellcheck source=venv.sh
. "$HERE/venv.sh"
farm_env "$T" "$BUILD"
export LF_MODELS_DIR="$SRC/models"
FARM="$SRC/deploy/lightfarm"
MOTO_PID=""
cleanup() {
  "$FARM" down >/dev/null 2>&1 || true
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

assets="$(find_assets "$SRC" "$T")" || { echo "SKIP: no CLIP merges file (run tools/fetch_assets.sh)"; exit 77; }
export LF_ASSETS_DIR="$assets"
VBIN="$(deploy_venv s3)" || { echo "SKIP: cannot install moto[server] from PyPI"; exit 77; }

MOTO_PORT="$(free_port)"
S3="http://127.0.0.1:$MOTO_PORT"
INITIAL_NO_AUTH_ACTION_COUNT=3 "$VBIN/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$T/moto.log" 2>&1 &
MOTO_PID=$!
# Wait for the port with a bare TCP connect: an HTTP request would spend one of the unsigned actions.
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$MOTO_PORT") 2>/dev/null && break; sleep 0.1; done
read -r AK SK < <("$VBIN/python" "$HERE/s3ctl.py" setup "$S3" lf-images) || { cat "$T/moto.log" >&2; fail "moto setup"; }
s3ctl() { "$VBIN/python" "$HERE/s3ctl.py" "$1" "$S3" "$AK" "$SK" lf-images "${@:2}"; }

url="http://127.0.0.1:$LF_HTTP_PORT"
# Long enough for the checks below (each s3ctl call starts Python: ~1 s under load).
export LF_RESULT_TTL_S=10

# submit_wait: a txt2img; echoes the job view once it has ended.
submit_wait() {
  local sub id view status
  sub="$(curl -sS -X POST -H 'Content-Type: application/json' \
    -d '{"prompt":"a red circle","steps":2,"width":64,"height":64}' "$url/v1/jobs")"
  id="$(jq -r .id <<<"$sub")"
  [ -n "$id" ] && [ "$id" != null ] || fail "the job was not accepted: $sub"
  for _ in $(seq 1 600); do
    view="$(curl -sS "$url/v1/jobs/$id")"
    status="$(jq -r .status <<<"$view")"
    case "$status" in done | failed | cancelled) break ;; esac
    sleep 0.2
  done
  echo "$view"
}

redis_keys() { redis-cli -p "$LF_REDIS_PORT" --scan --pattern "$1"; }

# check_store NAME LIST_CMD FETCH_CMD: one job through a working external store.
#   LIST_CMD lists the store's objects ("name size" lines); FETCH_CMD NAME FILE copies one out.
check_store() {
  local name="$1" list="$2" fetch="$3" view id img code objs obj
  "$FARM" up >"$T/up.out" 2>&1 || { cat "$T/up.out" >&2; fail "$name: up failed"; }
  view="$(submit_wait)"
  [ "$(jq -r .status <<<"$view")" = "done" ] || fail "$name: the job ended $(jq -c '{status,error}' <<<"$view")"
  id="$(jq -r .id <<<"$view")"
  img="$(jq -r '.result.images[0].url // .result.images[0]' <<<"$view")"
  case "$img" in /*) img="$url$img" ;; esac
  code="$(curl -sS -o "$T/got.png" -w '%{http_code}' "$img")"
  [ "$code" = 200 ] || fail "$name: GET $img answered $code"
  [ "$(head -c 8 "$T/got.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$name: not a PNG"
  objs="$($list)"
  obj="$(awk -v id="$id" 'index($1, id) { print $1 }' <<<"$objs")"
  [ "$(wc -l <<<"$obj")" = 1 ] && [ -n "$obj" ] || fail "$name: expected one object of job $id, the store has: $objs"
  $fetch "$obj" "$T/obj.png"
  cmp -s "$T/got.png" "$T/obj.png" || fail "$name: the object $obj differs from what the gateway served"
  [ -z "$(redis_keys 'lf:img:*')" ] || fail "$name: PNG bytes in Redis although an external store is set"
  [ -n "$(redis_keys "lf:imgref:$id:*")" ] || fail "$name: no imgref key for job $id"
  jq -e '.image_store.ok == true' <(curl -sS "$url/healthz") >/dev/null ||
    fail "$name: /healthz does not say the store is ok: $(curl -sS "$url/healthz")"
  echo "ok: $name: job $id's image $obj served through $img and present in the store"
  # Retention: after LF_RESULT_TTL_S the broker's sweep deletes the object; the URL is a 404.
  local gone=0
  for _ in $(seq 1 150); do
    if ! $list | grep -q "$id"; then gone=1; break; fi
    sleep 0.2
  done
  [ "$gone" = 1 ] || fail "$name: the object of job $id outlived the result TTL"
  code="$(curl -sS -o /dev/null -w '%{http_code}' "$img")"
  [ "$code" = 404 ] || fail "$name: GET $img after the TTL answered $code, not 404"
  echo "ok: $name: the object was deleted after the result TTL; the URL answers 404"
  "$FARM" down >/dev/null || fail "$name: down failed"
}

# check_broken NAME: a store that refuses or cannot be reached. The farm still starts; the job
# ends failed with the store's sentence; /healthz says degraded and names the store.
check_broken() {
  local name="$1" pattern="$2" view msg h
  "$FARM" up >"$T/up.out" 2>&1 || { cat "$T/up.out" >&2; fail "$name: up failed"; }
  view="$(submit_wait)"
  [ "$(jq -r .status <<<"$view")" = failed ] || fail "$name: the job ended $(jq -c '{status,error}' <<<"$view")"
  msg="$(jq -r '.error.message' <<<"$view")"
  grep -q "image store s3://lf-images" <<<"$msg" && grep -Eq "$pattern" <<<"$msg" ||
    fail "$name: the job's error does not explain: $msg"
  h="$(curl -sS "$url/healthz")"
  jq -e '.status == "degraded" and .image_store.ok == false' <<<"$h" >/dev/null ||
    fail "$name: /healthz does not warn: $h"
  echo "ok: $name: the job failed with \"$msg\"; /healthz: $(jq -c .image_store <<<"$h")"
  "$FARM" down >/dev/null || fail "$name: down failed"
}

# --- S3 (moto, signatures checked)
export LF_IMAGE_STORE=s3://lf-images/farm-a LF_S3_ENDPOINT="$S3" LF_S3_ACCESS_KEY_ID="$AK" LF_S3_SECRET_ACCESS_KEY="$SK"
s3_list() { s3ctl ls farm-a/; }
s3_fetch() { s3ctl get "farm-a/$1" "$2"; }
check_store s3 s3_list s3_fetch

# --- a directory
export LF_IMAGE_STORE="dir:$T/images"
dir_list() { find "$T/images" -maxdepth 1 -type f -name '*.png' -printf '%f %s\n'; }
dir_fetch() { cp "$T/images/$1" "$2"; }
check_store dir dir_list dir_fetch

# --- broken stores
export LF_IMAGE_STORE=s3://lf-images/farm-a LF_S3_SECRET_ACCESS_KEY=not-the-secret
check_broken "s3 with a wrong key" "HTTP 403 SignatureDoesNotMatch"
dead_port="$(free_port)"
export LF_S3_SECRET_ACCESS_KEY="$SK" LF_S3_ENDPOINT="http://127.0.0.1:$dead_port"
check_broken "s3 unreachable" "connect"
echo "ok: image stores"
