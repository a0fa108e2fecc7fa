"""The IP's on-device im2col (conv mode: conv_hw, conv_win; docs/contracts.md section 14) on every
backend: gemm(im2col(src), w) is the GEMM of the host im2col of the NCHW codes, bit for bit, with
int64 or epilogue output; ref, csim and rtl count the same cycles; the IP answers ST_BAD_CONV and
the driver raises a ValueError naming the problem for what the IP cannot take."""

from __future__ import annotations

import numpy as np
import pytest
from antq.core import arch, epilogue, formats, reference, regmap
from antq.core.quantize import QuantizedTensor
from antq.emu.ip import check_args
from antq.model.graph import im2col as host_im2col
from antq.run import open_overlay
from helpers import BACKEND_PARAMS, HW4, INT8, open_ov, random_tensor

I4S, I4U = formats.get("int", 4, True), formats.get("int", 4, False)
POT4U = formats.get("pot", 4, False)

# (B, C, H, W, kernel, stride, padding, dilation): M = B*OH*OW and K = C*kh*kw mostly not multiples
# of the 16x16 tile.
GEOMETRIES = {
    "3x3-same": (2, 5, 7, 6, (3, 3), (1, 1), (1, 1), (1, 1)),  # the fast path, batch 2
    "3x3-stride2": (1, 3, 9, 8, (3, 3), (2, 2), (1, 1), (1, 1)),
    "1x1": (2, 4, 5, 5, (1, 1), (1, 1), (0, 0), (1, 1)),
    "flatten": (1, 3, 6, 6, (6, 6), (1, 1), (0, 0), (1, 1)),  # kernel = the whole image: M = B
    "dilation2-same": (1, 2, 9, 9, (3, 3), (1, 1), (2, 2), (2, 2)),  # fast path, dilated
    "dilation2-valid": (2, 3, 8, 7, (3, 3), (1, 1), (0, 0), (2, 2)),
    "asymmetric": (1, 3, 10, 7, (3, 2), (1, 2), (0, 1), (2, 1)),
    "wide-k-batch3": (3, 20, 4, 4, (3, 3), (1, 1), (1, 1), (1, 1)),  # K = 180, M = 48
}
SOURCE_FORMATS = [*HW4, *INT8]


@pytest.fixture(scope="module", params=BACKEND_PARAMS)
def ov(request):
    overlay = open_ov(request.param, pace=0)
    yield overlay
    overlay.close()


def _source(rng, fmt, b, c, h, w):
    """Random NHWC codes (B*H*W, C) and their NCHW view."""
    x = random_tensor(rng, fmt, (b * h * w, c), scale=0.25)
    return x, x.codes.reshape(b, h, w, c).transpose(0, 3, 1, 2)


def _host_a(x, nchw, kernel, stride, padding, dilation):
    codes = host_im2col(nchw, kernel, stride, padding, dilation)
    return QuantizedTensor(codes, kind=x.fmt.kind, bits=x.fmt.bits, signed=x.fmt.signed)


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_im2col_gemm_is_the_host_im2col_gemm(ov, name):
    rng = np.random.default_rng(sum(map(ord, name)))
    b, c, h, w, kernel, stride, padding, dilation = GEOMETRIES[name]
    for i, fa in enumerate(SOURCE_FORMATS):
        if (i + len(name)) % 3:  # every format over the geometries, a third of the pairs each
            continue
        x, nchw = _source(rng, fa, b, c, h, w)
        wt = random_tensor(rng, HW4[(i + 3) % len(HW4)], (19, c * kernel[0] * kernel[1]))
        src = ov.load(x, "a")
        op = ov.im2col(src, (h, w), kernel, stride, padding, dilation)
        a = _host_a(x, nchw, kernel, stride, padding, dilation)
        assert op.shape == a.shape and op.fmt == fa and float(op.scale) == 0.25
        np.testing.assert_array_equal(ov.gemm(op, wt), reference.gemm(a, wt), err_msg=f"{name} {fa.name}")
        src.free()


