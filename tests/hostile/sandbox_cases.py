"""Hostile submissions that attack what submissions could share, graded in runs of their own.

Like :mod:`cases` (whose honest ``wrong`` notebook they extend), they are written on demand,
never stored. Each reports what it found by raising ``RuntimeError("<NAME>-REPORT {json}")`` in
its last cell, which reaches ``SubmissionResult.cell_errors``:

- :func:`plant` leaves something of every kind a later (or concurrent) submission could read:
  System V shared memory, a message queue and a semaphore set under a known key, a POSIX
  message queue, keys in the uid's user, user-session, session and persistent keyrings, files
  in ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run`` and its home, and, during its calls, the
  call's inputs stashed in ``/tmp`` (how a hidden test's input once reached a feedback);
- :func:`probe` looks for all of it;
- :func:`hog` starts 48 busy processes, each in its own session, and stays alive a while;
- :func:`marker` writes a file at a host path (to see whether student code ran at all).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat

_spec = importlib.util.spec_from_file_location(
    "hostile_cases", Path(__file__).with_name("cases.py")
)
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

SYSCALLS = {
    "x86_64": {"add_key": 248, "request_key": 249, "keyctl": 250},
    "aarch64": {"add_key": 217, "request_key": 218, "keyctl": 219},
}

_COMMON = """import ctypes, json, os, platform, time
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.shmat.restype = ctypes.c_void_p
_NR = {syscalls}[platform.machine()]
_KEY = {key}
_TAG = {tag!r}
_PLACES = ["/tmp", "/var/tmp", "/dev/shm", "/run", os.path.expanduser("~")]
try:
    _rt = ctypes.CDLL("librt.so.1", use_errno=True)
except OSError:
    _rt = _libc
_rt.mq_open.restype = ctypes.c_int
class _Message(ctypes.Structure):
    _fields_ = [("mtype", ctypes.c_long), ("mtext", ctypes.c_char * 64)]
def _keyctl(*args):
    return _libc.syscall(ctypes.c_long(_NR["keyctl"]), *[ctypes.c_long(a) for a in args])
"""

_PLANT = """_planted = {{}}
_shm = _libc.shmget(_KEY, 4096, 0o1666)
if _shm >= 0:
    ctypes.memmove(_libc.shmat(_shm, None, 0), b"SECRET-SHM", 10)
    _planted["shm"] = _shm
_msq = _libc.msgget(_KEY, 0o1666)
if _msq >= 0 and _libc.msgsnd(_msq, ctypes.byref(_Message(1, b"SECRET-MSG")), 64, 0) == 0:
    _planted["msg"] = _msq
_sem = _libc.semget(_KEY, 1, 0o1666)
if _sem >= 0:
    _planted["sem"] = _sem
_mq = _rt.mq_open(("/cnnlab_mq_" + _TAG).encode(), os.O_CREAT | os.O_RDWR, 0o666, None)
if _mq >= 0 and _rt.mq_send(_mq, b"SECRET-MQ", 9, 0) == 0:
    _planted["mq"] = _mq
_persistent = _keyctl(22, -1, -3)  # KEYCTL_GET_PERSISTENT, linked into the session keyring
for _name, _ring in (("user", -4), ("user_session", -5), ("session", -3), ("persistent", _persistent)):
    _serial = _libc.syscall(ctypes.c_long(_NR["add_key"]), b"user", ("cnnlab-" + _TAG).encode(),
                            b"SECRET-KEY", ctypes.c_size_t(10), ctypes.c_long(_ring))
    if _serial > 0:
        _planted["key " + _name] = _serial
for _place in _PLACES:
    try:
        _path = os.path.join(_place, "stash-" + _TAG)
        with open(_path, "w") as _handle:
            _handle.write("SECRET-FILE")
        os.chmod(_path, 0o666)
        _planted["file " + _place] = _path
    except OSError:
        pass
_conv2d = conv2d
def conv2d(x, weight, bias=None, stride=1, padding=0):
    for _place in _PLACES:
        try:
            np.save(os.path.join(_place, "inputs-" + _TAG + ".npy"), np.asarray(x))
        except OSError:
            pass
    return _conv2d(x, weight, bias, stride, padding)
