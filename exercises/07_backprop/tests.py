"""Graded tests of exercise 07, backpropagation through convolution and max pooling.

Imported by the grading process only. Every expected gradient is computed here with
``torch.autograd`` on ``torch.nn.functional.conv2d`` and ``max_pool2d`` in float64, except the
two numerical-gradient tests, whose references are central differences of the forward pass (the
same check that the notebook shows the student). The worker that runs a submission receives the
inputs and nothing else; PyTorch, SciPy's filters and every cnnlab implementation are switched
off there.

``conv2d_backward`` returns three arrays, and a graded answer is one array, so the tests call
the locked helpers ``conv2d_grad_x``, ``conv2d_grad_weight`` and ``conv2d_grad_bias`` of the
notebook, each of which returns one of the three.
"""

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.exercises.spec import Test

# Library shortcuts replaced by raising stubs inside the grading worker.
FORBIDDEN = [
    "numpy.convolve",
    "numpy.correlate",
]

# Whole modules that cannot be imported inside the grading worker: PyTorch (its autograd, its
# convolutions, fold/unfold and unpooling would all do the work), SciPy's filters, and every
# cnnlab module that implements a convolution, a pooling or their gradients.
FORBIDDEN_MODULES = [
    "torch",
    "scipy.signal",
    "scipy.ndimage",
    "cnnlab.numpy",
    "cnnlab.torch",
    "cnnlab.viz",
    "cnnlab.shapes",
    "cnnlab._checks",
]

# Each hint: a nudge (what to look at), shown on a failure; the full formula, shown by
# check(name, function, hint=2).
CONV_X_HINT = (
    "each input pixel received contributions from every output pixel whose window covered it: "
    "send each output gradient back through the weights to the window it came from, and mind "
    "the stride, the overlaps and the padding",
    "dL/dx_p[n, c, i*sh + m, j*sw + l] += g[n, o, i, j] * w[o, c, m, l] for every output pixel "
    "(i, j) and tap (m, l); add (do not overwrite) where windows overlap, then crop the padding",
)
CONV_W_HINT = (
    "each weight tap met one input pixel per output pixel and image: which input pixel did tap "
    "(m, l) meet for output (i, j), with the stride and the padding?",
    "dL/dw[o, c, m, l] = sum over n, i, j of g[n, o, i, j] * x_p[n, c, i*sh + m, j*sw + l]: "
    "the input that tap (m, l) met, weighted by the output gradient",
)
CONV_B_HINT = (
    "the bias of channel o is added to every output value of that channel, in every image",
    "dL/db[o] = sum of g[n, o, i, j] over the batch and every output pixel",
)
POOL_HINT = (
    "only one input pixel of each window moved its output: which one, when several tie, and "
    "what happens where windows overlap?",
    "each window sends all of its gradient to the pixel that won its maximum (the first one in "
    "row-major order when several tie) and nothing to the others; overlapping windows add up",
)


def _pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def _conv_out(size, kernel, stride, padding):
    return tuple(
        (i + 2 * p - k) // s + 1 for i, k, s, p in zip(size, kernel, stride, padding, strict=True)
    )


def conv_gradients(grad_output, x, weight, stride=1, padding=0):
    """(dL/dx, dL/dw, dL/db) for L = sum(grad_output * F.conv2d(x, weight, b, ...)), by autograd."""
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    wt = torch.tensor(np.asarray(weight, dtype=np.float64), requires_grad=True)
    bt = torch.zeros(wt.shape[0], dtype=torch.float64, requires_grad=True)
    y = F.conv2d(xt, wt, bt, stride=_pair(stride), padding=_pair(padding))
    y.backward(torch.tensor(np.asarray(grad_output, dtype=np.float64)))
    return xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def reference_grad_x(*args, **kwargs):
    return conv_gradients(*args, **kwargs)[0]


def reference_grad_weight(*args, **kwargs):
    return conv_gradients(*args, **kwargs)[1]


def reference_grad_bias(*args, **kwargs):
    return conv_gradients(*args, **kwargs)[2]


def reference_max_pool_grad(grad_output, x, kernel_size, stride=None, padding=0):
    """dL/dx for L = sum(grad_output * F.max_pool2d(x, ...)), by autograd."""
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    stride = None if stride is None else _pair(stride)
    y = F.max_pool2d(xt, _pair(kernel_size), stride, _pair(padding))
    y.backward(torch.tensor(np.asarray(grad_output, dtype=np.float64)))
    return xt.grad.numpy()


