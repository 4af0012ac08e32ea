"""``python -m iresnet_onnx`` is the ``iresnet-onnx`` command."""

import sys

from .cli import main

sys.exit(main())
