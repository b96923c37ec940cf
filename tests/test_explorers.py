"""The in-page explorers, Python side: the HTML contract, the initial values, determinism.

The values the HTML holds before any script runs are checked against cnnlab's functions called
here directly; tests/test_explorers_browser.py checks what the JavaScript computes.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

import pytest

import cnnlab.viz
from cnnlab.atrous import (
    gridding_footprint,
    hdc_condition,
    hdc_max_distance,
    valid_weight_counts,
    valid_weight_fractions,
)
from cnnlab.receptive_field import Layer, receptive_field
from cnnlab.shapes import (
    conv_macs,
    conv_output_size,
    conv_params,
    effective_kernel_size,
    transposed_output_size,
)
from cnnlab.viz.explorers import (
    EXPLORER_NAMES,
    Explorer,
    atrous_explorer,
    conv_geometry_explorer,
    library_script,
    multichannel_explorer,
    receptive_field_explorer,
    standalone_html,
)

ROOT = Path(__file__).resolve().parent.parent


class _Parsed(HTMLParser):
    """Roots, controls (name -> attributes) and roles (role -> [text]) of an explorer's HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.roots: list[str] = []
        self.controls: dict[str, list[dict]] = {}
        self.roles: dict[str, list[str]] = {}
        self.errors: dict[str, bool] = {}
        self.scripts = 0
        self._open: list[tuple[str, str | None]] = []
        self._template = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "template":
            self._template += 1
        if "data-explorer" in a:
            self.roots.append(a["data-explorer"])
        if tag in ("input", "select") and not self._template:
            self.controls.setdefault(a["name"], []).append(a)
        if tag == "script":
            self.scripts += 1
        role = a.get("data-role") if not self._template else None
        if role is not None:
            self.roles.setdefault(role, []).append("")
            self.errors[role] = "data-error" in a
        if tag not in ("input", "link", "meta"):
            self._open.append((tag, role))

    def handle_endtag(self, tag):
        if tag == "template":
            self._template -= 1
        while self._open:
            opened, _ = self._open.pop()
            if opened == tag:
                break

    def handle_data(self, data):
        for _, role in reversed(self._open):
            if role is not None:
                self.roles[role][-1] += data
                break


def parse(html: str) -> _Parsed:
    parsed = _Parsed()
    parsed.feed(html)
    return parsed


def roles(explorer: Explorer) -> dict[str, str]:
    """The text of every role (the last one of a repeated role)."""
    return {role: texts[-1] for role, texts in parse(explorer._repr_html_()).roles.items()}


EXPLORERS = {
    "conv-geometry": conv_geometry_explorer,
    "receptive-field": receptive_field_explorer,
    "atrous": atrous_explorer,
    "multichannel": multichannel_explorer,
}


@pytest.mark.parametrize("name", EXPLORER_NAMES)
def test_root_controls_and_script(name):
    html = EXPLORERS[name]()._repr_html_()
    parsed = parse(html)
    assert parsed.roots == [name]
    assert parsed.scripts == 1
    assert html.count("window.cnnlabExplorers") >= 2  # the guard and the assignment
    # Every control is an <input> named after a parameter of the function that made it.
    parameters = set(EXPLORERS[name]().parameters())
    if name == "receptive-field":
        parameters |= {"kernel_size", "stride", "padding", "dilation"}
    assert set(parsed.controls) <= parameters
    assert parsed.controls  # at least one


def test_controls_hold_the_initial_configuration():
    parsed = parse(conv_geometry_explorer(9, 5, 2, 1, 2, True, 1)._repr_html_())
    values = {name: attrs[0].get("value") for name, attrs in parsed.controls.items()}
    assert values == {
        "size": "9",
        "kernel_size": "5",
        "stride": "2",
        "padding": "1",
        "dilation": "2",
        "transposed": None,
        "output_padding": "1",
    }
    assert "checked" in parsed.controls["transposed"][0]
    parsed = parse(receptive_field_explorer([(3, 2, 1, 1), (5, 1, 2, 3)], size=20)._repr_html_())
    assert [a["value"] for a in parsed.controls["kernel_size"]] == ["3", "5"]
    assert [a["value"] for a in parsed.controls["dilation"]] == ["1", "3"]
    parsed = parse(atrous_explorer(rates=[1, 2, 5])._repr_html_())
    assert parsed.controls["rates"][0]["value"] == "1, 2, 5"


