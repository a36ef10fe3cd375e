#!/usr/bin/env bash
# test_grafana: deploy/grafana/lightfarm-dashboard.json queries only what a farm exports. A farm from
# `deploy/lightfarm up` runs a job (so the job histograms have samples), its gateway's /metrics is
# scraped, and check_grafana.py checks the dashboard's structure and every metric and label its
# PromQL uses against that scrape. Then the check must fail on a renamed metric, a label nobody
# exports, overlapping panels and a file that is not JSON.
#   test_grafana.sh SOURCE_DIR BUILD_DIR
# Exits 77 (skipped) without the CLIP merges file the tiny model needs.
set -euo pipefail
SRC="$(cd "$1" && pwd)"
BUILD="$(cd "$2" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
T="$(mktemp -d /tmp/lf-test-grafana.XXXXXX)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
farm_env "$T" "$BUILD"
export LF_MODELS_DIR="$SRC/models"
FARM="$SRC/deploy/lightfarm"
DASH="$SRC/deploy/grafana/lightfarm-dashboard.json"
cleanup() { "$FARM" down >/dev/null 2>&1 || true; rm -rf "$T"; }
trap cleanup EXIT
assets="$(find_assets "$SRC" "$T")" || { echo "SKIP: no CLIP merges file (run tools/fetch_assets.sh)"; exit 77; }
export LF_ASSETS_DIR="$assets"

"$FARM" up >"$T/up.out" 2>&1 || { cat "$T/up.out" >&2; fail "up failed"; }
url="http://127.0.0.1:$LF_HTTP_PORT"
id="$(curl -sS -X POST -H 'Content-Type: application/json' -d '{"prompt":"a red circle","steps":2,"width":64,"height":64}' "$url/v1/jobs" | jq -r .id)"
for _ in $(seq 1 300); do
  [ "$(curl -sS "$url/v1/jobs/$id" | jq -r .status)" = "done" ] && break
  sleep 0.2
done
curl -sS "$url/metrics" >"$T/metrics.txt"
grep -q '^lf_job_run_seconds_bucket' "$T/metrics.txt" || fail "no job histogram in /metrics after a job"
grep -q '^lf_worker_memory_bytes{worker=' "$T/metrics.txt" || fail "no per-worker memory in /metrics"
python3 "$HERE/check_grafana.py" "$DASH" "$T/metrics.txt" || fail "the dashboard does not fit the farm's metrics"

# The check can fail.
python3 - "$DASH" "$T" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
def out(name, fn):
    x = json.loads(json.dumps(d)); fn(x); json.dump(x, open("%s/bad-%s.json" % (sys.argv[2], name), "w"))
def rename(x): x["panels"][6]["targets"][0]["expr"] = x["panels"][6]["targets"][0]["expr"].replace("lf_queue_depth", "lf_queue_length")
def label(x): x["panels"][7]["targets"][0]["expr"] = "max by (status) (rate(lf_jobs_total[5m]))"
def overlap(x): x["panels"][1]["gridPos"] = dict(x["panels"][0]["gridPos"])
out("rename", rename); out("label", label); out("overlap", overlap)
open("%s/bad-json.json" % sys.argv[2], "w").write(json.dumps(d)[:-20])
PY
for m in "rename:lf_queue_length" "label:'status'" "overlap:overlaps" "json:not JSON"; do
  if python3 "$HERE/check_grafana.py" "$T/bad-${m%%:*}.json" "$T/metrics.txt" >"$T/bad.out" 2>&1; then
    cat "$T/bad.out" >&2; fail "check_grafana.py passed the ${m%%:*} mistake"
  fi
  grep -qF "${m#*:}" "$T/bad.out" || { cat "$T/bad.out" >&2; fail "the ${m%%:*} mistake was not named"; }
done
echo "ok: the dashboard's queries use only exported metrics and labels; broken dashboards are caught"