def numerical_gradient(f, x, grad_output, h=1e-5):
    """dL/dx for L = sum(grad_output * f(x)), by central differences, one element at a time."""
    x = np.array(x, dtype=float)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + h
        plus = np.sum(grad_output * f(x))
        x[index] = saved - h
        minus = np.sum(grad_output * f(x))
        x[index] = saved
        grad[index] = (plus - minus) / (2 * h)
    return grad


def numerical_grad_x(grad_output, x, weight, stride=1, padding=0):
    w = torch.tensor(np.asarray(weight, dtype=np.float64))

    def forward(v):
        return F.conv2d(torch.tensor(v), w, stride=_pair(stride), padding=_pair(padding)).numpy()

    return numerical_gradient(forward, x, grad_output)


def numerical_max_pool_grad(grad_output, x, kernel_size, stride=None, padding=0):
    stride = None if stride is None else _pair(stride)

    def forward(v):
        return F.max_pool2d(torch.tensor(v), _pair(kernel_size), stride, _pair(padding)).numpy()

    return numerical_gradient(forward, x, grad_output)


#: The worked example of the notebook: three of its four 2x2 windows have tied maxima.
WORKED_EXAMPLE = np.array(
    [
        [
            [
                [1.0, 5.0, 2.0, 0.0],
                [3.0, 4.0, 7.0, 7.0],
                [0.0, 2.0, 1.0, 1.0],
                [2.0, 0.0, 1.0, 1.0],
            ]
        ]
    ]
)


def conv_case(n, c, h, w, o, kh, kw, stride=1, padding=0):
    """Inputs (grad_output, x, weight) of a layer, drawn from the test's generator."""

    def draw(rng):
        size = _conv_out((h, w), (kh, kw), _pair(stride), _pair(padding))
        x = rng.normal(size=(n, c, h, w))
        weight = rng.normal(size=(o, c, kh, kw))
        return (rng.normal(size=(n, o, *size)), x, weight)

    return draw


def pool_case(n, c, h, w, kernel_size, stride=None, padding=0, ties=False):
    """Inputs (grad_output, x, kernel_size) of a max-pooling layer; with ties, x holds few
    distinct integers, so many windows have tied maxima."""

    def draw(rng):
        k = _pair(kernel_size)
        size = _conv_out((h, w), k, k if stride is None else _pair(stride), _pair(padding))
        if ties:
            x = rng.integers(0, 3, size=(n, c, h, w)).astype(float)
        else:
            x = rng.normal(size=(n, c, h, w))
        return (rng.normal(size=(n, c, *size)), x, kernel_size)

    return draw


def _conv_tests(name, case, kwargs, points, hidden, functions=("x", "weight", "bias"), **extra):
    tests = []
    refs = {"x": reference_grad_x, "weight": reference_grad_weight, "bias": reference_grad_bias}
    hints = {"x": CONV_X_HINT, "weight": CONV_W_HINT, "bias": CONV_B_HINT}
    for which in functions:
        tests.append(
            Test(
                f"conv2d_grad_{which}_{name}",
                f"conv2d_grad_{which}",
                case,
                refs[which],
                kwargs=kwargs,
                points=points[which],
                hidden=hidden,
                hint=hints[which],
                **extra,
            )
        )
    return tests


