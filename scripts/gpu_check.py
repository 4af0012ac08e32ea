#!/usr/bin/env python
"""Every CUDA check in one call (iresnet_onnx.gpu): parity matrix, IO binding, latency.

Usage: python scripts/gpu_check.py [--out gpu_check.json]
Exit: 0 all passed, 1 a parity or IO-binding miss, 2 no CUDA here.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from iresnet_onnx.errors import RuntimeUnavailableError
from iresnet_onnx.gpu import run_cuda_checks


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = run_cuda_checks()
    except RuntimeUnavailableError as error:
        print(error, file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'all passed' if result['passed'] else 'FAILURES'}; wrote {args.out}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
