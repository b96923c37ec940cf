"""Graded tests of exercise 04, equivariance (chapter 4).

Imported by the grading process only. A network crosses the worker boundary as plain data: a
tuple of layers, each a tuple whose first item names the layer type::

    ("conv", weight, padding)   weight (O, C, kh, kw), kh and kw odd; padding "circular" or
                                "zero", kh // 2 and kw // 2 pixels on each side; stride 1
    ("relu",)
    ("maxpool", size, stride)   no padding; output floor((H - size) / stride) + 1
    ("avgpool", size, stride)   the same, with the mean

Expected answers are computed here with PyTorch layers (``torch.nn.Conv2d`` with
``padding_mode="circular"`` or ``"zeros"``, ``ReLU``, ``MaxPool2d``, ``AvgPool2d``,
``AdaptiveAvgPool2d(1)`` for global average pooling, in float64) and the cnnlab references
``cnnlab.equivariance.shift``, ``equivariance_error``, ``invariance_error`` and
``probe_layers``; the worker that runs a submission receives the inputs and nothing else.

Every hint has two levels: a nudge (what to look at), shown on a failure, and the full formula,
shown by ``check(name, function, hint=2)``.
"""

import numpy as np
import torch

from cnnlab.equivariance import equivariance_error as reference_equivariance_error
from cnnlab.equivariance import invariance_error as _invariance_error
from cnnlab.equivariance import probe_layers
from cnnlab.equivariance import shift as reference_shift
from cnnlab.exercises.spec import Test

# Relative error above which a layer counts as breaking equivariance (stated in the notebook).
TOLERANCE = 1e-6

# Library shortcuts replaced by raising stubs inside the grading worker.
FORBIDDEN = [
    "cnnlab.equivariance.shift",
    "cnnlab.equivariance.equivariance_residual",
    "cnnlab.equivariance.equivariance_error",
    "cnnlab.equivariance.invariance_error",
    "cnnlab.equivariance.probe_layers",
    "cnnlab.viz.equivariance.plot_commuting_square",
    "cnnlab.viz.equivariance.plot_layer_errors",
    "scipy.ndimage.shift",
]

SHIFT_HINT = (
    "which axes are the rows and the columns of an (N, C, H, W) array, and which of them does "
    "your shift move? Check the sign too: positive dy moves the content down",
    "out[..., i, j] = x[..., i - dy, j - dx]: positive dy moves the content down, positive dx "
    "right; 'circular' takes the index modulo (H, W) (np.roll on axes (-2, -1)), 'zero' fills "
    "the rows and columns that come in with zeros",
)
FORWARD_HINT = (
    "compare each layer's output shape with the table; a pooling window starts every `stride` "
    "pixels and may overlap the next one (size > stride); a conv is not flipped",
    "run the layers in order on (N, C, H, W); a conv is a cross-correlation (no kernel flip) "
    "of the input padded by kh // 2 and kw // 2 on each side (np.pad mode='wrap' for "
    "'circular', zeros for 'zero'), summed over input channels; pools have no padding, their "
    "windows start at rows 0, stride, 2 stride, ... and they give "
    "floor((H - size) / stride) + 1 rows",
)
ERROR_HINT = (
    "the output of a network of stride s is s times smaller: by how many of its pixels should "
    "it move when the input moves by d? Which norm, over which entries?",
    "e = ||f(T_d x) - T_{d/s} f(x)|| / ||f(x)|| over all entries, where f is the whole network, "
    "s the product of the pooling strides, and the output is shifted with the same mode as "
    "the input",
)
FIRST_HINT = (
    "walk the layers in order and test each prefix layers[:k + 1]: its own stride, not the "
    "whole network's, decides whether the shift can be followed at all",
    "for k = 0, 1, ...: let s be the product of the strides of layers 0..k; if s does not "
    "divide dy and dx, layer k breaks equivariance; otherwise it breaks it when the error of "
    "layers 0..k with a circular shift exceeds TOLERANCE; return -1 when no layer does",
)
POOL_HINT = (
    "global pooling removes the two spatial axes and keeps the batch and channel axes; check "
    "the output's shape, and mean versus sum",
    "out[n, c] = (1 / (H W)) sum_{i, j} x[n, c, i, j]: x.mean(axis=(-2, -1)), shape (N, C)",
)
INVARIANCE_HINT = (
    "invariance compares outputs without shifting one back; with pool=True both outputs go "
    "through global_average_pool first",
    "h = global_average_pool(forward(layers, .)) when pool is True, else forward(layers, .); "
    "e = ||h(T_d x) - h(x)|| / ||h(x)|| over all entries, T_d the shift in the given mode",
)


