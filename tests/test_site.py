"""The built HTML book as readers see it, in headless Chromium, on a phone (390x844) and on a
laptop (1366x900): no console error, no sideways page scrolling, sidebar toggles that open
their panels, alt text on every image, figure text of at least 9 CSS px, light pages, and search
snippets without raw TeX.

Every page is screenshotted at both sizes into ``_build/screenshots/<viewport>/`` (not
committed) for a person to look at.

Needs the book built (``make book``) and Debian's ``chromium`` (``make test`` does both). Outside
CI the tests are skipped when either is missing; in CI (CI=true) that is a failure.
"""

from __future__ import annotations

import ast
import base64
import gzip
import io
import re
from urllib.parse import unquote, urlsplit

import pytest
from built_site import (
    CHAPTERS,
    EXERCISE_PAGES,
    ROOT,
    SITE,
    launch_chromium,
    require,
    serve_site,
)

SCREENSHOTS = ROOT / "_build" / "screenshots"
VIEWPORTS = {"phone": (390, 844), "laptop": (1366, 900)}
PAGES = ["intro.html", "search.html", *CHAPTERS, *EXERCISE_PAGES]
SITE_LIMIT = 15_000_000  # bytes of the whole built site
PAGE_LIMIT = 1_500_000  # bytes transferred for one page, everything it loads included
MIN_TEXT_PX = 9.0  # smallest legible text of a figure, in CSS px
# The smallest font a cnnlab figure draws, in points (test_figure_fonts_are_not_below_minimum
# holds cnnlab.viz to it; matplotlib's own labels are 10 pt).
MIN_FONT_PT = 8.0
# What a static host compresses (GitHub Pages, Read the Docs and Netlify gzip these).
COMPRESSED_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml")


@pytest.fixture(scope="module")
def server():
    yield from serve_site()


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium()


class Visit:
    """One page opened at one viewport: the page, its console errors and what it loaded."""

    def __init__(self, browser, url: str, viewport: str):
        self.page = browser.new_page(viewport=_size(viewport))
        self.errors: list[str] = []
        self.loaded: dict[str, tuple[bytes, str]] = {}
        self.page.on(
            "console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}")
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url}"))
        self.page.on("response", self._record)
        self.page.goto(url, wait_until="networkidle")
        self._settle()

    def _record(self, response) -> None:
        if response.status >= 400:
            self.errors.append(f"{response.status}: {response.url}")
            return
        try:
            body = response.body()
        except Exception:  # a redirect or a response without a body
            return
        self.loaded[response.url] = (body, response.headers.get("content-type", ""))

    def _settle(self) -> None:
        """Wait for math to be typeset and for fonts, then for late requests."""
        self.page.wait_for_function(
            "!window.MathJax || !MathJax.startup || !MathJax.startup.promise"
            " || MathJax.startup.promise.then(() => true)",
            timeout=20000,
        )
        self.page.evaluate("document.fonts.ready.then(() => true)")
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_timeout(300)

    def transferred(self) -> tuple[int, int]:
        """Bytes loaded as stored, and as a static host sends them (text compressed)."""
        raw = sum(len(body) for body, _ in self.loaded.values())
        sent = sum(
            len(gzip.compress(body, 6)) if kind.startswith(COMPRESSED_TYPES) else len(body)
            for body, kind in self.loaded.values()
        )
        return raw, sent


@pytest.fixture(scope="module")
def visit(server, browser):
    """Open each (page, viewport) once and share it between the tests that only read it."""
    opened: dict[tuple[str, str], Visit] = {}

    def get(path: str, viewport: str) -> Visit:
        if (path, viewport) not in opened:
            v = Visit(browser, f"{server}/{path}", viewport)
            shot = SCREENSHOTS / viewport / (path.replace("/", "_").removesuffix(".html") + ".png")
            shot.parent.mkdir(parents=True, exist_ok=True)
            v.page.screenshot(path=str(shot), full_page=True)
            opened[(path, viewport)] = v
        return opened[(path, viewport)]

    yield get
    for v in opened.values():
        v.page.close()


