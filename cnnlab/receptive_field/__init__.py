"""Receptive fields: closed form for a chain of layers, traced from a module, and effective.

One output unit of a convolutional network depends on a patch of the input: its *receptive
field*. One module per job:

- :mod:`~cnnlab.receptive_field.closed_form`: :class:`Layer`, :class:`ReceptiveField`,
  :func:`receptive_field` (the closed form of Araujo, Norris & Sim, Distill 2019) and
  :func:`receptive_field_steps` (its recurrence, layer by layer);
- :mod:`~cnnlab.receptive_field.tracing`: :func:`receptive_field_of` traces any
  :class:`torch.nn.Module` with :mod:`torch.fx` and follows every path (residual additions,
  concatenations, nested ``Sequential``);
- :mod:`~cnnlab.receptive_field.effective`: :func:`effective_receptive_field` measures how
  strongly each input pixel moves the centre output unit (Luo et al., NeurIPS 2016);
- :mod:`~cnnlab.receptive_field.tables`: the layer lists of classic networks, deepest path, as
  in the Distill article's table.

Int-or-pair results follow :mod:`cnnlab.shapes`: ints in, ints out; a pair in, pairs out.
"""

from cnnlab.receptive_field.closed_form import (
    Interval,
    Layer,
    ReceptiveField,
    receptive_field,
    receptive_field_steps,
)
from cnnlab.receptive_field.effective import effective_receptive_field
from cnnlab.receptive_field.tables import (
    alexnet_v2_layers,
    classic_networks,
    resnet50_layers,
    resnet_v1_50_layers,
    tf_same_padding,
    vgg16_layers,
)
from cnnlab.receptive_field.tracing import (
    UnalignedPathsError,
    UnknownLayerError,
    receptive_field_of,
)

__all__ = [
    "Layer",
    "Interval",
    "ReceptiveField",
    "receptive_field",
    "receptive_field_steps",
    "receptive_field_of",
    "effective_receptive_field",
    "UnknownLayerError",
    "UnalignedPathsError",
    "tf_same_padding",
    "alexnet_v2_layers",
    "vgg16_layers",
    "resnet_v1_50_layers",
    "resnet50_layers",
    "classic_networks",
]
