"""Time cnnlab.numpy.conv2d against torch.nn.functional.conv2d on the layers of a ResNet-50.

The suite is every distinct convolution of a ResNet-50 (torchvision's v1.5, stride on the 3x3)
at 224x224 input, at batch 1 and batch 8, float32, plus a few dilated 3x3 layers of the kind
DeepLab uses.

How it times, so that neither library can slow the other:

* each contender runs in its own fresh Python process (this file, re-run with ``--worker``):
  the cnnlab process never imports torch, the torch process never calls NumPy's BLAS. Idle
  OpenBLAS and OpenMP thread pools keep spinning on the cores for a while after a call, so two
  libraries timed alternately in one process take the cores from each other;
* the processes run one after the other, never at the same time, in rounds ordered
  cnnlab, torch | torch, cnnlab | ... so a drift in the machine's load affects both alike;
  each layer's figure for each library is its best round's median (other programs only ever
  slow a run down), and the rounds' own geometric means are printed to show how far they agree;
* every process gets the same thread count (``--threads``, default: every core this process may
  run on) through ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` and
  ``torch.set_num_threads``, and the same cores (CPU affinity, where the OS has it); each process
  checks its pools with threadpoolctl and ``torch.get_num_threads`` and reports them;
* per layer: warm-up calls, then timed calls until at least ``--repeats`` of them and
  ``--min-time`` seconds; the median is kept;
* the sgemm peak (a large float32 ``np.matmul``) is measured the same way, in its own process
  with the same threads at the start of every round, and the best round's median kept (a
  loaded machine only ever lowers it); peak memory (tracemalloc) in one more process.

The table prints, per layer, the algorithm ``conv2d`` chose, the work (GFLOP, two per
multiply-add), both median times, their ratio (cnnlab / torch; lower is better, 1.0 is
parity), the GFLOP/s cnnlab achieves and that rate as a fraction of the sgemm rate (the
practical peak of any GEMM-based convolution here). Then the geometric-mean ratio per batch
size and the verdict on each target:

* geometric-mean time ratio cnnlab / torch at most 1.5 at batch 8 and at most 2.0 at batch 1;
* every 3x3 layer reaches at least 60% of the measured sgemm GFLOP/s;
* ``conv2d``'s peak extra memory (tracemalloc) at most 2x its output's size on the largest
  layer (``--memory``; on by default for the full suite).

The timings are read, never asserted by the tests. On a shared machine they are noisy, and
worse with several threads per process: a BLAS whose threads wait for each other slows down
many times over when another program holds one of their cores. The per-round geometric means
show how far the rounds agree; ``--threads 1`` gives steadier (single-core) figures there.

Usage: python benchmarks/conv.py [--quick] [--threads T] [--rounds R] [--repeats N]
                                 [--min-time S] [--batch 1 8] [--memory] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cnnlab.shapes import conv_output_size  # plain integers: no NumPy, no torch here

TARGET_RATIO = {8: 1.5, 1: 2.0}
TARGET_PEAK_FRACTION = 0.6
TARGET_MEMORY = 2.0
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CONTENDERS = ("cnnlab", "torch")


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

    def arrays(self, rng):
        """``(x, weight)``, float32, drawn from ``rng`` (the same in every process)."""
        import numpy as np

        x = rng.standard_normal((self.batch, self.c_in, self.size, self.size), dtype=np.float32)
        shape = (self.c_out, self.c_in, self.kernel, self.kernel)
        return x, rng.standard_normal(shape, dtype=np.float32)

    def kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation)

    def algorithm(self) -> str:
        """The algorithm ``cnnlab.numpy.conv2d(..., algorithm="auto")`` picks for this layer."""
        from cnnlab.numpy import choose_algorithm
        from cnnlab.numpy.conv import conv2d_geometry

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


# ---------------------------------------------------------------------------------------------
# Worker side: runs in a fresh process, one contender (or the sgemm / memory probe) only.
# ---------------------------------------------------------------------------------------------


def _timed_runs(fn, repeats: int, min_time: float, max_repeats: int = 200) -> list[float]:
    """Wall times of calls of ``fn`` after a warm-up: at least ``repeats`` calls and
    ``min_time`` seconds (at most ``max_repeats`` calls)."""
    fn()  # first call: allocations, library initialisation, oneDNN primitive creation
    start = time.perf_counter()
    fn()
    warm = time.perf_counter() - start
    if warm < 0.05:  # short calls: warm up for about 50 ms in all
        for _ in range(min(50, int(0.05 / max(warm, 1e-6)))):
            fn()
    times: list[float] = []
    while len(times) < max_repeats and (len(times) < repeats or sum(times) < min_time):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _thread_report(threads: int, torch_module=None) -> dict:
    """The thread pools this process loaded (threadpoolctl), and torch's own count."""
    from threadpoolctl import threadpool_info

    pools = [
        {
            "api": info["internal_api"],
            "num_threads": info["num_threads"],
            "architecture": info.get("architecture"),
            "version": info.get("version"),
            "library": Path(info["filepath"]).name,
        }
        for info in threadpool_info()
    ]
    report = {"requested": threads, "pools": pools}
    if torch_module is not None:
        report["torch"] = torch_module.get_num_threads()
    counts = [p["num_threads"] for p in pools] + [report.get("torch", threads)]
    report["ok"] = all(count == threads for count in counts)
    return report


