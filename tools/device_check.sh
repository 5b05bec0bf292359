#!/usr/bin/env bash
# TensorRT backend check on a machine with an NVIDIA GPU. Under 8 minutes; writes $OUT/*.json.
#
#   OUT=out tools/device_check.sh
#
# Python with tensorrt + pycuda + onnxruntime + onnx + numpy + pyyaml is found in this order:
#   1. $DEVICE_CHECK_PYTHON if set;
#   2. python3 on PATH, if it already imports tensorrt and pycuda (JetPack, NGC TensorRT image);
#   3. a venv at .device_check_venv (system site packages visible), filled by pip from
#      $WHEELHOUSE (--no-index) when set, else from the package index (needs network).
# If none has TensorRT the check still runs and its JSON says what is missing.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
log() { echo "[device_check] $*"; }

has_trt() { "$1" -c 'import tensorrt, pycuda.driver, onnxruntime, onnx, numpy' 2>/dev/null; }

PY="${DEVICE_CHECK_PYTHON:-}"
if [ -z "$PY" ] && has_trt python3; then
  PY=python3
fi
if [ -z "$PY" ]; then
  VENV=.device_check_venv
  [ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV"
  PIP_ARGS=(--disable-pip-version-check -q)
  if [ -n "${WHEELHOUSE:-}" ]; then PIP_ARGS+=(--no-index --find-links "$WHEELHOUSE"); fi
  log "installing tensorrt pycuda onnxruntime onnx numpy pyyaml into $VENV (at most 240 s)"
  timeout 240 "$VENV/bin/python" -m pip install "${PIP_ARGS[@]}" \
      tensorrt pycuda onnxruntime onnx numpy pyyaml 2>&1 | tail -5 | tee "$OUT/pip.log"
  PY="$VENV/bin/python"
fi
log "python: $PY"
nvidia-smi 2>&1 | head -15 | tee "$OUT/nvidia_smi.txt"

# The check itself (engine builds of three small models, timing, cache, DLA error).
timeout 300 "$PY" tools/device_check.py --out "$OUT/device_check.json"
rc=$?
# The TensorRT unit tests, where pytest is there (skip cleanly otherwise).
if "$PY" -c 'import pytest' 2>/dev/null; then
  timeout 120 "$PY" -m pytest -q test/test_backend_tensorrt.py test/test_backend_engine_cache.py \
      2>&1 | tail -15 | tee "$OUT/pytest_tensorrt.txt"
fi
exit $rc
