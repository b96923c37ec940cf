"""cnnlab: reference implementations, figures and exercises for a book on convolutional networks.

Subpackages are imported on demand: ``cnnlab.shapes`` and ``cnnlab.numpy`` need only NumPy,
``cnnlab.torch`` needs PyTorch.
"""

__version__ = "0.1.0"
