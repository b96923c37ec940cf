"""The grading worker: runs one submission's code in isolation and answers calls as plain data.

Started by the grading process as ``python -P -s -c '...worker.main()' JOBDIR FD``. It reads
``JOBDIR/job.json`` and the input arrays (``.npy``, ``allow_pickle=False``), isolates itself
(:mod:`cnnlab.exercises.sandbox`), replaces the forbidden functions by stubs, runs the
notebook's code cells in order, then calls the student functions on the inputs. It reports
progress as JSON lines on the pipe ``FD`` and writes each answer as ``answer_<i>.npy`` in its
scratch directory. It never sees expected answers or the tests file; everything it says is
checked by the grading process.
"""

from __future__ import annotations

import builtins
import importlib.abc
import importlib.util
import json
import os
import signal
import sys
import time
import traceback

from cnnlab.exercises import sandbox


class Events:
    """JSON lines written to the pipe back to the grading process."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._dumps = json.dumps
        self._write = os.write
        self._clock = time.monotonic

    def send(self, **event: object) -> None:
        event["t"] = self._clock()
        try:
            self._write(self.fd, (self._dumps(event, default=str) + "\n").encode())
        except (OSError, ValueError, TypeError):
            pass


def _short_error(error: BaseException, limit: int = 1500) -> str:
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    # Drop the worker's own frames: keep from the first frame in student code.
    kept = [line for line in lines if "cnnlab/exercises/worker.py" not in line]
    text = "".join(kept).strip()
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _decode(spec: object, jobdir: str, np: object) -> object:
    kind = spec["t"]  # type: ignore[index]
    if kind == "npy":
        return np.load(os.path.join(jobdir, spec["file"]), allow_pickle=False)  # type: ignore
    if kind == "tuple":
        return tuple(_decode(item, jobdir, np) for item in spec["items"])  # type: ignore
    return spec["v"]  # type: ignore[index]


def _fresh(value: object) -> object:
    copy = getattr(value, "copy", None)
    if isinstance(value, tuple):
        return tuple(_fresh(v) for v in value)
    return copy() if callable(copy) and not isinstance(value, (dict, list)) else value


class _ForbiddenHook(importlib.abc.MetaPathFinder):
    """Replace forbidden attributes of modules as soon as they are imported."""

    def __init__(self, targets: dict[str, list[str]], patch) -> None:
        self.targets = targets
        self.patch = patch

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.targets:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = (
                finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            )
            if spec is not None and spec.loader is not None:
                loader = spec.loader
                original = loader.exec_module
                patch = self.patch

                def exec_module(module, _original=original, _name=fullname, patch=patch):
                    _original(module)
                    patch(_name)

                loader.exec_module = exec_module
                return spec
        return None


def install_forbidden(names: list[str], exercise: str) -> None:
    """Replace each dotted name ``pkg.module.function`` by a stub that raises."""
    targets: dict[str, list[str]] = {}
    for dotted in names:
        module, _, attribute = dotted.rpartition(".")
        targets.setdefault(module, []).append(attribute)

    def make_stub(dotted: str):
        def forbidden(*args, **kwargs):
            raise RuntimeError(
                f"{dotted} is forbidden in exercise {exercise}: write the computation yourself"
            )

        forbidden.__name__ = dotted.rpartition(".")[2]
        return forbidden

    def patch(module_name: str) -> None:
        module = sys.modules.get(module_name)
        if module is None:
            return
        for attribute in targets[module_name]:
            try:
                setattr(module, attribute, make_stub(f"{module_name}.{attribute}"))
            except (AttributeError, TypeError):
                pass

    for module_name in targets:
        patch(module_name)
    sys.meta_path.insert(0, _ForbiddenHook(targets, patch))
    # ``from package import name`` bindings made before the patch (package __init__ re-exports).
    for module_name, attributes in targets.items():
        parent = module_name.rpartition(".")[0]
        while parent:
            module = sys.modules.get(parent)
            for attribute in attributes:
                if module is not None and hasattr(module, attribute):
                    try:
                        setattr(module, attribute, make_stub(f"{module_name}.{attribute}"))
                    except (AttributeError, TypeError):
                        pass
            parent = parent.rpartition(".")[0]


def _disable_self_check() -> None:
    def check(*args, **kwargs):
        print("(self-check skipped: this notebook is being graded)")

    try:
        import cnnlab.exercises.selfcheck as selfcheck

        selfcheck.check = check
        sys.modules["cnnlab.exercises"].check = check  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover
        pass


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    jobdir, fd = argv[1], int(argv[2])
    events = Events(fd)
    with open(os.path.join(jobdir, "job.json")) as handle:
        job = json.load(handle)
    import numpy as np

    for module in job["preload"]:
        try:
            __import__(module)
        except Exception as error:  # noqa: BLE001
            events.send(e="note", text=f"could not preload {module}: {error}")
    calls = [
        (
            c["function"],
            _decode(c["args"], jobdir, np),
            {k: _decode(v, jobdir, np) for k, v in c["kwargs"].items()},
        )
        for c in job["calls"]
    ]
    _disable_self_check()
    install_forbidden(job["forbidden"], job["exercise"])
    scratch = job["scratch"]
    keep = [
        scratch,
        sys.prefix,
        sys.base_prefix,
        os.path.dirname(os.path.dirname(sandbox.__file__)),
    ]
    applied = sandbox.enter(job["sandbox"], keep)
    os.chdir(scratch)
    os.umask(0o077)
    scratch_fd = os.open(scratch, os.O_DIRECTORY)
    out = os.open("output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(
        {"HOME": scratch, "TMPDIR": scratch, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    )
    events.send(e="ready", isolation=applied)

    save, asarray, ndarray = np.save, np.asarray, np.ndarray
    # What the student's code may patch and the worker relies on is put back before each call.
    saved = [(module.__dict__, dict(module.__dict__)) for module in (builtins, np)]

    def restore() -> None:
        for namespace_dict, original in saved:
            for key in [k for k in namespace_dict if k not in original]:
                del namespace_dict[key]
            namespace_dict.update(original)

    namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
    started = time.monotonic()
    if job["run_cells"]:
        for index, source in job["cells"]:
            try:
                exec(compile(source, f"<cell {index}>", "exec"), namespace)
            except BaseException as error:  # noqa: BLE001 (SystemExit and KeyboardInterrupt too)
                events.send(
                    e="cell",
                    cell=index,
                    error=_short_error(error),
                    memory=isinstance(error, MemoryError),
                )
    events.send(e="cells_done", seconds=time.monotonic() - started)
    for number, (index, (name, args, kwargs)) in enumerate(
        zip(job["call_ids"], calls, strict=True)
    ):
        restore()
        events.send(e="begin", call=index)
        started = time.monotonic()
        function = namespace.get(name)
        if function is None:
            events.send(e="end", call=index, status="missing", detail=f"`{name}` is not defined")
            continue
        try:
            result = function(*_fresh(args), **_fresh(kwargs))
        except NotImplementedError:
            events.send(e="end", call=index, status="not_implemented", detail="NotImplementedError")
            continue
        except MemoryError as error:
            events.send(e="end", call=index, status="memory", detail=_short_error(error))
            continue
        except BaseException as error:  # noqa: BLE001
            events.send(e="end", call=index, status="error", detail=_short_error(error))
            continue
        seconds = time.monotonic() - started
        restore()
        try:
            answer = asarray(result)
            if not isinstance(answer, ndarray) or answer.dtype.kind not in "biuf":
                raise TypeError(f"returned {type(result).__name__} with dtype {answer.dtype}")
            with open(
                f"answer_{index}.npy",
                "wb",
                opener=lambda p, f: os.open(p, f | os.O_NOFOLLOW, 0o600, dir_fd=scratch_fd),
            ) as handle:
                save(handle, answer.view(ndarray), allow_pickle=False)
                handle.flush()
                if os.fstat(handle.fileno()).st_size < answer.nbytes:
                    raise OSError("the answer is larger than the worker's file-size limit")
        except BaseException as error:  # noqa: BLE001
            events.send(e="end", call=index, status="bad_answer", detail=str(error)[:500])
            continue
        events.send(e="end", call=index, status="ok", seconds=seconds, n=number)
    events.send(e="done")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
