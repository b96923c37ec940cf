"""The cluster grading benchmark runs (smoke test, two copies); its timings are read, never
asserted. Asserted is the method: each contender in its own process, all four grading the
class alike, the ratios and the overhead computed from the times printed."""

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_cluster_benchmark_times_local_and_dask_each_in_its_own_process(capsys, tmp_path):
    bench = _load("grading_cluster")
    argv = ["--copies", "2", "--json", str(tmp_path / "cluster.json")]
    if os.geteuid() != 0:
        argv.append("--allow-weak-isolation")
    report = bench.main(argv)
    out = capsys.readouterr().out
    assert json.loads((tmp_path / "cluster.json").read_text()) == json.loads(json.dumps(report))

    roles = [p["role"] for p in report["processes"]]
    assert roles == ["local-1", "dask-1", "local-2", "dask-2"]
    pids = [p["pid"] for p in report["processes"]]
    assert len(set(pids)) == 4 and os.getpid() not in pids
    assert report["parent_pid"] == os.getpid()
    for p in report["processes"]:
        assert p["full_marks"] == p["graded"] == 2, p
        assert set(p["threads"].values()) == {"1"}
    assert report["identical_grades"]

    per_minute, by_role = report["per_minute"], {p["role"]: p for p in report["processes"]}
    for role, p in by_role.items():
        assert per_minute[role] == 60 * 2 / p["wall_s"]
    ratio = report["ratios"]["dask-2 / dask-1"]
    assert abs(ratio - per_minute["dask-2"] / per_minute["dask-1"]) < 1e-12
    overhead = (by_role["dask-1"]["wall_s"] - by_role["local-1"]["wall_s"]) / 2
    assert abs(report["dask_overhead_s"] - overhead) < 1e-12
    assert "overhead Dask adds per submission:" in out
    assert "throughput ratio dask-1 / local-1:" in out
