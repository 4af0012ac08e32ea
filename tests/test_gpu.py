"""scripts/gpu_check.py: the one-call CUDA check refuses to run, with the list, where there is no CUDA."""

import pytest

from iresnet_onnx import runtimes
from iresnet_onnx.errors import RuntimeUnavailableError
from scripts.gpu_check import run_cuda_checks

HAS_CUDA = "onnxruntime:cuda" in runtimes.available() and "torch:cuda" in runtimes.available()


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is here: scripts/gpu_check.py runs the real checks")
def test_without_cuda_the_check_says_what_is_available():
    with pytest.raises(
        RuntimeUnavailableError,
        match="no CUDA for onnxruntime and torch here; available: .*torch:cpu",
    ):
        run_cuda_checks()


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu and a CUDA device")
def test_cuda_checks_pass():
    result = run_cuda_checks()
    assert result["passed"], result
