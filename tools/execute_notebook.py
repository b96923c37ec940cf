"""Execute notebooks in place and store their outputs, as nbval and the book expect.

Usage: python tools/execute_notebook.py NOTEBOOK.ipynb [...]

Each notebook runs in a fresh `python3` kernel with its own folder as the working directory.
Consecutive writes of a cell to the same stream (stdout or stderr) are stored as one output, so
that one printed block is one block in Jupyter and on the book's page. (nbval merges a cell's
streams the same way before it compares, so what it checks is unchanged.)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbclient
import nbformat


def merge_streams(outputs: list) -> list:
    """Join each run of consecutive stream outputs with the same name into one output."""
    merged: list = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            output.output_type == "stream"
            and previous is not None
            and previous.output_type == "stream"
            and previous.name == output.name
        ):
            previous.text += output.text
        else:
            merged.append(output)
    return merged


def execute(path: Path, timeout: int = 600) -> float:
    """Run every cell of the notebook at ``path`` and write it back; return the seconds taken."""
    notebook = nbformat.read(path, as_version=4)
    # The widget state of an earlier run: nbclient stores this run's, if it shows widgets, but
    # never removes a stale one, which the book would then embed in the page.
    notebook.metadata.pop("widgets", None)
    start = time.perf_counter()
    client = nbclient.NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = merge_streams(cell.outputs)
    nbformat.write(notebook, path)
    return time.perf_counter() - start


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {execute(Path(name)):.1f} s")
