"""Time cnnlab.numpy.conv2d against torch.nn.functional.conv2d on typical layers.

Both run in this process on the same float32 data; each time is the median of several repeats
after a warm-up, and the table prints their ratio (cnnlab / torch; lower is better, 1.0 is parity)
and the geometric mean of the ratios. No target is asserted here: the numbers are for reading.

Usage: python benchmarks/conv.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.numpy import conv2d
from cnnlab.shapes import conv_output_size


@dataclass(frozen=True)
class LayerCase:
    name: str
    batch: int
    c_in: int
    c_out: int
    size: int
    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    def gflop(self) -> float:
        out = conv_output_size(self.size, self.kernel, self.stride, self.padding, self.dilation)
        return 2 * self.batch * self.c_out * out * out * self.c_in * self.kernel**2 / 1e9


LAYERS = [
    LayerCase("3x3 64->64 @56, batch 8", 8, 64, 64, 56, 3, padding=1),
    LayerCase("3x3 128->128 @28, batch 8", 8, 128, 128, 28, 3, padding=1),
    LayerCase("3x3 256->256 @14, batch 8", 8, 256, 256, 14, 3, padding=1),
    LayerCase("1x1 256->64 @56, batch 8", 8, 256, 64, 56, 1),
    LayerCase("7x7/2 3->64 @224, batch 1", 1, 3, 64, 224, 7, stride=2, padding=3),
    LayerCase("3x3 d2 256->256 @28, batch 1", 1, 256, 256, 28, 3, padding=2, dilation=2),
]
QUICK = [
    LayerCase("3x3 32->32 @28, batch 2", 2, 32, 32, 28, 3, padding=1),
    LayerCase("3x3/2 16->32 @32, batch 2", 2, 16, 32, 32, 3, stride=2, padding=1),
]


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(layers: list[LayerCase], repeats: int) -> list[tuple[LayerCase, float, float]]:
    rng = np.random.default_rng(0)
    rows = []
    for case in layers:
        x = rng.standard_normal((case.batch, case.c_in, case.size, case.size), dtype=np.float32)
        w = rng.standard_normal((case.c_out, case.c_in, case.kernel, case.kernel), dtype=np.float32)
        kwargs = dict(stride=case.stride, padding=case.padding, dilation=case.dilation)
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        ours = median_time(lambda x=x, w=w, kwargs=kwargs: conv2d(x, w, **kwargs), repeats)
        with torch.inference_mode():
            theirs = median_time(
                lambda tx=tx, tw=tw, kwargs=kwargs: F.conv2d(tx, tw, **kwargs), repeats
            )
        rows.append((case, ours, theirs))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small layers, for CI smoke runs")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows = run(QUICK if args.quick else LAYERS, args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}")
    header = f"{'layer':32} {'GFLOP':>7} {'cnnlab ms':>10} {'torch ms':>9} {'ratio':>6} {'cnnlab GFLOP/s':>15}"
    print(header)
    print("-" * len(header))
    for case, ours, theirs in rows:
        print(
            f"{case.name:32} {case.gflop():7.3f} {ours * 1e3:10.2f} {theirs * 1e3:9.2f} "
            f"{ours / theirs:6.2f} {case.gflop() / ours:15.1f}"
        )
    geomean = math.exp(statistics.fmean(math.log(ours / theirs) for _, ours, theirs in rows))
    print(f"geometric-mean time ratio cnnlab / torch: {geomean:.2f}")


if __name__ == "__main__":
    main()
