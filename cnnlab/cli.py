"""The ``cnnlab`` command: ``cnnlab release`` and ``cnnlab grade``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlab", description="cnnlab exercises: release and grade."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    release = commands.add_parser("release", help="write the student notebook of an exercise")
    release.add_argument("exercise", help="exercise folder, e.g. exercises/01_cross_correlation")
    release.add_argument("--out", default="release", help="output folder (default: release)")

    grade = commands.add_parser("grade", help="grade submitted notebooks in isolated workers")
    grade.add_argument("exercise", help="exercise folder (holds tests.py and source.ipynb)")
    grade.add_argument("submissions", nargs="+", help="notebooks, or folders of notebooks")
    grade.add_argument("--out", required=True, help="report folder")
    grade.add_argument(
        "--jobs", type=int, default=None, help="workers at a time (default: CPU cores)"
    )
    grade.add_argument("--timeout", type=float, default=120.0, help="seconds per submission (120)")
    grade.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply every test's per-call time limit (1.0)",
    )
    grade.add_argument("--memory-mb", type=int, default=2048, help="memory per worker, MiB (2048)")
    grade.add_argument("--nproc", type=int, default=64, help="processes per worker (64)")
    grade.add_argument(
        "--fsize-mb", type=int, default=64, help="largest file a worker writes, MiB (64)"
    )
    grade.add_argument(
        "--uid-base",
        type=int,
        default=61000,
        help="as root, workers run as the first free uids from UID_BASE on, reserved for the run (61000)",
    )
    grade.add_argument(
        "--disk-mb",
        type=int,
        default=256,
        help="all a worker may write (scratch, /tmp, /dev/shm), MiB, as root (256)",
    )
    grade.add_argument("--allow-network", action="store_true", help="do not cut the network")
    grade.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="grade on the Dask cluster of this scheduler (tcp://HOST:PORT, or tls://HOST:PORT "
        "with Dask's TLS settings); rerunning with the same --out grades only what is missing",
    )
    grade.add_argument(
        "--allow-weak-isolation",
        action="store_true",
        help="grade even where a protection the grading guide promises is missing "
        "(isolation.json records what each worker had)",
    )
    grade.add_argument(
        "--hidden-feedback",
        choices=["names", "none"],
        default="names",
        help="hidden tests in feedback: by name with pass/fail, or only their total",
    )
    grade.add_argument(
        "--gradescope-results",
        default=None,
        help="also write the single submission's results.json here",
    )
    grade.add_argument("--no-progress", action="store_true", help="no progress bar")
    grade.add_argument(
        "--nbgrader-gradebook",
        default=None,
        metavar="PATH",
        help="also write each student's per-test scores into this nbgrader gradebook.db "
        "(needs --assignment)",
    )
    grade.add_argument(
        "--assignment",
        default=None,
        metavar="NAME",
        help="the nbgrader assignment: grade only its folders in submitted/<student>/NAME/, "
        "and its name in the gradebook",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cnnlab`` command line; return its exit status."""
    args = _parser().parse_args(argv)
    if args.command == "release":
        from cnnlab.exercises.releasing import release

        folder = release(args.exercise, args.out)
        print(f"wrote {folder / 'student.ipynb'} and its visible tests")
        return 0
    return _grade(args)


def _fail(message: str) -> int:
    print(f"cnnlab grade: {message}", file=sys.stderr)
    return 2


def _keep_hidden_inputs_secret(exercise: str, out: str) -> None:
    """Without a secret from ``CNNLAB_HIDDEN_SEED`` or the exercise's ``HIDDEN_SEED``, grade
    with the one kept in the report folder (drawn there the first time): hidden inputs then
    cannot be drawn ahead of grading from the public seeding scheme."""
    import os

    from cnnlab.exercises.spec import HIDDEN_SEED_VARIABLE, load_exercise, stored_secret

    if os.environ.get(HIDDEN_SEED_VARIABLE):
        return
    try:
        if load_exercise(exercise).hidden_seed:
            return
    except (OSError, ValueError, ImportError, SyntaxError):
        return  # grading reports what is wrong with the exercise
    os.environ[HIDDEN_SEED_VARIABLE] = stored_secret(out)


def _grade(args: argparse.Namespace) -> int:
    from cnnlab.exercises.cluster import ClusterError
    from cnnlab.exercises.grading import IsolationError, Limits
    from cnnlab.exercises.journal import JournalError
    from cnnlab.exercises.reports import grade
    from cnnlab.exercises.safetext import visible
    from cnnlab.exercises.submissions import (
        NoSubmissionsError,
        assignment_folders,
        find_submissions,
    )

    if args.nbgrader_gradebook is not None and args.assignment is None:
        return _fail("--nbgrader-gradebook needs --assignment NAME (the nbgrader assignment)")
    if args.nbgrader_gradebook is not None:
        from cnnlab.exercises.nbgrader_gradebook import check_gradebook

        try:
            check_gradebook(args.nbgrader_gradebook, args.assignment)
        except ValueError as error:
            return _fail(str(error))
    submissions = args.submissions
    try:
        if args.assignment is not None:
            submissions = assignment_folders(submissions, args.assignment)
        find_submissions(args.submissions, args.assignment)  # nothing to grade: say so now
    except ValueError as error:
        return _fail(str(error))

    limits = Limits(
        timeout=args.timeout,
        time_scale=args.time_scale,
        memory_mb=args.memory_mb,
        nproc=args.nproc,
        fsize_mb=args.fsize_mb,
        uid_base=args.uid_base,
        network=args.allow_network,
        disk_mb=args.disk_mb,
    )
    try:
        _keep_hidden_inputs_secret(args.exercise, args.out)
    except (OSError, ValueError) as error:
        return _fail(str(error))
    if args.scheduler is not None:
        from functools import partial

        from cnnlab.exercises.cluster import grade_on_cluster

        grade = partial(grade_on_cluster, scheduler=args.scheduler)
    try:
        results = grade(
            args.exercise,
            submissions,
            args.out,
            limits=limits,
            jobs=args.jobs,
            hidden_feedback=args.hidden_feedback,
            progress=not args.no_progress,
            gradescope_results=args.gradescope_results,
            allow_weak_isolation=args.allow_weak_isolation,
        )
    except IsolationError as error:
        print(f"cnnlab grade: {error}", file=sys.stderr)
        return 3
    except (ClusterError, JournalError) as error:
        return _fail(str(error))
    except KeyboardInterrupt:  # what was graded on a cluster is kept in --out's journal
        return 130
    except NoSubmissionsError as error:  # the folders emptied since the check above
        return _fail(str(error))
    for result in results:
        print(f"{visible(result.id)}\t{result.status}\t{result.score:g}/{result.max_score:g}")
    print(f"reports in {args.out}: grades.csv, feedback/, results/")
    if args.nbgrader_gradebook is not None:
        from cnnlab.exercises.nbgrader_gradebook import write_gradebook
        from cnnlab.exercises.spec import load_exercise

        try:
            rows = write_gradebook(
                args.nbgrader_gradebook, args.assignment, load_exercise(args.exercise), results
            )
        except ValueError as error:
            print(f"cnnlab grade: gradebook not updated: {error}", file=sys.stderr)
            return 1
        for row in rows:
            print(f"gradebook\t{row.student}\t{row.score:g}/{row.max_score:g}")
        print(f"scores of {len(rows)} students in {args.nbgrader_gradebook} ({args.assignment})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