def _worker(role: str, spec: dict) -> dict:
    threads = spec["threads"]
    cpus = spec.get("cpus")
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
    import numpy as np

    result: dict = {"role": role, "pid": os.getpid(), "numpy": np.__version__}
    if hasattr(os, "sched_getaffinity"):
        result["cpus"] = sorted(os.sched_getaffinity(0))
    cases = [LayerCase(**c) for c in spec.get("cases", [])]
    repeats, min_time = spec.get("repeats", 5), spec.get("min_time", 0.3)
    rng = np.random.default_rng(0)  # the same data in every process

    if role == "torch":
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(threads)
        result["torch"] = torch.__version__
        result["torch_capability"] = torch.backends.cpu.get_cpu_capability()
        result["onednn"] = torch.backends.mkldnn.is_available()
        result["threads"] = _thread_report(threads, torch)
        rows = []
        with torch.inference_mode():
            for case in cases:
                x, w = case.arrays(rng)
                tx, tw = torch.from_numpy(x), torch.from_numpy(w)
                kwargs = case.kwargs()
                out = F.conv2d(tx, tw, **kwargs)
                times = _timed_runs(
                    lambda tx=tx, tw=tw, kw=kwargs: F.conv2d(tx, tw, **kw), repeats, min_time
                )
                check = float(out.abs().sum(dtype=torch.float64))
                rows.append({"case": asdict(case), "times": times, "abs_sum": check})
        result["rows"] = rows
    elif role == "cnnlab":
        from cnnlab.numpy import conv2d

        result["threads"] = _thread_report(threads)
        rows = []
        for case in cases:
            x, w = case.arrays(rng)
            kwargs = case.kwargs()
            out = conv2d(x, w, **kwargs)
            times = _timed_runs(lambda x=x, w=w, kw=kwargs: conv2d(x, w, **kw), repeats, min_time)
            check = float(np.abs(out).sum(dtype=np.float64))
            row = {"case": asdict(case), "times": times, "abs_sum": check}
            rows.append({**row, "algorithm": case.algorithm()})
        result["rows"] = rows
    elif role == "sgemm":
        result["threads"] = _thread_report(threads)
        size = spec["size"]
        a = rng.standard_normal((size, size), dtype=np.float32)
        b = rng.standard_normal((size, size), dtype=np.float32)
        times = _timed_runs(lambda: a @ b, repeats, min_time)
        result.update(size=size, times=times, gflops=2 * size**3 / 1e9 / statistics.median(times))
    elif role == "memory":
        import tracemalloc

        from cnnlab.numpy import conv2d

        result["threads"] = _thread_report(threads)
        rows = []
        for case in cases:
            x, w = case.arrays(rng)
            conv2d(x, w, **case.kwargs())  # warm-up, outside the trace
            tracemalloc.start()
            try:
                out = conv2d(x, w, **case.kwargs())
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            rows.append({"case": asdict(case), "extra": peak - out.nbytes, "output": out.nbytes})
            del out
        result["rows"] = rows
    else:
        raise ValueError(f"unknown worker role {role!r}")
    return result


# ---------------------------------------------------------------------------------------------
# Parent side: starts the workers one after the other, never computes anything itself.
# ---------------------------------------------------------------------------------------------


