"""Graded tests of exercise 02, shapes (chapter 2).

Imported by the grading process only. Every expected answer is measured with PyTorch in the
grading process: output sizes are the shapes that ``torch.nn.functional.conv2d`` returns on
zeros, a dilated kernel's span is what a 'valid' ``F.conv2d`` takes off a row plus one, parameter
counts are ``sum(p.numel() for p in torch.nn.Conv2d(...).parameters())`` and
multiply-adds are half the FLOPs that ``torch.utils.flop_counter.FlopCounterMode`` counts; only
the output stride, a product, comes from ``cnnlab.shapes.output_stride``. The worker that runs
a submission receives the inputs and nothing else.

Most hidden tests are sweeps: one call of a ``sweep_*`` helper (defined in a locked cell of the
notebook) runs the student's function on dozens of configurations drawn from a generator seeded
by the test's name, and the test passes only if every answer is right.

Each hint has two levels: a nudge (what to look at), shown on a failure, and the full formula,
shown by ``check(name, function, hint=2)``. ``uses`` names the student's own functions that a
function is meant to call, so that a failure there says to fix the called function first.
"""

import numpy as np

from cnnlab.exercises.spec import Test
from cnnlab.shapes import output_stride as reference_output_stride_of_strides

# Library shortcuts replaced by raising stubs inside the grading worker: the cnnlab answers, and
# the operations whose output shape a student could measure instead of computing it.
FORBIDDEN = [
    *(
        f"cnnlab.shapes.{name}"
        for name in (
            "conv_output_size",
            "effective_kernel_size",
            "same_padding",
            "output_stride",
            "conv_params",
            "conv_macs",
            "transposed_output_size",
            "split_padding",
            "conv_input_sizes",
        )
    ),
    "cnnlab.numpy.corr2d",
    "cnnlab.numpy.conv2d",
    "cnnlab.numpy.conv.corr2d",
    "cnnlab.numpy.conv.conv2d",
    "cnnlab.numpy.conv.im2col",
    "cnnlab.numpy.max_pool2d",
    "cnnlab.numpy.avg_pool2d",
    "cnnlab.numpy.pool.max_pool2d",
    "cnnlab.numpy.pool.avg_pool2d",
    "cnnlab.torch.conv2d",
    "cnnlab.torch.conv.conv2d",
    "torch.conv1d",
    "torch.conv2d",
    "torch._C._VariableFunctions.conv1d",
    "torch._C._VariableFunctions.conv2d",
    "torch.nn.functional.conv1d",
    "torch.nn.functional.conv2d",
    "torch.nn.functional.conv3d",
    "torch.nn.functional.max_pool1d",
    "torch.nn.functional.max_pool2d",
    "torch.nn.functional.avg_pool1d",
    "torch.nn.functional.avg_pool2d",
    "torch.nn.functional.unfold",
    "scipy.signal.correlate",
    "scipy.signal.convolve",
    "numpy.convolve",
    "numpy.correlate",
    "cnnlab._checks.conv2d_geometry",
    "cnnlab._checks.pool2d_geometry",
    "cnnlab._checks._out_size",
]

# Whole modules that cannot be imported inside the grading worker: the cnnlab modules that
# compute output sizes (every route through them, private helpers included).
# cnnlab.geometry: Window holds the output-size law, the span and 'same' padding.
FORBIDDEN_MODULES = [
    "cnnlab.shapes",
    "cnnlab._checks",
    "cnnlab.geometry",
    "cnnlab.numpy",
    "cnnlab.torch",
]

SPAN_HINT = (
    "draw the k taps on a line with d - 1 skipped pixels between neighbours and count the "
    "pixels from the first tap to the last, both included; try k = 1 and d = 1 too",
    "k' = d (k - 1) + 1: k - 1 gaps of d pixels each, plus the first tap",
)
SIZE_HINT = (
    "count kernel positions: the first starts on the first pixel of the padded input, each next "
    "one s pixels later, and the last must end inside it; the kernel covers its effective "
    "(dilated) span, not k pixels",
    "o = floor((i + 2p - d(k - 1) - 1) / s) + 1: a kernel of k taps with dilation d spans "
    "d(k - 1) + 1 input pixels",
)
SAME_HINT = (
    "at stride 1, how many pixels does a 'valid' layer take off the input? The padding must put "
    "them back, half on each side",
    "at stride 1, o = i + 2p - d(k - 1), so o = i needs p = d(k - 1) / 2",
)
STAGES_HINT = (
    "each layer's output size is the next layer's input size; return one size per layer, in "
    "order, the last being the network's output size",
    "size = input_size; for each (k, s, p, d): size = conv_output_size(size, k, s, p, d) and "
    "append it to the list",
)
STRIDE_HINT = (
    "after one layer of stride s, one step on the output moves s pixels on the input; how far "
    "does it move after a second layer of stride s'?",
    "the output stride is the product of the strides of all the layers",
)
PARAMS_HINT = (
    "count one filter's weights first: how many input channels does it see when they are split "
    "into groups? Then the biases",
    "each of the C_out filters has C_in / groups * k * k weights, plus one bias per filter "
    "when bias is true",
)
MACS_HINT = (
    "one multiply-add per weight used per output value: how many output values are there "
    "(channels times positions), and how many weights does each use? The bias is not counted",
    "each of the C_out * o * o output values is a dot product of C_in / groups * k * k "
    "weights with as many inputs; the bias is not counted",
)


