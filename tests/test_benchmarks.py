"""The benchmarks run (smoke test in quick mode); their timings are read, never asserted.

What is asserted is the method: every contender ran in its own process (distinct pids, none of
them this one), with the thread count asked for, and both libraries computed the same thing.
"""

import importlib.util
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_conv_benchmark_quick_runs_each_contender_in_its_own_process(capsys, tmp_path):
    bench = _load("conv")
    path = tmp_path / "conv.json"
    report = bench.main(
        ["--quick", "--threads", "1", "--rounds", "2", "--repeats", "1", "--json", str(path)]
    )
    out = capsys.readouterr().out
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))

    # Each round: sgemm, then cnnlab, torch | sgemm, torch, cnnlab: six processes, six pids.
    roles = [p["role"] for p in report["processes"]]
    assert roles == ["sgemm", "cnnlab", "torch", "sgemm", "torch", "cnnlab"]
    pids = [p["pid"] for p in report["processes"]]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids
    assert report["parent_pid"] == os.getpid()

    # The thread count asked for, as each process's own pools report it.
    for p in report["processes"]:
        threads = p["threads"]
        assert threads["requested"] == 1 and threads["ok"], p
        assert all(pool["num_threads"] == 1 for pool in threads["pools"]), p
        if p["role"] == "torch":
            assert threads["torch"] == 1
            assert any(pool["api"] == "openmp" for pool in threads["pools"])
        else:
            assert "torch" not in threads  # the NumPy processes never load torch
            assert all(pool["api"] != "openmp" for pool in threads["pools"])
    assert "MISMATCH" not in out

    # The table: one row per layer, both times measured, the ratio is their quotient.
    assert [r["layer"] for r in report["rows"]] == [c.label() for c in bench.QUICK]
    for row in report["rows"]:
        assert row["cnnlab_ms"] > 0 and row["torch_ms"] > 0
        assert abs(row["ratio"] - row["cnnlab_ms"] / row["torch_ms"]) < 1e-9 * row["ratio"]
        assert len(row["cnnlab_round_ms"]) == len(row["torch_round_ms"]) == 2
        assert row["cnnlab_ms"] == min(row["cnnlab_round_ms"])  # the best round's median
        assert row["torch_ms"] == min(row["torch_round_ms"])
        assert row["outputs_agree"]
        assert row["algorithm"] == "im2col"
    for case in bench.QUICK:
        assert sum(1 for line in out.splitlines() if line.startswith(case.label())) == 1
    assert report["sgemm_gflops"] == max(report["sgemm_round_gflops"]) > 0
    assert report["verdicts"]["batches"][2]["target"] is None  # no verdicts in quick mode
    for line in ("machine:", "numpy ", "torch ", "method:", "sgemm (np.matmul, float32"):
        assert any(text.startswith(line) for text in out.splitlines()), line
    assert "geometric-mean time ratio cnnlab / torch:" in out


def test_conv_benchmark_quick_memory_section(capsys):
    bench = _load("conv")
    report = bench.main(
        ["--quick", "--threads", "1", "--rounds", "1", "--repeats", "1", "--memory"]
    )
    out = capsys.readouterr().out
    assert "largest layer" in out and "target <= 2.0:" in out
    assert [p["role"] for p in report["processes"]] == ["sgemm", "cnnlab", "torch", "memory"]
    assert report["memory"]["extra_over_output"] >= 0


def test_default_threads_is_every_usable_core():
    bench = _load("conv")
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert bench.parse_args([]).threads == expected
    assert bench.parse_args(["--threads", "3"]).threads == 3


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


def test_verdicts_apply_the_targets():
    bench = _load("conv")
    case8 = bench.LayerCase("3x3", 8, 8, 8, 8, 3, padding=1)
    case1 = replace(case8, batch=1)
    rows = [
        bench.Timing(case8, "im2col", 1.6, 1.0, (1.6,), (1.0,), True),
        bench.Timing(case8, "im2col", 1.5, 1.0, (1.5,), (1.0,), True),
        bench.Timing(case1, "im2col", 1.9, 1.0, (1.9,), (1.0,), True),
    ]
    peak = case8.gflop() / 1.6 / 0.61  # both batch-8 layers reach 60% of it, batch 1 does not
    v = bench.verdicts(rows, peak=peak, full=True)
    assert abs(v["batches"][8]["geomean"] - (1.6 * 1.5) ** 0.5) < 1e-12
    assert v["batches"][8]["pass"] is False  # 1.55 > 1.5
    assert v["batches"][1]["pass"] is True  # 1.9 <= 2.0
    assert v["peak_3x3"]["reached"] == 2 and v["peak_3x3"]["pass"] is False
    assert bench.verdicts(rows, peak=1.0, full=False)["batches"][8]["pass"] is None


def test_grading_benchmark_times_cnnlab_and_nbgrader_each_in_its_own_process(capsys, tmp_path):
    bench = _load("grading")
    argv = ["--copies", "2", "--jobs", "2", "--json", str(tmp_path / "grading.json")]
    if os.geteuid() != 0:
        argv.append("--allow-weak-isolation")
    report = bench.main(argv)
    out = capsys.readouterr().out
    assert json.loads((tmp_path / "grading.json").read_text()) == json.loads(json.dumps(report))
    assert [p["role"] for p in report["processes"]] == ["cnnlab", "nbgrader"]
    pids = [p["pid"] for p in report["processes"]]
    assert len(set(pids)) == 2 and os.getpid() not in pids
    assert report["parent_pid"] == os.getpid()
    cnnlab, nbgrader = report["processes"]
    assert cnnlab["full_marks"] == cnnlab["graded"] == 2  # same class, graded right
    assert nbgrader["graded"] == 2  # nbgrader ran every notebook and its checks passed
    assert set(cnnlab["threads"].values()) == {"1"}
    per_minute = report["per_minute"]
    assert per_minute["cnnlab"] == 60 * 2 / cnnlab["process_wall_s"]
    assert abs(report["ratio"] - per_minute["cnnlab"] / per_minute["nbgrader"]) < 1e-12
    assert "throughput ratio cnnlab / nbgrader:" in out