@pytest.mark.parametrize("name", ["3x3-same", "3x3-stride2", "flatten"])
def test_im2col_with_the_epilogue_writes_the_next_layers_codes(ov, name):
    rng = np.random.default_rng(3)
    b, c, h, w, kernel, stride, padding, dilation = GEOMETRIES[name]
    x, nchw = _source(rng, I4U, b, c, h, w)
    wt = random_tensor(rng, I4S, (24, c * kernel[0] * kernel[1]))
    a = _host_a(x, nchw, kernel, stride, padding, dilation)
    y = reference.gemm(a, wt)
    p = epilogue.params(fmt=I4U, s_a=0.25, s_w=rng.uniform(0.5, 1.5, 24) * 0.05,
                        s_out=float(np.abs(y).max()) * 0.0125 / 12 or 1.0, bias=rng.normal(0, 0.3, 24),
                        act="relu", acc_max=epilogue.acc_bound(I4U, I4S, a.shape[1]))
    src = ov.load(x, "a")
    out = ov.gemm(ov.im2col(src, (h, w), kernel, stride, padding, dilation), wt, epilogue=p)
    np.testing.assert_array_equal(ov.fetch(out).codes, epilogue.apply(y, p))
    out.free()
    src.free()
    ov.release(p)


def test_conv_chains_on_the_device(ov):
    """conv -> conv: the first layer's requantized NHWC output is the second's im2col source."""
    rng = np.random.default_rng(11)
    b, h, w, c0, c1 = 2, 6, 5, 3, 8
    x, nchw = _source(rng, I4U, b, c0, h, w)
    w1, w2 = random_tensor(rng, I4S, (c1, c0 * 9)), random_tensor(rng, I4S, (7, c1 * 9))
    a1 = _host_a(x, nchw, (3, 3), (1, 1), (1, 1), (1, 1))
    y1 = reference.gemm(a1, w1)
    p = epilogue.params(fmt=I4U, s_a=1.0, s_w=np.full(c1, 1.0), s_out=float(np.abs(y1).max()) / 10 or 1.0,
                        act="relu", acc_max=epilogue.acc_bound(I4U, I4S, a1.shape[1]))
    src = ov.load(x, "a")
    h1 = ov.gemm(ov.im2col(src, (h, w), 3, padding=1), w1, epilogue=p)  # (B*H*W, C1): NHWC
    y2 = ov.gemm(ov.im2col(h1, (h, w), (3, 3), (1, 1), (1, 1)), w2)
    mid = ov.fetch(h1)
    np.testing.assert_array_equal(mid.codes, epilogue.apply(y1, p))
    nchw1 = mid.codes.reshape(b, h, w, c1).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(y2, reference.gemm(_host_a(mid, nchw1, (3, 3), (1, 1), (1, 1), (1, 1)), w2))
    plain, w3 = random_tensor(rng, I4S, (5, 9)), random_tensor(rng, I4S, (6, 9))
    np.testing.assert_array_equal(ov.gemm(plain, w3), reference.gemm(plain, w3))  # conv regs back to 0
    for t in (h1, src):
        t.free()
    ov.release(p)


@pytest.mark.parametrize("cfg", [arch.ArrayConfig(8, 8), arch.ArrayConfig(3, 5), arch.ArrayConfig(4, 8, 128)],
                         ids=str)
def test_other_arrays_generate_the_same_operand_and_cycles(cfg):
    """Steps narrower or wider than a bus word (spans that start inside a word), short jobs
    (pot4u x pot4u: 7 steps) and int8 planes: ref and csim agree on results and cycles."""
    seen = {}
    for level in ("ref", "csim"):
        with open_overlay(level, cfg=cfg, pace=0) as ov:
            got = []
            for name in ("3x3-same", "3x3-stride2", "asymmetric"):
                b, c, h, w, kernel, stride, padding, dilation = GEOMETRIES[name]
                for fa, fw in ((POT4U, POT4U), (INT8[1], I4S)):
                    r = np.random.default_rng(len(got))
                    x, nchw = _source(r, fa, b, c, h, w)
                    wt = random_tensor(r, fw, (9, c * kernel[0] * kernel[1]))
                    src = ov.load(x, "a")
                    y = ov.gemm(ov.im2col(src, (h, w), kernel, stride, padding, dilation), wt)
                    np.testing.assert_array_equal(y, reference.gemm(_host_a(x, nchw, kernel, stride, padding,
                                                                            dilation), wt))
                    t = ov.last_timing
                    got.append((ov.last_cycles, t.core_busy, t.stall_in, t.stall_out))
                    src.free()
            seen[level] = got
    assert seen["ref"] == seen["csim"]


