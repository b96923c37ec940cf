"""Figures, animations and widgets used by the chapters. Import the submodule you need."""

from cnnlab.viz.multichannel import animate_multichannel, draw_multichannel_step, output_terms

__all__ = ["animate_multichannel", "draw_multichannel_step", "output_terms"]