# --- The reference network, built with PyTorch from the plain-data description. -------------


def _torch_layer(layer: tuple) -> torch.nn.Module:
    kind = layer[0]
    if kind == "conv":
        weight = torch.from_numpy(np.asarray(layer[1], dtype=np.float64))
        out_ch, in_ch, kh, kw = weight.shape
        conv = torch.nn.Conv2d(
            in_ch,
            out_ch,
            (kh, kw),
            padding=(kh // 2, kw // 2),
            padding_mode={"circular": "circular", "zero": "zeros"}[layer[2]],
            bias=False,
        ).double()
        with torch.no_grad():
            conv.weight.copy_(weight)
        return conv
    if kind == "relu":
        return torch.nn.ReLU()
    if kind == "maxpool":
        return torch.nn.MaxPool2d(int(layer[1]), int(layer[2]))
    if kind == "avgpool":
        return torch.nn.AvgPool2d(int(layer[1]), int(layer[2]))
    raise ValueError(f"unknown layer type {kind!r}")


def torch_network(layers: tuple) -> torch.nn.Sequential:
    """The network described by ``layers``, as a float64 ``torch.nn.Sequential``."""
    return torch.nn.Sequential(*[_torch_layer(layer) for layer in layers]).eval()


def _network_function(layers: tuple):
    model = torch_network(layers)

    def f(a: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.asarray(a, dtype=np.float64))).numpy()

    return f


def network_stride(layers: tuple) -> int:
    """Product of the pooling strides of ``layers``."""
    return int(np.prod([int(layer[2]) for layer in layers if layer[0] in ("maxpool", "avgpool")]))


def reference_forward(layers: tuple, x: np.ndarray) -> np.ndarray:
    return _network_function(layers)(x)


def reference_error(layers: tuple, x: np.ndarray, dy: int, dx: int, mode: str = "circular"):
    stride = network_stride(layers)
    f = _network_function(layers)
    return reference_equivariance_error(f, np.asarray(x, dtype=float), dy, dx, mode, stride=stride)


def reference_global_average_pool(x: np.ndarray) -> np.ndarray:
    """``AdaptiveAvgPool2d(1)`` of ``x`` (N, C, H, W), flattened to (N, C)."""
    x = torch.from_numpy(np.asarray(x, dtype=np.float64))
    with torch.no_grad():
        return torch.nn.AdaptiveAvgPool2d(1)(x).flatten(1).numpy()


def reference_invariance_error(
    layers: tuple, x: np.ndarray, dy: int, dx: int, mode: str = "circular", pool: bool = True
) -> float:
    """``invariance_error`` of the network, followed by global average pooling if ``pool``."""
    f = _network_function(layers)
    h = (lambda a: reference_global_average_pool(f(a))) if pool else f
    return _invariance_error(h, np.asarray(x, dtype=float), dy, dx, mode)


def prefix_errors(layers: tuple, x: np.ndarray, dy: int, dx: int) -> list[float]:
    """``probe_layers``' error of every prefix of the network, for the circular shift (dy, dx)."""
    reports = probe_layers(torch_network(layers), torch.from_numpy(x), [(dy, dx)])
    return [r.errors[0] for r in reports]


def reference_first_breaking_layer(layers: tuple, x: np.ndarray, dy: int, dx: int) -> int:
    errors = prefix_errors(layers, np.asarray(x, dtype=np.float64), dy, dx)
    return next((k for k, e in enumerate(errors) if e > TOLERANCE), -1)


# --- Inputs. -----------------------------------------------------------------------------


def _conv(rng, in_ch, out_ch, padding, kh=3, kw=3):
    return ("conv", rng.normal(size=(out_ch, in_ch, kh, kw)), padding)


def _shift_case(shape, dy, dx, mode, integers=False):
    def draw(rng):
        x = rng.integers(-9, 10, size=shape) if integers else rng.normal(size=shape)
        return (x, dy, dx, mode)

    return draw


def _worked_network(rng):
    """conv (circular), relu, maxpool 2/2, conv (zero), relu: the notebook's example."""
    return (
        _conv(rng, 1, 4, "circular"),
        ("relu",),
        ("maxpool", 2, 2),
        _conv(rng, 4, 2, "zero"),
        ("relu",),
    )


def _network_case(network, shape, *rest):
    """Draw ``(layers, x, *rest)``: the network first, then the input."""

    def draw(rng):
        layers = network(rng)
        return (layers, rng.normal(size=shape), *rest)

    return draw


