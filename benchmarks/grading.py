"""Benchmark: grade one class of exercise 01 with `cnnlab grade` and with `nbgrader autograde`.

The class is 40 copies of the exercise 01 solution (``--copies``), collected in an nbgrader
course (``submitted/<student>/ps1/cross_correlation.ipynb``, released with
``nbgrader generate_assignment``). Each contender grades the same class in its own fresh
process, one after the other, on this machine, with the same thread count in every process it
starts (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``; ``--threads``):

- ``cnnlab``: ``cnnlab.exercises.grade`` on the course's ``submitted`` folders, ``--jobs``
  workers at a time (default: every core), every submission in its own sandboxed worker;
- ``nbgrader``: ``nbgrader autograde ps1`` in the course folder (nbgrader runs one notebook at a
  time, each in a fresh kernel). Skipped when nbgrader is not installed (``--no-nbgrader``).

Printed: each contender's throughput (submissions per minute, from its whole process's wall
time, start-up included), the ratio cnnlab / nbgrader,
and cnnlab's overhead per submission: the worker's wall time minus the time the student's own
code ran (its cells and the graded calls), as the worker reports it; the grading process's
comparisons and the worker's start and isolation are all in it.

    PYTHONPATH=. python benchmarks/grading.py [--copies 40] [--jobs N] [--threads 1]
                                              [--no-nbgrader] [--json PATH]
    PYTHONPATH=. python benchmarks/grading.py --scheduler [--copies 40]   (Dask: see
                                              benchmarks/grading_cluster.py)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "exercises" / "01_cross_correlation"
ASSIGNMENT, NOTEBOOK = "ps1", "cross_correlation"
BIN = Path(sys.executable).parent
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
OVERHEAD_TARGET_S = 0.1  # per submission per worker, beyond the student's own compute
RATIO_TARGET = 10.0  # cnnlab's throughput over nbgrader's, on the same class


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40, help="submissions in the class (40)")
    parser.add_argument("--jobs", type=int, default=None, help="cnnlab workers (all cores)")
    parser.add_argument("--threads", type=int, default=1, help="threads per process (1)")
    parser.add_argument("--no-nbgrader", action="store_true", help="time cnnlab alone")
    parser.add_argument(
        "--scheduler",
        action="store_true",
        help="instead: local grading beside Dask clusters of 1 and 2 workers "
        "(benchmarks/grading_cluster.py)",
    )
    parser.add_argument("--allow-weak-isolation", action="store_true", help="as a normal user")
    parser.add_argument("--json", default=None, help="also write the report here")
    parser.add_argument("--contender", choices=["cnnlab"], help=argparse.SUPPRESS)
    parser.add_argument("--course", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def nbgrader_available() -> bool:
    """Whether ``nbgrader`` is installed beside this Python."""
    return (BIN / "nbgrader").is_file()


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def make_course(folder: Path, copies: int, threads: int) -> Path:
    """An nbgrader course whose ``submitted/`` holds ``copies`` copies of the solution."""
    from cnnlab.exercises import release

    course = folder / "course"
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        f'c = get_config()\nc.CourseDirectory.root = r"{course}"\n'
    )
    shutil.copy(EXERCISE / "source.ipynb", source / f"{NOTEBOOK}.ipynb")
    released = release(EXERCISE, folder / "release")
    for name in ("visible_tests.json", "visible_tests.npz"):
        shutil.copy(released / name, source / name)
    for number in range(copies):
        student = course / "submitted" / f"student{number:03d}" / ASSIGNMENT
        student.mkdir(parents=True)
        shutil.copy(EXERCISE / "source.ipynb", student / f"{NOTEBOOK}.ipynb")
    if nbgrader_available():
        _run([str(BIN / "nbgrader"), "generate_assignment", ASSIGNMENT], course, threads)
    return course


def _run(command: list[str], cwd: Path, threads: int) -> tuple[int, float, str]:
    """Run ``command`` in its own process; return its pid, wall time and output."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=_env(threads),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    output, errors = process.communicate()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({process.returncode}):\n{(output + errors)[-3000:]}"
        )
    return process.pid, wall, output


def grade_with_cnnlab(args: argparse.Namespace) -> dict:
    """The ``cnnlab`` contender, in its own process: grade the class, report as JSON."""
    from cnnlab.exercises import grade
    from cnnlab.exercises.submissions import assignment_folders

    course = Path(args.course)
    folders = assignment_folders([course / "submitted"], ASSIGNMENT)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        results = grade(
            EXERCISE,
            folders,
            out,
            jobs=args.jobs,
            progress=False,
            allow_weak_isolation=args.allow_weak_isolation,
        )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "pid": os.getpid(),
        "wall_s": wall,
        "graded": len(results),
        "full_marks": sum(r.score == r.max_score for r in results),
        "jobs": args.jobs or os.cpu_count(),
        "threads": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "overhead_s": [r.wall_seconds - r.student_seconds for r in results],
        "student_s": [r.student_seconds for r in results],
        "protections": list(results[0].protections),
        "missing": list(results[0].missing_protections),
    }


