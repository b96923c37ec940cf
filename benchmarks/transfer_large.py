"""Run the transferability experiment at the larger configuration and print its figures.

The book's chapter runs ``TransferConfig()`` (8x8 digits, four blocks, three seeds) in well under
a minute. This script runs ``TransferConfig.large()`` (16x16 digits, five wider blocks, five
seeds), which takes of the order of ten minutes on one CPU core, and prints the same table and,
as a ratio to it, the time of the book's configuration run beside it.

Usage::

    python benchmarks/transfer_large.py            # large configuration
    python benchmarks/transfer_large.py --seeds 3  # fewer seeds
    python benchmarks/transfer_large.py --small    # the book's configuration only
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from cnnlab.transfer import TransferConfig, run_transfer_experiment


def _run(config: TransferConfig, label: str, verbose: bool) -> float:
    start = time.perf_counter()
    result = run_transfer_experiment(config, progress=print if verbose else None)
    seconds = time.perf_counter() - start
    print(f"\n== {label}: {seconds:.1f} s, tasks A={result.task_a} B={result.task_b}")
    print(result.table())
    gap = result.mean("BnB") - result.mean("AnB")
    print("BnB - AnB by depth:", [round(float(g), 3) for g in gap])
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default: 5)")
    parser.add_argument("--small", action="store_true", help="run only the book's configuration")
    parser.add_argument("--verbose", action="store_true", help="print every trained network")
    args = parser.parse_args(argv)
    baseline = _run(TransferConfig(), "book configuration (baseline)", args.verbose)
    if args.small:
        return
    large = TransferConfig.large()
    if args.seeds is not None:
        large = dataclasses.replace(large, seeds=tuple(range(args.seeds)))
    seconds = _run(large, "large configuration", args.verbose)
    print(f"\nlarge / book time ratio: {seconds / baseline:.1f}")


if __name__ == "__main__":
    main()
