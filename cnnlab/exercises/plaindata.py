"""Test inputs as plain data: JSON for the structure, arrays stored beside it, never pickle.

One format serves the grading process (which writes each array to an ``.npy`` file for the
worker), the worker (which reads them back), and the self-check (which keeps the visible tests'
arrays in one ``.npz``). A value is encoded as one of::

    {"t": "npy", "ref": REF}          an ndarray, stored under REF by the caller's ``store``
    {"t": "tuple", "items": [...]}    a tuple or list, item by item
    {"t": "json", "v": VALUE}         None, a bool, an int, a float or a string

Anything else (a dict, an object) is not plain data and raises TypeError. This module imports
NumPy only inside :func:`encode`, so the worker's supervisor can decode without it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["encode", "decode", "array_refs", "copy_value"]


def encode(value: object, key: str, store: Callable[[str, object], str]) -> dict:
    """Encode ``value``; every array goes through ``store(key, array)``, which returns its ref.

    Examples
    --------
    >>> import numpy as np
    >>> stored = {}
    >>> encode((np.zeros(2), 3), "in0", lambda k, a: stored.setdefault(k, a) is a and k)
    {'t': 'tuple', 'items': [{'t': 'npy', 'ref': 'in0_0'}, {'t': 'json', 'v': 3}]}
    """
    import numpy as np

    if isinstance(value, np.ndarray):
        return {"t": "npy", "ref": store(key, value)}
    if isinstance(value, tuple | list):
        return {
            "t": "tuple",
            "items": [encode(v, f"{key}_{i}", store) for i, v in enumerate(value)],
        }
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return {"t": "json", "v": value}
    raise TypeError(f"test input {value!r} is not plain data (array, number, string, tuple)")


def decode(spec: Mapping, arrays: Mapping[str, object]) -> object:
    """Rebuild the value that :func:`encode` described, taking arrays from ``arrays[ref]``."""
    kind = spec["t"]
    if kind == "npy":
        return arrays[spec["ref"]]
    if kind == "tuple":
        return tuple(decode(item, arrays) for item in spec["items"])
    if kind == "json":
        return spec["v"]
    raise ValueError(f"unknown plain-data kind {kind!r}")


def array_refs(spec: object) -> list[str]:
    """Every array ref that ``spec`` names, in order."""
    if isinstance(spec, Mapping):
        if spec.get("t") == "npy":
            return [spec["ref"]]
        if spec.get("t") == "tuple":
            return [ref for item in spec["items"] for ref in array_refs(item)]
    return []


def copy_value(value: object) -> object:
    """A copy of a decoded value that a student function may modify freely."""
    if isinstance(value, tuple):
        return tuple(copy_value(v) for v in value)
    return value.copy() if hasattr(value, "copy") and not isinstance(value, str) else value
