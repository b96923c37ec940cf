"""Geometry diagrams, animations and the explorer widget, checked against torch's own indexing."""

import base64

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cnnlab.shapes import conv_output_size, transposed_output_size  # noqa: E402
from cnnlab.viz.explorer import conv_explorer, explorer_gallery, explorer_outputs  # noqa: E402
from cnnlab.viz.geometry import (  # noqa: E402
    animate_conv_geometry,
    conv_geometry_steps,
    draw_conv_geometry,
)

# An animation that a test builds but never renders is fine here.
pytestmark = pytest.mark.filterwarnings("ignore:Animation was deleted without rendering")

# The seven cases of the chapter.
CONV_CASES = [
    dict(input_size=5, kernel_size=3),
    dict(input_size=5, kernel_size=3, padding=1),
    dict(input_size=3, kernel_size=3, padding=2),
    dict(input_size=5, kernel_size=3, stride=2),
    dict(input_size=5, kernel_size=3, stride=2, padding=1),
    dict(input_size=7, kernel_size=3, dilation=2),
    dict(input_size=(4, 6), kernel_size=(2, 3), stride=(1, 2), padding=(1, 0), dilation=(2, 1)),
]
TRANSPOSED_CASES = [
    dict(input_size=3, kernel_size=3, stride=2),
    dict(input_size=3, kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(input_size=(2, 3), kernel_size=(3, 2), stride=(2, 3), dilation=(2, 1), padding=(0, 1)),
]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _drawn(case, step):
    """The cells draw_conv_geometry highlights, read back from the patches' gids."""
    fig, ax = plt.subplots()
    draw_conv_geometry(**case, step=step, ax=ax)
    gids = [p.get_gid() or "" for p in ax.patches]
    plt.close(fig)
    taps = sorted(tuple(int(v) for v in g.split()[1:]) for g in gids if g.startswith("tap "))
    targets = [tuple(int(v) for v in g.split()[1:]) for g in gids if g.startswith("target ")]
    return taps, targets


def _torch_conv_footprints(case):
    """For each output cell (row-major), the padded-input cells it reads, found by F.unfold."""
    (ih, iw), (kh, kw) = _pair(case["input_size"]), _pair(case["kernel_size"])
    (ph, pw) = _pair(case.get("padding", 0))
    ids = torch.arange(1.0, (ih + 2 * ph) * (iw + 2 * pw) + 1).reshape(1, 1, ih + 2 * ph, -1)
    cols = F.unfold(ids, (kh, kw), dilation=case.get("dilation", 1), stride=case.get("stride", 1))
    width = iw + 2 * pw
    return [
        sorted((int(v - 1) // width - ph, int(v - 1) % width - pw) for v in cols[0, :, j])
        for j in range(cols.shape[-1])
    ]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_frames_and_footprints_match_torch(case):
    o = _pair(
        conv_output_size(
            case["input_size"],
            case["kernel_size"],
            case.get("stride", 1),
            case.get("padding", 0),
            case.get("dilation", 1),
        )
    )
    anim = animate_conv_geometry(**case)
    assert len(list(anim.new_frame_seq())) == o[0] * o[1]
    expected = _torch_conv_footprints(case)
    assert len(expected) == o[0] * o[1]
    for step in sorted({0, len(expected) // 2, len(expected) - 1}):
        taps, targets = _drawn(case, step)
        assert taps == expected[step]
        assert targets == [divmod(step, o[1])]
    steps = conv_geometry_steps(**case)
    assert [sorted(s.taps) for s in steps] == expected


@pytest.mark.parametrize("case", TRANSPOSED_CASES)
def test_transposed_frames_and_scatter_match_torch(case):
    i, (kh, kw) = _pair(case["input_size"]), _pair(case["kernel_size"])
    p = _pair(case.get("padding", 0))
    anim = animate_conv_geometry(**case, transposed=True)
    assert len(list(anim.new_frame_seq())) == i[0] * i[1]
    for step in range(i[0] * i[1]):
        x = torch.zeros(1, 1, *i)
        x[0, 0, step // i[1], step % i[1]] = 1.0
        # Uncropped scatter (padding 0), shifted by the padding the real layer crops.
        full = F.conv_transpose2d(
            x,
            torch.ones(1, 1, kh, kw),
            stride=case.get("stride", 1),
            dilation=case.get("dilation", 1),
        )
        expected = sorted((int(r) - p[0], int(c) - p[1]) for r, c in full[0, 0].nonzero())
        taps, targets = _drawn({**case, "transposed": True}, step)
        assert taps == expected
        assert targets == [divmod(step, i[1])]


@pytest.mark.parametrize("case", TRANSPOSED_CASES)
def test_transposed_diagram_states_torchs_output_size(case):
    args = {k: v for k, v in case.items()}
    fig, ax = plt.subplots()
    draw_conv_geometry(**args, transposed=True, ax=ax)
    y = F.conv_transpose2d(
        torch.zeros(1, 1, *_pair(case["input_size"])),
        torch.zeros(1, 1, *_pair(case["kernel_size"])),
        stride=case.get("stride", 1),
        padding=case.get("padding", 0),
        output_padding=case.get("output_padding", 0),
        dilation=case.get("dilation", 1),
    )
    texts = [t.get_text() for t in ax.texts]
    plt.close(fig)
    assert f"output {y.shape[-2]}x{y.shape[-1]}" in texts
    assert _pair(
        transposed_output_size(**{("size" if k == "input_size" else k): v for k, v in case.items()})
    ) == tuple(y.shape[-2:])


def test_bad_steps_and_arguments_raise():
    with pytest.raises(ValueError, match="step"):
        draw_conv_geometry(5, 3, step=9)
    with pytest.raises(ValueError, match="output_padding"):
        draw_conv_geometry(5, 3, stride=2, output_padding=1)
    with pytest.raises(ValueError, match="kernel_size"):
        conv_geometry_steps(2, 5)


def test_animation_html_stays_small():
    html = animate_conv_geometry(5, 3, stride=2, padding=1).to_jshtml()
    assert "<img" in html and len(html) < 1_000_000


def _png(records):
    images = [r["data"]["image/png"] for r in records if r["output_type"] == "display_data"]
    return [base64.b64decode(img)[:8] for img in images]


def test_explorer_callback_prints_the_output_size_and_draws():
    explorer = conv_explorer(input_size=7, kernel_size=3)
    settings = [
        dict(input_size=9, kernel_size=3, stride=2, padding=1, dilation=1),
        dict(input_size=9, kernel_size=3, stride=1, padding=0, dilation=3),
        dict(input_size=6, kernel_size=4, stride=3, padding=2, dilation=1),
    ]
    for values in settings:
        for name, value in values.items():
            explorer.sliders[name].value = value  # each change runs the callback
        o = conv_output_size(
            values["input_size"],
            values["kernel_size"],
            values["stride"],
            values["padding"],
            values["dilation"],
        )
        # The independent check: torch's own output size.
        y = F.conv2d(
            torch.zeros(1, 1, values["input_size"], values["input_size"]),
            torch.zeros(1, 1, values["kernel_size"], values["kernel_size"]),
            stride=values["stride"],
            padding=values["padding"],
            dilation=values["dilation"],
        )
        assert y.shape[-1] == o
        records = explorer.output.outputs
        assert records[0]["output_type"] == "stream"
        assert f"= {o}, so the output is {o}x{o}" in records[0]["text"]
        assert _png(records) == [b"\x89PNG\r\n\x1a\n"]
        assert explorer.sliders["cell"].max == o * o - 1


def test_explorer_cell_slider_moves_the_highlight():
    explorer = conv_explorer(input_size=5, kernel_size=3)
    before = explorer.output.outputs[1]["data"]["image/png"]
    explorer.sliders["cell"].value = 8
    after = explorer.output.outputs[1]["data"]["image/png"]
    assert before != after
    assert explorer_outputs(5, 3, step=8)[1]["data"]["image/png"] == after


def test_explorer_reports_an_empty_output_without_a_diagram():
    explorer = conv_explorer(input_size=3, kernel_size=3)
    explorer.sliders["dilation"].value = 2
    records = explorer.output.outputs
    assert [r["output_type"] for r in records] == ["stream"]
    assert records[0]["text"].startswith("no output")
    assert explorer.sliders["cell"].max == 0
    with pytest.raises(RuntimeError):  # torch agrees there is no output
        F.conv2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), dilation=2)


def test_gallery_has_one_diagram_per_setting():
    fig = explorer_gallery(
        [dict(input_size=5, kernel_size=3, stride=s) for s in (1, 2, 3)], ncols=2
    )
    drawn = [ax for ax in fig.axes if ax.patches]
    titles = [ax.get_title() for ax in drawn]
    plt.close(fig)
    assert len(drawn) == 3
    assert [t.split("o=")[1] for t in titles] == ["3", "2", "1"]