time.sleep({hold})
raise RuntimeError("PLANT-REPORT " + json.dumps(_planted))
"""

_PROBE = """time.sleep({wait})
_found = {{}}
_shm = _libc.shmget(_KEY, 0, 0)
if _shm >= 0:
    _address = _libc.shmat(_shm, None, 0)
    _found["shm"] = ctypes.string_at(_address, 10).decode(errors="replace") if _address not in (None, ctypes.c_void_p(-1).value) else "exists"
_msq = _libc.msgget(_KEY, 0)
if _msq >= 0:
    _message = _Message()
    _got = _libc.msgrcv(_msq, ctypes.byref(_message), 64, 0, 0o4000)  # IPC_NOWAIT
    _found["msg"] = _message.mtext.decode(errors="replace") if _got > 0 else "exists"
if _libc.semget(_KEY, 0, 0) >= 0:
    _found["sem"] = "exists"
_mq = _rt.mq_open(("/cnnlab_mq_" + _TAG).encode(), os.O_RDONLY | os.O_NONBLOCK)
if _mq >= 0:
    _buffer = ctypes.create_string_buffer(8192)
    _got = _rt.mq_receive(_mq, _buffer, 8192, None)
    _found["mq"] = _buffer.raw[:max(_got, 0)].decode(errors="replace") or "exists"
_persistent = _keyctl(22, -1, -3)
for _name, _ring in (("user", -4), ("user_session", -5), ("session", -3), ("persistent", _persistent)):
    _serial = _libc.syscall(ctypes.c_long(_NR["keyctl"]), ctypes.c_long(10), ctypes.c_long(_ring),
                            b"user", ("cnnlab-" + _TAG).encode(), ctypes.c_long(0))
    if _serial > 0:
        _found["key " + _name] = _serial
_serial = _libc.syscall(ctypes.c_long(_NR["request_key"]), b"user", ("cnnlab-" + _TAG).encode(),
                        None, ctypes.c_long(0))
if _serial > 0:
    _found["request_key"] = _serial
_ALLOWED = [os.path.realpath(p) for p in (__import__("sys").prefix, __import__("sys").base_prefix)]
_ALLOWED.append(os.path.dirname(os.path.dirname(os.path.realpath(__import__("cnnlab").__file__))))
for _place in _PLACES:
    try:
        _left = sorted(os.listdir(_place))
    except OSError:
        continue
    _left = [name for name in _left if name not in ("output.txt",) and not name.startswith("answer_")]
    # The read-only Python installation keeps its own path, which may lie under /tmp (a clone
    # of the repository there): the folders that lead to it are allowed, nothing else.
    _left = [name for name in _left if not any(
        _allowed.startswith(os.path.join(_place, name) + "/") for _allowed in _ALLOWED)]
    if _left:
        _found["left in " + _place] = _left
    for _name in _left:
        try:
            with open(os.path.join(_place, _name), "rb") as _handle:
                _found[os.path.join(_place, _name)] = _handle.read(200).decode(errors="replace")
        except OSError:
            pass
raise RuntimeError("PROBE-REPORT " + json.dumps(_found))
"""

HOG = """import os, time
_started = 0
for _ in range(48):
    if os.fork() == 0:
        os.setsid()  # each in its own session (and its own scheduler autogroup)
        while True:
            pass
    _started += 1
time.sleep({hold})
raise RuntimeError("HOG-REPORT " + str(_started))
"""

MEMORY_HOG = """import os, time
_children, _ready = [], os.pipe()
for _ in range({count}):
    _pid = os.fork()
    if _pid == 0:
        _block = bytearray({megabytes} << 20)
        _block[::4096] = b"x" * len(range(0, len(_block), 4096))  # touch every page
        os.write(_ready[1], b"1")
        time.sleep(60)
        os._exit(0)
    _children.append(_pid)
time.sleep({hold})
_alive = [p for p in _children if os.waitpid(p, os.WNOHANG) == (0, 0)]
os.set_blocking(_ready[0], False)
try:
    _filled = len(os.read(_ready[0], 1024))
except BlockingIOError:
    _filled = 0