def test_chapters_were_built():
    require(SITE.is_dir(), f"the book is not built in {SITE}: run `make book`")
    assert "book/01_convolution.html" in CHAPTERS


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("path", PAGES)
def test_no_console_errors(visit, path, viewport):
    v = visit(path, viewport)
    assert v.errors == [], f"{path} at {viewport}: {v.errors}"


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("path", PAGES)
def test_no_horizontal_page_scrollbar(visit, path, viewport):
    v = visit(path, viewport)
    widths = v.page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    if widths[0] > widths[1]:
        culprits = v.page.evaluate(
            """() => { const w = document.documentElement.clientWidth;
            return Array.from(document.querySelectorAll('main *'))
              .filter(e => e.getBoundingClientRect().right > w + 1)
              .filter(e => !e.parentElement || e.parentElement.getBoundingClientRect().right <= w + 1)
              .slice(0, 5).map(e => e.tagName + '.' + e.className + ': '
                + (e.textContent || '').trim().slice(0, 60)); }"""
        )
        pytest.fail(f"{path} at {viewport}: page is {widths[0]} px wide in {widths[1]}: {culprits}")
    # Code and printed output wrap: no block of text needs a sideways scrollbar of its own.
    scrolling = v.page.evaluate(
        """Array.from(document.querySelectorAll('main pre'))
          .filter(e => e.scrollWidth > e.clientWidth + 1)
          .map(e => e.textContent.trim().slice(0, 60))"""
    )
    assert scrolling == [], f"{path} at {viewport}: text blocks scroll sideways: {scrolling}"


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("path", PAGES)
def test_every_image_has_alt_text(visit, path, viewport):
    v = visit(path, viewport)
    images = v.page.evaluate(
        "Array.from(document.querySelectorAll('main img')).map(i => [i.id || i.src.slice(-60),"
        " i.getAttribute('alt')])"
    )
    bad = [
        (name, alt)
        for name, alt in images
        if not alt or not alt.strip() or re.search(r"\.(png|jpe?g|gif|svg|webp)$|_images/", alt)
    ]
    assert bad == [], f"{path}: images without alt text (or with a file name as alt): {bad}"


def _png_dpi(data: bytes) -> float | None:
    from PIL import Image

    try:
        dpi = Image.open(io.BytesIO(data)).info.get("dpi")
    except Exception:
        return None
    return float(dpi[0]) if dpi and dpi[0] > 1 else None


def _image_bytes(src: str, server: str) -> bytes | None:
    if src.startswith("data:image/png;base64,"):
        return base64.b64decode(src.split(",", 1)[1])
    if src.startswith(server):
        path = SITE / unquote(urlsplit(src).path).lstrip("/")
        return path.read_bytes() if path.is_file() else None
    return None


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("path", CHAPTERS)
def test_figure_text_is_legible(visit, server, path, viewport):
    """A figure's smallest text, MIN_FONT_PT points drawn at the PNG's dpi and shown at the
    page's scale, is at least MIN_TEXT_PX CSS px. Figures without a dpi are not measurable."""
    v = visit(path, viewport)
    shown = v.page.evaluate(
        "Array.from(document.querySelectorAll('main img')).map(i => [i.currentSrc || i.src,"
        " i.naturalWidth, i.getBoundingClientRect().width, i.alt])"
    )
    small = []
    for src, natural, width, alt in shown:
        data = _image_bytes(src, server)
        dpi = _png_dpi(data) if data else None
        if not dpi or not natural or not width:
            continue
        text_px = MIN_FONT_PT * dpi / 72 * width / natural
        if text_px < MIN_TEXT_PX - 0.05:
            small.append(
                f"{text_px:.1f} px ({dpi:.0f} dpi, {natural} px shown at {width:.0f}): {alt[:70]}"
            )
    assert small == [], f"{path} at {viewport}: figure text below {MIN_TEXT_PX} px:\n" + "\n".join(
        small
    )


@pytest.mark.parametrize("path", PAGES)
def test_page_weight(visit, path):
    v = visit(path, "laptop")
    raw, sent = v.transferred()
    print(f"{path}: {raw / 1e6:.2f} MB as stored, {sent / 1e6:.2f} MB sent compressed")
    assert sent <= PAGE_LIMIT, (
        f"{path} transfers {sent / 1e6:.2f} MB compressed ({raw / 1e6:.2f} MB as stored), over"
        f" {PAGE_LIMIT / 1e6} MB"
    )


