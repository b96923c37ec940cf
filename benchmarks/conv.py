"""Time cnnlab.numpy.conv2d against torch.nn.functional.conv2d on the layers of a ResNet-50.

The suite is every distinct convolution of a ResNet-50 (torchvision's v1.5, stride on the 3x3)
at 224x224 input, at batch 1 and batch 8, float32, plus a few dilated 3x3 layers of the kind
DeepLab uses. Both libraries run in this process on the same data, alternately, each time the
median of several repeats after a warm-up. The table prints, per layer, the work (GFLOP, two per
multiply-add), both times, their ratio (cnnlab / torch; lower is better, 1.0 is parity), the
GFLOP/s cnnlab achieves and that rate as a fraction of the machine's sgemm rate (a large
``np.matmul``, the practical peak of any GEMM-based convolution here). Then the geometric-mean
ratio per batch size and the verdict on each target of issue 9:

* geometric-mean time ratio cnnlab / torch at most 1.5 at batch 8 and at most 2.0 at batch 1;
* every 3x3 layer reaches at least 60% of the measured sgemm GFLOP/s;
* ``conv2d``'s peak extra memory (tracemalloc) at most 2x its output's size on the largest
  layer (``--memory``; on by default for the full suite).

The timings are read, never asserted by the tests; on a shared machine they are noisy.

Usage: python benchmarks/conv.py [--quick] [--repeats N] [--batch 1 8] [--memory]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import tracemalloc
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.numpy import choose_algorithm, conv2d
from cnnlab.numpy.conv import conv2d_geometry
from cnnlab.shapes import conv_output_size

TARGET_RATIO = {8: 1.5, 1: 2.0}
TARGET_PEAK_FRACTION = 0.6
TARGET_MEMORY = 2.0


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

    def out_size(self) -> int:
        return conv_output_size(self.size, self.kernel, self.stride, self.padding, self.dilation)

    def gflop(self) -> float:
        out = self.out_size()
        return 2 * self.batch * self.c_out * out * out * self.c_in * self.kernel**2 / 1e9

    def label(self) -> str:
        return f"{self.name}, batch {self.batch}"

    def arrays(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((self.batch, self.c_in, self.size, self.size), dtype=np.float32)
        shape = (self.c_out, self.c_in, self.kernel, self.kernel)
        return x, rng.standard_normal(shape, dtype=np.float32)

    def kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    def algorithm(self) -> str:
        geometry = conv2d_geometry(
            (self.batch, self.c_in, self.size, self.size),
            (self.c_out, self.c_in, self.kernel, self.kernel),
            None,
            self.stride,
            self.padding,
            self.dilation,
            1,
        )
        return choose_algorithm(
            (self.c_out, self.c_in, self.kernel, self.kernel), geometry, (self.size, self.size)
        )


def _conv(name, c_in, c_out, size, kernel, stride=1, dilation=1):
    pad = dilation * (kernel - 1) // 2
    return LayerCase(name, 1, c_in, c_out, size, kernel, stride, pad, dilation)


# Every distinct convolution of ResNet-50 at 224x224 (stage: input size; "/2" is stride 2).
RESNET50 = [
    _conv("conv1 7x7/2 3->64 @224", 3, 64, 224, 7, 2),
    _conv("l1 1x1 64->64 @56", 64, 64, 56, 1),
    _conv("l1 3x3 64->64 @56", 64, 64, 56, 3),
    _conv("l1 1x1 64->256 @56", 64, 256, 56, 1),
    _conv("l1 1x1 256->64 @56", 256, 64, 56, 1),
    _conv("l2 1x1 256->128 @56", 256, 128, 56, 1),
    _conv("l2 3x3/2 128->128 @56", 128, 128, 56, 3, 2),
    _conv("l2 1x1 128->512 @28", 128, 512, 28, 1),
    _conv("l2 1x1/2 256->512 @56", 256, 512, 56, 1, 2),
    _conv("l2 1x1 512->128 @28", 512, 128, 28, 1),
    _conv("l2 3x3 128->128 @28", 128, 128, 28, 3),
    _conv("l3 1x1 512->256 @28", 512, 256, 28, 1),
    _conv("l3 3x3/2 256->256 @28", 256, 256, 28, 3, 2),
    _conv("l3 1x1 256->1024 @14", 256, 1024, 14, 1),
    _conv("l3 1x1/2 512->1024 @28", 512, 1024, 28, 1, 2),
    _conv("l3 1x1 1024->256 @14", 1024, 256, 14, 1),
    _conv("l3 3x3 256->256 @14", 256, 256, 14, 3),
    _conv("l4 1x1 1024->512 @14", 1024, 512, 14, 1),
    _conv("l4 3x3/2 512->512 @14", 512, 512, 14, 3, 2),
    _conv("l4 1x1 512->2048 @7", 512, 2048, 7, 1),
    _conv("l4 1x1/2 1024->2048 @14", 1024, 2048, 14, 1, 2),
    _conv("l4 1x1 2048->512 @7", 2048, 512, 7, 1),
    _conv("l4 3x3 512->512 @7", 512, 512, 7, 3),
]
# Dilated 3x3 layers as in DeepLab (output stride 16 and 8, an ASPP-like rate).
DILATED = [
    _conv("d2 3x3 256->256 @28", 256, 256, 28, 3, dilation=2),
    _conv("d4 3x3 512->512 @14", 512, 512, 14, 3, dilation=4),
    _conv("d6 3x3 256->256 @28", 256, 256, 28, 3, dilation=6),
]
LAYERS = [replace(case, batch=b) for b in (8, 1) for case in RESNET50 + DILATED]
QUICK = [
    LayerCase("3x3 32->32 @28", 2, 32, 32, 28, 3, padding=1),
    LayerCase("3x3/2 16->32 @32", 2, 16, 32, 32, 3, stride=2, padding=1),
    LayerCase("1x1 64->32 @14", 2, 64, 32, 14, 1),
]


@dataclass(frozen=True)
class Timing:
    case: LayerCase
    ours: float  # seconds, median
    theirs: float

    @property
    def ratio(self) -> float:
        return self.ours / self.theirs

    @property
    def rate(self) -> float:
        return self.case.gflop() / self.ours


def median_times(fns, repeats: int) -> list[float]:
    """Median wall time of each function, called alternately ``repeats`` times after a warm-up
    (alternating spreads the noise of a shared machine evenly over the contenders)."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def median_time(fn, repeats: int) -> float:
    return median_times([fn], repeats)[0]


