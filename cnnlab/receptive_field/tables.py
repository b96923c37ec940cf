"""Published receptive-field tables: the layer lists of classic networks.

Each list follows the deepest path of its network, as the table of Araujo, Norris & Sim
("Computing Receptive Fields of Convolutional Neural Networks", Distill 2019) does, in TF-slim's
layout (:func:`alexnet_v2_layers`, :func:`vgg16_layers`, :func:`resnet_v1_50_layers`) or
torchvision's (:func:`resnet50_layers`). The tests check :func:`receptive_field` of each against
the published numbers.
"""

from __future__ import annotations

from cnnlab.geometry import Window
from cnnlab.receptive_field.closed_form import Layer, receptive_field  # noqa: F401 (doctests)

__all__ = [
    "tf_same_padding",
    "alexnet_v2_layers",
    "vgg16_layers",
    "resnet_v1_50_layers",
    "resnet50_layers",
    "classic_networks",
]


def tf_same_padding(input_size: int, kernel_size: int, stride: int, dilation: int = 1) -> int:
    """Return the padding TensorFlow's ``padding='SAME'`` adds at the start of an axis.

    TensorFlow makes the output ``ceil(i / s)`` long, pads ``max((o - 1) s + k' - i, 0)`` in
    total and puts the smaller half first; so the start padding depends on the input size.

    Examples
    --------
    >>> tf_same_padding(112, kernel_size=3, stride=2)   # even input: nothing at the start
    0
    >>> tf_same_padding(113, kernel_size=3, stride=2)
    1
    """
    k = Window(kernel_size, dilation=dilation).span[0]
    out = -(-input_size // stride)
    total = max((out - 1) * stride + k - input_size, 0)
    return total // 2


def alexnet_v2_layers() -> list[Layer]:
    """Return AlexNet v2 (TF-slim ``alexnet_v2``) up to ``pool5``, the last spatial map.

    Convolutions after ``conv1`` use 'SAME' padding, pooling 'VALID'.

    Examples
    --------
    >>> receptive_field(alexnet_v2_layers())
    ReceptiveField(size=195, stride=32, padding=64)
    """
    return [
        Layer(11, 4, 0, name="conv1"),
        Layer(3, 2, 0, name="pool1"),
        Layer(5, 1, 2, name="conv2"),
        Layer(3, 2, 0, name="pool2"),
        Layer(3, 1, 1, name="conv3"),
        Layer(3, 1, 1, name="conv4"),
        Layer(3, 1, 1, name="conv5"),
        Layer(3, 2, 0, name="pool5"),
    ]


def vgg16_layers() -> list[Layer]:
    """Return VGG-16 (TF-slim ``vgg_16``) up to ``pool5``: 13 3x3 'SAME' convolutions, 2x2 pools.

    Examples
    --------
    >>> receptive_field(vgg16_layers())
    ReceptiveField(size=212, stride=32, padding=90)
    """
    layers = []
    for block, convs in enumerate((2, 2, 3, 3, 3), start=1):
        layers += [Layer(3, 1, 1, name=f"conv{block}_{i}") for i in range(1, convs + 1)]
        layers.append(Layer(2, 2, 0, name=f"pool{block}"))
    return layers


def _bottleneck(prefix: str, stride: int) -> list[Layer]:
    """The deepest path of a bottleneck unit: 1x1, 3x3 (with the stride, padded by 1), 1x1."""
    return [
        Layer(1, name=f"{prefix}conv1"),
        Layer(3, stride, 1, name=f"{prefix}conv2"),
        Layer(1, name=f"{prefix}conv3"),
    ]


def resnet_v1_50_layers(input_size: int = 224) -> list[Layer]:
    """Return the deepest path of ResNet-v1-50 in TF-slim's layout, up to ``block4``.

    TF-slim puts each block's stride on the 3x3 convolution of its *last* unit (blocks 1 to 3
    stride 2, block 4 stride 1), pads ``conv1`` and strided 3x3 convolutions explicitly
    (``conv2d_same``) and max-pools with 'SAME' padding, whose start padding depends on the
    input size (see :func:`tf_same_padding`).

    Examples
    --------
    >>> rf = receptive_field(resnet_v1_50_layers())
    >>> rf.size, rf.stride
    (483, 32)
    """
    size = Window(7, stride=2, padding=3).output_size(input_size)[0]
    layers = [Layer(7, 2, 3, name="conv1"), Layer(3, 2, tf_same_padding(size, 3, 2), name="pool1")]
    for block, (units, stride) in enumerate(((3, 2), (4, 2), (6, 2), (3, 1)), start=1):
        for unit in range(1, units + 1):
            s = stride if unit == units else 1
            layers += _bottleneck(f"block{block}/unit_{unit}/", s)
    return layers


def resnet50_layers() -> list[Layer]:
    """Return the deepest path of torchvision's ResNet-50 up to ``layer4``.

    torchvision puts the stride on the 3x3 convolution of each stage's *first* bottleneck
    (stages 2 to 4), and pads every 3x3 convolution and the max pool by 1.

    Examples
    --------
    >>> receptive_field(resnet50_layers())
    ReceptiveField(size=427, stride=32, padding=213)
    """
    layers = [Layer(7, 2, 3, name="conv1"), Layer(3, 2, 1, name="maxpool")]
    for stage, (blocks, stride) in enumerate(((3, 1), (4, 2), (6, 2), (3, 2)), start=1):
        for block in range(blocks):
            s = stride if block == 0 else 1
            layers += _bottleneck(f"layer{stage}.{block}.", s)
    return layers


def classic_networks() -> dict[str, list[Layer]]:
    """Return the layer lists of the classic networks, by name.

    Examples
    --------
    >>> sorted(classic_networks())
    ['alexnet_v2', 'resnet50 (torchvision)', 'resnet_v1_50', 'vgg_16']
    """
    return {
        "alexnet_v2": alexnet_v2_layers(),
        "vgg_16": vgg16_layers(),
        "resnet_v1_50": resnet_v1_50_layers(),
        "resnet50 (torchvision)": resnet50_layers(),
    }
