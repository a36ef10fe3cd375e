#!/usr/bin/env bash
# test_k8s: every kustomize tree under deploy/k8s renders with `kubectl kustomize` (kubectl's built-in
# kustomize) and the result passes check_k8s.py: the built-in kinds validate strictly against the
# Kubernetes schemas (kubernetes-validate, pinned, in tests/deploy/.venv-k8s), KEDA's ScaledObject is
# checked field by field, and the objects fit together (references, selectors, probes, grace period,
# per-overlay expectations). The secrets are made by deploy/k8s/make-secrets.sh in a copy of the tree,
# with the gateway of the build under test. A broken manifest must fail the same check.
#   test_k8s.sh SOURCE_DIR BUILD_DIR
# Exits 77 (skipped) only without kubectl or when PyPI cannot be reached for the venv.
set -euo pipefail
SRC="$(cd "$1" && pwd)"
BUILD="$(cd "$2" && pwd)"
K8S_VERSION=1.32.0 # the oldest Kubernetes these manifests are for (kubectl here is 1.32 too)
T="$(mktemp -d /tmp/lf-test-k8s.XXXXXX)"
trap 'rm -rf "$T"' EXIT
# shellcheck source=venv.sh
. "$(dirname "$0")/venv.sh"

command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1 ||
  { echo "SKIP: no kubectl with a built-in kustomize (kubectl >= 1.27: https://kubernetes.io/docs/tasks/tools/)"; exit 77; }
venv="$(deploy_venv k8s)" || { echo "SKIP: cannot make the kubernetes-validate venv (see above)"; exit 77; }
echo "kubectl: $(kubectl version --client 2>/dev/null | tr '\n' ' ')"

cp -r "$SRC/deploy/k8s" "$T/k8s"
rm -rf "$T/k8s/components/secrets/files"
LF_GATEWAY_BIN="$BUILD/gateway/lightfarm-gateway" "$T/k8s/make-secrets.sh" >/dev/null
# The S3 keys file the image-store-s3 component's Secret is made from (yours stays out of git).
mkdir -p "$T/k8s/components/image-store-s3/files"
printf 'LF_S3_ACCESS_KEY_ID=AKIDEXAMPLE\nLF_S3_SECRET_ACCESS_KEY=not-a-secret\n' >"$T/k8s/components/image-store-s3/files/s3-keys.env"
for f in api-keys broker.cert broker.cert_secret gateway.cert gateway.cert_secret worker.cert worker.cert_secret; do
  [ -s "$T/k8s/components/secrets/files/$f" ] || { echo "FAIL: make-secrets.sh did not write $f" >&2; exit 1; }
done

# tree: what check_k8s.py must find there.
declare -A EXPECT=(
  [base]="--expect redis=statefulset --expect keda=0 --expect images=redis"
  [overlays/dev]="--expect redis=statefulset --expect keda=0"
  [overlays/cpu]="--expect redis=statefulset --expect curve=1 --expect keda=1"
  [overlays/gpu]="--expect redis=statefulset --expect curve=1 --expect keda=1 --expect gpu=1"
  [overlays/external-redis]="--expect redis=external --expect curve=1 --expect keda=1"
  [overlays/images-dir]="--expect redis=statefulset --expect curve=1 --expect keda=1 --expect images=dir"
  [overlays/images-s3]="--expect redis=statefulset --expect curve=1 --expect keda=1 --expect images=s3"
)
# Every overlay in the tree is tested: a new one without an entry above fails.
for d in "$T"/k8s/overlays/*/; do
  o="overlays/$(basename "$d")"
  [ -n "${EXPECT[$o]:-}" ] || { echo "FAIL: $o has no expectations in test_k8s.sh" >&2; exit 1; }
done
rc=0
for tree in "${!EXPECT[@]}"; do
  out="$T/$(echo "$tree" | tr / _).yaml"
  if ! kubectl kustomize "$T/k8s/$tree" >"$out" 2>"$T/err"; then
    echo "FAIL: kubectl kustomize $tree:" >&2; cat "$T/err" >&2; rc=1; continue
  fi
  # shellcheck disable=SC2086 # the expectations are words
  "$venv/python" "$SRC/tests/deploy/check_k8s.py" "$out" "$K8S_VERSION" ${EXPECT[$tree]} || rc=1
done
[ "$rc" = 0 ] || { echo "FAIL: see the problems above" >&2; exit 1; }

# The check can fail: a misspelt field, a dangling Secret reference and a ScaledObject without its
# query must each be reported.
kubectl kustomize "$T/k8s/overlays/cpu" >"$T/good.yaml"
"$venv/python" - "$T/good.yaml" "$T/bad" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
def mutate(fn, out):
    ds = [d for d in yaml.safe_load_all(yaml.safe_dump_all(docs))]  # a deep copy
    for d in ds: fn(d)
    yaml.safe_dump_all(ds, open(out, "w"))
def typo(d):
    if d["kind"] == "Deployment" and d["metadata"]["name"] == "worker":
        d["spec"]["replica"] = d["spec"].pop("replicas")
def dangling(d):
    if d["kind"] == "Deployment" and d["metadata"]["name"] == "gateway":
        for c in d["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                if e["name"] == "LF_API_KEYS": e["valueFrom"]["secretKeyRef"]["name"] = "lightfarm-api-keys"
def noquery(d):
    if d["kind"] == "ScaledObject":
        del d["spec"]["triggers"][0]["metadata"]["query"]
for name, fn in (("typo", typo), ("dangling", dangling), ("noquery", noquery)):
    mutate(fn, sys.argv[2] + "-" + name + ".yaml")
PY
for m in typo:replica dangling:lightfarm-api-keys noquery:metadata.query; do
  if "$venv/python" "$SRC/tests/deploy/check_k8s.py" "$T/bad-${m%%:*}.yaml" "$K8S_VERSION" >"$T/bad.out" 2>&1; then
    cat "$T/bad.out" >&2; echo "FAIL: check_k8s.py passed a manifest with a ${m%%:*} mistake" >&2; exit 1
  fi
  grep -q "${m#*:}" "$T/bad.out" || { cat "$T/bad.out" >&2; echo "FAIL: the ${m%%:*} mistake was not named" >&2; exit 1; }
done
echo "ok: ${#EXPECT[@]} kustomize trees render and check; broken manifests are caught"