def default_threads() -> int:
    """Every core this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def run_worker(role: str, spec: dict, threads: int) -> dict:
    """Run one worker in a fresh Python process with ``threads`` threads; return its JSON."""
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps({**spec, "threads": threads}))
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", role]
        command += ["--spec", str(spec_path), "--out", str(out_path)]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{role} worker failed ({done.returncode}):\n{done.stderr}")
        result = json.loads(out_path.read_text())
    result["wall_s"] = time.perf_counter() - start
    return result


def cpu_description() -> dict:
    """CPU model (with its x86 family and model numbers), logical CPU count, and whether the
    vector-instruction sets that matter here are present."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first CPU's values
    except OSError:
        pass
    model = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        model += f" (family {fields['cpu family']}, model {fields['model']})"
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    shown = ["avx2", "avx512f"] + [
        f for f in ("avx512_bf16", "amx_tile", "asimd", "sve") if f in flags
    ]
    return {
        "model": model,
        "logical_cpus": os.cpu_count(),
        "flags": {f: f in flags for f in shown},
    }


@dataclass(frozen=True)
class Timing:
    case: LayerCase
    algorithm: str
    ours: float  # seconds: the median of the best (least disturbed) round
    theirs: float
    ours_rounds: tuple[float, ...]  # each round's median
    theirs_rounds: tuple[float, ...]
    agree: bool  # both libraries computed the same sum of |output|

    @property
    def ratio(self) -> float:
        return self.ours / self.theirs

    @property
    def rate(self) -> float:
        return self.case.gflop() / self.ours


def combine(results: dict[str, list[dict]]) -> list[Timing]:
    """Each library's best round median, layer by layer (and every round's median)."""
    rows = []
    for i, row in enumerate(results["cnnlab"][0]["rows"]):
        case = LayerCase(**row["case"])
        ours = [r["rows"][i] for r in results["cnnlab"]]
        theirs = [r["rows"][i] for r in results["torch"]]
        assert all(LayerCase(**r["case"]) == case for r in ours + theirs)
        a, b = ours[0]["abs_sum"], theirs[0]["abs_sum"]
        rows.append(
            Timing(
                case,
                row["algorithm"],
                min(statistics.median(r["times"]) for r in ours),
                min(statistics.median(r["times"]) for r in theirs),
                tuple(statistics.median(r["times"]) for r in ours),
                tuple(statistics.median(r["times"]) for r in theirs),
                abs(a - b) <= 1e-3 * max(abs(a), abs(b)),
            )
        )
    return rows


def geomean(values) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _pools(report: dict) -> str:
    parts = [f"{p['api']} {p['num_threads']}" for p in report["pools"]]
    if "torch" in report:
        parts.append(f"torch.get_num_threads() {report['torch']}")
    return ", ".join(parts) + (" (as requested)" if report["ok"] else " (MISMATCH)")


def print_header(machine: dict, threads: int, cpus, processes: list[dict]) -> None:
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in machine["flags"].items())
    print(f"machine: {machine['model']}, {machine['logical_cpus']} logical CPUs; {flags}")
    first = {p["role"]: p for p in reversed(processes)}
    blas = [p for p in first["cnnlab"]["threads"]["pools"] if p["api"] == "openblas"]
    kernel = ", ".join(f"OpenBLAS {p['version']} kernel {p['architecture']}" for p in blas)
    blas_text = kernel or "BLAS: " + _pools(first["cnnlab"]["threads"])
    print(f"numpy {first['cnnlab']['numpy']} ({blas_text})")
    t = first["torch"]
    onednn = "oneDNN available" if t["onednn"] else "no oneDNN"
    print(f"torch {t['torch']} (CPU capability {t['torch_capability']}, {onednn})")
    numeric = ("OPENBLAS_CORETYPE", "ATEN_CPU_CAPABILITY")
    set_vars = [f"{k}={os.environ[k]}" for k in numeric if k in os.environ]
    if set_vars:
        print(f"environment: {' '.join(set_vars)}")
    where = f"cores {','.join(map(str, cpus))}" if cpus else "any core"
    print(
        f"method: each contender in its own fresh process, one process at a time; "
        f"{threads} thread(s) each, on {where}; warm-up, median per round, best round kept"
    )
    print("processes (in the order they ran), thread pools as each one reported them:")
    for p in processes:
        print(f"  {p['role']:7} pid {p['pid']:>7}  {p['wall_s']:6.1f} s  {_pools(p['threads'])}")


