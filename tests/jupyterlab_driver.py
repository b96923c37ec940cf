"""A real JupyterLab for the tests: a private server on 127.0.0.1 and helpers to drive it.

:func:`running_lab` starts ``jupyter lab`` as a subprocess (``--no-browser``, a free port, a
random token, ``--allow-root``) with its own configuration, settings, workspaces and runtime
folders under a temporary folder, so that nothing on the machine changes it and it changes
nothing. Everything that would reach the network is switched off:

- the news feed (``LabApp.news_url = None``; the frontend plugin
  ``@jupyterlab/apputils-extension:announcements`` is disabled, and the *Notification* settings
  say ``fetchNews: "false"``, ``checkForUpdates: false``);
- the update check (``LabApp.check_for_updates_class = jupyterlab.NeverCheckForUpdate``);
- the PyPI extension manager (``LabApp.extension_manager = "readonly"``; the frontend extension
  manager is disabled in its settings).

:func:`new_page` opens a Chromium page that refuses every request not addressed to the lab
(the refused addresses are collected, so a test can say that none was tried).

The notebook helpers work on the visible notebook panel: :func:`run_all` clicks
*Run > Run All Cells* and waits until every code cell has run and the kernel is idle;
:func:`set_cell_text` replaces a cell's text by typing into its editor; :func:`save` saves.
Cells are all in the page (``windowingMode: "none"``), in notebook order.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Chromium headless, with nothing that reaches the network (FLAGS is used by the tests).
from built_site import CHROMIUM, FLAGS  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent

START_TIMEOUT = 60.0  # seconds for the server to answer /api/status

# Frontend settings (user-settings folder: <package>/<plugin>.jupyterlab-settings).
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
    # Every cell in the page, in order, whether it is on screen or not.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
DISABLED_PLUGINS = ["@jupyterlab/apputils-extension:announcements"]
SERVER_CONFIG = {
    "LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        "extension_manager": "readonly",
    },
}


def missing_tools() -> str | None:
    """Say what is missing to run the JupyterLab tests, or ``None`` when nothing is."""
    if CHROMIUM is None:
        return "chromium is not installed: run `make chromium`"
    for module, what in (("jupyterlab", "JupyterLab"), ("playwright", "Playwright")):
        try:
            __import__(module)
        except ImportError:
            return f"{what} is not installed in {sys.prefix}: run `make setup`"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab server."""

    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen
    children: set[int] = field(default_factory=set)

    def api(self, path: str, method: str = "GET", timeout: float = 10.0) -> object:
        """Call the server's REST API (``path`` like ``/api/kernels``); return the JSON."""
        request = urllib.request.Request(
            self.url + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def page_url(self, path: str, workspace: str) -> str:
        """The address that opens ``path`` (relative to the root) in its own workspace."""
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?reset&token={self.token}"

    def log_tail(self, chars: int = 6000) -> str:
        """The end of the server's log (stdout and stderr), for failure messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError as error:
            return f"(no log: {error})"
        return text[-chars:]

    def kernel_state(self, path: str) -> str | None:
        """The execution state of the kernel of the notebook ``path`` (``None``: no kernel)."""
        for session in self.api("/api/sessions"):
            if session.get("path") == path and session.get("kernel"):
                return session["kernel"].get("execution_state")
        return None

    def remember_children(self) -> None:
        """Note the server's child processes (kernels), to be sure they end with it."""
        with contextlib.suppress(Exception):
            import psutil

            for child in psutil.Process(self.process.pid).children(recursive=True):
                self.children.add(child.pid)


def _write_settings(home: Path) -> dict[str, str]:
    """Write the configuration, settings and folders under ``home``; return the environment."""
    config = home / "config"
    settings = home / "user-settings"
    for name, values in USER_SETTINGS.items():
        path = settings / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=1))
    (config / "labconfig").mkdir(parents=True, exist_ok=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {name: True for name in DISABLED_PLUGINS}})
    )
    (config / "jupyter_server_config.json").write_text(json.dumps(SERVER_CONFIG, indent=1))
    for sub in ("data", "runtime", "workspaces", "ipython"):
        (home / sub).mkdir(exist_ok=True)
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        PATH=bin_dir + os.pathsep + env.get("PATH", ""),
        # The kernel imports cnnlab from this checkout even if it is not installed.
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
        JUPYTER_PLATFORM_DIRS="1",
    )
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_CONFIG_PATH", None)
    return env


