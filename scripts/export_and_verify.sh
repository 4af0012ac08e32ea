#!/usr/bin/env bash
# Build-pipeline step: export a checkpoint, then verify the export folder on the given runtimes.
# Exit status is the CLI's: 0 verified, 1 parity miss or changed file, 2 bad input, 3 internal error.
# Usage: scripts/export_and_verify.sh CHECKPOINT OUT_DIR [extra `iresnet-onnx export` flags]
# Env:   RUNTIMES (default onnxruntime:cpu,reference:cpu)
#        IRESNET_ONNX (default: iresnet-onnx on PATH, else this checkout's .venv, else python3 -m)
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CHECKPOINT OUT_DIR [export flags]" >&2
  exit 2
fi
checkpoint=$1
out=$2
shift 2
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${IRESNET_ONNX:-}" ]; then
  cli=$IRESNET_ONNX
elif command -v iresnet-onnx >/dev/null 2>&1; then
  cli=iresnet-onnx
elif [ -x "$repo/.venv/bin/iresnet-onnx" ]; then
  cli="$repo/.venv/bin/iresnet-onnx"  # `make demo` / `make test` installed it here
else
  cli="python3 -m iresnet_onnx"
fi
$cli export "$checkpoint" --out "$out" "$@"
$cli verify "$out" --runtime "${RUNTIMES:-onnxruntime:cpu,reference:cpu}"