TESTS = [
    # --- visible: conv2d_backward -------------------------------------------------------------
    *_conv_tests(
        "single_channel",
        conv_case(1, 1, 5, 5, 1, 3, 3),
        {},
        {"x": 1, "weight": 1, "bias": 1},
        hidden=False,
        description="one 5x5 image, one 3x3 filter, stride 1, no padding",
    ),
    Test(
        "conv2d_grad_x_numerical",
        "conv2d_grad_x",
        conv_case(2, 3, 6, 5, 4, 3, 3, stride=2, padding=1),
        numerical_grad_x,
        kwargs={"stride": 2, "padding": 1},
        points=1,
        rtol=1e-5,
        atol=1e-6,
        hint=CONV_X_HINT,
        description="the input gradient against central differences of the forward pass",
    ),
    *_conv_tests(
        "stride_padding",
        conv_case(2, 3, 6, 5, 4, 3, 3, stride=2, padding=1),
        {"stride": 2, "padding": 1},
        {"x": 1, "weight": 1, "bias": 1},
        hidden=False,
        description="2 images, 3 channels in, 4 out, stride 2, padding 1",
    ),
    # --- hidden: conv2d_backward --------------------------------------------------------------
    *_conv_tests(
        "stride_padding_pairs",
        conv_case(2, 3, 9, 8, 5, 3, 2, stride=(2, 1), padding=(1, 2)),
        {"stride": (2, 1), "padding": (1, 2)},
        {"x": 2, "weight": 2, "bias": 1},
        hidden=True,
    ),
    *_conv_tests(
        "rows_never_read",
        conv_case(1, 2, 10, 11, 3, 3, 4, stride=3),
        {"stride": 3},
        {"x": 2, "weight": 1},
        hidden=True,
        functions=("x", "weight"),
    ),
    *_conv_tests(
        "kernel_fills_padded_input",
        conv_case(2, 2, 4, 3, 3, 6, 5, padding=1),
        {"padding": 1},
        {"x": 1, "weight": 1},
        hidden=True,
        functions=("x", "weight"),
    ),
    *_conv_tests(
        "medium_layer",
        conv_case(2, 8, 32, 32, 8, 3, 3, padding=1),
        {"padding": 1},
        {"x": 1, "weight": 1},
        hidden=True,
        functions=("x", "weight"),
        time_limit=5.0,
    ),
    *_conv_tests(
        "vectorised_large_layer",
        conv_case(4, 1, 512, 512, 2, 3, 3, padding=1),
        {"padding": 1},
        {"x": 2, "weight": 2},
        hidden=True,
        functions=("x", "weight"),
        rtol=1e-6,
        atol=1e-6,
        time_limit=4.0,
    ),
    # --- visible: max_pool2d_backward ---------------------------------------------------------
    Test(
        "max_pool_worked_example",
        "max_pool2d_backward",
        (np.ones((1, 1, 2, 2)), WORKED_EXAMPLE, 2),
        reference_max_pool_grad,
        points=1,
        hint=POOL_HINT,
        description="2x2 windows on a 4x4 input, three of them with tied maxima",
    ),
    Test(
        "max_pool_2x2",
        "max_pool2d_backward",
        pool_case(2, 3, 6, 8, 2),
        reference_max_pool_grad,
        points=1,
        hint=POOL_HINT,
        description="2x2 windows, stride 2, on random values",
    ),
    Test(
        "max_pool_numerical",
        "max_pool2d_backward",
        pool_case(1, 2, 7, 7, 3, stride=2),
        numerical_max_pool_grad,
        kwargs={"stride": 2},
        points=1,
        rtol=1e-5,
        atol=1e-6,
        hint=POOL_HINT,
        description="overlapping 3x3 windows, stride 2, against central differences",
    ),
    # --- hidden: max_pool2d_backward ----------------------------------------------------------
    Test(
        "max_pool_overlapping_ties",
        "max_pool2d_backward",
        pool_case(2, 3, 9, 9, 3, stride=2, padding=1, ties=True),
        reference_max_pool_grad,
        kwargs={"stride": 2, "padding": 1},
        points=2,
        hidden=True,
        hint=POOL_HINT,
    ),
    Test(
        "max_pool_stride_one_ties",
        "max_pool2d_backward",
        pool_case(1, 2, 6, 7, 2, stride=1, ties=True),
        reference_max_pool_grad,
        kwargs={"stride": 1},
        points=2,
        hidden=True,
        hint=POOL_HINT,
    ),
    Test(
        "max_pool_pairs_with_padding",
        "max_pool2d_backward",
        pool_case(2, 2, 8, 9, (3, 2), stride=(2, 1), padding=(1, 1)),
        reference_max_pool_grad,
        kwargs={"stride": (2, 1), "padding": (1, 1)},
        points=1,
        hidden=True,
        hint=POOL_HINT,
    ),
    Test(
        "max_pool_default_stride_leftover",
        "max_pool2d_backward",
        pool_case(1, 3, 7, 11, (2, 3)),
        reference_max_pool_grad,
        points=1,
        hidden=True,
        hint=POOL_HINT,
    ),
    Test(
        "max_pool_negative_values_with_padding",
        "max_pool2d_backward",
        lambda rng: (rng.normal(size=(1, 2, 4, 4)), -1.0 - rng.random((1, 2, 7, 7)), 3),
        reference_max_pool_grad,
        kwargs={"stride": 2, "padding": 1},
        points=1,
        hidden=True,
        hint=(
            POOL_HINT[0] + " Can the padding win the maximum?",
            POOL_HINT[1] + "; pad with -inf, not 0: padding must never win the maximum",
        ),
    ),
]