# ----- references, measured with PyTorch in the grading process ------------------------------


def torch_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """The width of ``F.conv2d`` on a 1 x size row of zeros (PyTorch's own shape law)."""
    import torch
    import torch.nn.functional as F

    x = torch.zeros(1, 1, 1, int(size))
    w = torch.zeros(1, 1, 1, int(kernel_size))
    y = F.conv2d(
        x, w, stride=(1, int(stride)), padding=(0, int(padding)), dilation=(1, int(dilation))
    )
    return int(y.shape[-1])


def torch_effective_kernel_size(kernel_size, dilation):
    """The span of a dilated kernel: what a stride-1 'valid' ``F.conv2d`` takes off a row, plus 1.

    A kernel spanning ``k'`` pixels has ``size - k' + 1`` valid positions on a row of ``size``.
    """
    size = 512
    return size - torch_output_size(size, kernel_size, 1, 0, dilation) + 1


def torch_same_padding(kernel_size, dilation=1):
    """The per-side padding that gives back what a stride-1 ``F.conv2d`` takes off a row.

    A 'valid' convolution of a 512-wide row of zeros loses ``512 - o`` pixels; 'same' padding
    puts half of them back on each side, which a second ``F.conv2d`` call confirms.
    """
    size = 512
    lost = size - torch_output_size(size, kernel_size, 1, 0, dilation)
    padding = lost // 2
    if lost % 2 or torch_output_size(size, kernel_size, 1, padding, dilation) != size:
        raise ValueError(
            f"no symmetric 'same' padding for kernel {kernel_size}, dilation {dilation}"
        )
    return padding


def torch_stage_sizes(input_size, layers):
    """The width after each layer of a chain of ``F.conv2d`` calls."""
    sizes, size = [], int(input_size)
    for kernel_size, stride, padding, dilation in layers:
        size = torch_output_size(size, kernel_size, stride, padding, dilation)
        sizes.append(size)
    return sizes


def reference_output_stride(layers):
    """The product of the layers' strides (``cnnlab.shapes.output_stride``)."""
    return reference_output_stride_of_strides([int(layer[1]) for layer in layers])


def torch_conv_params(in_channels, out_channels, kernel_size, groups=1, bias=True):
    """``sum(p.numel() for p in nn.Conv2d(...).parameters())``, on the meta device."""
    import torch

    layer = torch.nn.Conv2d(
        int(in_channels),
        int(out_channels),
        int(kernel_size),
        groups=int(groups),
        bias=bool(bias),
        device="meta",
    )
    return int(sum(p.numel() for p in layer.parameters()))


def torch_conv_macs(
    in_channels, out_channels, kernel_size, input_size, stride=1, padding=0, dilation=1, groups=1
):
    """Half the FLOPs that ``FlopCounterMode`` counts for ``F.conv2d`` on one image (meta)."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.empty(1, int(in_channels), int(input_size), int(input_size), device="meta")
    w = torch.empty(
        int(out_channels),
        int(in_channels) // int(groups),
        int(kernel_size),
        int(kernel_size),
        device="meta",
    )
    with FlopCounterMode(display=False) as counter:
        F.conv2d(
            x,
            w,
            stride=int(stride),
            padding=int(padding),
            dilation=int(dilation),
            groups=int(groups),
        )
    return counter.get_total_flops() // 2


def _rows(reference):
    """Apply ``reference`` to every row of a configuration table, as the notebook's helpers do."""

    def swept(configs):
        return [reference(*(int(v) for v in row)) for row in configs]

    return swept


def sweep_stage_sizes_reference(input_sizes, layers):
    return [torch_stage_sizes(int(i), layers) for i in input_sizes]


def sweep_output_stride_reference(networks):
    return [reference_output_stride(layers) for layers in networks]


