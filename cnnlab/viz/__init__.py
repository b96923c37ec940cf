"""Figures, animations and widgets used by the chapters. Import the submodule you need."""
