"""Hostile submissions for exercise 01, written on demand (never stored as .ipynb files, so
that nbval, which runs every stored notebook, never runs them).

Each case starts from an honest notebook, ``wrong`` (a right ``corr2d`` and a ``conv2d`` that
flips the kernel: it fails every ``conv2d`` test, the timed one included, whatever the machine's
speed) or ``solution``, and adds an attack. Honest runs should earn exactly what ``wrong`` earns
or less: no attack may raise a score.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat

WRONG_CORR2D = """def corr2d(image, kernel):
    image, kernel = np.asarray(image, float), np.asarray(kernel, float)[::-1, ::-1]
    kh, kw = kernel.shape
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i : i + kh, j : j + kw] * kernel)
    return out
"""

WRONG_CONV2D = """def conv2d(x, weight, bias=None, stride=1, padding=0):
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    x = np.pad(np.asarray(x, float), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    weight = np.asarray(weight, float)[:, :, ::-1, ::-1]
    o, c, kh, kw = weight.shape
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    n, _, oh, ow = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    out = (cols @ weight.reshape(o, -1).T).reshape(n, oh, ow, o).transpose(0, 3, 1, 2)
    return out if bias is None else out + np.asarray(bias)[None, :, None, None]
"""

SIZE = """def conv_output_size(size, kernel_size, stride=1, padding=0):
    return (size + 2 * padding - kernel_size) // stride + 1
"""


def _cell(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def _append(nb: nbformat.NotebookNode, source: str) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    nb.cells.append(nbformat.v4.new_code_cell(source))
    return nb


def _wrong(source_nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(source_nb)
    _cell(nb, "conv2d").source = WRONG_CONV2D
    _cell(nb, "conv_output_size").source = SIZE  # the notebook's given (locked) helper
    return nb


def write_cases(
    folder: Path,
    exercise_dir: Path,
    out_dir: Path,
    escape_dir: Path | None = None,
    *,
    escape_name: str | None = None,
    host_paths: list[str] = (),
    host_folders: list[str] = (),
    sockets: list[str] = (),
    repository: Path | None = None,
) -> dict[str, str]:
    """Write every case into ``folder``; return ``{id: what it attempts}``.

    ``exercise_dir`` and ``out_dir`` are the real paths of the exercise and the report folder,
    which the attacks try to read or write (as a student who guessed them would).
    ``escape_dir`` (writable by every worker, if the sandbox lets it reach it) receives the
    heartbeat of ``h_setsid_escape``, which also names itself ``escape_name`` (its ``comm``,
    visible in the host's ``/proc``). ``host_paths`` and ``host_folders`` are world-readable
    files and folders of the host that ``h_read_host_files`` tries to read and list,
    ``repository`` the repository whose ``.git`` it tries; ``sockets`` are Unix sockets of the
    host (a leading NUL: abstract) that ``h_unix_socket`` tries to reach.
    """
    folder.mkdir(parents=True, exist_ok=True)
    source = nbformat.read(str(exercise_dir / "source.ipynb"), as_version=4)
    wrong = _wrong(source)
    cases: dict[str, tuple[str, nbformat.NotebookNode | str]] = {}

    cases["solution_a"] = ("the instructor solution", source)
    cases["solution_z"] = ("the instructor solution, again", source)
    cases["honest_wrong"] = ("an honest wrong answer (flipped kernel)", wrong)
    magics = copy.deepcopy(source)
    magics.cells.insert(1, nbformat.v4.new_code_cell("%matplotlib inline\n!ls\nx = 1"))
    magics.cells.insert(2, nbformat.v4.new_code_cell("%%bash\necho hi"))
    cases["solution_with_magics"] = ("the solution with IPython magics", magics)

    cases["h_infinite_loop"] = (
        "an endless loop at top level",
        _append(wrong, "while True:\n    pass"),
    )
    slow = copy.deepcopy(wrong)
    _cell(slow, "corr2d").source = WRONG_CORR2D.replace(
        "    image, kernel =",
        "    if np.shape(image) == np.shape(kernel):\n        while True:\n            pass\n"
        "    image, kernel =",
    )
    cases["h_endless_call"] = ("one call that never returns", slow)
    cases["h_memory_bomb"] = (
        "allocating without end",
        _append(wrong, "hog = []\nwhile True:\n    hog.append(bytearray(64 * 1024 * 1024))"),
    )
    cases["h_fork_bomb"] = (
        "a fork bomb",
        _append(wrong, "import os\nwhile True:\n    os.fork()"),
    )
    cases["h_os_exit"] = (
        "os._exit(0) after defining functions",
        _append(wrong, "import os\nos._exit(0)"),
    )
    cases["h_sys_exit"] = ("sys.exit(0)", _append(wrong, "import sys\nsys.exit(0)"))
    fake = (
        "import os, json\n"
        "print(json.dumps({'score': 17, 'tests': []}))\n"
        "print('Score: 17/17 -- all tests passed')\n"
        "lines = b''.join(\n"
        "    (json.dumps({'e': 'end', 'call': i, 'status': 'ok'}) + '\\n').encode()\n"
        "    for i in range(12)\n"
        ') + b\'{"e": "done"}\\n\'\n'
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        os.write(fd, lines)\n"
        "    except OSError:\n"
        "        pass\n"
    )
    cases["h_fake_score"] = ("printing a fake score and fake protocol events", _append(wrong, fake))
    out = str(out_dir)
    write = (
        "import json, os\n"
        f"targets = ['.', {out!r}, os.path.join({out!r}, 'results', 'h_write_reports'), "
        "'/autograder/results']\n"
        "for target in targets:\n"
        "    try:\n"
        "        os.makedirs(target, exist_ok=True)\n"
        "        with open(os.path.join(target, 'grades.csv'), 'w') as f:\n"
        "            f.write('id,total\\nh_write_reports,17\\n')\n"
        "        with open(os.path.join(target, 'results.json'), 'w') as f:\n"
        "            json.dump({'score': 17}, f)\n"
        "    except OSError as error:\n"
        "        print('blocked:', target, error)\n"
    )
    cases["h_write_reports"] = ("writing grades.csv and results.json", _append(wrong, write))
    patch = (
        "import builtins\n"
        "import numpy as np\n"
        "np.allclose = lambda *a, **k: True\n"
        "np.isclose = lambda a, b, *r, **k: np.ones(np.shape(a), bool)\n"
        "np.array_equal = lambda *a, **k: True\n"
        "np.asarray = lambda a, *r, **k: a\n"
        "builtins.isinstance = lambda *a: True\n"
        "builtins.AssertionError = type('Quiet', (Exception,), {})\n"
    )
    cases["h_patch_builtins"] = ("redefining numpy comparisons and builtins", _append(wrong, patch))
    liar = copy.deepcopy(wrong)
    _cell(liar, "corr2d").source = (
        "class Liar:\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "    __hash__ = object.__hash__\n"
        "def corr2d(image, kernel):\n"
        "    return Liar()\n"
    )
    _cell(liar, "conv2d").source = (
        "class Agreeable(np.ndarray):\n"
        "    def __eq__(self, other):\n"
        "        return np.ones(np.shape(other), bool)\n"
        "    def __array_finalize__(self, obj):\n"
        "        pass\n"
        "def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
        "    return np.zeros((1,)).view(Agreeable)\n"
    )
    cases["h_always_equal"] = ("an object whose __eq__ is always true; a lying ndarray", liar)
    steal = (
        "import json, pathlib\n"
        "import cnnlab\n"
        f"candidates = [pathlib.Path({str(exercise_dir)!r}),\n"
        "              pathlib.Path(cnnlab.__file__).parents[1] / 'exercises' / "
        f"{exercise_dir.name!r}]\n"
        "for folder in candidates:\n"
        "    try:\n"
        "        print((folder / 'tests.py').read_text()[:100])\n"
        "        nb = json.loads((folder / 'source.ipynb').read_text())\n"
        "    except OSError as error:\n"
        "        print('blocked:', error)\n"
        "        continue\n"
        "    for cell in nb['cells']:\n"
        "        if cell['cell_type'] == 'code' and 'check(' not in ''.join(cell['source']):\n"
        "            exec(''.join(cell['source']))\n"
        "    break\n"
    )
    cases["h_read_hidden"] = (
        "reading the hidden tests and the solution from disk",
        _append(wrong, steal),
    )
    forbidden = copy.deepcopy(wrong)
    _cell(forbidden, "corr2d").source = (
        "from scipy.signal import correlate2d\n"
        "def corr2d(image, kernel):\n"
        "    return correlate2d(image, kernel, mode='valid')\n"
    )
    _cell(forbidden, "conv2d").source = (
        "import cnnlab.numpy\n"
        "def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
        "    return cnnlab.numpy.conv2d(x, weight, bias, stride=stride, padding=padding)\n"
    )
    _cell(forbidden, "conv_output_size").source = "from cnnlab.shapes import conv_output_size\n"
    cases["h_forbidden_import"] = ("calling forbidden library functions", forbidden)
    cases["h_huge_output"] = (
        "printing gigabytes",
        _append(wrong, "line = 'x' * 1_000_000\nfor _ in range(100_000):\n    print(line)"),
    )
    killer = (
        "import os, signal\n"
        "for pid in range(1, 4096):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "    except OSError:\n"
        "        pass\n"
    )
    cases["h_kill_everything"] = ("signalling every process it can name", _append(wrong, killer))
    cases["h_malformed_json"] = (
        "a notebook that is not JSON",
        '{"cells": [ {"cell_type": "code", ',
    )
    renamed = copy.deepcopy(source)
    _cell(renamed, "corr2d").source = _cell(source, "corr2d").source.replace(
        "def corr2d", "def corr2d_v2"
    )
    _cell(renamed, "conv2d").source = _cell(source, "conv2d").source.replace(
        "def conv2d", "def conv_2d"
    )
    cases["h_renamed_function"] = ("functions renamed (corr2d_v2, conv_2d)", renamed)
    retyped = copy.deepcopy(wrong)
    _cell(retyped, "corr2d").cell_type = "markdown"
    cell = _cell(retyped, "corr2d")
    for key in ("outputs", "execution_count"):
        cell.pop(key, None)
    _cell(retyped, "check_conv2d").cell_type = "raw"
    for key in ("outputs", "execution_count"):
        _cell(retyped, "check_conv2d").pop(key, None)
    cases["h_changed_cell_type"] = (
        "an answer cell turned to markdown, a test cell to raw",
        retyped,
    )
    forge = (
        "import json, os\n"
        "def _forge(text):\n"
        "    events = [{'e': 'ready', 'isolation': ['FORGED-ISOLATION']},\n"
        "              {'e': 'note', 'text': 'FORGED-NOTE ' + text},\n"
        "              {'e': 'cell', 'cell': 0, 'error': 'FORGED-CELL ' + text}]\n"
        "    for i in range(12):\n"
        "        events += [{'e': 'begin', 'call': i}, {'e': 'end', 'call': i, 'status': 'ok',\n"
        "                   'nonce': 'x', 'seconds': 0}]\n"
        "    data = b''.join((json.dumps(e) + '\\n').encode() for e in events)\n"
        "    for fd in range(3, 256):\n"
        "        try:\n"
        "            os.write(fd, data)\n"
        "        except OSError:\n"
        "            pass\n"
        "_forge('during the cells')\n"
        "_honest_conv2d = conv2d\n"
        "def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
        "    _forge('HIDDEN-INPUT ' + repr(np.asarray(x).ravel()[:4].tolist()))\n"
        "    return _honest_conv2d(x, weight, bias, stride, padding)\n"
    )
    cases["h_forged_events"] = (
        "forged ready, note, cell, begin and end events on every descriptor, also during calls",
        _append(wrong, forge),
    )
    slow = copy.deepcopy(wrong)
    _cell(slow, "conv2d").source = (
        "import json, os\n"
        "def _forge_ends():\n"
        "    data = b''.join((json.dumps({'e': 'end', 'call': i, 'status': 'ok', 'seconds': 0})\n"
        "                     + '\\n').encode() for i in range(12))\n"
        "    for fd in range(3, 256):\n"
        "        try:\n"
        "            os.write(fd, data)\n"
        "        except OSError:\n"
        "            pass\n"
        "_forge_ends()\n"
        "def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
        "    _forge_ends()\n"
        "    sh, sw = (stride, stride) if np.isscalar(stride) else stride\n"
        "    ph, pw = (padding, padding) if np.isscalar(padding) else padding\n"
        "    x = np.pad(np.asarray(x, float), ((0, 0), (0, 0), (ph, ph), (pw, pw)))\n"
        "    weight = np.asarray(weight, float)\n"
        "    o, c, kh, kw = weight.shape\n"
        "    n, oh, ow = x.shape[0], (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1\n"
        "    out = np.zeros((n, o, oh, ow))\n"
        "    for b in range(n):\n"
        "        for f in range(o):\n"
        "            for i in range(oh):\n"
        "                for j in range(ow):\n"
        "                    win = x[b, :, i * sh : i * sh + kh, j * sw : j * sw + kw]\n"
        "                    out[b, f, i, j] = np.sum(win * weight[f])\n"
        "    return out if bias is None else out + np.asarray(bias)[None, :, None, None]\n"
    )
    cases["h_forged_end_slow"] = (
        "a correct but slow (per-pixel loop) conv2d that forges end events to escape the limit",
        slow,
    )
    late = (
        "import os\n"
        "def _correct(x, weight, bias=None, stride=1, padding=0):\n"
        "    # the flip undone: the right answer\n"
        "    return _flipped(x, np.asarray(weight)[:, :, ::-1, ::-1], bias, stride, padding)\n"
        "_flipped = conv2d\n"
        "_state = {'args': None, 'known': set()}\n"
        "def _answers():\n"
        "    return {f for f in os.listdir('.') if f.startswith('answer_')}\n"
        "def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
        "    # The previous conv2d call's (wrong) answer was written and checked when that call\n"
        "    # ended; during this call, overwrite it with the right one.\n"
        "    if _state['args'] is not None:\n"
        "        new = sorted(_answers() - _state['known'], key=os.path.getmtime)\n"
        "        if new:\n"
        "            np.save(new[0], _correct(*_state['args'][0], **_state['args'][1]))\n"
        "    _state['args'] = ((x, weight, bias), {'stride': stride, 'padding': padding})\n"
        "    _state['known'] = _answers()\n"
        "    return _flipped(x, weight, bias, stride, padding)\n"
    )
    cases["h_late_answer"] = (
        "a wrong answer returned in time, replaced by the right one during the next call",
        _append(wrong, late),
    )
    module_route = copy.deepcopy(wrong)
    _cell(module_route, "corr2d").source = (
        "def corr2d(image, kernel):\n"
        "    from cnnlab.numpy import direct_conv\n"
        "    image, kernel = np.asarray(image, float), np.asarray(kernel, float)\n"
        "    return direct_conv(image[None, None], kernel[None, None])[0, 0]\n"
    )
    _cell(module_route, "conv2d").source = (
        "def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
        "    import importlib\n"
        "    if bias is None:  # the output size through a private helper\n"
        "        from cnnlab._checks import _out_size\n"
        "        _out_size(x.shape[2], weight.shape[2], stride, padding)\n"
        "    conv = importlib.import_module('cnnlab.numpy.conv')\n"
        "    return conv._im2col_gemm(x, weight, None, 1)\n"
    )
    cases["h_forbidden_module"] = (
        "reaching cnnlab's convolutions through other names (direct_conv, _im2col_gemm, "
        "_checks._out_size)",
        module_route,
    )
    marker = Path(escape_dir) / "alive" if escape_dir else None
    escape = (
        "import ctypes, os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()  # out of the worker's process group and session\n"
        "    if os.fork() == 0:\n"
        f"        ctypes.CDLL(None).prctl(15, {(escape_name or 'escapee').encode()!r}, 0, 0, 0)\n"
        "        while True:\n"
        "            try:\n"
        f"                with open({str(marker)!r}, 'w') as f:\n"
        "                    f.write(str(time.time()))\n"
        "            except OSError:\n"
        "                pass\n"
        "            time.sleep(0.1)\n"
        "    os._exit(0)\n"
        "time.sleep(0.3)\n"
    )
    if marker is not None or escape_name is not None:
        cases["h_setsid_escape"] = (
            "a process that leaves the process group (setsid, double fork) to outlive grading",
            _append(wrong, escape),
        )
    cases.update(_sandbox_cases(wrong, host_paths, host_folders, sockets, repository))

    described = {}
    for ident, (what, content) in cases.items():
        path = folder / f"{ident}.ipynb"
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text(json.dumps(content, indent=1))
        described[ident] = what
    return described


DEEP_TREE = """import json, os
def _deep(top, depth):
    fd = os.open(top, os.O_RDONLY)
    middle = None
    for level in range(depth):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
        if level % 300 == 0:
            os.symlink("/", "root_link", dir_fd=fd)
            os.symlink("..", "up_link", dir_fd=fd)
            os.mkfifo("fifo", dir_fd=fd)
        if level == depth // 2:
            middle = os.dup(fd)
    os.chmod(fd, 0)  # the deepest folder: no rights at all
    os.chmod(middle, 0o500)  # a folder in the middle: not writable
    os.close(fd)
    os.close(middle)
    return depth
_made = {}
for _top in (".", os.environ.get("TMPDIR", ".")):
    try:
        os.mkdir(os.path.join(_top, "tree"))
        _made[_top] = _deep(os.path.join(_top, "tree"), 3000)
    except OSError as error:
        _made[_top] = str(error)
raise RuntimeError("TREE-REPORT " + json.dumps(_made))
"""

FILL_DISK = """import json, os
_written, _errors = {}, {}
_chunk = b"x" * (1 << 20)
for _folder in (".", "/tmp", "/var/tmp", "/dev/shm", "/run"):
    _written[_folder] = 0
    try:
        for _n in range(100000):
            with open(os.path.join(_folder, f"fill{_n}"), "wb") as _f:
                for _ in range(16):
                    _f.write(_chunk)
                    _f.flush()
                    _written[_folder] += 1
    except OSError as _error:
        _errors[_folder] = _error.errno
raise RuntimeError("FILL-REPORT " + json.dumps({"written_mb": _written, "errors": _errors}))
"""

BYPASS_FORBIDDEN = """import glob, importlib, importlib.util, json, os, sys
import cnnlab
_routes, _stolen = {}, {}
_root = os.path.dirname(cnnlab.__file__)
# 1. Take the import hook out and forget the stub modules, then import the real ones.
sys.meta_path[:] = [f for f in sys.meta_path if "Forbidden" not in type(f).__name__]
for _name in [m for m in list(sys.modules) if m.split(".")[:2] in (["cnnlab", "numpy"],
              ["cnnlab", "shapes"], ["cnnlab", "_checks"], ["cnnlab", "torch"])]:
    del sys.modules[_name]
for _module, _attr in (("cnnlab.numpy", "conv2d"), ("cnnlab.numpy", "corr2d"),
                       ("cnnlab.shapes", "conv_output_size"), ("cnnlab._checks", "_out_size")):
    try:
        _f = getattr(importlib.import_module(_module), _attr)
        if not getattr(_f, "_cnnlab_forbidden", False):
            _routes["import " + _module] = _attr
            _stolen[_attr] = _f
    except Exception:
        pass
# 2. Read the source files and exec them; load them by file location.
for _rel in ("numpy/conv.py", "numpy/__init__.py", "numpy/direct.py", "shapes.py", "_checks.py",
             "torch/conv.py"):
    _path = os.path.join(_root, _rel)
    try:
        with open(_path) as _handle:
            _source = _handle.read()
    except OSError:
        continue
    if _source.strip():
        _routes["source " + _rel] = len(_source)
    try:
        _spec = importlib.util.spec_from_file_location("stolen_" + _rel.replace("/", "_"), _path)
        _mod = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_mod)
        for _attr in ("conv2d", "corr2d", "conv_output_size"):
            if hasattr(_mod, _attr):
                _routes["exec " + _rel] = _attr
                _stolen[_attr] = getattr(_mod, _attr)
    except Exception:
        pass
# 3. Their compiled code.
for _pyc in glob.glob(os.path.join(_root, "**", "*.pyc"), recursive=True):
    if any(k in _pyc for k in ("/numpy/", "/torch/", "shapes.", "_checks.")):
        try:
            with open(_pyc, "rb") as _handle:
                if _handle.read():
                    _routes["pyc " + _pyc] = "read"
        except OSError:
            pass
if "conv2d" in _stolen:
    def conv2d(x, weight, bias=None, stride=1, padding=0):
        return _stolen["conv2d"](x, weight, bias, stride=stride, padding=padding)
if "corr2d" in _stolen:
    corr2d = _stolen["corr2d"]
raise RuntimeError("BYPASS-REPORT " + json.dumps(_routes))
"""


def _read_host_files(paths: list[str], folders: list[str], repository: Path | None) -> str:
    return (
        "import json, os, subprocess\n"
        "_found = {}\n"
        f"for _path in {list(paths)!r}:\n"
        "    try:\n"
        "        with open(_path, 'rb') as _handle:\n"
        "            _found[_path] = _handle.read(120).decode(errors='replace')\n"
        "    except OSError:\n"
        "        pass\n"
        f"for _folder in {list(folders)!r}:\n"
        "    try:\n"
        "        _found[_folder + '/'] = sorted(os.listdir(_folder))[:20]\n"
        "    except OSError:\n"
        "        pass\n"
        "for _git in ('/usr/bin/git', 'git'):\n"
        "    try:\n"
        "        _out = subprocess.run([_git, '-C', "
        f"{str(repository)!r}, 'show', 'HEAD:exercises/01_cross_correlation/source.ipynb'],\n"
        "                              capture_output=True, timeout=20)\n"
        "        if _out.returncode == 0:\n"
        "            _found['git show'] = _out.stdout[:120].decode(errors='replace')\n"
        "    except Exception:\n"
        "        pass\n"
        "raise RuntimeError('READ-REPORT ' + json.dumps(_found))\n"
    )


def _unix_sockets(paths: list[str]) -> str:
    return (
        "import json, socket\n"
        "_reached = {}\n"
        f"for _path in {list(paths)!r}:\n"
        "    _sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "    _sock.settimeout(2)\n"
        "    try:\n"
        "        _sock.connect(_path)\n"
        "        _sock.sendall(b'hello from a submission')\n"
        "        _reached[repr(_path)] = 'connected'\n"
        "    except OSError:\n"
        "        pass\n"
        "    finally:\n"
        "        _sock.close()\n"
        "raise RuntimeError('SOCKET-REPORT ' + json.dumps(_reached))\n"
    )


def _sandbox_cases(
    wrong: nbformat.NotebookNode,
    host_paths: list[str],
    host_folders: list[str],
    sockets: list[str],
    repository: Path | None,
) -> dict[str, tuple[str, nbformat.NotebookNode]]:
    """The attacks on the sandbox itself (issue 15) that fit in one batch."""
    cases = {
        "h_deep_tree": (
            "a 3000-deep folder tree with links, a FIFO and unwritable folders in scratch and /tmp",
            _append(wrong, DEEP_TREE),
        ),
        "h_fill_disk": (
            "writing until the disk is full, in scratch, /tmp, /var/tmp, /dev/shm and /run",
            _append(wrong, FILL_DISK),
        ),
        "h_bypass_forbidden": (
            "removing the import hook, exec-ing cnnlab's source and reading its compiled files",
            _append(wrong, BYPASS_FORBIDDEN),
        ),
    }
    if host_paths or host_folders:
        cases["h_read_host_files"] = (
            "reading world-readable files of the host (/tmp, /srv, /home, beside the "
            "submissions, the repository's .git, another course) and git show of the solution",
            _append(wrong, _read_host_files(host_paths, host_folders, repository)),
        )
    if sockets:
        cases["h_unix_socket"] = (
            "connecting to Unix sockets of the host (a path under /tmp and /run, an abstract one)",
            _append(wrong, _unix_sockets(sockets)),
        )
    return cases


def report(result, prefix: str) -> dict:
    """The JSON a hostile cell raised as ``PREFIX {...}`` (its attack's findings)."""
    for error in result.cell_errors:
        for line in error.splitlines():
            if f"{prefix} " in line:
                return json.loads(line.split(f"{prefix} ", 1)[1])
    raise AssertionError(f"no {prefix} in {result.id}: {result.cell_errors} {result.notes}")
