"""Every ``FORBIDDEN`` name of every exercise is real, and the worker's patch takes hold of it.

A misspelt name (``torch.nn.functional.conv_2d``) would be a stub of nothing while the real
function stays reachable, so each name must resolve in a clean interpreter. Then, in a fresh
interpreter each time (as in the worker's student process), after
:func:`cnnlab.exercises.student.install_forbidden` every name resolves to a raising stub:
whether its module was imported before the patch (patched in place) or after (patched by the
import hook), and every ``FORBIDDEN_MODULES`` module imports as a stub. The cnnlab modules an
exercise forbids are also found on disk, so that the worker's root can cover them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.exercises.rootfs import forbidden_paths
from cnnlab.exercises.spec import load_exercise

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = sorted(p for p in (ROOT / "exercises").iterdir() if (p / "tests.py").is_file())

CHECK = r"""
import importlib, json, sys
from cnnlab.exercises import student
from cnnlab.exercises.spec import load_exercise

exercise = load_exercise(sys.argv[1])
names, modules = list(exercise.forbidden), list(exercise.forbidden_modules)
when = sys.argv[2]


def resolve(dotted):
    # The owner as code reaches it (the longest importable module, then attributes); the
    # name itself always by attribute, as `from owner import name` does.
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
            break
        except ImportError:
            continue
    for part in parts[cut:]:
        owner = getattr(owner, part)
    return owner


report = {"unresolved": [], "not_stubs": [], "silent": [], "modules": []}
if when == "clean":
    for name in names:
        try:
            resolve(name)
        except Exception as error:
            report["unresolved"].append(f"{name}: {type(error).__name__}: {error}")
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:
            report["unresolved"].append(f"{module}: {type(error).__name__}: {error}")
    print(json.dumps(report))
    sys.exit(0)
if when == "before":  # everything imported, then patched in place
    for name in names:
        resolve(name)
student.install_forbidden(names, exercise.name, modules)
report["verify"] = student.verify_forbidden(names, modules)
for name in names:
    stub = resolve(name)
    if not getattr(stub, "_cnnlab_forbidden", False):
        report["not_stubs"].append(name)
        continue
    try:
        stub()
        report["silent"].append(name)
    except RuntimeError as error:
        if "is forbidden" not in str(error):
            report["silent"].append(name)
for module in modules:
    if not getattr(getattr(importlib.import_module(module), "anything"), "_cnnlab_forbidden", False):
        report["modules"].append(module)
print(json.dumps(report))
"""


def _run(exercise: Path, when: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHECK, str(exercise), when],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=str(ROOT),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda p: p.name)
def test_every_forbidden_name_resolves(exercise):
    assert _run(exercise, "clean")["unresolved"] == []


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda p: p.name)
def test_every_patch_takes_effect(exercise, when):
    report = _run(exercise, when)
    assert report["not_stubs"] == [] and report["silent"] == [] and report["modules"] == []
    assert report["verify"]["unpatched"] == []
    if when == "before":  # all were loaded: all checked in place but those of stubbed modules
        stubbed = load_exercise(exercise).forbidden_modules
        in_place = [n for n in load_exercise(exercise).forbidden if not n.startswith(stubbed)]
        assert report["verify"]["patched"] >= len(in_place)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda p: p.name)
def test_forbidden_cnnlab_modules_are_found_on_disk(exercise):
    import cnnlab

    package = os.path.dirname(cnnlab.__file__)
    modules = [m for m in load_exercise(exercise).forbidden_modules if m.startswith("cnnlab.")]
    dirs, files = forbidden_paths(package, "cnnlab", modules)
    covered = {os.path.relpath(p, package) for p in dirs + files}
    for module in modules:
        relative = os.path.join(*module.split(".")[1:])
        assert relative in covered or f"{relative}.py" in covered, (module, covered)