# ----- seeded draws --------------------------------------------------------------------------


def _draw_conv_configs(rng, count, max_dilation):
    """``count`` rows (size, kernel, stride, padding, dilation) whose kernel fits the input."""
    rows = []
    while len(rows) < count:
        size = int(rng.integers(1, 300))
        kernel = int(rng.integers(1, 12))
        stride = int(rng.integers(1, 5))
        padding = int(rng.integers(0, 6))
        dilation = int(rng.integers(1, max_dilation + 1))
        if dilation * (kernel - 1) + 1 <= size + 2 * padding:
            rows.append((size, kernel, stride, padding, dilation))
    return np.array(rows, dtype=np.int64)


def _conv_sweep(count, max_dilation):
    return lambda rng: (_draw_conv_configs(rng, count, max_dilation),)


def _kernel_fills_input(rng):
    """Rows where the dilated kernel exactly covers the padded input: one output position."""
    rows = []
    while len(rows) < 24:
        kernel, dilation = int(rng.integers(1, 8)), int(rng.integers(1, 6))
        padding, stride = int(rng.integers(0, 4)), int(rng.integers(1, 5))
        size = dilation * (kernel - 1) + 1 - 2 * padding
        if size >= 1:
            rows.append((size, kernel, stride, padding, dilation))
    return (np.array(rows, dtype=np.int64),)


def _span_configs(rng):
    """40 rows (kernel, dilation), kernels 1 to 11 and dilations 1 to 24."""
    rows = [(int(rng.integers(1, 12)), int(rng.integers(1, 25))) for _ in range(40)]
    return (np.array(rows, dtype=np.int64),)


def _same_padding_configs(rng):
    """Rows (kernel, dilation) with an odd effective kernel d(k - 1) + 1."""
    rows = []
    while len(rows) < 40:
        kernel, dilation = int(rng.integers(1, 12)), int(rng.integers(1, 25))
        if (dilation * (kernel - 1)) % 2 == 0:
            rows.append((kernel, dilation))
    return (np.array(rows, dtype=np.int64),)