def print_table(rows: list[Timing], peak: float) -> None:
    header = (
        f"{'layer':40} {'algorithm':>9} {'GFLOP':>7} {'cnnlab ms':>10} {'torch ms':>9} "
        f"{'ratio':>6} {'GFLOP/s':>8} {'% sgemm':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.case.label():40} {r.algorithm:>9} {r.case.gflop():7.3f} "
            f"{r.ours * 1e3:10.2f} {r.theirs * 1e3:9.2f} {r.ratio:6.2f} {r.rate:8.1f} "
            f"{100 * r.rate / peak:7.0f}%" + ("" if r.agree else "  OUTPUTS DIFFER")
        )


def verdicts(rows: list[Timing], peak: float, full: bool) -> dict:
    """Geometric means per batch size (overall and per round) and the targets' verdicts."""
    out: dict = {"geomean": geomean(r.ratio for r in rows), "batches": {}}
    n_rounds = len(rows[0].ours_rounds)
    for b in sorted({r.case.batch for r in rows}, reverse=True):
        sel = [r for r in rows if r.case.batch == b]
        g = geomean(r.ratio for r in sel)
        per_round = [
            geomean(r.ours_rounds[k] / r.theirs_rounds[k] for r in sel) for k in range(n_rounds)
        ]
        target = TARGET_RATIO.get(b) if full else None
        out["batches"][b] = {
            "geomean": g,
            "rounds": per_round,
            "target": target,
            "pass": None if target is None else g <= target,
        }
    threes = [r for r in rows if r.case.kernel == 3]
    if threes:
        fractions = [r.rate / peak for r in threes]
        out["peak_3x3"] = {
            "reached": sum(f >= TARGET_PEAK_FRACTION for f in fractions),
            "of": len(threes),
            "min": min(fractions),
            "median": statistics.median(fractions),
            "pass": all(f >= TARGET_PEAK_FRACTION for f in fractions) if full else None,
        }
    return out


def print_verdicts(v: dict) -> None:
    print(f"geometric-mean time ratio cnnlab / torch: {v['geomean']:.2f}")
    for b, s in v["batches"].items():
        rounds = ", ".join(f"{g:.2f}" for g in s["rounds"])
        line = f"  N={b}: geometric mean {s['geomean']:.2f} (each round: {rounds})"
        if s["target"] is not None:
            line += f", target <= {s['target']}: {verdict(s['pass'])}"
        print(line)
        if len(s["rounds"]) > 1 and max(s["rounds"]) > 1.2 * min(s["rounds"]):
            print(f"  N={b}: the rounds disagree by more than 20%: the machine was busy; re-run")
    if "peak_3x3" in v:
        p = v["peak_3x3"]
        line = (
            f"3x3 layers at >= {TARGET_PEAK_FRACTION:.0%} of sgemm: {p['reached']} of {p['of']} "
            f"(min {p['min']:.0%}, median {p['median']:.0%})"
        )
        print(f"{line}: {verdict(p['pass'])}" if p["pass"] is not None else line)


