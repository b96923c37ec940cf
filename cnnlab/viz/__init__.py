"""Figures, animations and explorers used by the chapters. Import the submodule you need.

Explorers that run in the page
------------------------------
:mod:`cnnlab.viz.explorers` makes explorers whose computation runs in the browser (a small
JavaScript implementation of cnnlab's laws, inlined in the output), so they work in the static
book (offline, from ``file://`` or a web server) and in Jupyter, with no kernel and no widget
manager::

    conv_geometry_explorer(size=7, kernel_size=3, stride=1, padding=0, dilation=1,
                           transposed=False, output_padding=0)
    receptive_field_explorer(layers=((3, 1, 1, 1), ...), size=16, position=3)
    atrous_explorer(rate=6, size=33, kernel_size=3, rates=(6, 12, 18))
    multichannel_explorer(in_channels=3, out_channels=2, kernel_size=3, groups=1,
                          size=5, stride=2, padding=1, bias=True)

Each returns an object whose ``_repr_html_`` is the explorer; display it as a cell's last
expression. :func:`cnnlab.viz.explorers.standalone_html` writes a page holding several.

**The contract** (stable; the browser tests rely on it):

- The root element has ``data-explorer="NAME"``.
- Its controls are ``<input>`` elements whose ``name`` is the Python parameter name.
- Each computed quantity is in an element with ``data-role="QUANTITY"`` whose text is the
  value alone (an integer, a decimal with 4 places, a shape such as ``(2, 3, 3, 3)``, ``yes``
  or ``no``). Where cnnlab's Python refuses the configuration, the text is instead an error
  message naming the argument at fault, never a number, and the element carries a
  ``data-error`` attribute.
- Parts that are not quantities carry ``data-part`` (``drawing``, ``layers``, ...); buttons
  carry ``data-action``.

========================  ==================================  ===================================
``data-explorer``         controls (``name``)                 quantities (``data-role``)
========================  ==================================  ===================================
``conv-geometry``         ``size``, ``kernel_size``,          ``output-size`` (conv_output_size,
                          ``stride``, ``padding``,            or transposed_output_size),
                          ``dilation``, ``transposed``        ``effective-kernel-size``,
                          (checkbox), ``output_padding``      ``formula`` (the law, numbers
                                                              filled in, ending ``= o``)
``receptive-field``       ``size``, ``position`` (output      ``receptive-field`` (r), ``jump``
                          unit); per layer row                (effective stride S),
                          ``data-layer="i"`` (from 0):        ``effective-padding`` (P),
                          ``kernel_size``, ``stride``,        ``output-size``, ``interval``
                          ``padding``, ``dilation``;          (``[start, end]``),
                          buttons ``data-action=              ``interval-start``,
                          "add-layer"`` / ``"remove-layer"``  ``interval-end``; per row:
                                                              ``layer-receptive-field``,
                                                              ``layer-jump``, ``layer-output-size``
``atrous``                ``rate``, ``size``,                 ``valid-count``, ``valid-fraction``,
                          ``kernel_size``, ``rates``          ``centre-only-fraction``,
                          (text, e.g. ``6, 12, 18``)          ``fraction-C`` for each count C,
                                                              ``footprint-size``,
                                                              ``footprint-reached``,
                                                              ``footprint-fraction``, ``hdc``,
                                                              ``hdc-distance``
``multichannel``          ``in_channels``,                    ``weight-shape``, ``parameters``,
                          ``out_channels``, ``kernel_size``,  ``macs-per-value``,
                          ``groups``, ``size``, ``stride``,   ``output-size``, ``output-shape``,
                          ``padding``, ``bias`` (checkbox)    ``macs``
========================  ==================================  ===================================

In the receptive-field drawing, output units carry ``data-unit="u"``: hovering or clicking one
selects it (sets ``position``). :mod:`cnnlab.viz.explorer` keeps the older ipywidgets explorer,
which needs a running kernel.
"""

from cnnlab.viz.multichannel import animate_multichannel, draw_multichannel_step, output_terms

__all__ = ["animate_multichannel", "draw_multichannel_step", "output_terms"]
