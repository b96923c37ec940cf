"""Hypothesis strategies shared by the convolution and pooling tests."""

from hypothesis import strategies as st


@st.composite
def conv_cases(draw, allow_same: bool = True):
    """A valid F.conv2d configuration: shapes, stride, padding, dilation, groups, bias."""
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding_kind = draw(
        st.sampled_from(
            ["int", "pair", "valid", "same"] if allow_same else ["int", "pair", "valid"]
        )
    )
    if padding_kind == "same":
        stride = 1
        padding = "same"
        ph = pw = 0
    else:
        stride = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
        if padding_kind == "int":
            padding = ph = pw = draw(st.integers(0, 3))
        elif padding_kind == "pair":
            padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
            ph, pw = padding
        else:
            padding, ph, pw = "valid", 0, 0
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    h = draw(st.integers(max(1, span_h - 2 * ph), 12))
    w = draw(st.integers(max(1, span_w - 2 * pw), 12))
    n = draw(st.integers(1, 3))
    return dict(
        x_shape=(n, c_in, h, w),
        w_shape=(c_out, c_in // groups, kh, kw),
        bias=draw(st.booleans()),
        kwargs=dict(stride=stride, padding=padding, dilation=(dh, dw), groups=groups),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@st.composite
def pool_cases(draw, with_dilation: bool = True):
    """A valid max/avg pooling configuration (padding at most half the effective kernel)."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if with_dilation else (1, 1)
    eff = (dil[0] * (kh - 1) + 1, dil[1] * (kw - 1) + 1)
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    stride = draw(st.one_of(st.none(), st.integers(1, 3)))
    h = draw(st.integers(max(1, eff[0] - 2 * ph), 12))
    w = draw(st.integers(max(1, eff[1] - 2 * pw), 12))
    return dict(
        x_shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w),
        kernel_size=(kh, kw),
        stride=stride,
        padding=(ph, pw),
        dilation=dil,
        seed=draw(st.integers(0, 2**31 - 1)),
    )
