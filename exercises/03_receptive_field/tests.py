"""Graded tests of exercise 03, receptive fields (chapter 3).

Imported by the grading process only. A layer is the plain tuple ``(kernel_size, stride,
padding, dilation)`` of ints, a chain a tuple of layers, a residual block a pair ``(main,
shortcut)`` of chains. Expected answers come from ``cnnlab.receptive_field``: the closed form
(``receptive_field``, ``receptive_field_steps``, ``ReceptiveField.interval``) for chains, and
for residual blocks and networks ``receptive_field_of``, which traces a PyTorch module built
from the description with ``torch.fx`` and takes the union of the paths where they are added.
The effective receptive field (``|d out_centre / d input|``) is computed by
``cnnlab.receptive_field.effective_receptive_field`` on a PyTorch module that this file builds
from the network's plain-data description, on the same input images. The worker that runs a
submission receives the inputs and nothing else.

The effective kernel size ``d (k - 1) + 1`` is graded in exercise 02; here the notebook gives it
as locked code. Each hint has two levels: a nudge (what to look at), shown on a failure, and the
full formula, shown by ``check(name, function, hint=2)``. The residual tests name
``receptive_field`` in ``uses``: when it fails its own tests, their feedback says to fix it
first.
"""

import numpy as np

from cnnlab.exercises.spec import Test
from cnnlab.receptive_field import Layer, receptive_field_of, vgg16_layers
from cnnlab.receptive_field import effective_receptive_field as reference_erf
from cnnlab.receptive_field import receptive_field as reference_field
from cnnlab.receptive_field import receptive_field_steps as reference_steps

# Library shortcuts replaced by raising stubs inside the grading worker.
FORBIDDEN = [
    "cnnlab.receptive_field.receptive_field",
    "cnnlab.receptive_field.receptive_field_steps",
    "cnnlab.receptive_field.receptive_field_of",
    "cnnlab.receptive_field.effective_receptive_field",
    "cnnlab.receptive_field.ReceptiveField",
    "cnnlab.receptive_field.Layer",
    "cnnlab.receptive_field.closed_form.receptive_field",
    "cnnlab.receptive_field.closed_form.receptive_field_steps",
    "cnnlab.receptive_field.closed_form.step",
    "cnnlab.receptive_field.closed_form.ReceptiveField",
    "cnnlab.receptive_field.closed_form.Layer",
    "cnnlab.receptive_field.tracing.receptive_field_of",
    "cnnlab.receptive_field.effective.effective_receptive_field",
    "cnnlab.shapes.effective_kernel_size",
    "cnnlab.geometry.Window",  # Window.span is the effective kernel size
]

STEPS_HINT = (
    "follow the chain from the input one layer at a time, keeping (r, J, P): a layer's taps and "
    "its padding are counted in units of its own input; which jump, before or after its own "
    "stride, turns them into input pixels? Its taps span effective_kernel(k, d) units",
    "start from r = 1, J = 1, P = 0; layer l adds (k'_l - 1) J and p_l J using the jump J of "
    "the layers BEFORE it, then multiplies J by its own stride s_l; k' = d (k - 1) + 1",
)
FIELD_HINT = (
    "the answer is the last row of the recurrence of section 1: check the jump each layer's "
    "kernel and padding are multiplied by, the span of a dilated kernel, and the empty chain",
    "r = 1 + sum_l (k'_l - 1) J_l, S = prod_l s_l, P = sum_l p_l J_l with J_l the product of "
    "the strides of the layers before layer l (J_1 = 1) and k' = d (k - 1) + 1; an empty "
    "chain is (1, 1, 0)",
)
INTERVAL_HINT = (
    "where does unit 0 start (the padding lies before input pixel 0), and how many input "
    "pixels further does each next output unit start?",
    "output unit u sees input pixels u S - P to u S - P + r - 1, both included",
)
BLOCK_HINT = (
    "the block adds its two branches, so a unit depends on every pixel either branch sees: "
    "compute each branch's field with receptive_field; an empty shortcut is the identity",
    "the block's output adds the two branches, so a unit sees the union of both fields; "
    "aligned branches share S and the centre, so the union is the larger field (largest r "
    "and largest P); an empty shortcut is the identity (1, 1, 0)",
)
NETWORK_HINT = (
    "seen from its input, a whole block acts like one layer: which kernel size, stride, "
    "padding and dilation would that layer have?",
    "a block behaves like one layer with kernel r_b, stride S_b, padding P_b and dilation 1: "
    "compose the stem's layers and the blocks with the same recurrence as a chain",
)
ERF_HINT = (
    "one forward pass on a tensor that requires gradients; the unit is the centre (H_out // 2, "
    "W_out // 2) of the output; check where the absolute value is taken and what you sum "
    "(input channels) and average (images)",
    "x = torch.tensor(inputs, requires_grad=True); y = build_network(network)(x); "
    "y[:, :, H_out // 2, W_out // 2].sum().backward(); return "
    "x.grad.abs().sum(dim=1).mean(dim=0).numpy(): |gradient| of each input channel, summed "
    "over channels, averaged over the images",
)