def _stop(lab: Lab) -> None:
    """Shut the server and its kernels down: politely, then by force."""
    lab.remember_children()
    process = lab.process
    if process.poll() is None:
        with contextlib.suppress(Exception):
            lab.api("/api/shutdown", method="POST", timeout=5)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    for pid in lab.children:  # kernels run in their own sessions: end any left over
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_lab(root: Path, home: Path, timeout: float = START_TIMEOUT) -> Iterator[Lab]:
    """Run JupyterLab serving ``root``, with its private folders in ``home``; stop it after.

    Raises ``RuntimeError`` (with the server log) if it does not answer within ``timeout``.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = _write_settings(home)
    port, token = free_port(), secrets.token_hex(24)
    log = home / "jupyterlab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={home / 'user-settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    lab = Lab(f"http://127.0.0.1:{port}", token, root, log, process)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"jupyter lab exited with status {process.returncode} before answering:\n"
                    + lab.log_tail()
                )
            try:
                lab.api("/api/status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"jupyter lab did not answer on {lab.url} within {timeout:.0f} s:\n"
                    + lab.log_tail()
                )
            time.sleep(0.25)
        yield lab
    finally:
        _stop(lab)


# ----------------------------------------------------------------------------- browser side


def new_page(browser, lab: Lab, refused: list[str]):
    """A page in a fresh context that lets only the lab's own address through.

    Every other request is aborted and its address appended to ``refused``.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    # Only foreign addresses reach the handler: the lab's own requests never wait for Python
    # (a sync Playwright handler runs only while the test is inside a Playwright call).
    foreign = re.compile("^(?!" + re.escape(lab.url) + "(/|$))(?!data:|blob:|about:)")

    def refuse(route) -> None:
        refused.append(route.request.url)
        route.abort()

    context.route(foreign, refuse)
    return context.new_page()


PANEL = "#jp-main-dock-panel .jp-NotebookPanel:visible"


def open_notebook(page, lab: Lab, path: str, workspace: str, timeout: float = 60.0):
    """Open ``path`` in JupyterLab; wait for its cells and an idle kernel; return the panel."""
    page.goto(lab.page_url(path, workspace), wait_until="domcontentloaded")
    panel = page.locator(PANEL)
    panel.locator(".jp-Notebook .jp-Cell").first.wait_for(state="attached", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    while True:
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count():  # "Select Kernel": keep the notebook's own (the default choice)
            accept.first.click()
        state = lab.kernel_state(path)
        if state == "idle":
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the kernel of {path} was not idle after {timeout:.0f} s: {state}")
        page.wait_for_timeout(250)
    lab.remember_children()
    return panel


def cells(panel):
    """The notebook's cells, in order (all in the page: windowing is off)."""
    return panel.locator(".jp-Notebook .jp-Cell")


def execution_counts(panel) -> list[str]:
    """The input prompt of each code cell, like ``"[3]:"``, ``"[*]:"`` or ``"[ ]:"``."""
    return panel.locator(".jp-CodeCell .jp-InputPrompt").evaluate_all(
        "nodes => nodes.map(n => n.textContent.trim())"
    )


def _count(prompt: str) -> int | None:
    match = re.fullmatch(r"\[(\d+)\]:", prompt)
    return int(match.group(1)) if match else None


def click_menu(page, menu: str, item: str) -> None:
    """Click ``menu`` in the menu bar, then its item labelled ``item``."""
    exactly = re.compile(f"^{re.escape(menu)}$")
    page.locator("#jp-MainMenu .lm-MenuBar-item", has_text=exactly).click()
    label = page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$"))
    page.locator(".lm-Menu .lm-Menu-item:not(.lm-mod-disabled)", has=label).first.click()


def error_outputs(panel) -> list[str]:
    """The text of every error output in the notebook."""
    return panel.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    ).all_inner_texts()


