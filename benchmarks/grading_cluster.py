"""Benchmark: grade one class of exercise 01 on a Dask cluster, beside local grading.

The class is ``--copies`` copies of the exercise 01 solution (40). Four contenders grade it,
one after the other, each client in its own fresh process, with one thread per library in
every process started (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``):

- ``local-1``, ``local-2``: ``cnnlab.exercises.grade`` with ``jobs`` 1 and 2;
- ``dask-1``, ``dask-2``: ``cnnlab.exercises.cluster.grade_on_cluster`` against a fresh
  ``dask scheduler`` with 1 or 2 ``dask worker`` processes on 127.0.0.1 (``--nthreads 1``,
  ``--preload cnnlab.exercises.cluster``, so a worker imports the grader when it starts, as a
  standing cluster has). Starting the cluster is not timed; the first task's session (loading
  the exercise, the zygote) is, as ``grade()`` opens its session in the local contenders.

Each contender's time is its ``grade()`` call, from the call to the written reports, and the
best of ``--rounds`` rounds counts (the order of the contenders alternates between rounds).
Printed: submissions per minute for each, the ratios dask-N / local-N and dask-2 / dask-1, and
the overhead Dask adds per submission, from the two contenders with one worker slot:

- ``(time of dask-1 - time of local-1) / copies``: all of it;
- the same, less each run's own grading time (the sum of the submissions' ``wall_seconds``,
  the time the session spent on each): what the cluster adds around the grading (reading
  and sending the notebooks, scheduling, the round trip, the journal), which the machine's
  other load moves much less than the grading itself. Target: at most 0.05 s;
- of that, the part paid per submission once the worker's session is open (dask-1: the time
  between consecutive results beyond their grading, after the first tenth of the class); the
  rest is paid once per run (connecting, opening the worker's session).

    PYTHONPATH=. python benchmarks/grading_cluster.py [--copies 40] [--rounds 1] [--json PATH]
                                                     [--allow-weak-isolation]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "exercises" / "01_cross_correlation"
DASK = Path(sys.executable).parent / "dask"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
TARGET_OVERHEAD_S = 0.05
CONTENDERS = (("local", 1), ("dask", 1), ("local", 2), ("dask", 2))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40, help="submissions in the class (40)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of the four contenders; the best counts (1)"
    )
    parser.add_argument("--allow-weak-isolation", action="store_true", help="as a normal user")
    parser.add_argument("--json", default=None, help="also write the report here")
    parser.add_argument("--contender", choices=["local", "dask"], help=argparse.SUPPRESS)
    parser.add_argument("--klass", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--scheduler", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _env() -> dict[str, str]:
    env = dict(os.environ, PATH=f"{DASK.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.update({name: "1" for name in THREAD_VARIABLES})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def make_class(folder: Path, copies: int) -> Path:
    """``copies`` copies of the solution, ``student000.ipynb``, ..."""
    klass = folder / "class"
    klass.mkdir()
    for number in range(copies):
        shutil.copy(EXERCISE / "source.ipynb", klass / f"student{number:03d}.ipynb")
    return klass


class LocalCluster:
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes (1 thread each), each in
    its own process group, on 127.0.0.1; :meth:`stop` ends them."""

    def __init__(self, folder: Path, workers: int) -> None:
        self.folder, self.processes = folder, []
        started = time.perf_counter()
        scheduler_file = folder / "scheduler.json"
        self._start(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
            + ["--scheduler-file", str(scheduler_file)],
            "scheduler",
        )
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the scheduler did not start: {self.log('scheduler')}")
            time.sleep(0.1)
        self.address = json.loads(scheduler_file.read_text())["address"]
        for number in range(workers):
            self._start(
                [str(DASK), "worker", self.address, "--nthreads", "1", "--nworkers", "1"]
                + ["--host", "127.0.0.1", "--no-dashboard", "--name", f"w{number}"]
                + ["--preload", "cnnlab.exercises.cluster"],
                f"w{number}",
            )
        from distributed import Client

        with Client(self.address, set_as_default=False, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
        self.start_s = time.perf_counter() - started

    def _start(self, command: list[str], name: str) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 (closed at exit)
        self.processes.append(
            subprocess.Popen(
                command, env=_env(), cwd=ROOT, stdout=log, stderr=log, start_new_session=True
            )
        )

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        for process in reversed(self.processes):  # workers first, then the scheduler
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def run_contender(args: argparse.Namespace) -> dict:
    """One contender, in its own process: grade the class, report as JSON."""
    from cnnlab.exercises import Limits, grade
    from cnnlab.exercises.cluster import grade_on_cluster

    if args.contender == "dask":
        import distributed  # noqa: F401 (imported before the clock, as grade's modules are)

    limits = Limits()
    arrivals: list[tuple[float, float]] = []  # (when each result came back, its grading time)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        if args.contender == "local":
            results = grade(
                EXERCISE,
                [args.klass],
                out,
                limits=limits,
                jobs=args.jobs,
                progress=False,
                allow_weak_isolation=args.allow_weak_isolation,
            )
        else:
            results = grade_on_cluster(
                EXERCISE,
                [args.klass],
                out,
                scheduler=args.scheduler,
                limits=limits,
                progress=False,
                allow_weak_isolation=args.allow_weak_isolation,
                on_result=lambda r: arrivals.append((time.perf_counter(), r.wall_seconds)),
            )
        wall = time.perf_counter() - started
        grades = (Path(out) / "grades.csv").read_text()
    return {
        "pid": os.getpid(),
        "wall_s": wall,
        "graded": len(results),
        "full_marks": sum(r.score == r.max_score for r in results),
        "grading_s": sum(r.wall_seconds for r in results),
        "threads": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "grades_csv": grades,
        "missing": sorted({m for r in results for m in r.missing_protections}),
        "steady_overhead_s": steady_overhead(arrivals),
    }


def steady_overhead(arrivals: list[tuple[float, float]]) -> float | None:
    """Per submission, the time between results beyond the grading itself, once the first
    tenth of the class is done (the worker's session open): ``(t_last - t_first - sum of
    the grading times in between) / count``. Meaningful with one worker slot."""
    steady = arrivals[max(1, len(arrivals) // 10) :]
    if len(steady) < 2:
        return None
    span = steady[-1][0] - steady[0][0]
    return (span - sum(seconds for _, seconds in steady[1:])) / (len(steady) - 1)


def _contender(kind: str, slots: int, klass: Path, folder: Path, weak: bool) -> dict:
    cluster = LocalCluster(folder, slots) if kind == "dask" else None
    try:
        command = [sys.executable, str(Path(__file__).resolve()), "--contender", kind]
        command += ["--klass", str(klass), "--jobs", str(slots)]
        command += ["--scheduler", cluster.address] if cluster else []
        command += ["--allow-weak-isolation"] if weak else []
        started = time.perf_counter()
        done = subprocess.run(command, env=_env(), cwd=ROOT, capture_output=True, text=True)
        process_wall = time.perf_counter() - started
    finally:
        if cluster is not None:
            cluster.stop()
    if done.returncode != 0:
        raise RuntimeError(f"{kind}-{slots} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report.update(role=f"{kind}-{slots}", process_wall_s=process_wall)
    if cluster is not None:
        report["cluster_start_s"] = cluster.start_s
    return report


def main(argv: list[str] | None = None) -> dict:
    """Run the four contenders; print and return the report."""
    args = parse_args(argv)
    if args.contender:
        print(json.dumps(run_contender(args)))
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        klass = make_class(Path(tmp), args.copies)
        processes = []
        for round_number in range(args.rounds):
            order = CONTENDERS if round_number % 2 == 0 else CONTENDERS[::-1]
            for kind, slots in order:
                folder = Path(tmp) / f"{kind}-{slots}-{round_number}"
                folder.mkdir()
                report = _contender(kind, slots, klass, folder, args.allow_weak_isolation)
                report["round"] = round_number
                processes.append(report)
    best = {}  # the best round of each contender
    for p in processes:
        if p["role"] not in best or p["wall_s"] < best[p["role"]]["wall_s"]:
            best[p["role"]] = p
    by_role = {f"{kind}-{slots}": best[f"{kind}-{slots}"] for kind, slots in CONTENDERS}
    per_minute = {role: 60 * args.copies / p["wall_s"] for role, p in by_role.items()}
    local, dask = by_role["local-1"], by_role["dask-1"]
    overhead = (dask["wall_s"] - local["wall_s"]) / args.copies
    outside = (
        (dask["wall_s"] - dask["grading_s"]) - (local["wall_s"] - local["grading_s"])
    ) / args.copies
    report = {
        "copies": args.copies,
        "parent_pid": os.getpid(),
        "processes": processes,
        "per_minute": per_minute,
        "ratios": {
            "dask-1 / local-1": per_minute["dask-1"] / per_minute["local-1"],
            "dask-2 / local-2": per_minute["dask-2"] / per_minute["local-2"],
            "dask-2 / dask-1": per_minute["dask-2"] / per_minute["dask-1"],
        },
        "dask_overhead_s": overhead,
        "dask_overhead_outside_grading_s": outside,
        "dask_overhead_steady_s": dask["steady_overhead_s"],
        "target_overhead_s": TARGET_OVERHEAD_S,
        "identical_grades": len({p["grades_csv"] for p in processes}) == 1,
        "load_average": os.getloadavg(),
    }
    print(
        f"{args.copies} submissions of exercise 01 (the solution), {os.cpu_count()} CPU cores, "
        f"1 thread per library in every process ({', '.join(THREAD_VARIABLES)})"
    )
    print(f"{'contender':10} {'slots':>5} {'grade() s':>10} {'grading s':>10} {'per minute':>11}")
    for role, p in by_role.items():
        kind, slots = role.split("-")
        start = f", cluster start {p['cluster_start_s']:.1f} s" if "cluster_start_s" in p else ""
        print(
            f"{kind:10} {slots:>5} {p['wall_s']:10.2f} {p['grading_s']:10.2f} "
            f"{per_minute[role]:11.1f}  pid {p['pid']}, round {p['round']}, "
            f"{p['full_marks']}/{p['graded']} full marks{start}"
        )
    print("(grade() s: the whole call; grading s: the sum of the submissions' own grading times)")
    for name, ratio in report["ratios"].items():
        print(f"throughput ratio {name}: {ratio:.2f}x")
    verdict = "meets" if outside <= TARGET_OVERHEAD_S else "misses"
    print(
        f"overhead Dask adds per submission: {overhead:.3f} s (dask-1 minus local-1, over "
        f"{args.copies}); outside the submissions' own grading: {outside:.3f} s ({verdict} "
        f"the {TARGET_OVERHEAD_S} s target)"
    )
    steady = dask["steady_overhead_s"]
    if steady is not None:
        print(
            f"  of which per submission once the worker's session is open: {steady:.4f} s "
            "(dask-1: time between results beyond their grading); the rest is the run's "
            "fixed start (connecting, the worker's session)"
        )
    print(f"grades.csv identical in all four: {report['identical_grades']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