@pytest.mark.parametrize(
    "config", [dict(), dict(size=12, kernel_size=3, stride=2, padding=1, dilation=2)]
)
def test_conv_geometry_initial_values(config):
    got = roles(conv_geometry_explorer(**config))
    args = {"size": 7, "kernel_size": 3, "stride": 1, "padding": 0, "dilation": 1} | config
    o = conv_output_size(**args)
    assert got["output-size"] == str(o)
    assert got["effective-kernel-size"] == str(
        effective_kernel_size(args["kernel_size"], args["dilation"])
    )
    assert got["formula"].endswith(f"= {o}")


def test_conv_geometry_transposed_initial_values():
    got = roles(conv_geometry_explorer(size=4, stride=2, padding=1, transposed=True))
    assert got["output-size"] == str(transposed_output_size(4, 3, stride=2, padding=1))
    got = roles(
        conv_geometry_explorer(size=4, stride=2, padding=1, transposed=True, output_padding=1)
    )
    assert got["output-size"] == "8"  # PyTorch's ConvTranspose2d(3, stride 2, padding 1, op 1)


def test_refused_configuration_shows_the_error_not_a_number():
    parsed = parse(conv_geometry_explorer(size=2, kernel_size=5)._repr_html_())
    text = parsed.roles["output-size"][0]
    assert parsed.errors["output-size"]
    assert not re.fullmatch(r"-?\d+", text)
    with pytest.raises(ValueError) as error:
        conv_output_size(2, 5)
    assert text == str(error.value)
    parsed = parse(multichannel_explorer(in_channels=3, groups=2)._repr_html_())
    assert parsed.errors["parameters"] and "groups" in parsed.roles["parameters"][0]
    assert not parsed.errors["output-size"]


def test_receptive_field_initial_values():
    layers = [(3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 0, 2)]
    got = roles(receptive_field_explorer(layers, size=17, position=2))
    rf = receptive_field([Layer(k, s, p, d) for k, s, p, d in layers])
    size = 17
    for k, s, p, d in layers:
        size = conv_output_size(size, k, s, p, d)
    interval = rf.interval(2)
    assert got["receptive-field"] == str(rf.size)
    assert got["jump"] == str(rf.stride)
    assert got["effective-padding"] == str(rf.padding)
    assert got["output-size"] == str(size)
    assert (got["interval-start"], got["interval-end"]) == (str(interval.start), str(interval.end))
    assert got["interval"] == f"[{interval.start}, {interval.end}]"
    # The rows: the field after each layer.
    parsed = parse(receptive_field_explorer(layers, size=17)._repr_html_())
    # 3x3 (r 3), then 3x3 stride 2 (r 3 + 2 = 5, jump 2), then 3x3 dilation 2 (span 5, r 5 + 4*2)
    assert parsed.roles["layer-receptive-field"] == ["3", "5", "13"]
    assert parsed.roles["layer-jump"] == ["1", "2", "2"]


def test_receptive_field_layers_as_layer_objects_and_short_tuples():
    a = receptive_field_explorer([Layer(3, stride=2, padding=1), (5,)])
    assert a.parameters()["layers"] == [(3, 2, 1, 1), (5, 1, 0, 1)]
    with pytest.raises(TypeError, match=r"layers\[0\]"):
        receptive_field_explorer([3])
    with pytest.raises(ValueError, match=r"layers\[1\]"):
        receptive_field_explorer([(3,), (3, 1, 1, 1, 1)])