def test_regmap_conv_encoding_round_trips():
    hw, win = regmap.encode_conv((7, 6), (3, 2), (1, 2), (0, 1), (2, 1))
    assert hw == 7 | 6 << 16 and win == 3 | 2 << 4 | 1 << 8 | 2 << 12 | 0 << 16 | 1 << 20 | 2 << 24 | 1 << 28
    oh, ow = regmap.conv_out_hw((7, 6), (3, 2), (1, 2), (0, 1), (2, 1))
    conv = regmap.decode_conv(hw, win, 2 * oh * ow, 5 * 6, I4S)
    assert (conv.h, conv.w, conv.kernel, conv.stride, conv.padding, conv.dilation) == \
        (7, 6, (3, 2), (1, 2), (0, 1), (2, 1))
    assert (conv.batch, conv.channels, conv.out_hw, conv.fast) == (2, 5, (oh, ow), False)
    assert regmap.decode_conv(0, 0, 5, 5, I4S) is None
    for bad in [dict(kernel=(16, 1)), dict(stride=(0, 1)), dict(padding=(-1, 0)), dict(dilation=(1, 16)),
                dict(hw=(0, 4)), dict(hw=(1 << 16, 4))]:
        args = dict(hw=(5, 5), kernel=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1)) | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            regmap.encode_conv(**args)


def test_the_ip_refuses_a_bad_conv_geometry_with_status_7():
    i4 = regmap.encode_type(I4S)
    hw, win = regmap.encode_conv((64, 64), (1, 1))
    cases = [  # (m, k, conv_hw, conv_win)
        (4096, 33, hw, win),  # 4096 x 33 int4 codes: 67584 bytes > SRC_BYTES
        (4096, 10, hw, win & ~0xF),  # kh = 0
        (64 * 64, 10, hw, regmap.encode_conv((64, 64), (3, 3))[1]),  # K = 10 is not C * 9
        (4095, 10, hw, win),  # M not B * OH * OW
        (16, 9, *regmap.encode_conv((2, 2), (3, 3))),  # no output pixel
    ]
    for m, k, chw, cwin in cases:
        assert check_args(m, 8, k, i4, i4, 0, arch.DEFAULT, 0, chw, cwin)[0] == regmap.ST_BAD_CONV, (m, k)
    assert check_args(4096, 8, 32, i4, i4, 0, arch.DEFAULT, 0, hw, win)[0] == regmap.ST_OK  # exactly 64 KiB
    with open_overlay("ref", pace=0) as ov:
        y = ov._scratch_buffer("y", 4096)
        for m, k, chw, cwin in cases:
            ov.accel.start(a=0, w=0, y=int(y.physical_address), m=m, n=8, k=k, a_type=i4, w_type=i4,
                           conv_hw=chw, conv_win=cwin)
            ov.accel.wait(5.0)
            assert ov.accel.output("status") == regmap.ST_BAD_CONV


def test_the_driver_names_what_the_ip_cannot_take():
    rng = np.random.default_rng(8)
    with open_overlay("ref", pace=0) as ov:
        big = ov.load(random_tensor(rng, I4S, (64 * 64, 33)), "a")
        ok = ov.load(random_tensor(rng, INT8[0], (2 * 5 * 5, 4)), "a")
        with pytest.raises(ValueError, match="does not fit the IP's 65536-byte on-chip source buffer"):
            ov.im2col(big, (64, 64), (1, 1))
        assert not ov.can_im2col(big, (64, 64), (1, 1))
        assert ov.can_im2col(ok, (5, 5), (3, 3), padding=(1, 1))
        for args, match in [(((5, 5), (16, 3)), "kernel .* 4-bit fields take 1..15"),
                            (((5, 5), (3, 3), (1, 1), (16, 0)), "padding"),
                            (((5, 5), (3, 3), (0, 1)), "stride"),
                            (((5, 5), (3, 3), 1, 0, (1, 0)), "dilation"),
                            (((7, 5), (3, 3)), "not a whole number of 7x5 images"),
                            (((5, 5), (7, 3)), "no output pixels"),
                            (((5, 5), (3, 3, 3)), "pair of ints")]:
            with pytest.raises(ValueError, match=match):
                ov.im2col(ok, *args)
            assert not ov.can_im2col(ok, *args)
        w = ov.load_weights(random_tensor(rng, I4S, (4, 36)))
        op = ov.im2col(ok, (5, 5), 3, padding=1)
        with pytest.raises(ValueError, match="can only be a"):
            ov.gemm(random_tensor(rng, I4S, (3, 36)), op)
        with pytest.raises(TypeError, match="DeviceTensor of NHWC pixels"):
            ov.im2col(random_tensor(rng, I4S, (25, 4)), (5, 5), 3)
        with pytest.raises(ValueError, match="side 'a'"):
            ov.im2col(w, (2, 2), 1)
        ok.free()
        with pytest.raises(RuntimeError, match="freed"):
            ov.gemm(op, w)
