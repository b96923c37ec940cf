"""The benchmarks run (smoke test in quick mode); their timings are read, never asserted."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_conv_benchmark_quick_prints_ratios(capsys):
    bench = _load("conv")
    bench.main(["--quick", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "geometric-mean time ratio cnnlab / torch:" in out
    assert sum(1 for line in out.splitlines() if "batch" in line) == len(bench.QUICK)
    assert "sgemm (np.matmul, float32):" in out


def test_conv_benchmark_quick_memory_section(capsys):
    bench = _load("conv")
    bench.main(["--quick", "--repeats", "1", "--memory"])
    out = capsys.readouterr().out
    assert "largest layer" in out and "target <= 2.0:" in out


def test_suite_holds_every_distinct_resnet50_conv():
    # torchvision's ResNet-50 v1.5 has 23 distinct convolutions (kernel, stride, channels, size).
    bench = _load("conv")
    shapes = {(c.c_in, c.c_out, c.size, c.kernel, c.stride) for c in bench.RESNET50}
    assert len(shapes) == len(bench.RESNET50) == 23
    assert {c.batch for c in bench.LAYERS} == {1, 8}


def test_gflop_count_matches_direct_count():
    bench = _load("conv")
    case = bench.LayerCase("t", batch=2, c_in=3, c_out=4, size=10, kernel=3, stride=2, padding=1)
    out = (10 + 2 - 3) // 2 + 1  # 5
    assert case.gflop() == 2 * 2 * 4 * out * out * 3 * 9 / 1e9
