"""The in-page explorers in a real browser (headless Chromium), cross-checked with cnnlab's Python.

For each explorer, 200 random configurations (seeded) are set through its controls, as a reader
would (a value, then an ``input`` and a ``change`` event), and every quantity the page shows is
compared with cnnlab's Python: the same number, or, where Python raises, an error message that
names the same argument (never a number). The configurations include values Python refuses
(0, negative, empty, not an integer, groups that do not divide the channels, even kernels where
an odd one is needed, ...).

The pages: a standalone page written from the Python objects (opened from ``file://`` and from
a local web server), and the built book's chapters listed in :data:`BOOK_PAGES`, each of which
must hold at least one explorer. Needs Debian's ``chromium`` (and, for the book pages, the built
book); outside CI a missing one skips, in CI it fails (see ``built_site.py``).
"""

from __future__ import annotations

import functools
import http.server
import random
import re
import threading
from collections.abc import Callable

import pytest
from built_site import SITE, launch_chromium, require, serve_site

from cnnlab.atrous import (
    gridding_footprint,
    hdc_condition,
    hdc_max_distance,
    valid_weight_counts,
    valid_weight_fractions,
)
from cnnlab.geometry import Window
from cnnlab.receptive_field import Layer, receptive_field
from cnnlab.shapes import (
    conv_macs,
    conv_output_size,
    conv_params,
    effective_kernel_size,
    transposed_output_size,
)
from cnnlab.viz.explorers import (
    atrous_explorer,
    conv_geometry_explorer,
    multichannel_explorer,
    receptive_field_explorer,
    standalone_html,
)

CONFIGURATIONS = 200
BOOK_PAGES = ("book/02_shapes.html", "book/03_receptive_field.html", "book/06_atrous.html")
"""Chapters that must hold explorers; every explorer on them is cross-checked."""

# The argument names an error message may name, per explorer (the first one named must agree).
NAMES = {
    "conv-geometry": (
        "size",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "output_padding",
    ),
    "receptive-field": ("size", "kernel_size", "stride", "padding", "dilation", "position"),
    "atrous": ("size", "rate", "rates", "kernel_size"),
    "multichannel": (
        "in_channels",
        "out_channels",
        "groups",
        "kernel_size",
        "size",
        "stride",
        "padding",
    ),
}
NUMBER = re.compile(r"-?\d+(\.\d+)?|\(.*\)|yes|no|\[-?\d+, -?\d+\]")

# Set each configuration through the controls and read every data-role element; one call
# evaluates a whole batch.
APPLY = """
({index, configs}) => {
  const root = document.querySelectorAll('[data-explorer]')[index];
  const set = (scope, name, value) => {
    const element = scope.querySelector(`[name="${name}"]`);
    if (element.type === 'checkbox') element.checked = value;
    else element.value = value;
    element.dispatchEvent(new Event('input', {bubbles: true}));
    element.dispatchEvent(new Event('change', {bubbles: true}));
  };
  const read = (scope) => {
    const out = {};
    for (const element of scope.querySelectorAll('[data-role]')) {
      if (scope === root && element.closest('[data-layer]')) continue;
      out[element.getAttribute('data-role')] =
        [element.textContent, element.hasAttribute('data-error')];
    }
    return out;
  };
  const rows = () => Array.from(root.querySelectorAll('[data-part="layers"] [data-layer]'));
  return configs.map((config) => {
    if (config.layers) {
      while (rows().length > config.layers.length) {
        const all = rows();
        all[Math.floor(all.length / 2)].querySelector('[data-action="remove-layer"]').click();
      }
      while (rows().length < config.layers.length) {
        root.querySelector('[data-action="add-layer"]').click();
      }
      config.layers.forEach((layer, i) => {
        for (const [name, value] of Object.entries(layer)) set(rows()[i], name, value);
      });
    }
    for (const [name, value] of Object.entries(config.values)) set(root, name, value);
    return {roles: read(root), layers: rows().map(read)};
  });
}
"""

# --------------------------------------------------------------------------- Python's answers


def python_value(text: str | bool) -> object:
    """What the reader's text is in Python: an int, a float, or None for an empty field."""
    if isinstance(text, bool):
        return text
    if text == "":
        return None
    if re.fullmatch(r"[+-]?\d+", text.strip()):
        return int(text)
    return float(text)


