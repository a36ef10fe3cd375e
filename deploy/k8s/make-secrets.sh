#!/usr/bin/env bash
# make-secrets.sh: the files components/secrets turns into Secrets, in components/secrets/files/
# (git-ignored): a random API key (api-keys; add more, comma-separated) and CURVE certificates for the
# brokers, the gateways and the workers (czmq zcert pairs NAME.cert + NAME.cert_secret, made by
# `lightfarm-gateway --make-cert`). Existing files are kept, so it is safe to run again.
#   deploy/k8s/make-secrets.sh [DIR]     DIR: where to write (default components/secrets/files)
# The gateway program: LF_GATEWAY_BIN, else lightfarm-gateway on PATH, else build/release's.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE/components/secrets/files}"
GW="${LF_GATEWAY_BIN:-$(command -v lightfarm-gateway || echo "$HERE/../../build/release/gateway/lightfarm-gateway")}"
[ -x "$GW" ] || { echo "make-secrets: no lightfarm-gateway (set LF_GATEWAY_BIN, or: deploy/lightfarm setup)" >&2; exit 1; }
mkdir -p "$OUT"
chmod 700 "$OUT"
if [ ! -s "$OUT/api-keys" ]; then
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$OUT/api-keys")
  echo "make-secrets: wrote a new API key to $OUT/api-keys"
fi
for name in broker gateway worker; do
  [ -f "$OUT/$name.cert" ] && [ -f "$OUT/$name.cert_secret" ] && continue
  rm -f "$OUT/$name.cert" "$OUT/$name.cert_secret"
  "$GW" --make-cert "$OUT/$name.cert" >/dev/null
  echo "make-secrets: wrote $OUT/$name.cert and $name.cert_secret"
done
