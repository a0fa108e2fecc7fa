"""The runtime's im2col (native) against numpy's sliding windows, for any conv geometry."""

import numpy as np
import pytest
from antq.model.graph import conv_out_hw, im2col
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view


def ref_im2col(codes, kernel, stride, padding, dilation):
    """(B, C, H, W) -> (B*OH*OW, C*kh*kw), straight from the windows of the zero-padded input."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    p = np.pad(codes, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(p, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]  # (B, C, OH, OW, kh, kw)
    b, c, oh, ow = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(b * oh * ow, c * kh * kw)


def pairs(lo: int, hi: int) -> st.SearchStrategy:
    return st.tuples(st.integers(lo, hi), st.integers(lo, hi))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 3), st.integers(1, 20), st.integers(1, 19), st.integers(1, 19), pairs(1, 7),
       pairs(1, 3), pairs(0, 3), pairs(1, 2), st.integers(0, 2**32 - 1))
def test_im2col_equals_sliding_windows(b, c, h, w, kernel, stride, padding, dilation, seed):
    oh, ow = conv_out_hw((h, w), kernel, stride, padding, dilation)
    if oh < 1 or ow < 1:
        with pytest.raises(ValueError, match="no output pixels"):
            im2col(np.zeros((b, c, h, w), np.uint8), kernel, stride, padding, dilation)
        return
    x = np.random.default_rng(seed).integers(0, 256, (b, c, h, w)).astype(np.uint8)
    got = im2col(x, kernel, stride, padding, dilation)
    assert got.dtype == np.uint8 and np.array_equal(got, ref_im2col(x, kernel, stride, padding, dilation))


def test_im2col_takes_views_and_rejects_other_ranks():
    x = np.random.default_rng(0).integers(0, 16, (2, 6, 9, 9)).astype(np.uint8)
    view = x[:, ::2, :, ::-1]
    args = ((3, 3), (1, 1), (1, 1), (1, 1))
    assert np.array_equal(im2col(view, *args), ref_im2col(view, *args))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        im2col(x[0], *args)