def _random_layer(rng):
    kernel = int(rng.integers(1, 8))
    stride = int(rng.choice([1, 1, 2, 2, 3]))
    dilation = int(rng.choice([1, 1, 2, 3]))
    padding = int(rng.integers(0, dilation * (kernel - 1) // 2 + 2))
    return (kernel, stride, padding, dilation)


def _fits(size, layers):
    for kernel, stride, padding, dilation in layers:
        if dilation * (kernel - 1) + 1 > size + 2 * padding:
            return False
        size = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    return True


def _random_network(rng, depth):
    """A network of ``depth`` random layers that a 200-pixel input passes through."""
    while True:
        layers = tuple(_random_layer(rng) for _ in range(depth))
        if _fits(200, layers):
            return layers


def _stage_sweep(rng):
    layers = _random_network(rng, 10)
    sizes = [int(s) for s in rng.integers(200, 700, size=30)]
    return (np.array(sizes, dtype=np.int64), layers)


def _stride_sweep(rng):
    networks = tuple(
        tuple(_random_layer(rng) for _ in range(int(rng.integers(1, 13)))) for _ in range(30)
    )
    return (networks,)


def _params_configs(rng):
    """Rows (c_in, c_out, kernel, groups, bias) with groups dividing both channel counts."""
    rows = []
    for _ in range(40):
        groups = int(rng.choice([1, 1, 2, 4, 8, 32]))
        c_in = groups * int(rng.integers(1, 17))
        c_out = groups * int(rng.integers(1, 17))
        rows.append((c_in, c_out, int(rng.integers(1, 8)), groups, int(rng.integers(0, 2))))
    return (np.array(rows, dtype=np.int64),)


def _macs_configs(rng):
    """Rows (c_in, c_out, kernel, input, stride, padding, dilation, groups) that fit."""
    rows = []
    while len(rows) < 40:
        groups = int(rng.choice([1, 1, 2, 4, 16]))
        c_in = groups * int(rng.integers(1, 9))
        c_out = groups * int(rng.integers(1, 9))
        kernel, size = int(rng.integers(1, 8)), int(rng.integers(1, 120))
        stride, padding = int(rng.integers(1, 4)), int(rng.integers(0, 4))
        dilation = int(rng.integers(1, 4))
        if dilation * (kernel - 1) + 1 <= size + 2 * padding:
            rows.append((c_in, c_out, kernel, size, stride, padding, dilation, groups))
    return (np.array(rows, dtype=np.int64),)


def _params_row(c_in, c_out, kernel, groups, bias):
    return torch_conv_params(c_in, c_out, kernel, groups=groups, bias=bool(bias))


# ----- described networks (kernel, stride, padding, dilation per layer) -----------------------

# ResNet-18's main path: a 7x7 stride-2 stem, a 3x3 stride-2 max pool, then four stages of four
# 3x3 convolutions, the first of stages 2 to 4 with stride 2 (shortcuts do not change sizes).
RESNET18 = (
    (7, 2, 3, 1),
    (3, 2, 1, 1),
    *((3, 1, 1, 1),) * 4,
    *(((3, 2, 1, 1),) + ((3, 1, 1, 1),) * 3) * 3,
)

# A DeepLab-style dilated ResNet at output stride 8: stages 4 and 5 keep stride 1 and dilate
# by 2 and 4 instead; an atrous 3x3 of rate 12 at the end (the ASPP branch).
DEEPLAB_OS8 = (
    (7, 2, 3, 1),
    (3, 2, 1, 1),
    (3, 1, 1, 1),
    (3, 1, 1, 1),
    (3, 2, 1, 1),
    (3, 1, 1, 1),
    (3, 1, 2, 2),
    (3, 1, 2, 2),
    (3, 1, 4, 4),
    (3, 1, 4, 4),
    (3, 1, 12, 12),
)

# VGG-16 without its classifier: 3x3 'same' convolutions and five 2x2 stride-2 max pools.
VGG16 = tuple(
    layer for convs in (2, 2, 3, 3, 3) for layer in (*((3, 1, 1, 1),) * convs, (2, 2, 0, 1))
)

TESTS = [
    # effective_kernel_size
    Test(
        "effective_kernel_size_rate_4",
        "effective_kernel_size",
        (3, 4),
        torch_effective_kernel_size,
        points=1,
        exact=True,
        hint=SPAN_HINT,
        description="3 taps, 3 skipped pixels between neighbours (dilation 4)",
    ),
    Test(
        "effective_kernel_size_one_tap",
        "effective_kernel_size",
        (1, 5),
        torch_effective_kernel_size,
        points=1,
        exact=True,
        hint=SPAN_HINT,
        description="one tap spans one pixel, whatever the dilation",
    ),
    Test(
        "effective_kernel_size_undilated",
        "effective_kernel_size",
        (7, 1),
        torch_effective_kernel_size,
        points=1,
        hidden=True,
        exact=True,
        hint=SPAN_HINT,
    ),
    Test(
        "effective_kernel_size_sweep",
        "sweep_effective_kernel_size",
        _span_configs,
        _rows(torch_effective_kernel_size),
        points=2,
        hidden=True,
        exact=True,
        hint=SPAN_HINT,
        description="40 random (kernel, dilation), kernels 1 to 11, dilations 1 to 24",
    ),
    # conv_output_size
    Test(
        "conv_output_size_resnet_stem",
        "conv_output_size",
        (224, 7, 2, 3, 1),
        torch_output_size,
        points=1,
        exact=True,
        uses=("effective_kernel_size",),
        hint=SIZE_HINT,
        description="ResNet's first layer: 224, kernel 7, stride 2, padding 3, dilation 1",
    ),
    Test(
        "conv_output_size_dilated",
        "conv_output_size",
        (33, 3, 2, 2, 2),
        torch_output_size,
        points=1,
        exact=True,
        uses=("effective_kernel_size",),
        hint=SIZE_HINT,
        description="33, kernel 3, stride 2, padding 2, dilation 2",
    ),
    Test(
        "conv_output_size_sweep_undilated",
        "sweep_conv_output_size",
        _conv_sweep(40, max_dilation=1),
        _rows(torch_output_size),
        points=1,
        hidden=True,
        exact=True,
        hint=SIZE_HINT,
        description="40 random (size, kernel, stride, padding) with dilation 1",
    ),
    Test(
        "conv_output_size_sweep_dilated",
        "sweep_conv_output_size",
        _conv_sweep(40, max_dilation=6),
        _rows(torch_output_size),
        points=2,
        hidden=True,
        exact=True,
        hint=SIZE_HINT,
        description="40 random configurations with dilation 1 to 6",
    ),
    Test(
        "conv_output_size_kernel_fills_input",
        "sweep_conv_output_size",
        _kernel_fills_input,
        _rows(torch_output_size),
        points=1,
        hidden=True,
        exact=True,
        hint=SIZE_HINT,
        description="24 configurations whose dilated kernel exactly covers the padded input",
    ),
    # same_padding
    Test(
        "same_padding_5x5",
        "same_padding",
        (5, 1),
        torch_same_padding,
        points=1,
        exact=True,
        hint=SAME_HINT,
        description="a 5x5 kernel, no dilation",
    ),
    Test(
        "same_padding_atrous_rate_6",
        "same_padding",
        (3, 6),
        torch_same_padding,
        points=1,
        exact=True,
        hint=SAME_HINT,
        description="DeepLab's 3x3 atrous convolution of rate 6",
    ),
    Test(
        "same_padding_sweep",
        "sweep_same_padding",
        _same_padding_configs,
        _rows(torch_same_padding),
        points=2,
        hidden=True,
        exact=True,
        hint=SAME_HINT,
        description="40 random (kernel, dilation) with an odd effective kernel",
    ),
    # stage_sizes and output_stride
    Test(
        "stage_sizes_resnet18",
        "stage_sizes",
        (224, RESNET18),
        torch_stage_sizes,
        points=1,
        exact=True,
        uses=("conv_output_size",),
        hint=STAGES_HINT,
        description="ResNet-18's main path (18 layers) on a 224x224 image",
    ),
    Test(
        "stage_sizes_deeplab_os8",
        "stage_sizes",
        (513, DEEPLAB_OS8),
        torch_stage_sizes,
        points=1,
        hidden=True,
        exact=True,
        uses=("conv_output_size",),
        hint=STAGES_HINT,
    ),
    Test(
        "stage_sizes_vgg16_odd_input",
        "stage_sizes",
        (227, VGG16),
        torch_stage_sizes,
        points=1,
        hidden=True,
        exact=True,
        uses=("conv_output_size",),
        hint=STAGES_HINT,
    ),
    Test(
        "stage_sizes_sweep",
        "sweep_stage_sizes",
        _stage_sweep,
        sweep_stage_sizes_reference,
        points=2,
        hidden=True,
        exact=True,
        hint=STAGES_HINT,
        description="a random 10-layer network on 30 input sizes",
    ),
    Test(
        "output_stride_resnet18",
        "output_stride",
        (RESNET18,),
        reference_output_stride,
        points=1,
        exact=True,
        hint=STRIDE_HINT,
        description="ResNet-18's main path",
    ),
    Test(
        "output_stride_deeplab_os8",
        "output_stride",
        (DEEPLAB_OS8,),
        reference_output_stride,
        points=1,
        hidden=True,
        exact=True,
        hint=STRIDE_HINT,
    ),
    Test(
        "output_stride_sweep",
        "sweep_output_stride",
        _stride_sweep,
        sweep_output_stride_reference,
        points=1,
        hidden=True,
        exact=True,
        hint=STRIDE_HINT,
        description="30 random networks of 1 to 12 layers",
    ),
    # conv_params
    Test(
        "conv_params_vgg_layer",
        "conv_params",
        (64, 128, 3, 1, True),
        torch_conv_params,
        points=1,
        exact=True,
        hint=PARAMS_HINT,
        description="a 3x3 layer from 64 to 128 channels, with bias",
    ),
    Test(
        "conv_params_depthwise",
        "conv_params",
        (32, 32, 3, 32, False),
        torch_conv_params,
        points=1,
        exact=True,
        hint=PARAMS_HINT,
        description="a depthwise 3x3 layer (32 groups), no bias",
    ),
    Test(
        "conv_params_sweep",
        "sweep_conv_params",
        _params_configs,
        _rows(_params_row),
        points=2,
        hidden=True,
        exact=True,
        hint=PARAMS_HINT,
        description="40 random (c_in, c_out, kernel, groups, bias)",
    ),
    # conv_macs
    Test(
        "conv_macs_resnet_stem",
        "conv_macs",
        (3, 64, 7, 224, 2, 3, 1, 1),
        torch_conv_macs,
        points=1,
        exact=True,
        uses=("conv_output_size",),
        hint=MACS_HINT,
        description="ResNet's stem: 3 to 64 channels, 7x7, stride 2, padding 3, on 224x224",
    ),
    Test(
        "conv_macs_depthwise_dilated",
        "conv_macs",
        (64, 64, 3, 65, 1, 2, 2, 64),
        torch_conv_macs,
        points=1,
        hidden=True,
        exact=True,
        uses=("conv_output_size",),
        hint=MACS_HINT,
    ),
    Test(
        "conv_macs_sweep",
        "sweep_conv_macs",
        _macs_configs,
        _rows(torch_conv_macs),
        points=2,
        hidden=True,
        exact=True,
        hint=MACS_HINT,
        description="40 random layers with stride, padding, dilation and groups",
    ),
]