# --------------------------------------------------------------------------------------------
# References (grading process only)
# --------------------------------------------------------------------------------------------


def _layers(chain):
    return [Layer(int(k), int(s), int(p), int(d)) for k, s, p, d in chain]


def field_reference(layers):
    """(r, S, P) of a chain, by cnnlab's closed form."""
    return tuple(reference_field(_layers(layers)))


def steps_reference(layers):
    """Rows (r_l, J_l, P_l), one per layer, by cnnlab's recurrence."""
    return np.array([tuple(rf) for rf in reference_steps(_layers(layers))])


def interval_reference(layers, u):
    """(start, end) of the input pixels output unit u sees."""
    interval = reference_field(_layers(layers)).interval(int(u))
    return (interval.start, interval.end)


def _module(stem, blocks):
    import torch.nn as nn

    def convs(chain):
        layers = [tuple(int(v) for v in layer) for layer in chain]
        return nn.Sequential(*(nn.Conv2d(1, 1, k, s, p, d) for k, s, p, d in layers))

    class Block(nn.Module):
        def __init__(self, main, shortcut):
            super().__init__()
            self.main, self.shortcut = convs(main), convs(shortcut)

        def forward(self, x):
            return self.main(x) + self.shortcut(x)

    return nn.Sequential(convs(stem), *(Block(main, shortcut) for main, shortcut in blocks))


def _traced(stem, blocks):
    rf = receptive_field_of(_module(stem, blocks), 256)
    return tuple(rf)


def block_reference(main, shortcut):
    """(r, S, P) of one residual block, traced through a PyTorch module."""
    return _traced((), ((main, shortcut),))


def network_reference(stem, blocks):
    """(r, S, P) of a stem followed by residual blocks, traced through a PyTorch module."""
    return _traced(stem, blocks)


def erf_module(network):
    """The float64 PyTorch module a network description stands for.

    A description is a tuple of layers: ``("conv", weight (O, C, k, k), stride, padding,
    dilation)`` (no bias), ``("relu",)``, ``("maxpool", k, s, p)`` or ``("avgpool", k, s, p)``
    (``torch.nn.MaxPool2d`` and ``AvgPool2d`` with their defaults otherwise).
    """
    import torch
    import torch.nn as nn

    modules = []
    for kind, *params in network:
        if kind == "conv":
            weight, stride, padding, dilation = params
            weight = torch.as_tensor(np.asarray(weight, dtype=np.float64))
            conv = nn.Conv2d(
                weight.shape[1],
                weight.shape[0],
                tuple(weight.shape[2:]),
                stride=int(stride),
                padding=int(padding),
                dilation=int(dilation),
                bias=False,
                dtype=torch.float64,
            )
            with torch.no_grad():
                conv.weight.copy_(weight)
            modules.append(conv)
        elif kind == "relu":
            modules.append(nn.ReLU())
        elif kind == "maxpool":
            modules.append(nn.MaxPool2d(*(int(v) for v in params)))
        elif kind == "avgpool":
            modules.append(nn.AvgPool2d(*(int(v) for v in params)))
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
    return nn.Sequential(*modules)