def print_memory(result: dict) -> dict:
    """tracemalloc peak of conv2d beyond its output, for every layer of the largest N."""
    rows = [(LayerCase(**r["case"]), r["extra"], r["output"]) for r in result["rows"]]
    n_max = rows[0][0].batch
    print(f"\nmemory (tracemalloc), N={n_max}: peak bytes conv2d allocates besides its output")
    header = f"{'layer':40} {'output MB':>10} {'extra MB':>9} {'extra/output':>13}"
    print(header)
    print("-" * len(header))
    for case, extra, out_bytes in rows:
        print(
            f"{case.label():40} {out_bytes / 2**20:10.1f} {extra / 2**20:9.1f} "
            f"{extra / out_bytes:13.2f}"
        )
    case, extra, out_bytes = max(rows, key=lambda t: (t[2], t[0].gflop()))
    worst = max(rows, key=lambda t: t[1] / t[2])
    ok = extra <= TARGET_MEMORY * out_bytes
    print(
        f"largest layer ({case.label()}): extra {extra / out_bytes:.2f}x output, "
        f"target <= {TARGET_MEMORY}: {verdict(ok)}"
    )
    print(f"worst layer ({worst[0].label()}): extra {worst[1] / worst[2]:.2f}x output")
    return {
        "largest": case.label(),
        "extra_over_output": extra / out_bytes,
        "target": TARGET_MEMORY,
        "pass": ok,
        "worst": worst[0].label(),
        "worst_extra_over_output": worst[1] / worst[2],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three small layers, for CI")
    parser.add_argument(
        "--threads",
        type=int,
        default=default_threads(),
        help="threads for every contender (default: every core this process may use)",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="processes per library, in the order ABBA... "
    )
    parser.add_argument("--repeats", type=int, default=5, help="least timed runs per layer")
    parser.add_argument(
        "--min-time", type=float, help="least timed seconds per layer (default 0.3, quick 0.02)"
    )
    parser.add_argument(
        "--batch", type=int, nargs="+", choices=(1, 8), help="only these batch sizes"
    )
    parser.add_argument("--memory", action="store_true", help="also measure peak memory")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument(
        "--worker", choices=("cnnlab", "torch", "sgemm", "memory"), help=argparse.SUPPRESS
    )
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads < 1 or args.rounds < 1 or args.repeats < 1:
        parser.error("--threads, --rounds and --repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.worker:
        result = _worker(args.worker, json.loads(args.spec.read_text()))
        args.out.write_text(json.dumps(result))
        return None

    layers = QUICK if args.quick else LAYERS
    if args.batch and not args.quick:
        layers = [c for c in layers if c.batch in args.batch]
    min_time = args.min_time if args.min_time is not None else (0.02 if args.quick else 0.3)
    cpus = None
    if hasattr(os, "sched_getaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[: args.threads]
    base = {"repeats": args.repeats, "min_time": min_time, "cpus": cpus}
    spec = {**base, "cases": [asdict(c) for c in layers]}

    processes, sgemms = [], []
    results: dict[str, list[dict]] = {name: [] for name in CONTENDERS}
    for k in range(args.rounds):
        sgemm = run_worker("sgemm", {**base, "size": 512 if args.quick else 2048}, args.threads)
        sgemms.append(sgemm)
        processes.append(sgemm)
        for name in CONTENDERS if k % 2 == 0 else reversed(CONTENDERS):
            result = run_worker(name, spec, args.threads)
            results[name].append(result)
            processes.append(result)
    memory = None
    if args.memory or not args.quick:
        n_max = max(c.batch for c in layers)
        cases = [asdict(c) for c in layers if c.batch == n_max]
        memory = run_worker("memory", {**base, "cases": cases}, args.threads)
        processes.append(memory)

    machine = cpu_description()
    print_header(machine, args.threads, cpus, processes)
    peak = max(s["gflops"] for s in sgemms)  # load only ever lowers it: the best round counts
    rounds = ", ".join(f"{s['gflops']:.1f}" for s in sgemms)
    print(
        f"sgemm (np.matmul, float32, {sgemms[0]['size']}^2, own process each round): "
        f"{peak:.1f} GFLOP/s, the practical peak (each round: {rounds})"
    )
    rows = combine(results)
    print_table(rows, peak)
    v = verdicts(rows, peak, full=not args.quick)
    print_verdicts(v)
    memory_verdict = print_memory(memory) if memory else None

    report = {
        "machine": machine,
        "threads": args.threads,
        "cpus": cpus,
        "rounds": args.rounds,
        "processes": [
            {k: p[k] for k in ("role", "pid", "wall_s", "threads", "cpus") if k in p}
            for p in processes
        ],
        "parent_pid": os.getpid(),
        "numpy": results["cnnlab"][0]["numpy"],
        "torch": results["torch"][0]["torch"],
        "torch_capability": results["torch"][0]["torch_capability"],
        "sgemm_gflops": peak,
        "sgemm_round_gflops": [s["gflops"] for s in sgemms],
        "rows": [
            {
                "layer": r.case.label(),
                "case": asdict(r.case),
                "algorithm": r.algorithm,
                "gflop": r.case.gflop(),
                "cnnlab_ms": r.ours * 1e3,
                "torch_ms": r.theirs * 1e3,
                "ratio": r.ratio,
                "gflops": r.rate,
                "fraction_of_sgemm": r.rate / peak,
                "cnnlab_round_ms": [t * 1e3 for t in r.ours_rounds],
                "torch_round_ms": [t * 1e3 for t in r.theirs_rounds],
                "outputs_agree": r.agree,
            }
            for r in rows
        ],
        "verdicts": v,
        "memory": memory_verdict,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
