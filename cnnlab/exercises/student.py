"""The student process: the only process that runs student code, and what it runs beside it.

Started by the supervisor (:mod:`cnnlab.exercises.supervisor`), either forked from it, where
the grading run's zygote preloaded the libraries (:mod:`cnnlab.exercises.zygote`), or as a
fresh interpreter. Either way it holds two pipes only: commands from the supervisor on
descriptor 3, replies to it on descriptor 4 (:mod:`cnnlab.exercises.protocol`). It never holds
the event pipe to the grading process, nor any test input before the call that uses it.

:func:`student_main` switches off what the exercise forbids (:func:`install_forbidden`), sets
its memory limit, reports both (:class:`~cnnlab.exercises.protocol.Limits`) and waits for
``go``; then runs the notebook's cells and answers each call the supervisor sends, writing the
answer to ``answer_<call>.npy`` in its scratch folder.
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
import types
from collections.abc import Sequence

from cnnlab.exercises import plaindata, protocol, rlimits, seccomp

__all__ = [
    "student_main",
    "install_forbidden",
    "verify_forbidden",
    "within",
    "CMD_FD",
    "REPLY_FD",
]

CMD_FD, REPLY_FD = 3, 4


def within(name: str, modules: Sequence[str]) -> bool:
    """Whether the module ``name`` is one of ``modules`` or a submodule of one.

    Examples
    --------
    >>> within("cnnlab.numpy.conv", ["cnnlab.numpy"]), within("cnnlab.numpyx", ["cnnlab.numpy"])
    (True, False)
    """
    return any(name == m or name.startswith(m + ".") for m in modules)


def _short_error(error: BaseException, limit: int = 1500) -> str:
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    # Drop the worker's own frames: keep from the first frame in student code.
    kept = [line for line in lines if "cnnlab/exercises/student.py" not in line]
    text = "".join(kept).strip()
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _type_and_message(error: BaseException, limit: int = 500) -> tuple[str, str]:
    """The exception's type name and message (cut to ``limit``); a ``__str__`` that raises
    gives a placeholder. The grading process trusts neither (see ``scoring``)."""
    kind = type(error).__name__
    try:
        text = str(error)
    except BaseException:  # noqa: BLE001 (the student's __str__)
        text = "<the exception's message could not be read>"
    return str(kind)[:100], text[:limit]


def _forbidden_stub(dotted: str, exercise: str):
    def forbidden(*args, **kwargs):
        raise RuntimeError(
            f"{dotted} is forbidden in exercise {exercise}: write the computation yourself"
        )

    forbidden.__name__ = dotted.rpartition(".")[2]
    forbidden._cnnlab_forbidden = True  # type: ignore[attr-defined]
    return forbidden


class _StubLoader(importlib.abc.Loader):
    """A forbidden module imports as a stub: every name in it is a function that raises."""

    def __init__(self, exercise: str) -> None:
        self.exercise = exercise

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        name, exercise = module.__name__, self.exercise

        def __getattr__(attribute: str):
            if attribute.startswith("__"):
                raise AttributeError(attribute)
            return _forbidden_stub(f"{name}.{attribute}", exercise)

        module.__getattr__ = __getattr__
        module.__path__ = []  # a package, so that its submodules import (as stubs too)


class _ForbiddenHook(importlib.abc.MetaPathFinder):
    """Patch forbidden attributes of modules as they are imported; refuse forbidden modules."""

    def __init__(self, targets: dict[str, list[str]], patch, modules, exercise) -> None:
        self.targets = targets
        self.patch = patch
        self.modules = tuple(modules)
        self.exercise = exercise

    def find_spec(self, fullname, path, target=None):
        if within(fullname, self.modules):
            return importlib.util.spec_from_loader(fullname, _StubLoader(self.exercise))
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


class _Shadow:
    """Stands in for an object whose attributes cannot be set (an instance of a C type, such
    as ``torch._C._VariableFunctions``): the forbidden names are stubs, the rest its own."""

    def __init__(self, target: object) -> None:
        self._cnnlab_target = target

    def __getattr__(self, name: str) -> object:
        return getattr(self._cnnlab_target, name)

    def __dir__(self) -> list[str]:
        return dir(self._cnnlab_target)


def _set_stub(holder: object, owner_name: str, owner: object, name: str, stub) -> None:
    """``owner.name = stub``; where ``owner`` refuses, put a shadow of it on ``holder``."""
    try:
        setattr(owner, name, stub)
        return
    except (AttributeError, TypeError):
        if holder is None:
            raise
    shadow = _Shadow(owner)
    setattr(shadow, name, stub)
    setattr(holder, owner_name, shadow)


def install_forbidden(names: list[str], exercise: str, modules: list[str] = ()) -> None:
    """Replace each dotted name ``pkg.module.function`` by a stub that raises; replace each
    module in ``modules`` (and its submodules) by a stub module whose every name raises, also
    where already imported."""
    targets: dict[str, list[str]] = {}
    for dotted in names:
        module, _, attribute = dotted.rpartition(".")
        targets.setdefault(module, []).append(attribute)

    def make_stub(dotted: str):
        return _forbidden_stub(dotted, exercise)

    busy = []

    def patch_objects() -> None:
        # Names inside objects that are not modules (``torch.ops.aten.conv2d``): walk the
        # attributes from the longest loaded module prefix.
        if busy:
            return
        busy.append(True)
        try:
            for dotted in names:
                parts = dotted.split(".")
                for cut in range(len(parts) - 1, 0, -1):
                    if ".".join(parts[:cut]) in sys.modules:
                        break
                else:
                    continue
                if cut == len(parts) - 1:
                    continue  # a module attribute: patched when the module loads
                try:
                    holder, owner = None, sys.modules[".".join(parts[:cut])]
                    for part in parts[cut:-1]:
                        holder, owner = owner, getattr(owner, part)
                    if hasattr(owner, parts[-1]):
                        _set_stub(holder, parts[-2], owner, parts[-1], make_stub(dotted))
                except Exception:  # noqa: BLE001 (absent here, or not patchable)
                    pass
        finally:
            busy.clear()

    def patch(module_name: str) -> None:
        module = sys.modules.get(module_name)
        if module is None:
            return
        for attribute in targets.get(module_name, []):
            try:
                setattr(module, attribute, make_stub(f"{module_name}.{attribute}"))
            except (AttributeError, TypeError):
                pass
        patch_objects()

    for module_name in targets:
        patch(module_name)
    for loaded in list(sys.modules):
        if within(loaded, modules):
            del sys.modules[loaded]
            parent, _, child = loaded.rpartition(".")
            if parent in sys.modules:
                try:
                    delattr(sys.modules[parent], child)
                except AttributeError:
                    pass
    sys.meta_path.insert(0, _ForbiddenHook(targets, patch, modules, exercise))
    # ``from package import name`` bindings made before the patch (package __init__ re-exports).
    for module_name, attributes in targets.items():
        parent = module_name.rpartition(".")[0]
        while parent:
            module = sys.modules.get(parent)
            for attribute in attributes:
                if module is not None and hasattr(module, attribute):
                    if isinstance(getattr(module, attribute), types.ModuleType):
                        continue  # a submodule of that name (cnnlab.receptive_field), not a re-export
                    try:
                        setattr(module, attribute, make_stub(f"{module_name}.{attribute}"))
                    except (AttributeError, TypeError):
                        pass
            parent = parent.rpartition(".")[0]


def verify_forbidden(names: list[str], modules: list[str]) -> dict:
    """Check that every forbidden name already importable here is a stub now.

    A name whose top-level package is loaded must resolve to a stub; the others are patched
    when their module is imported (the import hook must be first on ``sys.meta_path``).

    Returns
    -------
    dict
        ``patched`` (names checked and stubbed), ``on_import`` (names left to the hook) and
        ``unpatched`` (names that resolve to the real thing: the protection is missing).
    """
    patched, on_import, unpatched = 0, 0, []
    hooked = bool(sys.meta_path) and isinstance(sys.meta_path[0], _ForbiddenHook)
    for dotted in names:
        parts = dotted.split(".")
        if parts[0] not in sys.modules:
            on_import += 1
            if not hooked:
                unpatched.append(dotted)
            continue
        owner: object = sys.modules[parts[0]]
        try:
            for index, part in enumerate(parts[1:], start=1):
                if not hasattr(owner, part) and ".".join(parts[: index + 1]) not in sys.modules:
                    raise AttributeError(part)
                owner = getattr(owner, part, None) or sys.modules[".".join(parts[: index + 1])]
        except Exception:  # noqa: BLE001 (not imported yet, or lazy): the hook patches it
            on_import += 1
            if not hooked:
                unpatched.append(dotted)
            continue
        if getattr(owner, "_cnnlab_forbidden", False):
            patched += 1
        else:
            unpatched.append(dotted)
    if modules and not hooked:
        unpatched += list(modules)
    return {"patched": patched, "on_import": on_import, "unpatched": unpatched}


def _fresh_pages() -> None:
    """Give every allocation of 128 KiB or more pages of its own, handed back when freed.

    glibc serves such allocations with ``mmap`` only until a large block is freed; then it
    raises its threshold (up to 32 MiB) and serves them from heap memory it keeps. Fixing the
    threshold (``mallopt(M_MMAP_THRESHOLD, 128 KiB)``) keeps it where it is, so the resident
    memory that the supervisor samples during a memory-bounded call follows what the call
    holds, not what earlier code left in the heap (:mod:`cnnlab.exercises.measure`). Set
    before any student code, where the exercise has a memory-bounded test; code that undoes
    it only hides temporaries under 32 MiB.
    """
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _disable_self_check() -> None:
    def check(*args, **kwargs):
        print("(self-check skipped: this notebook is being graded)")

    try:
        import cnnlab.exercises.selfcheck as selfcheck

        selfcheck.check = check
        sys.modules["cnnlab.exercises"].check = check  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover
        pass


def student_main() -> None:
    """Run the notebook's cells, then each call the supervisor sends; reply with its nonce."""
    import io

    import numpy as np

    commands = os.fdopen(CMD_FD, "rb")
    write, encode = os.write, protocol.encode
    Reply, CellStarted, CellError = protocol.Reply, protocol.CellStarted, protocol.CellError

    def reply(message: protocol.Message) -> None:
        data = encode(message)
        try:
            while data:
                data = data[write(REPLY_FD, data) :]
        except OSError:
            pass

    setup = json.loads(commands.readline())
    notes = []
    for module in setup["preload"]:
        try:
            __import__(module)
        except Exception as error:  # noqa: BLE001
            notes.append(f"could not preload {module}: {error}")
    _disable_self_check()
    if setup.get("fresh_pages"):
        _fresh_pages()
    install_forbidden(setup["forbidden"], setup["exercise"], setup.get("forbidden_modules", []))
    memory = setup.get("memory_bytes")
    limited = memory is not None and rlimits.limit_address_space(int(memory))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for key in ("PYTHONPATH", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE"):
        os.environ.pop(key, None)
    stubs = verify_forbidden(setup["forbidden"], setup.get("forbidden_modules", []))
    reply(
        protocol.Limits(
            address_space=bool(limited),
            keyrings_blocked=seccomp.keyrings_blocked(),
            forbidden=stubs,
            notes=notes,
        )
    )
    if commands.readline().strip() != b"go":  # the supervisor refused: no student code runs
        os._exit(0)

    load, save, asarray, ndarray = np.load, np.save, np.asarray, np.ndarray
    monotonic, bytes_io, read_fd = time.monotonic, io.BytesIO, os.O_NOFOLLOW
    scratch_fd = os.open(".", os.O_DIRECTORY)
    # What the student's code may patch and the worker relies on is put back before each call.
    saved = [(module.__dict__, dict(module.__dict__)) for module in (builtins, np)]

    def restore() -> None:
        for namespace_dict, original in saved:
            for key in [k for k in namespace_dict if k not in original]:
                del namespace_dict[key]
            namespace_dict.update(original)

    namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
    started = monotonic()
    if setup["run_cells"]:
        for index, source in setup["cells"]:
            reply(CellStarted(cell=index))
            try:
                exec(compile(source, f"<cell {index}>", "exec"), namespace)
            except BaseException as error:  # noqa: BLE001 (SystemExit and KeyboardInterrupt too)
                reply(
                    CellError(
                        cell=index, error=_short_error(error), memory=isinstance(error, MemoryError)
                    )
                )
    reply(protocol.CellsDone(seconds=monotonic() - started))
    while True:
        restore()
        line = commands.readline()
        if not line:
            break
        header = json.loads(line)
        nonce, index, name = header["nonce"], header["call"], header["function"]
        arrays = {}
        for file_name, size in header["blobs"]:
            arrays[file_name] = load(bytes_io(commands.read(size)), allow_pickle=False)
        args = plaindata.decode(header["args"], arrays)
        kwargs = {k: plaindata.decode(v, arrays) for k, v in header["kwargs"].items()}
        function = namespace.get(name)
        if function is None:
            reply(Reply(nonce=nonce, status="missing", detail=f"`{name}` is not defined"))
            continue
        try:
            result = function(*args, **kwargs)
        except NotImplementedError:
            reply(Reply(nonce=nonce, status="not_implemented", detail="NotImplementedError"))
            continue
        except MemoryError as error:
            reply(Reply(nonce=nonce, status="memory", detail=_short_error(error)))
            continue
        except BaseException as error:  # noqa: BLE001
            kind, text = _type_and_message(error)
            reply(
                Reply(
                    nonce=nonce,
                    status="error",
                    detail=_short_error(error),
                    error_type=kind,
                    error_message=text,
                )
            )
            continue
        restore()
        try:
            answer = asarray(result)
            if not isinstance(answer, ndarray) or answer.dtype.kind not in "biuf":
                raise TypeError(f"returned {type(result).__name__} with dtype {answer.dtype}")
            with open(
                f"answer_{index}.npy",
                "wb",
                opener=lambda p, f: os.open(p, f | read_fd, 0o600, dir_fd=scratch_fd),
            ) as handle:
                save(handle, answer.view(ndarray), allow_pickle=False)
                handle.flush()
                if os.fstat(handle.fileno()).st_size < max(handle.tell(), answer.nbytes):
                    raise OSError("the answer is larger than the worker's file-size limit")
        except BaseException as error:  # noqa: BLE001
            reply(Reply(nonce=nonce, status="bad_answer", detail=str(error)[:500]))
            continue
        reply(Reply(nonce=nonce, status="ok"))
    sys.stdout.flush()
    os._exit(0)
