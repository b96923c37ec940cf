"""Execute notebooks in place and store their outputs, as nbval and the book expect.

Usage: python tools/execute_notebook.py NOTEBOOK.ipynb [...]

Each notebook runs in a fresh `python3` kernel with its own folder as the working directory.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbclient
import nbformat


def execute(path: Path, timeout: int = 600) -> float:
    """Run every cell of the notebook at ``path`` and write it back; return the seconds taken."""
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = nbclient.NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    nbformat.write(notebook, path)
    return time.perf_counter() - start


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {execute(Path(name)):.1f} s")