@pytest.mark.parametrize("config", [dict(), dict(rate=2, size=5, rates=(1, 2, 5))])
def test_atrous_initial_values(config):
    args = dict(rate=6, size=33, kernel_size=3, rates=(6, 12, 18)) | config
    got = roles(atrous_explorer(**args))
    k = args["kernel_size"]
    counts = valid_weight_counts(args["size"], args["rate"], k)
    fractions = valid_weight_fractions(args["size"], [args["rate"]], k)
    assert got["valid-count"] == str(int((counts == k * k).sum()))
    assert float(got["valid-fraction"]) == pytest.approx(fractions[k * k][0], abs=5e-5)
    assert float(got["centre-only-fraction"]) == pytest.approx(fractions[1][0], abs=5e-5)
    for c, f in fractions.items():
        assert float(got[f"fraction-{c}"]) == pytest.approx(f[0], abs=5e-5)
    footprint = gridding_footprint(args["rates"], k)
    assert got["footprint-size"] == str(footprint.shape[0])
    assert got["footprint-reached"] == str(int((footprint > 0).sum()))
    assert got["hdc"] == ("yes" if hdc_condition(args["rates"], k) else "no")
    assert got["hdc-distance"] == str(hdc_max_distance(args["rates"]))


def test_multichannel_initial_values():
    got = roles(multichannel_explorer(in_channels=4, out_channels=6, kernel_size=3, groups=2))
    assert got["weight-shape"] == "(6, 2, 3, 3)"
    assert got["parameters"] == str(conv_params(4, 6, 3, groups=2))
    assert got["macs-per-value"] == str(2 * 3 * 3)
    o = conv_output_size(5, 3, stride=2, padding=1)
    assert got["output-shape"] == f"(6, {o}, {o})"
    assert got["macs"] == str(conv_macs(4, 6, 3, 5, stride=2, padding=1, groups=2))


def test_html_is_deterministic():
    for make in EXPLORERS.values():
        assert make()._repr_html_() == make()._repr_html_()
        assert not re.search(r'\bid="', make()._repr_html_())  # each root finds its own parts


def test_library_is_package_data_and_guarded():
    folder = files("cnnlab.viz") / "explorers_js"
    for name in ("laws.js", "explorers.js", "explorers.css"):
        assert (folder / name).is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"cnnlab.viz" = ["explorers_js/*.js", "explorers_js/*.css"]' in pyproject
    script = library_script()
    assert script.index("window.cnnlabExplorers.version") < script.index("class LawError")
    assert "</script" not in script


def test_standalone_page_holds_every_explorer():
    page = standalone_html(*(make() for make in EXPLORERS.values()))
    assert parse(page).roots == list(EXPLORERS)
    with pytest.raises(TypeError):
        standalone_html("not an explorer")


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="size"):
        conv_geometry_explorer(size=2.5)
    with pytest.raises(TypeError, match="transposed"):
        conv_geometry_explorer(transposed=1)
    with pytest.raises(TypeError, match="rates"):
        atrous_explorer(rates="6, 12")
    with pytest.raises(ValueError, match="rates"):
        atrous_explorer(rates=())
    with pytest.raises(TypeError, match="bias"):
        multichannel_explorer(bias=None)


def test_repr_names_the_function_and_arguments():
    assert repr(multichannel_explorer(groups=1)).startswith("multichannel_explorer(in_channels=3")
    assert "rates=(6, 12, 18)" in repr(atrous_explorer())


def test_viz_docstring_documents_the_contract():
    doc = cnnlab.viz.__doc__
    for word in (*EXPLORER_NAMES, "data-explorer", "data-role", "output-size", "receptive-field"):
        assert word in doc
    # The old exports stay.
    assert {"animate_multichannel", "draw_multichannel_step", "output_terms"} <= set(
        cnnlab.viz.__all__
    )


def test_book_pages_load_no_widget_library():
    """``nb_ipywidgets_js: {}``: myst-nb adds neither RequireJS nor the widgets' manager."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["config"]["nb_ipywidgets_js"] == {}
