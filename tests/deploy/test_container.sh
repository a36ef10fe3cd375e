#!/usr/bin/env bash
# test_container: the image itself, built and run with podman (Debian's; no registry is needed).
#  1. Builds deploy/docker/Dockerfile (CPU variant, --format docker so HEALTHCHECK and SHELL are kept). The
#     base image debian:12-slim is used when podman has it; otherwise one is made with debootstrap from
#     Debian's mirror (minbase bookworm) and imported under that name.
#  2. In the image: every program's libraries resolve (ldd: nothing "not found"), it runs as uid 1000,
#     `gateway --version` answers.
#  3. Runs the all-in-one role (host network, free ports, a fresh /data volume): a txt2img job runs on
#     lf-tiny-shapes; `podman healthcheck run` says healthy; `podman stop` ends it with exit status 0.
#   test_container.sh SOURCE_DIR
# It builds the whole project inside the image (about half an hour on 2 cores), so it runs only when
# LF_TEST_CONTAINER=1; otherwise, or without a working podman, it exits 77 (skipped) saying why.
# LF_PODMAN: the podman command line (default: podman with vfs storage, cgroupfs and runc — what works
# inside the development VMs, which are themselves containers); LF_PODMAN_ULIMITS: its --ulimit flags.
set -euo pipefail
SRC="$(cd "$1" && pwd)"
[ "${LF_TEST_CONTAINER:-0}" = 1 ] || { echo "SKIP: set LF_TEST_CONTAINER=1 to build and run the image (slow)"; exit 77; }
command -v podman >/dev/null || { echo "SKIP: no podman (apt-get install podman runc)"; exit 77; }
read -r -a P <<<"${LF_PODMAN:-podman --storage-driver vfs --cgroup-manager cgroupfs --events-backend file --runtime runc}"
# Limits a container may set without CAP_SYS_RESOURCE (podman's defaults are above the VM's, and the
# VM's own hard nproc is refused to uid 1000 by runc here).
read -r -a ULIMITS <<<"${LF_PODMAN_ULIMITS:---ulimit nofile=$(ulimit -n):$(ulimit -n) --ulimit nproc=4096:4096}"
T="$(mktemp -d /tmp/lf-test-container.XXXXXX)"
TAG="localhost/lightfarm-test:$$"
CID=""
cleanup() {
  [ -n "$CID" ] && "${P[@]}" rm -f -v "$CID" >/dev/null 2>&1 # -v: its anonymous /models volume too
  "${P[@]}" volume rm -f "lf-test-data-$$" >/dev/null 2>&1 || true
  "${P[@]}" rmi -f "$TAG" >/dev/null 2>&1 || true
  rm -rf "$T"
}
trap cleanup EXIT
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
"${P[@]}" run --rm --network host "${ULIMITS[@]}" --pull never docker.io/library/debian:12-slim true 2>/dev/null ||
  "${P[@]}" info >/dev/null 2>&1 || { echo "SKIP: podman does not work here: $("${P[@]}" info 2>&1 | tail -n 1)"; exit 77; }

if ! "${P[@]}" image exists docker.io/library/debian:12-slim; then
  command -v debootstrap >/dev/null || { echo "SKIP: no debian:12-slim image and no debootstrap to make one"; exit 77; }
  debootstrap --variant=minbase bookworm "$T/rootfs" http://deb.debian.org/debian >"$T/debootstrap.log" 2>&1 ||
    { tail -n 5 "$T/debootstrap.log"; echo "SKIP: debootstrap could not reach Debian's mirror"; exit 77; }
  rm -rf "$T/rootfs/var/lib/apt/lists/"* "$T/rootfs/var/cache/apt/"*.bin
  tar -C "$T/rootfs" -c . | "${P[@]}" import - docker.io/library/debian:12-slim >/dev/null
  rm -rf "$T/rootfs"
fi

t0=$SECONDS
"${P[@]}" build --format docker --pull=never --network host "${ULIMITS[@]}" -f "$SRC/deploy/docker/Dockerfile" \
  -t "$TAG" "$SRC" >"$T/build.log" 2>&1 || { tail -n 40 "$T/build.log" >&2; echo "FAIL: the image did not build" >&2; exit 1; }
echo "ok: built in $((SECONDS - t0)) s ($("${P[@]}" image inspect "$TAG" --format '{{.Size}}') bytes)"

run() { "${P[@]}" run --rm --network host "${ULIMITS[@]}" "$@"; }
missing="$(run --entrypoint sh "$TAG" -c 'for b in /opt/lightfarm/bin/*; do ldd "$b"; done' | grep 'not found' || true)"
[ -z "$missing" ] || { echo "FAIL: libraries missing in the image: $missing" >&2; exit 1; }
[ "$(run --entrypoint id "$TAG" -u)" = 1000 ] || { echo "FAIL: the image does not run as uid 1000" >&2; exit 1; }
run "$TAG" gateway --version | grep -q lightfarm-gateway || { echo "FAIL: gateway --version" >&2; exit 1; }
echo "ok: every program's libraries resolve in the image; it runs as uid 1000"

base="$(free_port 3)"
port="$(free_port)"
rport="$(free_port)"
CID="$("${P[@]}" run -d --network host "${ULIMITS[@]}" -v "lf-test-data-$$:/data" \
  -e LF_HTTP_PORT="$port" -e LF_REDIS_PORT="$rport" -e LF_BROKER_PORT_BASE="$base" -e LF_HTTP_HOST=127.0.0.1 \
  "$TAG" all-in-one --workers 1)"
url="http://127.0.0.1:$port"
ok=""
for _ in $(seq 1 300); do
  curl -sf "$url/readyz" >/dev/null 2>&1 && { ok=1; break; }
  sleep 0.5
done
[ -n "$ok" ] || { "${P[@]}" logs "$CID" 2>&1 | tail -n 30 >&2; echo "FAIL: the container's farm was not ready in 150 s" >&2; exit 1; }
id="$(curl -sS -X POST -H 'Content-Type: application/json' \
  -d '{"prompt":"a red circle","steps":2,"width":64,"height":64}' "$url/v1/jobs" | jq -r .id)"
status=""
for _ in $(seq 1 300); do
  status="$(curl -sS "$url/v1/jobs/$id" | jq -r .status)"
  case "$status" in done | failed | cancelled) break ;; esac
  sleep 0.5
done
[ "$status" = "done" ] || { "${P[@]}" logs "$CID" 2>&1 | tail -n 30 >&2; echo "FAIL: the job ended '$status'" >&2; exit 1; }
[ "$(curl -sS "$url/v1/jobs/$id" | jq -r .result.info.model)" = lf-tiny-shapes ] || { echo "FAIL: not on lf-tiny-shapes" >&2; exit 1; }
echo "ok: the all-in-one container served a job on lf-tiny-shapes"
"${P[@]}" healthcheck run "$CID" || { echo "FAIL: the HEALTHCHECK says unhealthy" >&2; exit 1; }
echo "ok: the image's HEALTHCHECK (probe auto) says healthy"
"${P[@]}" stop -t 60 "$CID" >/dev/null
rc="$("${P[@]}" inspect "$CID" --format '{{.State.ExitCode}}')"
[ "$rc" = 0 ] || { "${P[@]}" logs "$CID" 2>&1 | tail -n 20 >&2; echo "FAIL: the container exited $rc on stop" >&2; exit 1; }
echo "ok: podman stop ended the container cleanly (exit 0)"
