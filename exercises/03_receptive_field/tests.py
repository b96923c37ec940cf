"""Graded tests of exercise 03, receptive fields (chapter 3).

Imported by the grading process only. A layer is the plain tuple ``(kernel_size, stride,
padding, dilation)`` of ints, a chain a tuple of layers, a residual block a pair ``(main,
shortcut)`` of chains. Expected answers come from ``cnnlab.receptive_field``: the closed form
(``receptive_field``, ``receptive_field_steps``, ``ReceptiveField.interval``) for chains, and
for residual blocks and networks ``receptive_field_of``, which traces a PyTorch module built
from the description with ``torch.fx`` and takes the union of the paths where they are added.
The worker that runs a submission receives the inputs and nothing else.
"""

import numpy as np

from cnnlab.exercises.spec import Test
from cnnlab.receptive_field import Layer, receptive_field_of, vgg16_layers
from cnnlab.receptive_field import receptive_field as reference_field
from cnnlab.receptive_field import receptive_field_steps as reference_steps
from cnnlab.shapes import effective_kernel_size

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

DILATION_HINT = "a kernel of k taps with d - 1 gaps between neighbouring taps spans d (k - 1) + 1"
STEPS_HINT = (
    "start from r = 1, J = 1, P = 0; layer l adds (k'_l - 1) J and p_l J using the jump J of "
    "the layers BEFORE it, then multiplies J by its own stride s_l; k' = d (k - 1) + 1"
)
FIELD_HINT = (
    "r = 1 + sum_l (k'_l - 1) J_l, S = prod_l s_l, P = sum_l p_l J_l with J_l the product of "
    "the strides of the layers before layer l (J_1 = 1) and k' = d (k - 1) + 1; an empty "
    "chain is (1, 1, 0)"
)
INTERVAL_HINT = "output unit u sees input pixels u S - P to u S - P + r - 1, both included"
BLOCK_HINT = (
    "the block's output adds the two branches, so a unit sees the union of both fields; "
    "aligned branches share S and the centre, so the union is the larger field (largest r "
    "and largest P); an empty shortcut is the identity (1, 1, 0)"
)
NETWORK_HINT = (
    "a block behaves like one layer with kernel r_b, stride S_b and padding P_b: compose "
    "the stem's layers and the blocks with the same recurrence as a chain"
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
        "effective_kernel_dilation_2",
        "effective_kernel",
        (3, 2),
        effective_kernel_size,
        points=1,
        exact=True,
        hint=DILATION_HINT,
        description="a 3-tap kernel with dilation 2 spans 5 pixels",
    ),
    Test(
        "effective_kernel_one_tap",
        "effective_kernel",
        (1, 4),
        effective_kernel_size,
        points=1,
        hidden=True,
        exact=True,
        hint=DILATION_HINT,
    ),
    Test(
        "effective_kernel_wide",
        "effective_kernel",
        (5, 3),
        effective_kernel_size,
        points=1,
        hidden=True,
        exact=True,
        hint=DILATION_HINT,
    ),
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
        hint=BLOCK_HINT,
    ),
    Test(
        "network_small_resnet",
        "residual_network_field",
        (SMALL_RESNET_STEM, SMALL_RESNET_BLOCKS),
        network_reference,
        points=2,
        exact=True,
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
        hint=NETWORK_HINT,
    ),
]