def repeats_for(case: LayerCase, repeats: int) -> int:
    """Fewer repeats for the heaviest layers, so the full suite takes minutes, not more."""
    return max(1, min(repeats, math.ceil(repeats * 0.5 / case.gflop())))


def run(layers: list[LayerCase], repeats: int) -> list[Timing]:
    rng = np.random.default_rng(0)
    rows = []
    for case in layers:
        x, w = case.arrays(rng)
        kwargs = case.kwargs()
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)

        def ours(x=x, w=w, kwargs=kwargs):
            return conv2d(x, w, **kwargs)

        def theirs(tx=tx, tw=tw, kwargs=kwargs):
            with torch.inference_mode():
                return F.conv2d(tx, tw, **kwargs)

        t_ours, t_theirs = median_times([ours, theirs], repeats_for(case, repeats))
        rows.append(Timing(case, t_ours, t_theirs))
    return rows


def sgemm_gflops(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a float32 ``size x size`` matrix product: the practical peak."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    return 2 * size**3 / 1e9 / median_time(lambda: a @ b, repeats)


def peak_extra_memory(case: LayerCase) -> tuple[int, int]:
    """``(peak bytes conv2d allocates beyond its output, output bytes)``, by tracemalloc."""
    x, w = case.arrays(np.random.default_rng(0))
    conv2d(x, w, **case.kwargs())  # warm-up, outside the trace
    tracemalloc.start()
    try:
        out = conv2d(x, w, **case.kwargs())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - out.nbytes, out.nbytes


def geomean(values) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_table(rows: list[Timing], peak: float) -> None:
    header = (
        f"{'layer':40} {'algorithm':>9} {'GFLOP':>7} {'cnnlab ms':>10} {'torch ms':>9} "
        f"{'ratio':>6} {'GFLOP/s':>8} {'% sgemm':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.case.label():40} {r.case.algorithm():>9} {r.case.gflop():7.3f} "
            f"{r.ours * 1e3:10.2f} {r.theirs * 1e3:9.2f} {r.ratio:6.2f} {r.rate:8.1f} "
            f"{100 * r.rate / peak:7.0f}%"
        )


def print_verdicts(rows: list[Timing], peak: float, full: bool) -> None:
    print(f"geometric-mean time ratio cnnlab / torch: {geomean(r.ratio for r in rows):.2f}")
    sizes = sorted({r.case.batch for r in rows}, reverse=True)
    for b in sizes:
        g = geomean(r.ratio for r in rows if r.case.batch == b)
        target = TARGET_RATIO.get(b)
        if full and target is not None:
            print(f"  N={b}: geometric mean {g:.2f}, target <= {target}: {verdict(g <= target)}")
        else:
            print(f"  N={b}: geometric mean {g:.2f}")
    threes = [r for r in rows if r.case.kernel == 3]
    if threes:
        fractions = [r.rate / peak for r in threes]
        reached = sum(f >= TARGET_PEAK_FRACTION for f in fractions)
        line = (
            f"3x3 layers at >= {TARGET_PEAK_FRACTION:.0%} of sgemm: {reached} of {len(threes)} "
            f"(min {min(fractions):.0%}, median {statistics.median(fractions):.0%})"
        )
        print(f"{line}: {verdict(reached == len(threes))}" if full else line)


def print_memory(layers: list[LayerCase]) -> None:
    """tracemalloc peak of conv2d beyond its output, for every layer of the largest N."""
    n_max = max(c.batch for c in layers)
    cases = [c for c in layers if c.batch == n_max]
    print(f"\nmemory (tracemalloc), N={n_max}: peak bytes conv2d allocates besides its output")
    header = f"{'layer':40} {'output MB':>10} {'extra MB':>9} {'extra/output':>13}"
    print(header)
    print("-" * len(header))
    results = []
    for case in cases:
        extra, out_bytes = peak_extra_memory(case)
        results.append((case, extra, out_bytes))
        print(
            f"{case.label():40} {out_bytes / 2**20:10.1f} {extra / 2**20:9.1f} "
            f"{extra / out_bytes:13.2f}"
        )
    case, extra, out_bytes = max(results, key=lambda t: (t[2], t[0].gflop()))
    worst = max(results, key=lambda t: t[1] / t[2])
    print(
        f"largest layer ({case.label()}): extra {extra / out_bytes:.2f}x output, "
        f"target <= {TARGET_MEMORY}: {verdict(extra <= TARGET_MEMORY * out_bytes)}"
    )
    print(f"worst layer ({worst[0].label()}): extra {worst[1] / worst[2]:.2f}x output")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three small layers, for CI")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per layer (median)")
    parser.add_argument(
        "--batch", type=int, nargs="+", choices=(1, 8), help="only these batch sizes"
    )
    parser.add_argument("--memory", action="store_true", help="also measure peak memory")
    args = parser.parse_args(argv)
    layers = QUICK if args.quick else LAYERS
    if args.batch and not args.quick:
        layers = [c for c in layers if c.batch in args.batch]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}")
    peak = sgemm_gflops(512 if args.quick else 2048)
    print(f"sgemm (np.matmul, float32): {peak:.1f} GFLOP/s, the practical peak")
    rows = run(layers, args.repeats)
    print_table(rows, peak)
    print_verdicts(rows, peak, full=not args.quick)
    if args.memory or not args.quick:
        print_memory(layers)


if __name__ == "__main__":
    main()