def random_network(rng: np.random.Generator, size: int) -> tuple[tuple, np.ndarray, int, int]:
    """A random network (3 to 6 layers), input (1..2, C, size, size) and circular shift.

    Used by the hidden tests of ``first_breaking_layer``: convolutions with either padding and
    kernel sizes 1, 3 or 5, ReLUs, max and average poolings of size 2 or 3 and stride 1 or 2,
    shifts of 0, 1, 2 or 4 pixels.
    """
    channels = int(rng.integers(1, 4))
    x = rng.normal(size=(int(rng.integers(1, 3)), channels, size, size))
    layers = []
    for _ in range(int(rng.integers(3, 7))):
        kind = str(rng.choice(["conv", "conv", "relu", "maxpool", "avgpool"]))
        if kind == "conv":
            out_ch = int(rng.integers(1, 4))
            k = int(rng.choice([1, 3, 5]))
            padding = str(rng.choice(["circular", "circular", "zero"]))
            layers.append(_conv(rng, channels, out_ch, padding, min(k, size), min(k, size)))
            channels = out_ch
        elif kind == "relu":
            layers.append(("relu",))
        else:
            pool, stride = int(rng.choice([2, 2, 3])), int(rng.choice([1, 2, 2]))
            if (size - pool) // stride + 1 >= 3:  # keep the feature map at least 3x3
                layers.append((kind, pool, stride))
                size = (size - pool) // stride + 1
    dy, dx = (int(v) for v in rng.choice([0, 1, 2, 2, 4, 4], size=2))
    return tuple(layers), x, dy, dx


def _random_case(size):
    return lambda rng: random_network(rng, size)


def _random_invariance_case(size):
    """A random network, input and shift whose pooled output is far from zero (a ReLU may zero
    every channel of a small network; the relative change is then 0 / 0)."""

    def draw(rng):
        while True:
            layers, x, dy, dx = random_network(rng, size)
            pooled = reference_global_average_pool(reference_forward(layers, x))
            if np.linalg.norm(pooled) > 1e-2 * np.sqrt(pooled.size):
                return layers, x, dy, dx

    return draw


def _equivariant_network(rng):
    """Circular convolutions, ReLUs and a 2/2 pooling on a size divisible by 2: exact."""
    return (
        _conv(rng, 2, 3, "circular", 3, 5),
        ("relu",),
        ("avgpool", 2, 2),
        _conv(rng, 3, 2, "circular", 1, 1),
        ("maxpool", 2, 2),
    )


