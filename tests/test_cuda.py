"""The PyTorch code on a CUDA device: same results as on the CPU, gradients included.

Skipped where no CUDA device exists (CI has none); run on a GPU machine with
`pytest -o addopts="" tests/test_cuda.py tests/test_torch_conv.py`.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.receptive_field import effective_receptive_field
from cnnlab.torch import ASPP, SegmentationNet, TinyBackbone, conv2d
from cnnlab.torch.antialias import BlurPool2d, MaxBlurPool2d

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def full_float32_precision():
    """cuDNN convolutions default to TF32 (10-bit mantissa) on recent GPUs; compare in full float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize(
    "dtype, tol",
    [(torch.float64, 1e-10), (torch.float32, 1e-4), (torch.float16, 1e-2), (torch.bfloat16, 5e-2)],
)
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(stride=2, padding=1),
        dict(padding="same", dilation=3, groups=4),
        dict(stride=(1, 2), padding=(2, 0)),
    ],
)
def test_conv2d_matches_f_conv2d_on_cuda(dtype, tol, kwargs):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 8, 33, 31, generator=g, dtype=torch.float64)
    w = torch.randn(16, 8 // kwargs.get("groups", 1), 3, 3, generator=g, dtype=torch.float64) / 5
    b = torch.randn(16, generator=g, dtype=torch.float64)
    xc, wc, bc = (t.to(CUDA, dtype).requires_grad_(True) for t in (x, w, b))
    got = conv2d(xc, wc, bc, **kwargs)
    assert got.device.type == "cuda" and got.dtype == dtype
    want = F.conv2d(x, w, b, **kwargs)
    torch.testing.assert_close(got.double().cpu(), want, rtol=tol, atol=tol * 10)
    got.double().square().sum().backward()
    x64, w64 = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    F.conv2d(x64, w64, b, **kwargs).square().sum().backward()
    scale = float(x64.grad.abs().max())
    torch.testing.assert_close(
        xc.grad.double().cpu() / scale, x64.grad / scale, rtol=tol, atol=tol * 10
    )


def _same_on_cpu_and_cuda(module, x, tol=1e-4):
    torch.manual_seed(0)
    module = module.eval()
    want = module(x)
    got = module.to(CUDA)(x.to(CUDA))
    torch.testing.assert_close(got.cpu(), want, rtol=tol, atol=tol)
    return got


def test_aspp_on_cuda():
    torch.manual_seed(0)
    out = _same_on_cpu_and_cuda(ASPP(32, 64, rates=(2, 4, 6)), torch.randn(2, 32, 17, 17))
    assert out.shape == (2, 64, 17, 17)


def test_segmentation_net_trains_a_step_on_cuda():
    torch.manual_seed(0)
    net = SegmentationNet(num_classes=3, width=8, output_stride=8).to(CUDA)
    x = torch.randn(2, 3, 64, 64, device=CUDA)
    y = torch.randint(0, 3, (2, 64, 64), device=CUDA)
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all()
        for p in net.parameters()
        if p.requires_grad
    )


@pytest.mark.parametrize("output_stride", [32, 16, 8])
def test_backbone_on_cuda(output_stride):
    torch.manual_seed(0)
    out = _same_on_cpu_and_cuda(TinyBackbone(3, 8, output_stride), torch.randn(1, 3, 64, 64))
    assert out.shape[-1] == 64 // output_stride


def test_blur_pooling_on_cuda():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 20, 20)
    _same_on_cpu_and_cuda(BlurPool2d(6), x, tol=1e-6)
    _same_on_cpu_and_cuda(MaxBlurPool2d(6), x, tol=1e-6)


def test_effective_receptive_field_on_cuda():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 3, padding=1)
    )
    cpu = effective_receptive_field(net, 15, n_samples=4)
    gpu = effective_receptive_field(net.to(CUDA), 15, n_samples=4)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-6)
    assert (gpu[:, :5] == 0).all() and (gpu[:, 10:] == 0).all()  # 5x5 field around the centre
    assert (gpu[:5] == 0).all() and (gpu[10:] == 0).all() and gpu[7, 7] > 0
