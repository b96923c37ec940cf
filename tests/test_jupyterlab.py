"""The Jupyter experience in a real JupyterLab, driven by headless Chromium.

A private ``jupyter lab`` (127.0.0.1, a free port, a random token, nothing that reaches the
network: see ``tests/jupyterlab_driver.py``) serves a temporary folder holding copies of what
the tests open. Chromium refuses every request not addressed to that server.

- Chapter 2 with its live explorer: *Run > Run All Cells*, then the convolution-geometry
  explorer's controls are set as a reader sets them and each displayed output size is compared
  with :func:`cnnlab.shapes.conv_output_size` (or ``transposed_output_size``), including a
  configuration cnnlab refuses (the page shows an error, never a number).
- The released student notebook of exercise 01: *Run All* reports every visible test as not
  implemented; the solution of each solution cell is then typed into that cell, *Run All* again,
  and every visible test passes; the saved notebook holds exactly the typed code.

A missing Chromium or JupyterLab fails the tests (``make chromium``, ``make setup``); they are
never skipped. On failure the message names a screenshot and ends with the server's log.
Run with ``.venv/bin/pytest tests/test_jupyterlab.py -q`` (add ``-s`` to see the timings);
about a minute on two cores.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

import jupyterlab_driver as lab_driver
import nbformat
import pytest

from cnnlab.exercises.releasing import release
from cnnlab.shapes import conv_output_size, effective_kernel_size, transposed_output_size

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "book" / "02_shapes.ipynb"
EXERCISE = ROOT / "exercises" / "01_cross_correlation"

# Explorer configurations: (size, kernel_size, stride, padding, dilation, transposed).
CONFIGURATIONS = [
    (7, 3, 2, 0, 1, False),
    (7, 3, 2, 1, 1, False),
    (9, 3, 3, 2, 2, False),
    (8, 2, 2, 0, 1, False),
    (5, 3, 1, 1, 2, False),
    (4, 3, 2, 1, 1, True),
    (3, 5, 1, 0, 1, False),  # refused: the kernel is larger than the input
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running JupyterLab whose root is an empty temporary folder."""
    problem = lab_driver.missing_tools()
    if problem:
        pytest.fail(problem)
    root, home = tmp_path_factory.mktemp("lab-root"), tmp_path_factory.mktemp("lab-home")
    server = contextlib.ExitStack()
    try:
        running = server.enter_context(lab_driver.running_lab(root, home))
    except RuntimeError as error:
        pytest.fail(str(error))
    with server:
        yield running


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (the system's), closed afterwards."""
    problem = lab_driver.missing_tools()
    if problem:
        pytest.fail(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=lab_driver.CHROMIUM, headless=True, args=lab_driver.FLAGS
        )
        yield chromium
        chromium.close()


@contextlib.contextmanager
def reported(page, lab, screenshot: Path):
    """Turn any failure into an AssertionError naming a screenshot, with the server's log.

    Afterwards, pass or fail, the test's kernels are shut down and its browser context closed.
    """
    try:
        yield
    except Exception as error:
        try:
            page.screenshot(path=str(screenshot))
            where = f"screenshot: {screenshot}"
        except Exception as shot_error:  # noqa: BLE001 (the report must not hide the failure)
            where = f"(no screenshot: {shot_error})"
        raise AssertionError(
            f"{type(error).__name__}: {error}\n{where}\n"
            f"--- end of the jupyter lab log ({lab.log}) ---\n{lab.log_tail()}"
        ) from error
    finally:
        with contextlib.suppress(Exception):
            for session in lab.api("/api/sessions"):
                lab.api(f"/api/sessions/{session['id']}", method="DELETE")
        with contextlib.suppress(Exception):
            page.context.close()


def expected_output_size(size, kernel_size, stride, padding, dilation, transposed) -> str:
    """What cnnlab's Python says: the output size, or the message of the error it raises."""
    try:
        if transposed:
            return str(transposed_output_size(size, kernel_size, stride, padding, 0, dilation))
        return str(conv_output_size(size, kernel_size, stride, padding, dilation))
    except ValueError as error:
        return f"error: {error}"


def test_chapter_explorer_runs_in_jupyterlab(lab, browser, tmp_path):
    if "conv_geometry_explorer" not in CHAPTER.read_text():
        pytest.fail(
            f"{CHAPTER.relative_to(ROOT)} has no cell that calls conv_geometry_explorer: "
            "the chapter must show the live convolution-geometry explorer"
        )
    # The chapter as a reader downloads it, without its stored outputs: every explorer in the
    # page afterwards comes from this session's run.
    notebook = nbformat.read(CHAPTER, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    notebook.metadata.pop("widgets", None)
    nbformat.write(notebook, str(lab.root / CHAPTER.name))

    refused: list[str] = []
    page = lab_driver.new_page(browser, lab, refused)
    started = time.monotonic()
    with reported(page, lab, tmp_path / "jupyterlab-chapter.png"):
        panel = lab_driver.open_notebook(page, lab, CHAPTER.name, "chapter")
        assert panel.locator("[data-explorer]").count() == 0
        seconds = lab_driver.run_all(page, lab, panel, CHAPTER.name, timeout=120)
        explorer = panel.locator('[data-explorer="conv-geometry"]')
        assert explorer.count() >= 1, "no conv-geometry explorer in the outputs after Run All"
        root = explorer.first
        root.scroll_into_view_if_needed()
        # The explorer's script ran: JupyterLab trusts the outputs of this session.
        panel.locator('[data-explorer="conv-geometry"][data-ready]').first.wait_for(timeout=10_000)
        names = ("size", "kernel_size", "stride", "padding", "dilation", "transposed")
        mismatches = []
        for configuration in CONFIGURATIONS:
            values = dict(zip(names, configuration, strict=True))
            lab_driver.set_controls(root, values)
            shown = lab_driver.control_values(root)
            for name, value in values.items():
                got = shown[name] if name == "transposed" else int(shown[name])
                assert got == value, f"the control {name} holds {shown[name]!r}, not {value!r}"
            expected = expected_output_size(*configuration)
            text, error = lab_driver.quantity(root, "output-size")
            if expected.startswith("error:"):
                # Refused: an error naming the same argument as Python's, never a number.
                argument = re.match(r"error: (\w+)", expected).group(1)
                if not error or re.fullmatch(r"-?\d+", text) or argument not in text:
                    mismatches.append((values, "output-size", expected, text))
            elif error or text != expected:
                mismatches.append((values, "output-size", expected, text))
            if not configuration[5] and not expected.startswith("error:"):
                kernel = str(effective_kernel_size(configuration[1], configuration[4]))
                shown_kernel, _ = lab_driver.quantity(root, "effective-kernel-size")
                if shown_kernel != kernel:
                    mismatches.append((values, "effective-kernel-size", kernel, shown_kernel))
        assert not mismatches, "the explorer disagrees with cnnlab.shapes: " + "; ".join(
            f"{values}: Python says {role} {expected!r}, the page shows {text!r}"
            for values, role, expected, text in mismatches
        )
    assert not refused, f"JupyterLab tried to reach the network: {refused}"
    print(f"chapter: Run All {seconds:.1f} s, test {time.monotonic() - started:.1f} s")


def test_student_notebook_in_jupyterlab(lab, browser, tmp_path):
    folder = release(EXERCISE, lab.root)
    path = f"{folder.name}/student.ipynb"
    student = nbformat.read(lab.root / path, as_version=4)
    source = nbformat.read(EXERCISE / "source.ipynb", as_version=4)

    def grading(cell) -> dict:
        return cell.metadata.get("nbgrader", {})

    solutions = {
        grading(c)["grade_id"]: c.source for c in source.cells if grading(c).get("solution")
    }
    targets = [
        (index, solutions[grading(cell)["grade_id"]])
        for index, cell in enumerate(student.cells)
        if grading(cell).get("solution")
    ]
    checks = [
        (index, match.group(1))
        for index, cell in enumerate(student.cells)
        if cell.cell_type == "code"
        and (match := re.search(r"""\bcheck\(\s*["'](\w+)["']""", cell.source))
    ]
    assert targets and checks, "the released notebook has no solution or no check cell"
    visible = json.loads((folder / "visible_tests.json").read_text())["tests"]
    counts = Counter(test["function"] for test in visible)
    points: dict[str, float] = defaultdict(float)
    for test in visible:
        points[test["function"]] += test["points"]

    refused: list[str] = []
    page = lab_driver.new_page(browser, lab, refused)
    started = time.monotonic()
    with reported(page, lab, tmp_path / "jupyterlab-student.png"):
        panel = lab_driver.open_notebook(page, lab, path, "student")
        cells = lab_driver.cells(panel)
        assert cells.count() == len(student.cells)

        first = lab_driver.run_all(page, lab, panel, path)
        for index, name in checks:
            text = lab_driver.output_text(cells.nth(index))
            report = f"check cell {index} ({name}) printed:\n{text}"
            assert f"{name}: 0/{points[name]:g} points on the visible tests" in text, report
            assert text.count(": not implemented yet") == counts[name], report
            assert "PASS" not in text, report

        for index, code in targets:
            lab_driver.set_cell_text(page, cells.nth(index), code)
        second = lab_driver.run_all(page, lab, panel, path)
        for index, name in checks:
            text = lab_driver.output_text(cells.nth(index))
            report = f"check cell {index} ({name}) printed:\n{text}"
            total = f"{points[name]:g}"
            assert f"{name}: {total}/{total} points on the visible tests" in text, report
            assert len(re.findall(r"^\s*PASS ", text, re.M)) == counts[name], report
            assert "FAIL" not in text, report
            assert "All visible tests pass." in text, report

        lab_driver.save(page, lab, path)
        saved = nbformat.read(lab.root / path, as_version=4)
        for index, code in targets:
            assert saved.cells[index].source == code, f"cell {index} was not typed as written"
    assert not refused, f"JupyterLab tried to reach the network: {refused}"
    print(
        f"student notebook: Run All {first:.1f} s and {second:.1f} s, "
        f"test {time.monotonic() - started:.1f} s"
    )


def test_lab_is_offline(lab):
    """The server is set up to fetch no news, check no update and offer no PyPI extensions."""
    request = urllib.request.Request(
        f"{lab.url}/lab", headers={"Authorization": f"token {lab.token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        page = response.read().decode()
    found = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S
    )
    assert found, "no page config in /lab"
    config = json.loads(found.group(1))
    assert config["news"] == {"disabled": True}
    assert config["extensionManager"]["can_install"] is False
    assert "@jupyterlab/apputils-extension:announcements" in config["disabledExtensions"]
    assert lab.api("/lab/api/update") == {"notification": None}
    assert lab.api("/lab/api/news") == {"news": []}
    settings = lab.api("/lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert settings["settings"]["fetchNews"] == "false"
    assert settings["settings"]["checkForUpdates"] is False


def test_missing_tools_are_named(monkeypatch):
    """Without Chromium the tests say how to get it (they fail; they are never skipped)."""
    monkeypatch.setattr(lab_driver, "CHROMIUM", None)
    assert "make chromium" in lab_driver.missing_tools()
