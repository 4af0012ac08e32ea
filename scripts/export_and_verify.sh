#!/usr/bin/env bash
# Build-pipeline step: export a checkpoint, then verify the export folder on the given runtimes.
# Exit status is the CLI's: 0 verified, 1 parity miss or tampered file, 2 bad input.
# Usage: scripts/export_and_verify.sh CHECKPOINT OUT_DIR [extra `iresnet-onnx export` flags]
# Env:   RUNTIMES (default onnxruntime:cpu,reference:cpu), IRESNET_ONNX (default: iresnet-onnx)
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CHECKPOINT OUT_DIR [export flags]" >&2
  exit 2
fi
checkpoint=$1
out=$2
shift 2
cli=${IRESNET_ONNX:-iresnet-onnx}
$cli export "$checkpoint" --out "$out" "$@"
$cli verify "$out" --runtime "${RUNTIMES:-onnxruntime:cpu,reference:cpu}"
