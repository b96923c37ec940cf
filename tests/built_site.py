"""What the browser tests share: the built book, served on 127.0.0.1, and headless Chromium.

``CNNLAB_SITE`` points the tests at another build (for example an older one, to see a test
fail). Outside CI a missing build or browser skips the tests; in CI (``CI=true``) it fails them.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(os.environ.get("CNNLAB_SITE", ROOT / "_build" / "html"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Debian's Chromium as root, headless, with nothing that reaches for the network by itself.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHAPTERS = (
    sorted(p.relative_to(SITE).as_posix() for p in (SITE / "book").glob("*.html"))
    if SITE.is_dir()
    else []
)
# The exercise pages, written from exercises/ by the book build (tools/exercise_pages.py).
EXERCISE_PAGES = (
    sorted(p.relative_to(SITE).as_posix() for p in (SITE / "book" / "exercises").glob("*.html"))
    if SITE.is_dir()
    else []
)


def require(condition: bool, reason: str) -> None:
    """Skip (outside CI) or fail (in CI) unless ``condition``."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def serve_site() -> Iterator[str]:
    """Serve the built book on 127.0.0.1; yield its address."""
    require(
        SITE.joinpath("index.html").is_file(), f"the book is not built in {SITE}: run `make book`"
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def launch_chromium() -> Iterator[object]:
    """Yield a headless Chromium (Playwright) browser; closed afterwards."""
    require(CHROMIUM is not None, "chromium is not installed: run `make chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()
