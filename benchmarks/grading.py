"""Benchmark: grade 40 copies of the exercise 01 solution; report throughput and overhead.

Overhead per submission = the worker's wall time minus the time the student's own code ran
(its cells and the graded calls), as the worker reports it; the grading process's comparisons
and the worker's start and isolation are all in it.

    PYTHONPATH=. python benchmarks/grading.py [--copies 40] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from cnnlab.exercises import grade

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "exercises" / "01_cross_correlation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "submissions"
        subs.mkdir()
        for number in range(args.copies):
            shutil.copy(EXERCISE / "source.ipynb", subs / f"student{number:03d}.ipynb")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        results = grade(EXERCISE, [subs], Path(tmp) / "out", jobs=args.jobs, progress=False)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert all(r.score == r.max_score for r in results), [r.status for r in results]
    overhead = [r.wall_seconds - r.student_seconds for r in results]
    student = [r.student_seconds for r in results]
    jobs = args.jobs or os.cpu_count()
    print(f"{args.copies} submissions, {jobs} workers at a time, {os.cpu_count()} CPU cores")
    print(f"total wall time          {wall:8.2f} s")
    print(f"submissions per minute   {60 * args.copies / wall:8.1f}")
    print(f"student compute / sub    {statistics.median(student):8.3f} s (median)")
    print(
        f"overhead / submission    {statistics.median(overhead):8.3f} s (median), "
        f"{max(overhead):.3f} s (max); target < 0.5 s"
    )
    cpu_overhead = cpu / args.copies - statistics.mean(student)
    print(f"worker CPU overhead/sub  {cpu_overhead:8.3f} s (CPU time of all workers, minus the")
    print("                                    student's time; unaffected by other load)")
    print(f"isolation                {', '.join(results[0].protections)}")
    print(f"missing protections      {', '.join(results[0].missing_protections) or 'none'}")


if __name__ == "__main__":
    main()