def _cnnlab(course: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--contender", "cnnlab"]
    command += ["--course", str(course), "--threads", str(args.threads)]
    command += ["--jobs", str(args.jobs)] if args.jobs else []
    command += ["--allow-weak-isolation"] if args.allow_weak_isolation else []
    pid, wall, output = _run(command, course, args.threads)
    report = json.loads(output.strip().splitlines()[-1])
    assert report["pid"] == pid, (report["pid"], pid)
    report["role"], report["process_wall_s"] = "cnnlab", wall
    return report


def _nbgrader(course: Path, args: argparse.Namespace) -> dict:
    import nbformat

    pid, wall, _ = _run([str(BIN / "nbgrader"), "autograde", ASSIGNMENT], course, args.threads)
    ran = 0
    for notebook in sorted((course / "autograded").glob(f"*/{ASSIGNMENT}/{NOTEBOOK}.ipynb")):
        nb = nbformat.read(str(notebook), as_version=4)
        text = "".join(
            out.get("text", "") for c in nb.cells if c.cell_type == "code" for out in c.outputs
        )
        ran += "PASS" in text and "FAIL" not in text  # it ran the code, every check passed
    return {"role": "nbgrader", "pid": pid, "process_wall_s": wall, "graded": ran}


def main(argv: list[str] | None = None) -> dict:
    """Run both contenders (or one, with ``--no-nbgrader``); print and return the report."""
    args = parse_args(argv)
    if args.scheduler:
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            "grading_cluster", Path(__file__).with_name("grading_cluster.py")
        )
        cluster = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cluster)
        forwarded = ["--copies", str(args.copies)]
        forwarded += ["--allow-weak-isolation"] if args.allow_weak_isolation else []
        forwarded += ["--json", args.json] if args.json else []
        return cluster.main(forwarded)
    if args.contender == "cnnlab":
        print(json.dumps(grade_with_cnnlab(args)))
        return {}
    with_nbgrader = not args.no_nbgrader and nbgrader_available()
    with tempfile.TemporaryDirectory() as tmp:
        course = make_course(Path(tmp), args.copies, args.threads)
        processes = [_cnnlab(course, args)]
        if with_nbgrader:
            processes.append(_nbgrader(course, args))
    cnnlab = processes[0]
    # whole processes, start to exit, for both: what `cnnlab grade` and `nbgrader autograde` take
    per_minute = {p["role"]: 60 * args.copies / p["process_wall_s"] for p in processes}
    report = {
        "copies": args.copies,
        "parent_pid": os.getpid(),
        "processes": processes,
        "per_minute": per_minute,
        "ratio": per_minute["cnnlab"] / per_minute["nbgrader"] if with_nbgrader else None,
    }
    assert cnnlab["full_marks"] == cnnlab["graded"] == args.copies, cnnlab
    overhead, student = cnnlab["overhead_s"], cnnlab["student_s"]
    print(
        f"{args.copies} submissions of exercise 01 (the solution), {os.cpu_count()} CPU cores, "
        f"{args.threads} thread(s) per process ({', '.join(THREAD_VARIABLES)})"
    )
    print(f"cnnlab grade             {cnnlab['jobs']} workers at a time, pid {cnnlab['pid']}")
    print(f"  process wall time      {cnnlab['process_wall_s']:8.2f} s")
    print(f"  of which grading       {cnnlab['wall_s']:8.2f} s (grade(), after start-up)")
    print(f"  submissions per minute {per_minute['cnnlab']:8.1f}")
    print(f"  student compute / sub  {statistics.median(student):8.3f} s (median)")
    print(
        f"  overhead / submission  {statistics.median(overhead):8.3f} s (median), "
        f"{max(overhead):.3f} s (max)"
    )
    verdict = "PASS" if statistics.median(overhead) <= OVERHEAD_TARGET_S else "MISS"
    print(f"  target: median overhead <= {OVERHEAD_TARGET_S:g} s per submission: {verdict}")
    print(f"  isolation              {', '.join(cnnlab['protections'])}")
    print(f"  missing protections    {', '.join(cnnlab['missing']) or 'none'}")
    if with_nbgrader:
        theirs = processes[1]
        print(f"nbgrader autograde       one notebook at a time, pid {theirs['pid']}")
        print(f"  process wall time      {theirs['process_wall_s']:8.2f} s")
        print(f"  submissions per minute {per_minute['nbgrader']:8.1f}")
        print(f"  notebooks that ran     {theirs['graded']} of {args.copies}")
        verdict = "PASS" if report["ratio"] >= RATIO_TARGET else "MISS"
        print(f"throughput ratio cnnlab / nbgrader: {report['ratio']:.1f}x")
        print(f"  target: at least {RATIO_TARGET:g}x: {verdict}")
    else:
        print("nbgrader autograde       not timed (nbgrader not installed, or --no-nbgrader)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