raise RuntimeError("MEMORY-REPORT " + str(min(_filled, len(_alive))))
"""


def _common(tag: str, key: int) -> str:
    return _COMMON.format(syscalls=json.dumps(SYSCALLS), key=key, tag=tag)


def _write(path: Path, notebook: nbformat.NotebookNode) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1))
    return path


def _wrong(exercise_dir: Path) -> nbformat.NotebookNode:
    return cases._wrong(nbformat.read(str(exercise_dir / "source.ipynb"), as_version=4))


def plant(path: Path, exercise_dir: Path, tag: str, key: int, hold: float = 0.0) -> Path:
    """Write the notebook that plants shared state (holding it ``hold`` seconds) at ``path``."""
    code = _common(tag, key) + _PLANT.format(hold=hold)
    return _write(path, cases._append(_wrong(exercise_dir), code))


def probe(path: Path, exercise_dir: Path, tag: str, key: int, wait: float = 0.0) -> Path:
    """Write the notebook that looks for shared state (after ``wait`` seconds) at ``path``."""
    code = _common(tag, key) + _PROBE.format(wait=wait)
    return _write(path, cases._append(_wrong(exercise_dir), code))


def hog(path: Path, exercise_dir: Path, hold: float) -> Path:
    """Write the notebook with 48 busy processes in their own sessions (alive ``hold`` s)."""
    return _write(path, cases._append(_wrong(exercise_dir), HOG.format(hold=hold)))


def memory_hog(path: Path, exercise_dir: Path, count: int, megabytes: int, hold: float) -> Path:
    """Write the notebook whose ``count`` children each fill ``megabytes`` and hold them."""
    code = MEMORY_HOG.format(count=count, megabytes=megabytes, hold=hold)
    return _write(path, cases._append(_wrong(exercise_dir), code))


EXIT_AT_CALL = """import os
_calls = [0]
def _exit_at(function):
    def wrapped(*args, **kwargs):
        _calls[0] += 1
        if _calls[0] == {at}:
            os._exit({code})
        return function(*args, **kwargs)
    return wrapped
corr2d, conv_output_size, conv2d = map(_exit_at, (corr2d, conv_output_size, conv2d))
"""


def exit_at_call(path: Path, exercise_dir: Path, at: int, code: int) -> Path:
    """Write the solution notebook that exits with ``code`` at its ``at``-th graded call."""
    notebook = nbformat.read(str(exercise_dir / "source.ipynb"), as_version=4)
    return _write(path, cases._append(notebook, EXIT_AT_CALL.format(at=at, code=code)))


def marker(path: Path, exercise_dir: Path, target: str) -> Path:
    """Write the notebook that creates the file ``target`` (proof that its code ran)."""
    code = f"open({target!r}, 'w').write('ran')\n"
    return _write(path, cases._append(_wrong(exercise_dir), code))


SNOOP = """import gc, json, os
_found = {{"call_dicts": 0, "npy_blobs": 0, "secret_paths": 0, "hide_lists": 0}}
_secret = {reversed_secret!r}[::-1]
def _look(value):
    if isinstance(value, (bytes, bytearray)) and len(value) > 16 and value[:6] == b"\\x93NUMPY":
        _found["npy_blobs"] += 1
    if isinstance(value, str) and _secret in value and value is not _secret:
        _found["secret_paths"] += 1
for _o in gc.get_objects():
    if isinstance(_o, dict):
        if "call_ids" in _o or "calls" in _o:
            _found["call_dicts"] += 1
        if "hide" in _o:
            _found["hide_lists"] += 1
    for _r in gc.get_referents(_o):
        _look(_r)
_found["fds"] = {{}}
for _fd in sorted(int(fd) for fd in os.listdir("/proc/self/fd")):
    try:
        _found["fds"][_fd] = os.readlink(f"/proc/self/fd/{{_fd}}")
    except OSError:
        pass
raise RuntimeError("SNOOP-REPORT " + json.dumps(_found))
"""


def memory_snoop(path: Path, exercise_dir: Path, secret: str) -> Path:
    """Write the notebook that searches its own memory, in its cells (before any call), for
    the calls, their inputs, the hidden paths and any string holding ``secret`` (the name of
    another submission's folder), and lists its open descriptors."""
    return _write(
        path, cases._append(_wrong(exercise_dir), SNOOP.format(reversed_secret=secret[::-1]))
    )