def answer(compute: Callable[[], object]) -> tuple[str, object]:
    """``("value", text)`` or ``("error", the message)`` of what cnnlab's Python does."""
    try:
        return ("value", compute())
    except (TypeError, ValueError) as error:
        return ("error", str(error))


def first_name(message: str, names: tuple[str, ...]) -> str | None:
    found = [
        (match.start(), name)
        for name in names
        for match in [re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", message)]
        if match
    ]
    return min(found)[1] if found else None


def check(kind: str, where: str, role: str, expected, shown) -> None:
    """Compare one quantity: equal value (fractions to their 4 decimals) or the same refusal."""
    assert shown is not None, f"{where}: no element data-role={role!r}"
    text, is_error = shown
    status, value = expected
    if status == "error":
        assert is_error, f"{where}: Python refuses ({value}) but the page shows {role}={text!r}"
        assert not NUMBER.fullmatch(text.strip()), f"{where}: {role} shows a number: {text!r}"
        name = first_name(value, NAMES[kind])
        assert name is None or first_name(text, NAMES[kind]) == name, (
            f"{where}: {role}: Python's error names {name!r} ({value!r}), the page's does not "
            f"({text!r})"
        )
    else:
        assert not is_error, f"{where}: {role}: page refuses ({text!r}), Python gives {value!r}"
        if isinstance(value, float):
            assert abs(float(text) - value) <= 0.5e-4 + 1e-9, f"{where}: {role} {text} vs {value}"
        elif callable(value):
            assert value(text), f"{where}: {role}={text!r}"
        else:
            assert text == str(value), f"{where}: {role}={text!r}, Python gives {value!r}"


def conv_geometry_expected(values: dict) -> dict:
    v = {name: python_value(text) for name, text in values.items()}
    i, k, s, p, d = (v[n] for n in ("size", "kernel_size", "stride", "padding", "dilation"))
    if v["transposed"]:
        out = answer(lambda: transposed_output_size(i, k, s, p, v["output_padding"], d))
    else:
        out = answer(lambda: conv_output_size(i, k, s, p, d))
    span = answer(lambda: effective_kernel_size(k, d))
    formula = out if out[0] == "error" else span if span[0] == "error" else None
    if formula is None:
        formula = (
            "value",
            lambda text, o=out[1]: text.startswith("o = ") and text.endswith(f"= {o}"),
        )
    return {"output-size": out, "effective-kernel-size": span, "formula": formula}


def receptive_field_expected(values: dict, layers: list[dict]) -> tuple[dict, list[dict]]:
    size = python_value(values["size"])
    position = python_value(values["position"])
    names = ("kernel_size", "stride", "padding", "dilation")
    stack = [tuple(python_value(layer[n]) for n in names) for layer in layers]

    def field(below):
        return receptive_field([Layer(k, stride=s, padding=p, dilation=d) for k, s, p, d in below])

    def output_size(below):
        field(below)
        if not below:
            return Window(1).output_size(size)[0]  # the size's own checks
        current = size
        for k, s, p, d in below:
            current = conv_output_size(current, k, s, p, d)
        return current

    interval = answer(lambda: field(stack).interval(position))
    start = interval if interval[0] == "error" else ("value", interval[1].start)
    end = interval if interval[0] == "error" else ("value", interval[1].end)
    text = interval if interval[0] == "error" else ("value", f"[{start[1]}, {end[1]}]")
    whole = {
        "receptive-field": answer(lambda: field(stack).size),
        "jump": answer(lambda: field(stack).stride),
        "effective-padding": answer(lambda: field(stack).padding),
        "output-size": answer(lambda: output_size(stack)),
        "interval": text,
        "interval-start": start,
        "interval-end": end,
    }
    rows = [
        {
            "layer-receptive-field": answer(lambda b=stack[: i + 1]: field(b).size),
            "layer-jump": answer(lambda b=stack[: i + 1]: field(b).stride),
            "layer-output-size": answer(lambda b=stack[: i + 1]: output_size(b)),
        }
        for i in range(len(stack))
    ]
    return whole, rows


def rates_value(text: str) -> list:
    items = [item for item in re.split(r"[\s,]+", text.strip()) if item]
    return [int(item) if re.fullmatch(r"[+-]?\d+", item) else item for item in items]


def atrous_expected(values: dict) -> dict:
    size, rate, k = (python_value(values[n]) for n in ("size", "rate", "kernel_size"))
    rates = rates_value(values["rates"])
    counts = answer(lambda: valid_weight_counts(size, rate, k))
    expected = {}
    if counts[0] == "error":
        for role in ("valid-count", "valid-fraction", "centre-only-fraction"):
            expected[role] = counts
    else:
        fractions = valid_weight_fractions(size, [rate], k)
        expected["valid-count"] = ("value", int((counts[1] == k * k).sum()))
        expected["valid-fraction"] = ("value", float(fractions[k * k][0]))
        expected["centre-only-fraction"] = ("value", float(fractions[1][0]))
        for c, f in fractions.items():
            expected[f"fraction-{c}"] = ("value", float(f[0]))
    footprint = answer(lambda: gridding_footprint(rates, k))
    if footprint[0] == "error":
        for role in ("footprint-size", "footprint-reached", "footprint-fraction"):
            expected[role] = footprint
    else:
        reached = int((footprint[1] > 0).sum())
        side = footprint[1].shape[0]
        expected["footprint-size"] = ("value", side)
        expected["footprint-reached"] = ("value", reached)
        expected["footprint-fraction"] = ("value", reached / side**2)
    hdc = answer(lambda: hdc_condition(rates, k))
    expected["hdc"] = hdc if hdc[0] == "error" else ("value", "yes" if hdc[1] else "no")
    expected["hdc-distance"] = answer(lambda: hdc_max_distance(rates))
    return expected


def multichannel_expected(values: dict) -> dict:
    v = {name: python_value(text) for name, text in values.items()}
    c_in, c_out, k, g = (v[n] for n in ("in_channels", "out_channels", "kernel_size", "groups"))
    size, s, p, bias = (v[n] for n in ("size", "stride", "padding", "bias"))
    params = answer(lambda: conv_params(c_in, c_out, k, g, bias))
    out = answer(lambda: conv_output_size(size, k, s, p))

    def output_shape():
        conv_params(c_in, c_out, 1, g)  # the channels' checks
        o = conv_output_size(size, k, s, p)
        return (c_out, o, o)

    return {
        "weight-shape": params if params[0] == "error" else ("value", (c_out, c_in // g, k, k)),
        "parameters": params,
        "macs-per-value": answer(lambda: conv_params(c_in, c_out, k, g, False) // c_out),
        "output-size": out,
        "output-shape": answer(output_shape),
        "macs": answer(lambda: conv_macs(c_in, c_out, k, size, s, p, 1, g)),
    }


# --------------------------------------------------------------------------- configurations


def draw(rng: random.Random, low: int, high: int, bad: float = 0.06) -> str:
    """An int in [low, high] as text, or now and then a value Python refuses."""
    if rng.random() < bad:
        return rng.choice(["0", "-1", "-3", "", "2.5"])
    return str(rng.randint(low, high))


def conv_geometry_configs(rng: random.Random) -> list[dict]:
    configs = []
    for _ in range(CONFIGURATIONS):
        values = {
            "size": draw(rng, 1, 16),
            "kernel_size": draw(rng, 1, 7),
            "stride": draw(rng, 1, 4),
            "padding": str(rng.randint(0, 4)) if rng.random() > 0.06 else "-1",
            "dilation": draw(rng, 1, 4),
            "output_padding": str(rng.choice([0, 0, 0, 1, 1, 2, 3])),
            "transposed": rng.random() < 0.4,
        }
        configs.append({"values": values})
    return configs


def receptive_field_configs(rng: random.Random) -> list[dict]:
    configs = []
    for _ in range(CONFIGURATIONS):
        layers = [
            {
                "kernel_size": draw(rng, 1, 5, 0.03),
                "stride": draw(rng, 1, 3, 0.03),
                "padding": str(rng.randint(0, 3)),
                "dilation": draw(rng, 1, 3, 0.03),
            }
            for _ in range(rng.choice([0, 1, 2, 3, 3, 4, 4, 5]))
        ]
        values = {"size": draw(rng, 1, 40, 0.04), "position": str(rng.randint(-2, 12))}
        configs.append({"values": values, "layers": layers})
    return configs


def atrous_configs(rng: random.Random) -> list[dict]:
    configs = []
    for _ in range(CONFIGURATIONS):
        rates = [str(rng.randint(1, 12)) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.08:
            rates[rng.randrange(len(rates))] = rng.choice(["0", "x", "2.5", "-4"])
        text = rng.choice([", ", ",", " "]).join(rates) if rng.random() > 0.03 else ""
        values = {
            "rate": draw(rng, 1, 40),
            "size": draw(rng, 1, 70),
            "kernel_size": str(rng.choice([1, 2, 3, 3, 3, 4, 5, 7])),
            "rates": text,
        }
        configs.append({"values": values})
    return configs


def multichannel_configs(rng: random.Random) -> list[dict]:
    configs = []
    for _ in range(CONFIGURATIONS):
        values = {
            "in_channels": draw(rng, 1, 8),
            "out_channels": draw(rng, 1, 8),
            "kernel_size": draw(rng, 1, 5),
            "groups": draw(rng, 1, 4),
            "size": draw(rng, 1, 12),
            "stride": draw(rng, 1, 3),
            "padding": str(rng.randint(0, 3)),
            "bias": rng.random() < 0.5,
        }
        configs.append({"values": values})
    return configs


CONFIGS = {
    "conv-geometry": conv_geometry_configs,
    "receptive-field": receptive_field_configs,
    "atrous": atrous_configs,
    "multichannel": multichannel_configs,
}


def cross_check(
    page, index: int, kind: str, seed: int, where: str, count: int = CONFIGURATIONS
) -> int:
    """Set ``count`` random configurations on explorer ``index``; compare with Python."""
    configs = CONFIGS[kind](random.Random(seed))[:count]
    results = page.evaluate(APPLY, {"index": index, "configs": configs})
    refusals = 0
    for n, (config, result) in enumerate(zip(configs, results, strict=True)):
        at = f"{where} [{kind} #{index}] configuration {n}: {config}"
        if kind == "receptive-field":
            expected, rows = receptive_field_expected(config["values"], config["layers"])
            assert len(result["layers"]) == len(rows), at
            for row_expected, row_shown in zip(rows, result["layers"], strict=True):
                for role, value in row_expected.items():
                    check(kind, at, role, value, row_shown.get(role))
        elif kind == "conv-geometry":
            expected = conv_geometry_expected(config["values"])
        elif kind == "atrous":
            expected = atrous_expected(config["values"])
            shown = {r for r in result["roles"] if r.startswith("fraction-")}
            assert shown == {r for r in expected if r.startswith("fraction-")}, at
        else:
            expected = multichannel_expected(config["values"])
        for role, value in expected.items():
            check(kind, at, role, value, result["roles"].get(role))
        refusals += any(value[0] == "error" for value in expected.values())
    # The random configurations cover both what Python accepts and what it refuses.
    if count == CONFIGURATIONS:
        assert 0.05 * count < refusals < 0.95 * count, (kind, refusals)
    return refusals


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium()


def _open(browser, url):
    """Open ``url``; return the page and a list that collects console errors."""
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load")
    return page, errors


def _explorers():
    return [
        conv_geometry_explorer(),
        receptive_field_explorer(),
        atrous_explorer(),
        multichannel_explorer(),
        conv_geometry_explorer(size=4, stride=2, padding=1, transposed=True),
    ]


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explorers")
    (folder / "explorers.html").write_text(standalone_html(*_explorers()), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def standalone_page(browser, standalone):
    page, errors = _open(browser, (standalone / "explorers.html").as_uri())
    yield page, errors
    page.close()


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("index", range(5))
def test_random_configurations_match_python(standalone_page, index):
    page, errors = standalone_page
    kind = page.locator("[data-explorer]").nth(index).get_attribute("data-explorer")
    cross_check(page, index, kind, seed=index, where="standalone page")
    assert errors == []


def test_every_explorer_starts_live(standalone_page):
    page, errors = standalone_page
    roots = page.locator("[data-explorer]")
    assert roots.count() == 5
    for i in range(roots.count()):
        assert roots.nth(i).get_attribute("data-ready") is not None
        assert roots.nth(i).locator('[data-part="static-note"]').is_hidden()
    # One library for the page, however many explorers it holds.
    assert page.evaluate("window.cnnlabExplorers.version") == "1"
    assert errors == []


def test_a_reader_moves_the_controls(browser, standalone):
    """Real key presses, clicks and hovers; the explorers on one page stay independent."""
    page, errors = _open(browser, (standalone / "explorers.html").as_uri())
    try:
        geometry, transposed = page.locator('[data-explorer="conv-geometry"]').all()
        geometry.locator('[name="size"]').fill("9")
        geometry.locator('[name="stride"]').fill("2")
        geometry.locator('[name="padding"]').fill("1")
        assert geometry.locator('[data-role="output-size"]').text_content() == str(
            conv_output_size(9, 3, 2, 1)
        )
        assert transposed.locator('[data-role="output-size"]').text_content() == "7"
        # Hover output cell (1, 2): the cells its kernel reads light up on the padded input.
        geometry.locator('[data-cell="1,2"]').hover()
        geometry.locator('[data-cell="1,2"].cx-sel').wait_for()
        taps = set(geometry.locator("rect.cx-tap").evaluate_all("e => e.map(x => x.dataset.at)"))
        assert taps == {f"{r + 1},{c + 1}" for r, c in Window(3, 2, 1).taps((1, 2))}
        # Transposed: hover input cell (1, 1): the output cells it writes.
        transposed.locator('[data-cell="1,1"]').hover()
        transposed.locator('[data-cell="1,1"].cx-sel').wait_for()
        writes = transposed.locator("rect.cx-tap").evaluate_all("e => e.map(x => x.dataset.at)")
        assert set(writes) == {f"{r},{c}" for r, c in Window(3, 2, 1).taps((1, 1))}
        geometry.locator('[name="kernel_size"]').fill("30")
        shown = geometry.locator('[data-role="output-size"]')
        assert shown.get_attribute("data-error") is not None
        assert "kernel_size" in shown.text_content()
        geometry.locator('[name="transposed"]').check()
        assert geometry.locator('[data-role="output-size"]').text_content() == str(
            transposed_output_size(9, 30, 2, 1)
        )

        field = page.locator('[data-explorer="receptive-field"]')
        field.locator('[data-action="add-layer"]').click()
        last = field.locator('[data-part="layers"] [data-layer]').last
        last.locator('[name="stride"]').fill("2")
        layers = [(3, 1, 1, 1), (3, 1, 1, 1), (2, 2, 0, 1), (3, 1, 1, 1), (3, 2, 1, 1)]
        rf = receptive_field([Layer(*layer) for layer in layers])
        assert field.locator('[data-role="receptive-field"]').text_content() == str(rf.size)
        assert field.locator('[data-role="jump"]').text_content() == str(rf.stride)
        # Hover output unit 2: the interval, and the input pixels highlighted.
        unit = field.locator('[data-unit="2"]')
        unit.hover()
        field.locator('[data-unit="2"].cx-sel').wait_for()
        interval = rf.interval(2)
        assert field.locator('[data-role="interval"]').text_content() == (
            f"[{interval.start}, {interval.end}]"
        )
        assert field.locator('[name="position"]').input_value() == "2"
        lit = field.locator('rect.cx-tap[data-row="0"]').evaluate_all(
            "e => e.map(x => Number(x.dataset.at))"
        )
        assert sorted(lit) == list(range(interval.start, interval.end + 1))
        field.locator('[data-unit="0"]').click()
        assert field.locator('[data-role="interval-start"]').text_content() == str(
            rf.interval(0).start
        )
        field.locator('[data-action="remove-layer"]').first.click()
        rf = receptive_field([Layer(*layer) for layer in layers[1:]])
        assert field.locator('[data-role="receptive-field"]').text_content() == str(rf.size)

        atrous = page.locator('[data-explorer="atrous"]')
        atrous.locator('[name="rates"]').fill("1, 2, 5")
        assert atrous.locator('[data-role="hdc"]').text_content() == "yes"
        assert atrous.locator('[data-role="footprint-reached"]').text_content() == str(
            int((gridding_footprint([1, 2, 5]) > 0).sum())
        )
        atrous.locator('[name="kernel_size"]').fill("4")
        assert atrous.locator('[data-role="valid-count"]').get_attribute("data-error") == ""

        channels = page.locator('[data-explorer="multichannel"]')
        channels.locator('[name="groups"]').fill("3")
        # 3 groups do not divide 2 filters: refused, and the message says so.
        assert "groups" in channels.locator('[data-role="weight-shape"]').text_content()
        channels.locator('[name="out_channels"]').fill("6")
        assert channels.locator('[data-role="weight-shape"]').text_content() == "(6, 1, 3, 3)"
        channels.locator('[name="bias"]').uncheck()
        assert channels.locator('[data-role="parameters"]').text_content() == str(
            conv_params(3, 6, 3, groups=3, bias=False)
        )
        page.wait_for_timeout(50)  # the drawings of the last changes
        assert errors == []
    finally:
        page.close()


def test_an_output_added_later_reuses_the_library(browser, standalone):
    """As JupyterLab shows a new output: its HTML inserted, then its script run; the page keeps
    the library it has (the guard) and the new explorer comes alive."""
    page, errors = _open(browser, (standalone / "explorers.html").as_uri())
    try:
        page.evaluate("window.cnnlabExplorers.marker = 'first'")
        html = multichannel_explorer(in_channels=4, out_channels=6, groups=2)._repr_html_()
        page.evaluate(
            """html => {
              const host = document.createElement('div');
              host.innerHTML = html;
              document.body.appendChild(host);
              for (const old of host.querySelectorAll('script')) {
                const script = document.createElement('script');
                script.textContent = old.textContent;
                old.replaceWith(script);
              }
            }""",
            html,
        )
        assert page.evaluate("window.cnnlabExplorers.marker") == "first"
        root = page.locator("[data-explorer]").last
        assert root.get_attribute("data-ready") is not None
        root.locator('[name="kernel_size"]').fill("5")
        assert root.locator('[data-role="weight-shape"]').text_content() == "(6, 2, 5, 5)"
        assert root.locator('[data-role="parameters"]').text_content() == str(
            conv_params(4, 6, 5, groups=2)
        )
        # The explorers already on the page kept their own state.
        first = page.locator('[data-explorer="multichannel"]').first
        assert first.locator('[data-role="weight-shape"]').text_content() == "(2, 3, 3, 3)"
        assert errors == []
    finally:
        page.close()


def test_standalone_page_over_http(browser, standalone):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(standalone))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/explorers.html"
        page, errors = _open(browser, url)
        try:
            kind = page.locator("[data-explorer]").nth(1).get_attribute("data-explorer")
            cross_check(page, 1, kind, seed=11, where="standalone page over http", count=40)
            assert errors == []
        finally:
            page.close()
    finally:
        httpd.shutdown()


# --------------------------------------------------------------------------- the built book


@pytest.fixture(scope="module")
def server():
    yield from serve_site()


@pytest.mark.parametrize("path", BOOK_PAGES)
def test_book_page_explorers_match_python(server, browser, path):
    require((SITE / path).is_file(), f"{path} is not built in {SITE}: run `make book`")
    page, errors = _open(browser, f"{server}/{path}")
    try:
        roots = page.locator("[data-explorer]")
        assert roots.count() >= 1, f"{path} holds no explorer"
        kinds = [roots.nth(i).get_attribute("data-explorer") for i in range(roots.count())]
        for index, kind in enumerate(kinds):
            assert roots.nth(index).get_attribute("data-ready") is not None, (path, kind)
            cross_check(page, index, kind, seed=100 + index, where=path)
        # The page loads the explorers' code once (inlined) and no widget library.
        scripts = page.evaluate("Array.from(document.scripts).map(s => s.src).filter(s => s)")
        assert not [s for s in scripts if re.search(r"require|html-manager|embed-amd", s)]
        # Nor the stored state of widgets (dead weight on a page without live widgets).
        assert page.locator('script[type="application/vnd.jupyter.widget-state+json"]').count() == 0
        assert page.evaluate("window.cnnlabExplorers.version") == "1"
        assert errors == []
    finally:
        page.close()


@pytest.mark.parametrize("path", BOOK_PAGES)
def test_book_page_explorers_work_from_file(browser, path):
    """Opened from the disk (``file://``), offline, the explorers run as well."""
    require((SITE / path).is_file(), f"{path} is not built in {SITE}: run `make book`")
    page, errors = _open(browser, (SITE / path).as_uri())
    try:
        roots = page.locator("[data-explorer]")
        assert roots.count() >= 1, f"{path} holds no explorer"
        for index in range(roots.count()):
            kind = roots.nth(index).get_attribute("data-explorer")
            cross_check(page, index, kind, seed=200 + index, where=f"{path} (file)", count=20)
        assert errors == []
    finally:
        page.close()