TESTS = [
    # shift
    Test(
        "shift_circular_example",
        "shift",
        (np.arange(12).reshape(3, 4), 1, -1, "circular"),
        reference_shift,
        points=1,
        exact=True,
        hint=SHIFT_HINT,
        description="a 3x4 array moved down 1 and left 1, wrapping around",
    ),
    Test(
        "shift_zero_example",
        "shift",
        (np.arange(12).reshape(3, 4), 1, -1, "zero"),
        reference_shift,
        points=1,
        exact=True,
        hint=SHIFT_HINT,
        description="the same shift, with zeros coming in",
    ),
    Test(
        "shift_circular_batch_4d",
        "shift",
        _shift_case((2, 3, 4, 5), 1, -2, "circular", integers=True),
        reference_shift,
        points=1,
        exact=True,
        hint=SHIFT_HINT,
        description="a batch (N, C, H, W) = (2, 3, 4, 5): only the last two axes move",
    ),
    Test(
        "shift_circular_batch_large",
        "shift",
        _shift_case((2, 3, 5, 6), 7, -2, "circular"),
        reference_shift,
        points=1,
        hidden=True,
        exact=True,
        hint=SHIFT_HINT,
    ),
    Test(
        "shift_zero_batch",
        "shift",
        _shift_case((2, 5, 6), -3, 4, "zero", integers=True),
        reference_shift,
        points=1,
        hidden=True,
        exact=True,
        hint=SHIFT_HINT,
    ),
    Test(
        "shift_zero_columns_only",
        "shift",
        _shift_case((4, 7), 0, -5, "zero"),
        reference_shift,
        points=1,
        hidden=True,
        exact=True,
        hint=SHIFT_HINT,
    ),
    # forward
    Test(
        "forward_circular_conv",
        "forward",
        _network_case(lambda rng: (_conv(rng, 1, 2, "circular", 3, 5),), (1, 1, 6, 7)),
        reference_forward,
        points=1,
        hint=FORWARD_HINT,
        description="one 3x5 convolution with circular padding, 1 channel in, 2 out, on 6x7",
    ),
    Test(
        "forward_worked_network",
        "forward",
        _network_case(_worked_network, (2, 1, 8, 8)),
        reference_forward,
        points=2,
        hint=FORWARD_HINT,
        description="the worked example: conv (circular), relu, maxpool 2/2, conv (zero), relu",
    ),
    Test(
        "forward_average_pools",
        "forward",
        _network_case(
            lambda rng: (
                _conv(rng, 2, 3, "zero"),
                ("avgpool", 3, 2),
                ("relu",),
                _conv(rng, 3, 2, "circular", 1, 3),
                ("avgpool", 2, 2),
            ),
            (2, 2, 13, 12),
        ),
        reference_forward,
        points=1,
        hint=FORWARD_HINT,
        description="an overlapping average pool (size 3, stride 2) and a strided one (2/2), "
        "on 13x12: 6x5, then 3x2",
    ),
    Test(
        "forward_overlapping_pools",
        "forward",
        _network_case(
            lambda rng: (
                _conv(rng, 3, 2, "zero", 5, 3),
                ("avgpool", 3, 2),
                ("relu",),
                _conv(rng, 2, 2, "circular", 1, 3),
                ("maxpool", 2, 1),
            ),
            (2, 3, 11, 10),
        ),
        reference_forward,
        points=2,
        hidden=True,
        hint=FORWARD_HINT,
    ),
    # equivariance_error
    Test(
        "error_circular_conv",
        "equivariance_error",
        _network_case(lambda rng: (_conv(rng, 1, 2, "circular"),), (1, 1, 8, 8), 2, -3),
        reference_error,
        points=1,
        uses=("forward", "shift"),
        hint=ERROR_HINT,
        description="a circular convolution: about 1e-16, equivariant",
    ),
    Test(
        "error_zero_padding",
        "equivariance_error",
        _network_case(lambda rng: (_conv(rng, 1, 2, "zero"),), (1, 1, 8, 8), 1, 2),
        reference_error,
        points=1,
        uses=("forward", "shift"),
        hint=ERROR_HINT,
        description="a zero-padded convolution and a circular shift: the border breaks it",
    ),
    Test(
        "error_worked_network_zero_shift",
        "equivariance_error",
        _network_case(_worked_network, (1, 1, 8, 8), 2, 0, "zero"),
        reference_error,
        points=1,
        uses=("forward", "shift"),
        hint=ERROR_HINT,
        description="the worked example, shifted by (2, 0) with zeros coming in (stride 2)",
    ),
    Test(
        "error_strided_exact",
        "equivariance_error",
        _network_case(_equivariant_network, (2, 2, 12, 8), 4, -8),
        reference_error,
        points=1,
        uses=("forward", "shift"),
        hidden=True,
        hint=ERROR_HINT,
    ),
    Test(
        "error_overlapping_pool",
        "equivariance_error",
        _network_case(
            lambda rng: (_conv(rng, 1, 3, "circular"), ("relu",), ("maxpool", 3, 2)),
            (1, 1, 16, 16),
            2,
            2,
        ),
        reference_error,
        points=1,
        uses=("forward", "shift"),
        hidden=True,
        hint=ERROR_HINT,
    ),
    Test(
        "error_zero_mode_conv",
        "equivariance_error",
        _network_case(lambda rng: (_conv(rng, 2, 2, "zero", 5, 5),), (3, 2, 9, 10), -1, 3, "zero"),
        reference_error,
        points=1,
        uses=("forward", "shift"),
        hidden=True,
        hint=ERROR_HINT,
    ),
    # first_breaking_layer
    Test(
        "first_breaking_worked_even_shift",
        "first_breaking_layer",
        _network_case(_worked_network, (1, 1, 8, 8), 2, 0),
        reference_first_breaking_layer,
        points=1,
        uses=("equivariance_error", "forward", "shift"),
        exact=True,
        hint=FIRST_HINT,
        description="the worked example, shift (2, 0): the zero-padded conv breaks it",
    ),
    Test(
        "first_breaking_worked_odd_shift",
        "first_breaking_layer",
        _network_case(_worked_network, (1, 1, 8, 8), 1, 0),
        reference_first_breaking_layer,
        points=1,
        uses=("equivariance_error", "forward", "shift"),
        exact=True,
        hint=FIRST_HINT,
        description="the worked example, shift (1, 0): the stride-2 pooling breaks it",
    ),
    Test(
        "first_breaking_none",
        "first_breaking_layer",
        _network_case(_equivariant_network, (1, 2, 16, 12), 4, 8),
        reference_first_breaking_layer,
        points=1,
        uses=("equivariance_error", "forward", "shift"),
        hidden=True,
        exact=True,
        hint=FIRST_HINT,
    ),
    *[
        Test(
            f"first_breaking_random_{k}",
            "first_breaking_layer",
            _random_case(size),
            reference_first_breaking_layer,
            points=1,
            uses=("equivariance_error", "forward", "shift"),
            hidden=True,
            exact=True,
            hint=FIRST_HINT,
        )
        for k, size in enumerate([8, 12, 12, 16, 16, 16, 24, 24])
    ],
    # global_average_pool
    Test(
        "global_pool_batch",
        "global_average_pool",
        lambda rng: (rng.normal(size=(2, 3, 4, 5)),),
        reference_global_average_pool,
        points=1,
        hint=POOL_HINT,
        description="(N, C, H, W) = (2, 3, 4, 5) gives (2, 3)",
    ),
    Test(
        "global_pool_single_pixel",
        "global_average_pool",
        lambda rng: (rng.normal(size=(3, 2, 1, 1)),),
        reference_global_average_pool,
        points=1,
        hidden=True,
        hint=POOL_HINT,
    ),
    Test(
        "global_pool_integers",
        "global_average_pool",
        lambda rng: (rng.integers(-9, 10, size=(1, 4, 7, 3)),),
        reference_global_average_pool,
        points=1,
        hidden=True,
        hint=POOL_HINT,
    ),
    # invariance_error
    Test(
        "invariance_pooled_circular_conv",
        "invariance_error",
        _network_case(lambda rng: (_conv(rng, 1, 3, "circular"), ("relu",)), (2, 1, 8, 8), 3, -2),
        reference_invariance_error,
        points=1,
        hint=INVARIANCE_HINT,
        uses=("global_average_pool", "forward", "shift"),
        description="circular conv and relu, then global pooling, shift (3, -2): about 1e-16",
    ),
    Test(
        "invariance_feature_map",
        "invariance_error",
        _network_case(lambda rng: (_conv(rng, 1, 3, "circular"), ("relu",)), (2, 1, 8, 8), 3, -2),
        reference_invariance_error,
        kwargs={"pool": False},
        points=1,
        hint=INVARIANCE_HINT,
        uses=("forward", "shift"),
        description="the same network without pooling: its feature map moves, far from invariant",
    ),
    Test(
        "invariance_pooled_odd_shift",
        "invariance_error",
        _network_case(_worked_network, (1, 1, 8, 8), 1, 0),
        reference_invariance_error,
        points=1,
        hint=INVARIANCE_HINT,
        uses=("global_average_pool", "forward", "shift"),
        description="the worked example (max pool 2/2) then global pooling, shift (1, 0): "
        "the pooled vector changes",
    ),
    Test(
        "invariance_pooled_average_odd_shift",
        "invariance_error",
        _network_case(
            lambda rng: (_conv(rng, 2, 3, "circular"), ("relu",), ("avgpool", 2, 2)),
            (2, 2, 8, 12),
            1,
            -3,
        ),
        reference_invariance_error,
        points=1,
        hidden=True,
        hint=INVARIANCE_HINT,
        uses=("global_average_pool", "forward", "shift"),
    ),
    Test(
        "invariance_pooled_zero_padding",
        "invariance_error",
        _network_case(lambda rng: (_conv(rng, 2, 2, "zero", 5, 3), ("relu",)), (1, 2, 9, 9), 2, 4),
        reference_invariance_error,
        points=1,
        hidden=True,
        hint=INVARIANCE_HINT,
        uses=("global_average_pool", "forward", "shift"),
    ),
    Test(
        "invariance_pooled_zero_mode",
        "invariance_error",
        _network_case(_equivariant_network, (2, 2, 12, 8), 4, 0, "zero"),
        reference_invariance_error,
        points=1,
        hidden=True,
        hint=INVARIANCE_HINT,
        uses=("global_average_pool", "forward", "shift"),
    ),
    *[
        Test(
            f"invariance_random_{k}",
            "invariance_error",
            _random_invariance_case(size),
            reference_invariance_error,
            kwargs={"pool": pool},
            points=1,
            hidden=True,
            hint=INVARIANCE_HINT,
            uses=("global_average_pool", "forward", "shift"),
        )
        for k, (size, pool) in enumerate([(12, True), (16, True), (16, False)])
    ],
]