def erf_reference(network, inputs):
    """|d out_centre / d input| on these images, by cnnlab's effective_receptive_field."""
    import torch

    x = torch.from_numpy(np.asarray(inputs, dtype=np.float64))
    return reference_erf(erf_module(network), tuple(x.shape[-2:]), inputs=x)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _random_chain(length, max_kernel=7, max_stride=3, max_padding=3, max_dilation=3):
    def draw(rng):
        chain = tuple(
            (
                int(rng.integers(1, max_kernel + 1)),
                int(rng.integers(1, max_stride + 1)),
                int(rng.integers(0, max_padding + 1)),
                int(rng.integers(1, max_dilation + 1)),
            )
            for _ in range(length)
        )
        return (chain,)

    return draw


def _random_interval(length):
    chain = _random_chain(length)

    def draw(rng):
        (layers,) = chain(rng)
        return (layers, int(rng.integers(0, 50)))

    return draw


def _same(rng, stride=1, kernels=(1, 3, 5), dilations=(1, 2, 3)):
    """A layer that keeps a centred grid: odd kernel, padding d (k - 1) / 2."""
    k, d = int(rng.choice(kernels)), int(rng.choice(dilations))
    return (k, stride, d * (k - 1) // 2, d)


def _random_block(rng):
    stride = int(rng.choice((1, 2)))
    main = [_same(rng) for _ in range(int(rng.integers(1, 4)))]
    main[int(rng.integers(len(main)))] = _same(rng, stride)
    if stride == 1 and rng.random() < 0.5:
        shortcut = ()  # identity
    else:
        shortcut = (_same(rng, stride, kernels=(1, 3), dilations=(1,)),)
    return (tuple(main), shortcut)


def _random_network(n_blocks):
    def draw(rng):
        stem = tuple(
            _same(rng, int(rng.choice((1, 2))), kernels=(3, 5, 7), dilations=(1,))
            for _ in range(int(rng.integers(1, 3)))
        )
        return (stem, tuple(_random_block(rng) for _ in range(n_blocks)))

    return draw


def _conv(rng, c_in, c_out, k, stride=1, padding=0, dilation=1):
    weight = rng.normal(size=(c_out, c_in, k, k))
    return ("conv", weight, stride, padding, dilation)


def _erf_case(layers_of, batch, channels, height, width):
    """Inputs ``(network, images)``: the network drawn by ``layers_of(rng)``, normal images.

    Drawn again until the field has at least 9 nonzero pixels (ReLUs that are off at the
    centre unit for every image would leave a field of zeros, which any answer of zeros passes).
    """

    def draw(rng):
        while True:
            network = tuple(layers_of(rng))
            images = rng.normal(size=(batch, channels, height, width))
            if np.count_nonzero(erf_reference(network, images)) >= 9:
                return (network, images)

    return draw


def _two_convs(rng):
    # Linear: a 3x3 convolution to 2 channels, then a 3x3 of dilation 2 back to 1 (9 -> 3).
    return (_conv(rng, 1, 2, 3), _conv(rng, 2, 1, 3, dilation=2))


def _relu_pool_even(rng):
    # 2 channels in, ReLU and a 2x2 max pool: the output is 6 x 5, an even height.
    return (
        _conv(rng, 2, 3, 3, padding=1),
        ("relu",),
        ("maxpool", 2, 2, 0),
        _conv(rng, 3, 2, 3, padding=1),
    )


def _strided_dilated(rng):
    # Linear again: stride 2, then dilation 3, then an overlapping average pool with padding.
    return (
        _conv(rng, 1, 2, 3, stride=2, padding=1),
        _conv(rng, 2, 2, 3, padding=3, dilation=3),
        ("avgpool", 3, 1, 1),
    )


def _out_size(size, k, s, p, d=1):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _random_erf_network(depth):
    """``depth`` blocks of conv (random k, stride, dilation, padding), ReLU, sometimes a pool,
    on 3 channels of 24 x 22 pixels, then a linear 3x3 convolution to 2 channels; the output
    is at least 2 pixels on each axis."""

    def layers_of(rng):
        while True:
            layers, channels, size = [], 3, (24, 22)
            for _ in range(depth):
                k, d = int(rng.choice((1, 3, 5))), int(rng.integers(1, 4))
                s, p = int(rng.choice((1, 1, 2))), int(rng.integers(0, d * (k - 1) // 2 + 1))
                out = int(rng.integers(1, 4))
                layers += [_conv(rng, channels, out, k, s, p, d), ("relu",)]
                size = tuple(_out_size(n, k, s, p, d) for n in size)
                channels = out
                if rng.random() < 0.5:
                    pk = int(rng.integers(2, 4))
                    ps, pp = int(rng.integers(1, pk + 1)), int(rng.integers(0, pk // 2 + 1))
                    layers.append((str(rng.choice(("maxpool", "avgpool"))), pk, ps, pp))
                    size = tuple(_out_size(n, pk, ps, pp) for n in size)
            layers.append(_conv(rng, channels, 2, 3, padding=1))
            if min(size) >= 2:
                return layers

    return layers_of


VGG16 = tuple((layer.kernel_size, layer.stride, layer.padding, layer.dilation)
              for layer in vgg16_layers())  # fmt: skip

# A ResNet-18-like network at small scale: stem conv 7 / 2 and max-pool 3 / 2, then basic
# blocks (two 3x3 convolutions), the first of a stage downsampling with a 1x1 / 2 shortcut.
BASIC = ((3, 1, 1, 1), (3, 1, 1, 1))
DOWN = ((3, 2, 1, 1), (3, 1, 1, 1))
SMALL_RESNET_STEM = ((7, 2, 3, 1), (3, 2, 1, 1))
SMALL_RESNET_BLOCKS = ((BASIC, ()), (BASIC, ()), (DOWN, ((1, 2, 0, 1),)), (BASIC, ()))


TESTS = [
    Test(
        "steps_chapter_chain",
        "receptive_field_steps",
        (((3, 1, 0, 1), (2, 2, 0, 1), (3, 1, 0, 1)),),
        steps_reference,
        points=2,
        exact=True,
        hint=STEPS_HINT,
        description="conv 3, pool 2 / 2, conv 3: fields 3, 4, 8",
    ),
    Test(
        "steps_padding_after_stride",
        "receptive_field_steps",
        (((3, 2, 1, 1), (3, 1, 3, 3), (2, 2, 0, 1), (3, 1, 1, 1)),),
        steps_reference,
        points=2,
        exact=True,
        hint=STEPS_HINT,
        description="stride 2, then padding 3 with dilation 3, a pool 2 / 2 and padding 1: "
        "P counts each padding in pixels of the input",
    ),
    Test(
        "steps_random_chain",
        "receptive_field_steps",
        _random_chain(6),
        steps_reference,
        points=2,
        hidden=True,
        exact=True,
        hint=STEPS_HINT,
    ),
    Test(
        "field_strided_then_dilated",
        "receptive_field",
        (((3, 2, 1, 1), (3, 1, 2, 2)),),
        field_reference,
        points=1,
        exact=True,
        hint=FIELD_HINT,
        description="conv 3 / 2 pad 1, then conv 3 dilation 2 pad 2: (11, 2, 5)",
    ),
    Test(
        "field_random_chain",
        "receptive_field",
        _random_chain(4),
        field_reference,
        points=2,
        exact=True,
        hint=FIELD_HINT,
        description="a random chain of 4 layers",
    ),
    Test(
        "field_random_long_chain",
        "receptive_field",
        _random_chain(9),
        field_reference,
        points=2,
        hidden=True,
        exact=True,
        hint=FIELD_HINT,
    ),
    Test(
        "field_random_dilated_chain",
        "receptive_field",
        _random_chain(5, max_stride=1, max_dilation=8),
        field_reference,
        points=1,
        hidden=True,
        exact=True,
        hint=FIELD_HINT,
    ),
    Test(
        "field_vgg16",
        "receptive_field",
        (VGG16,),
        field_reference,
        points=1,
        hidden=True,
        exact=True,
        hint=FIELD_HINT,
    ),
    Test(
        "field_empty_chain",
        "receptive_field",
        ((),),
        field_reference,
        points=1,
        hidden=True,
        exact=True,
        hint=FIELD_HINT,
    ),
    Test(
        "interval_first_unit",
        "input_interval",
        (((3, 1, 1, 1), (2, 2, 0, 1)), 0),
        interval_reference,
        points=1,
        exact=True,
        hint=INTERVAL_HINT,
        description="conv 3 pad 1, pool 2 / 2: unit 0 sees pixels -1 to 2 (-1 is padding)",
    ),
    Test(
        "interval_random_chain",
        "input_interval",
        _random_interval(5),
        interval_reference,
        points=2,
        hidden=True,
        exact=True,
        hint=INTERVAL_HINT,
    ),
    Test(
        "interval_random_short_chain",
        "input_interval",
        _random_interval(2),
        interval_reference,
        points=1,
        hidden=True,
        exact=True,
        hint=INTERVAL_HINT,
    ),
    Test(
        "block_downsampling",
        "residual_block_field",
        (DOWN, ((1, 2, 0, 1),)),
        block_reference,
        points=1,
        exact=True,
        uses=("receptive_field",),
        hint=BLOCK_HINT,
        description="two 3x3 convolutions, the first of stride 2, beside a 1x1 / 2 shortcut",
    ),
    Test(
        "block_identity_shortcut",
        "residual_block_field",
        (((1, 1, 0, 1), (3, 1, 2, 2), (1, 1, 0, 1)), ()),
        block_reference,
        points=1,
        hidden=True,
        exact=True,
        uses=("receptive_field",),
        hint=BLOCK_HINT,
    ),
    Test(
        "block_shortcut_is_larger",
        "residual_block_field",
        (((1, 2, 0, 1), (1, 1, 0, 1)), ((5, 2, 2, 1),)),
        block_reference,
        points=1,
        hidden=True,
        exact=True,
        uses=("receptive_field",),
        hint=BLOCK_HINT,
    ),
    Test(
        "network_small_resnet",
        "residual_network_field",
        (SMALL_RESNET_STEM, SMALL_RESNET_BLOCKS),
        network_reference,
        points=2,
        exact=True,
        uses=("receptive_field",),
        hint=NETWORK_HINT,
        description="stem 7 / 2 and pool 3 / 2, then four basic blocks, one downsampling",
    ),
    Test(
        "network_random_3_blocks",
        "residual_network_field",
        _random_network(3),
        network_reference,
        points=2,
        hidden=True,
        exact=True,
        uses=("receptive_field",),
        hint=NETWORK_HINT,
    ),
    Test(
        "network_random_5_blocks",
        "residual_network_field",
        _random_network(5),
        network_reference,
        points=2,
        hidden=True,
        exact=True,
        uses=("receptive_field",),
        hint=NETWORK_HINT,
    ),
    Test(
        "erf_two_convs",
        "effective_receptive_field",
        _erf_case(_two_convs, 2, 1, 9, 9),
        erf_reference,
        points=1,
        rtol=1e-6,
        atol=1e-10,
        hint=ERF_HINT,
        description="two linear convolutions, signed weights, two images of 9 x 9",
    ),
    Test(
        "erf_relu_pool_even_output",
        "effective_receptive_field",
        _erf_case(_relu_pool_even, 3, 2, 12, 10),
        erf_reference,
        points=2,
        rtol=1e-6,
        atol=1e-10,
        hint=ERF_HINT,
        description="ReLU and max pool, 2 channels in and out, three 12 x 10 images; the "
        "output is 6 x 5, so its centre is unit (3, 2)",
    ),
    Test(
        "erf_strided_dilated_avgpool",
        "effective_receptive_field",
        _erf_case(_strided_dilated, 2, 1, 17, 15),
        erf_reference,
        points=1,
        hidden=True,
        rtol=1e-6,
        atol=1e-10,
        hint=ERF_HINT,
    ),
    Test(
        "erf_random_network_3",
        "effective_receptive_field",
        _erf_case(_random_erf_network(3), 4, 3, 24, 22),
        erf_reference,
        points=2,
        hidden=True,
        rtol=1e-6,
        atol=1e-10,
        hint=ERF_HINT,
    ),
    Test(
        "erf_random_network_5",
        "effective_receptive_field",
        _erf_case(_random_erf_network(5), 2, 3, 24, 22),
        erf_reference,
        points=2,
        hidden=True,
        rtol=1e-6,
        atol=1e-10,
        hint=ERF_HINT,
    ),
]
