#!/usr/bin/env bash
# The endpoint tests' server venv (tests/endpoint/servers.py): KServe's Python model server, in a venv of its
# own because kserve pins packages of its own (protobuf < 7 among them). It serves with the TensorFlow of the
# python3 that runs this script (a venv's or the system's): a .pth written after kserve's install appends that
# interpreter's site-packages, so kserve's own pins come first. Idempotent: quick when the venv is there and works.
set -euo pipefail
CACHE="${ENVCHECK_FIXTURE_CACHE:-$HOME/.cache/envcheck-fixtures}"
VENV="$CACHE/venv-kserve"
KSERVE_VERSION="0.21.0"
TFSERVING_API_VERSION="2.21.0"  # the TensorFlow release the tests serve with
log() { printf '[setup-endpoint] %s\n' "$*"; }

# The venv's TensorFlow (the system's, seen through --system-site-packages) must still import and compute
# beside kserve's pins: a protobuf kserve brings that TensorFlow cannot load would show here, not in a test.
works() {
  TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import kserve, tensorflow as tf
import tensorflow_serving.apis.prediction_service_pb2_grpc  # the TF Serving gRPC protocol fixture's stubs
assert float(tf.reduce_sum(tf.constant([1.5, 2.5]))) == 4.0
PY
}

if [ -x "$VENV/bin/python" ] && works; then
  log "venv-kserve ready ($VENV)"
  exit 0
fi
log "venv with kserve==$KSERVE_VERSION (sees python3's TensorFlow)"
rm -rf "$VENV"
mkdir -p "$CACHE"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "kserve==$KSERVE_VERSION"
# The official TF Serving stubs, for tests/endpoint/tfserving_grpc_app.py; --no-deps: it would pull a TensorFlow.
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps "tensorflow-serving-api==$TFSERVING_API_VERSION"
# --system-site-packages would see the base interpreter's packages, not those of a venv this script runs in.
python3 -c 'import sysconfig; print(*dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")), sep="\n")' \
  > "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/envcheck-outer-site.pth"
works || { log "TensorFlow does not import or compute in $VENV beside kserve"; exit 1; }
log "venv-kserve ready ($VENV)"