def run_all(page, lab: Lab, panel, path: str, timeout: float = 90.0) -> float:
    """*Run > Run All Cells* in notebook ``path``; wait until every code cell ran and its
    kernel is idle.

    Returns the seconds it took. Raises ``AssertionError`` when a cell fails (JupyterLab then
    stops) or the run takes longer than ``timeout``.
    """
    before = [_count(p) for p in execution_counts(panel)]
    last = max((c for c in before if c is not None), default=0)
    started = time.monotonic()
    click_menu(page, "Run", "Run All Cells")
    quiet = 0
    while True:
        page.wait_for_timeout(250)
        prompts = execution_counts(panel)
        counts = [_count(p) for p in prompts]
        done = all(c is not None and c > last for c in counts)
        busy = any("*" in p for p in prompts)
        idle = not busy and lab.kernel_state(path) == "idle"
        if done and idle:
            return time.monotonic() - started
        # Nothing running, the kernel idle, and still cells that did not run: a cell failed.
        quiet = quiet + 1 if idle and time.monotonic() - started > 3 else 0
        if quiet >= 8:
            raise AssertionError(
                "Run All stopped before the last cell; prompts "
                f"{prompts}; errors: {error_outputs(panel)}"
            )
        if time.monotonic() - started > timeout:
            raise AssertionError(
                f"Run All did not finish within {timeout:.0f} s; prompts {prompts}"
            )


def output_text(cell) -> str:
    """The visible text of a cell's outputs."""
    return "\n".join(cell.locator(".jp-OutputArea-output").all_inner_texts())


def set_cell_text(page, cell, text: str) -> None:
    """Replace the text of ``cell`` by typing into its editor (select all, insert)."""
    editor = cell.locator(".jp-InputArea-editor .cm-content")
    editor.scroll_into_view_if_needed()
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    # insert_text sends the text as one input, so the editor adds no indentation of its own.
    page.keyboard.insert_text(text)
    page.keyboard.press("Escape")  # leave edit mode


def save(page, lab: Lab, path: str, timeout: float = 60.0) -> None:
    """*File > Save Notebook*; wait until the file on disk changed and the tab is clean."""
    target = lab.root / path
    before = target.stat().st_mtime_ns
    click_menu(page, "File", "Save Notebook")
    dirty = page.locator("#jp-main-dock-panel .lm-TabBar-tab.jp-mod-current.jp-mod-dirty")
    deadline = time.monotonic() + timeout
    while target.stat().st_mtime_ns == before or dirty.count():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was not saved within {timeout:.0f} s")
        page.wait_for_timeout(200)


# ----------------------------------------------------------------------------- explorers


def set_controls(root, values: dict[str, object]) -> None:
    """Set an explorer's controls as a reader does: type numbers, tick boxes, pick options."""
    for name, value in values.items():
        control = root.locator(f'[name="{name}"]').first
        kind = control.evaluate("e => e.tagName.toLowerCase() + ':' + (e.type || '')")
        if kind == "input:checkbox":
            control.set_checked(bool(value))
        elif kind.startswith("select"):
            control.select_option(str(value))
        else:
            control.fill(str(value))  # fires "input", as typing does
            control.dispatch_event("change")


def control_values(root) -> dict[str, object]:
    """Every named control of an explorer and its value (a checkbox: ``True``/``False``)."""
    return root.evaluate(
        """root => Object.fromEntries(Array.from(root.querySelectorAll('[name]'),
            e => [e.name, e.type === 'checkbox' ? e.checked : e.value]))"""
    )


def quantity(root, role: str) -> tuple[str, bool]:
    """The text of ``[data-role=role]`` and whether it is marked as an error."""
    element = root.locator(f'[data-role="{role}"]').first
    return element.inner_text().strip(), element.get_attribute("data-error") is not None
