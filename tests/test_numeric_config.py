"""The portability run (``make portability``) really runs under a second numeric setup.

Skipped in the ordinary run. Under ``CNNLAB_NUMERIC_CONFIG=portable`` it checks, with the
libraries' own introspection, that torch uses its non-SIMD kernels and one thread, and that
NumPy's OpenBLAS switched to the Sandybridge kernel with one thread, so the notebooks that run
beside it are compared under a setup that differs from the one that stored their outputs.
"""

import os

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("CNNLAB_NUMERIC_CONFIG") != "portable",
    reason="only in the portability run (make portability)",
)


def test_torch_uses_default_kernels_and_one_thread():
    import torch

    assert torch.backends.cpu.get_cpu_capability() == "DEFAULT"
    assert torch.get_num_threads() == 1


def test_openblas_kernel_is_sandybridge_with_one_thread():
    import numpy as np
    from threadpoolctl import threadpool_info

    np.ones((64, 64)) @ np.ones((64, 64))  # make sure OpenBLAS is loaded
    blas = [info for info in threadpool_info() if info["internal_api"] == "openblas"]
    numpy_blas = [info for info in blas if "numpy" in info["filepath"]]
    assert numpy_blas, f"NumPy's OpenBLAS not found among {blas}"
    for info in numpy_blas:
        assert info["architecture"].lower() == "sandybridge", info
        assert info["num_threads"] == 1, info
