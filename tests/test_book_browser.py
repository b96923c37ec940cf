"""The built HTML book in a real browser (headless Chromium): math typeset, animations present
with their first frame and controls, widgets' scripts served locally, and nothing fetched from
the network.

Needs the book built (`make book`) and Debian's `chromium` (`make test` does both). Outside CI
the test is skipped when either is missing; in CI (CI=true) that is a failure.
"""

import re
from pathlib import Path

import pytest
from built_site import CHAPTERS, SITE, launch_chromium, require, serve_site


@pytest.fixture(scope="module")
def server():
    yield from serve_site()


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium()


def _open(browser, url):
    """Open url; return the page and the list of every URL it requested.

    Every request for a file of the site must succeed: a missing asset (a font, a script)
    fails the test here.
    """
    page = browser.new_page(viewport={"width": 1280, "height": 2000})
    requested, failed = [], []
    page.on("request", lambda request: requested.append(request.url))
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
    page.goto(url, wait_until="networkidle")
    page.wait_for_timeout(500)  # late requests: fonts of widgets and math
    failed = [f for f in failed if not f.endswith("/favicon.ico")]
    assert failed == [], f"{url}: requests failed: {failed}"
    return page, requested


def _offsite(requested, origin):
    return [
        u
        for u in requested
        if not (u.startswith(origin) or u.startswith(("data:", "blob:", "about:")))
    ]


def test_chapters_were_built():
    require(SITE.is_dir(), f"the book is not built in {SITE}: run `make book`")
    assert "book/01_convolution.html" in CHAPTERS


@pytest.mark.parametrize("path", ["index.html", *CHAPTERS])
def test_page_loads_nothing_from_the_network(server, browser, path):
    page, requested = _open(browser, f"{server}/{path}")
    try:
        assert _offsite(requested, server) == []
        assert page.title()
    finally:
        page.close()


@pytest.mark.parametrize("path", CHAPTERS)
def test_math_is_typeset(server, browser, path):
    source = (SITE / path).read_text()
    if "math notranslate" not in source:
        pytest.skip(f"{path} has no math")
    page, _ = _open(browser, f"{server}/{path}")
    try:
        page.wait_for_function(
            "document.querySelectorAll('mjx-container').length > 0", timeout=20000
        )
        rendered = page.locator("mjx-container").count()
        assert rendered >= source.count("math notranslate")
        # No raw TeX left in the text the reader sees.
        assert not re.search(r"\\(sum|frac)\b", page.inner_text("main"))
    finally:
        page.close()


@pytest.mark.parametrize("path", CHAPTERS)
def test_animations_show_first_frame_and_controls(server, browser, path):
    if "_anim_img" not in (SITE / path).read_text():
        pytest.skip(f"{path} has no animation")
    page, _ = _open(browser, f"{server}/{path}")
    try:
        frames = page.locator("img[id^='_anim_img']")
        assert frames.count() >= 1
        first = frames.first
        first.scroll_into_view_if_needed()
        assert page.evaluate("img => img.complete && img.naturalWidth > 0", first.element_handle())
        anim_id = first.get_attribute("id").removeprefix("_anim_img")
        controls = page.locator(f"#_anim_slider{anim_id}, button[onclick*='anim{anim_id}']")
        assert controls.count() >= 5  # the slider and the play/step buttons
        before = first.get_attribute("src")
        page.locator(f"button[onclick*='anim{anim_id}.next_frame']").click()
        assert first.get_attribute("src") != before  # stepping shows another frame
        SITE.parent.joinpath("screenshots").mkdir(exist_ok=True)
        page.screenshot(
            path=str(SITE.parent / "screenshots" / (Path(path).stem + ".png")), full_page=False
        )
    finally:
        page.close()


@pytest.mark.parametrize("path", CHAPTERS)
def test_no_dead_widgets(server, browser, path):
    """A widget needs a running kernel; the static book shows a figure in its place instead
    (cells that display a live explorer carry the `remove-output` tag)."""
    page, _ = _open(browser, f"{server}/{path}")
    try:
        stored_views = page.locator("script[type='application/vnd.jupyter.widget-view+json']")
        assert stored_views.count() == 0
        assert page.locator(".jupyter-widgets").count() == 0
    finally:
        page.close()