@pytest.mark.parametrize("path", CHAPTERS)
def test_one_box_per_printed_block(path):
    """Consecutive writes of a cell to one stream show as one output box, not several."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((SITE / path).read_text(encoding="utf-8"), "html.parser")
    split = []
    for output in soup.select("div.cell_output"):
        boxes = output.find_all(recursive=False)
        for first, second in zip(boxes, boxes[1:], strict=False):
            kinds = [set(box.get("class", [])) for box in (first, second)]
            if all("stream" in k for k in kinds) and len({"stderr" in k for k in kinds}) == 1:
                split.append(first.get_text()[:60])
    assert split == [], f"{path}: printed blocks split into several boxes: {split}"


def test_site_weight():
    require(SITE.is_dir(), f"the book is not built in {SITE}: run `make book`")
    total = sum(p.stat().st_size for p in SITE.rglob("*") if p.is_file())
    biggest = sorted(
        (
            (p.stat().st_size, p.relative_to(SITE).as_posix())
            for p in SITE.rglob("*")
            if p.is_file()
        ),
        reverse=True,
    )[:5]
    assert total <= SITE_LIMIT, f"_build/html is {total / 1e6:.1f} MB; largest files: {biggest}"


def _size(viewport: str) -> dict[str, int]:
    width, height = VIEWPORTS[viewport]
    return {"width": width, "height": height}


def _open_dialog(page, toggle: str, dialog: str) -> None:
    button = page.locator(f"{toggle}:visible").first
    button.click()
    page.wait_for_function(f"document.querySelector('{dialog}').open", timeout=5000)
    assert page.locator(f"{dialog} a").first.is_visible()
    page.keyboard.press("Escape")
    page.wait_for_function(f"!document.querySelector('{dialog}').open", timeout=5000)


@pytest.mark.parametrize("path", PAGES)
def test_phone_toggles_open_their_panels(server, browser, path):
    page = browser.new_page(viewport=_size("phone"))
    try:
        page.goto(f"{server}/{path}", wait_until="networkidle")
        _open_dialog(page, "button.primary-toggle", "#pst-primary-sidebar-modal")
        if path in CHAPTERS:
            _open_dialog(page, "button.secondary-toggle", "#pst-secondary-sidebar-modal")
        # The search button is not covered by a tooltip left behind.
        search = page.locator("button.search-button:visible").first
        search.click()
        if path == "search.html":  # the search page focuses its own search field instead
            page.wait_for_function(
                "document.activeElement && document.activeElement.name === 'q'", timeout=5000
            )
        else:
            page.wait_for_function(
                "document.querySelector('#pst-search-dialog').open", timeout=5000
            )
    finally:
        page.close()


def test_laptop_primary_toggle_hides_and_shows_the_sidebar(server, browser):
    page = browser.new_page(viewport=_size("laptop"))
    try:
        page.goto(f"{server}/{CHAPTERS[0]}", wait_until="networkidle")
        sidebar = page.locator("#pst-primary-sidebar")
        assert sidebar.is_visible()
        toggle = page.locator("button.primary-toggle:visible").first
        toggle.click()
        page.wait_for_timeout(400)
        assert not sidebar.is_visible() or sidebar.bounding_box()["width"] < 5
        toggle.click()
        page.wait_for_timeout(400)
        assert sidebar.is_visible() and sidebar.bounding_box()["width"] > 100
    finally:
        page.close()


def test_search_snippets_have_no_raw_tex(server, browser):
    page = browser.new_page(viewport=_size("laptop"))
    try:
        page.goto(f"{server}/search.html?q=kernel", wait_until="networkidle")
        page.wait_for_function(
            "document.querySelectorAll('#search-results p.context').length > 0", timeout=20000
        )
        page.wait_for_timeout(500)
        snippets = page.locator("#search-results p.context").all_inner_texts()
        raw = [s for s in snippets if re.search(r"\\[A-Za-z]+|\\\(|\\\)|\\\[|\$\$", s)]
        assert raw == [], f"raw TeX in search snippets: {raw}"
    finally:
        page.close()


def test_figure_fonts_are_not_below_minimum():
    """Every explicit font size in cnnlab.viz and in the chapters' code is at least MIN_FONT_PT
    (what the legibility test assumes of a figure's smallest text)."""
    import nbformat

    small = []
    for chapter in sorted((ROOT / "book").glob("*.ipynb")):
        notebook = nbformat.read(chapter, as_version=4)
        for index, cell in enumerate(notebook.cells):
            if cell.cell_type != "code":
                continue
            for size in re.findall(r"fontsize\s*=\s*(\d+(?:\.\d+)?)\b", cell.source):
                if float(size) < MIN_FONT_PT:
                    small.append(f"{chapter.name} cell {index}: fontsize={size}")
    for source in sorted((ROOT / "cnnlab" / "viz").glob("*.py")):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "fontsize":
                value = node.value
                if isinstance(value, ast.Constant) and isinstance(value.value, (int, float)):
                    if value.value < MIN_FONT_PT:
                        small.append(f"{source.name}:{node.value.lineno} fontsize={value.value}")
    assert small == [], f"font sizes below {MIN_FONT_PT} pt: {small}"
