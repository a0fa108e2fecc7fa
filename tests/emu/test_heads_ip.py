"""The IP's heads mode (docs/contracts.md section 15) on every backend: attention's block-diagonal
operands generated from a projection's packed codes are exactly MatmulLayer.calls_of's, so the
GEMMs (int64 or epilogue output) are bit-identical; ref, csim and rtl count the same cycles; the
IP answers ST_BAD_HEADS and the driver raises a ValueError naming the problem for what it cannot
take."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from antq.core import arch, epilogue, formats, pack, reference, regmap
from antq.emu.ip import check_args
from antq.emu.levels.ref import heads_operand
from antq.model.graph import MatmulLayer
from antq.run import open_overlay
from helpers import BACKEND_PARAMS, HW4, open_ov, random_tensor

I4S, I4U = formats.get("int", 4, True), formats.get("int", 4, False)

# (B, H, T, D, layout): "qkv" = one projection's (B*T, 3*H*D) output read as (B, T, 3, H, D);
# "sep" = three projections' (B*T, H*D) outputs (Hugging Face's query/key/value). S, g per case.
CASES = {
    "digits": (16, 4, 8, 12, "qkv", 2, 2),  # the digits transformer's attention, two calls' worth
    "one-head-per-call": (5, 3, 8, 12, "qkv", 4, 1),  # the last call takes 1 of S = 4 samples
    "odd-tokens": (3, 2, 7, 5, "sep", 2, 2),  # calls start inside a row tile (r0 != 0)
    "wide": (2, 2, 20, 16, "sep", 1, 2),  # T > R: a sample spans row tiles
}


def _sources(rng, b, h, t, d, layout, fmts):
    """The codes Q, K and V are read from and where: [(codes (B*T, Ks), col0)] x 3; the three
    projections' formats for "sep" (one format for "qkv")."""
    if layout == "qkv":
        y = random_tensor(rng, fmts[0], (b * t, 3 * h * d), scale=0.5)
        return [(y, i * h * d) for i in range(3)]
    return [(random_tensor(rng, f, (b * t, h * d), scale=0.5), 0) for f in fmts]


def _heads_of(codes, col0, b, h, t, d):
    """(B, H, T, D) view of the codes' head window."""
    return codes[:, col0:col0 + h * d].reshape(b, t, h, d).transpose(0, 2, 1, 3)


def _layer(name, h, m, k, n, s, g, fa, fb):
    layer = MatmulLayer(name, fa, np.float32(0.5), fb, np.float32(0.5), (h, m, k), (h, k, n))
    layer.samples_per_call, layer.heads_per_call = s, g  # the case's (S, g), not the cost model's
    return layer


def _operands(ov, dev, col0, rule, s, g, t, d, index):
    """The heads operand of each call (gi, hi): rows from sample gi*S, heads from hi*g."""
    return [ov.heads(dev, rule, samples=s, heads=g, tokens=t, width=d, col0=col0 + hi * g * d,
                     row0=gi * s * t) for gi, hi in index]


def _call_index(b, h, s, g):
    groups = -(-b // s)
    return [(gi, hi) for gi in range(groups) for hi in range(h // g)]


@pytest.fixture(scope="module", params=BACKEND_PARAMS)
def ov(request):
    overlay = open_ov(request.param, pace=0)
    yield overlay
    overlay.close()


@pytest.mark.parametrize("name", list(CASES))
def test_heads_operands_are_calls_of_and_multiply_bit_exactly(ov, name):
    """Q.K^T (rows x kt) and P.V (host P x v): every call's generated operands multiply exactly as
    calls_of's packed ones."""
    rng = np.random.default_rng(sum(map(ord, name)))
    b, h, t, d, layout, s, g = CASES[name]
    fmts = [HW4[(len(name) + 3 * i) % len(HW4)] for i in range(3)]
    (yq, cq), (yk, ck), (yv, cv) = _sources(rng, b, h, t, d, layout, fmts)
    q, k, v = (_heads_of(x.codes, c, b, h, t, d) for x, c in ((yq, cq), (yk, ck), (yv, cv)))
    devs = {id(x): ov.load(x, "a") for x in (yq, yk, yv)}
    idx = _call_index(b, h, s, g)

    mm0 = _layer("mm0", h, t, d, t, s, g, yq.fmt, yk.fmt)
    calls = mm0.calls_of(q, k.transpose(0, 1, 3, 2))
    qa = _operands(ov, devs[id(yq)], cq, "rows", s, g, t, d, idx)
    kw = _operands(ov, devs[id(yk)], ck, "kt", s, g, t, d, idx)
    for (ta, tb, _, _), a_op, w_op in zip(calls, qa, kw, strict=True):
        assert a_op.shape == ta.shape and w_op.shape == tb.shape
        np.testing.assert_array_equal(ov.gemm(a_op, w_op), reference.gemm(ta, tb), err_msg=f"{name} Q.K^T")

    p = random_tensor(rng, I4U, (b * h * t, t)).codes.reshape(b, h, t, t)
    mm1 = _layer("mm1", h, t, t, d, s, g, I4U, yv.fmt)
    calls = mm1.calls_of(p, v)
    vw = _operands(ov, devs[id(yv)], cv, "v", s, g, t, d, idx)
    for (ta, tb, _, _), w_op in zip(calls, vw, strict=True):
        assert w_op.shape == tb.shape
        np.testing.assert_array_equal(ov.gemm(ta, w_op), reference.gemm(ta, tb), err_msg=f"{name} P.V")
    for x in devs.values():
        x.free()


def test_ref_level_generates_exactly_calls_of_operands():
    """The element rules (ref.heads_operand) against calls_of's codes, operand by operand, including
    the code-0 blocks and the samples past the batch (no backend involved)."""
    cfg = arch.DEFAULT
    la = pack.accelerator_layout("a", cfg)
    for name, (b, h, t, d, _, s, g) in CASES.items():
        rng = np.random.default_rng(len(name))
        y = rng.integers(1, 16, (b * t, 2 * h * d + 3)).astype(np.uint8)  # no code 0: blocks show
        col = 3
        q = _heads_of(y, col, b, h, t, d)
        vv = _heads_of(y, col + h * d, b, h, t, d)
        mm0 = _layer("mm0", h, t, d, t, s, g, I4U, I4U)
        mm1 = _layer("mm1", h, t, t, d, s, g, I4U, I4U)
        c0 = mm0.calls_of(q, q.transpose(0, 1, 3, 2))
        c1 = mm1.calls_of(np.ones((b, h, t, t), np.uint8), vv)
        for (gi, hi), (ta, tb, _, _), (_, tv, _, _) in zip(_call_index(b, h, s, g), c0, c1, strict=True):
            row0 = gi * s * t
            t0 = row0 // cfg.rows * cfg.rows
            end = min(b * t, row0 + s * t)
            src = pack.pack(y[t0:], 4, la)
            for rule, want, c in (("rows", ta, col), ("kt", tb, col), ("v", tv, col + h * d)):
                side = regmap.HeadsSide(rule, y.shape[1], end - t0, c + hi * g * d, d, row0 - t0)
                rows = rule == "rows"
                geo = regmap.Heads(s, g, t, d, side if rows else None, None if rows else side)
                got = heads_operand(src[:side.source_nbytes(cfg)], geo, "a" if rule == "rows" else "w",
                                    *want.shape, cfg)
                np.testing.assert_array_equal(got, want.codes, err_msg=f"{name} call {gi},{hi} {rule}")


def test_heads_with_the_epilogue_writes_the_next_layers_codes(ov):
    """P.V with V generated and the output requantized on chip (attention's P.V -> output dense)."""
    rng = np.random.default_rng(5)
    b, h, t, d, s, g = 4, 2, 8, 12, 2, 2
    yv = random_tensor(rng, I4S, (b * t, h * d), scale=0.5)
    v = _heads_of(yv.codes, 0, b, h, t, d)
    p = random_tensor(rng, I4U, (b * h * t, t)).codes.reshape(b, h, t, t)
    mm1 = _layer("mm1", h, t, t, d, s, g, I4U, I4S)
    calls = mm1.calls_of(p, v)
    dev = ov.load(yv, "a")
    for gi, (ta, tb, _, _) in enumerate(calls):
        y = reference.gemm(ta, tb)
        prm = epilogue.params(fmt=I4U, s_a=0.5, s_w=np.full(g * d, 0.5), act="relu",
                              s_out=float(np.abs(y).max()) / 8 or 1.0,
                              acc_max=epilogue.acc_bound(I4U, I4S, ta.shape[1]))
        out = ov.gemm(ta, ov.heads(dev, "v", samples=s, heads=g, tokens=t, width=d, row0=gi * s * t),
                      epilogue=prm)
        np.testing.assert_array_equal(ov.fetch(out).codes, epilogue.apply(y, prm))
        out.free()
        ov.release(prm)
    dev.free()


@pytest.mark.parametrize("cfg", [arch.ArrayConfig(8, 8), arch.ArrayConfig(3, 5), arch.ArrayConfig(4, 8, 128),
                                 arch.ArrayConfig(8, 32)], ids=str)
def test_other_arrays_generate_the_same_operands_and_cycles(cfg):
    """Steps narrower or wider than a bus word, tiles of 3 rows and 5 columns, and the slow paths
    (kt with C > R: 3x5, 4x8, 8x32; v with 4C > the bus: 8x32): ref and csim agree on results and
    cycles, and both are calls_of's GEMM."""
    seen = {}
    b, h, t, d, s, g = 5, 2, 7, 5, 2, 2
    for level in ("ref", "csim"):
        with open_overlay(level, cfg=cfg, pace=0) as ov:
            rng = np.random.default_rng(1)
            y = random_tensor(rng, I4S, (b * t, 3 * h * d), scale=0.5)
            q, k, v = (_heads_of(y.codes, i * h * d, b, h, t, d) for i in range(3))
            dev = ov.load(y, "a")
            got = []
            c0 = _layer("mm0", h, t, d, t, s, g, I4S, I4S).calls_of(q, k.transpose(0, 1, 3, 2))
            pp = random_tensor(rng, I4U, (b * h * t, t)).codes.reshape(b, h, t, t)
            c1 = _layer("mm1", h, t, t, d, s, g, I4U, I4S).calls_of(pp, v)
            for (gi, _), (ta, tb, _, _), (pa, tv, _, _) in zip(_call_index(b, h, s, g), c0, c1, strict=True):
                geo = dict(samples=s, heads=g, tokens=t, width=d, row0=gi * s * t)
                yy = ov.gemm(ov.heads(dev, "rows", **geo), ov.heads(dev, "kt", col0=h * d, **geo))
                np.testing.assert_array_equal(yy, reference.gemm(ta, tb))
                got.append((ov.last_cycles, ov.last_timing.core_busy, ov.last_timing.stall_in))
                yy = ov.gemm(pa, ov.heads(dev, "v", col0=2 * h * d, **geo))
                np.testing.assert_array_equal(yy, reference.gemm(pa, tv))
                got.append((ov.last_cycles, ov.last_timing.core_busy, ov.last_timing.stall_in))
            dev.free()
            seen[level] = got
    assert seen["ref"] == seen["csim"]


def test_regmap_heads_encoding_round_trips():
    a = regmap.HeadsSide("rows", 144, 19, 12, 12, 3)
    w = regmap.HeadsSide("kt", 144, 19, 60, 12, 3)
    geo = regmap.Heads(2, 2, 8, 12, a, w)
    regs = regmap.encode_heads(geo)
    assert regs["heads"] == 1 | 2 << 2 | 2 << 4 | 2 << 12 and regs["heads_dims"] == 8 | 12 << 16
    assert regs["heads_a_src"] == 144 | 19 << 16 and regs["heads_w_col"] == 60 | 12 << 16 | 3 << 24
    assert regmap.decode_heads(regs, 16, 16, 48, I4S, I4S, False) == geo
    assert regmap.decode_heads(regmap.encode_heads(None), 16, 16, 48, I4S, I4S, False) is None
    for bad in (dict(samples=256), dict(heads=0 - 1), dict(tokens=1 << 16)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            regmap.encode_heads(dataclasses.replace(geo, **bad))
    with pytest.raises(ValueError, match="stride"):
        regmap.encode_heads(dataclasses.replace(geo, a=dataclasses.replace(a, stride=256)))


def _bad_heads_cases():
    """(m, n, k, fa, fw, conv_hw, regs) the IP must refuse with ST_BAD_HEADS, and why."""
    good = regmap.encode_heads(regmap.Heads(2, 2, 8, 12, regmap.HeadsSide("rows", 144, 16, 0, 12, 0),
                                            regmap.HeadsSide("kt", 144, 16, 48, 12, 0)))
    base = (16, 16, 48, I4S, I4S, 0)
    i8 = formats.get("int", 8, True)

    def with_(**kw):
        return good | kw

    return {
        "high bits": (*base, with_(heads=good["heads"] | 1 << 20)),
        "A rule kt": (*base, with_(heads=good["heads"] & ~3 | 2)),
        "W rule rows": (*base, with_(heads=good["heads"] & ~0xC | 1 << 2)),
        "with conv": (16, 16, 48, I4S, I4S, 0x00040004, good),
        "S = 0": (*base, with_(heads=good["heads"] & ~0xFF0)),
        "T = 0": (*base, with_(heads_dims=12 << 16)),
        "M > S*T": (17, 16, 48, I4S, I4S, 0, good),
        "K != S*g*D": (16, 16, 47, I4S, I4S, 0, good),
        "N != g*T": (16, 15, 48, I4S, I4S, 0, good),
        "int8 source": (16, 16, 48, i8, I4S, 0, good),
        "r0 >= R": (*base, with_(heads_a_col=good["heads_a_col"] | 16 << 24)),
        "window past Ks": (*base, with_(heads_w_col=140 | 12 << 16)),
        "no rows": (*base, with_(heads_a_src=144)),
        "W source too big": (*base, with_(heads_w_src=144 | 2048 << 16)),
        "A source too big": (*base, with_(heads_a_src=144 | 8192 << 16)),
    }


def test_the_ip_refuses_a_bad_heads_geometry_with_status_8():
    cases = _bad_heads_cases()
    for why, (m, n, k, fa, fw, chw, regs) in cases.items():
        at, wt = regmap.encode_type(fa), regmap.encode_type(fw)
        win = regmap.encode_conv((4, 4), (1, 1))[1] if chw else 0
        st = check_args(m, n, k, at, wt, 0, arch.DEFAULT, 0, chw, win, regs)[0]
        assert st == regmap.ST_BAD_HEADS, why
    m, n, k, fa, fw, _, regs = cases["M > S*T"]
    good = check_args(16, 16, 48, regmap.encode_type(I4S), regmap.encode_type(I4S), 0, arch.DEFAULT, 0, 0, 0,
                      regs)[0]
    assert good == regmap.ST_OK
    with open_overlay("ref", pace=0) as ov:
        y = ov._scratch_buffer("y", 4096)
        for why, (m, n, k, fa, fw, chw, regs) in cases.items():
            win = regmap.encode_conv((4, 4), (1, 1))[1] if chw else 0
            ov.accel.start(a=0, w=0, y=int(y.physical_address), m=m, n=n, k=k, a_type=regmap.encode_type(fa),
                           w_type=regmap.encode_type(fw), conv_hw=chw, conv_win=win, heads=regs)
            ov.accel.wait(5.0)
            assert ov.accel.output("status") == regmap.ST_BAD_HEADS, why


def test_the_driver_names_what_heads_mode_cannot_take():
    rng = np.random.default_rng(2)
    with open_overlay("ref", pace=0) as ov:
        y = ov.load(random_tensor(rng, I4S, (32, 48)), "a")
        geo = dict(samples=2, heads=2, tokens=8, width=12)
        with pytest.raises(ValueError, match="rule must be"):
            ov.heads(y, "q", **geo)
        with pytest.raises(ValueError, match="pass the source's 48 columns"):
            ov.heads(y, "kt", col0=30, **geo)
        with pytest.raises(ValueError, match="row0 = 32 is past"):
            ov.heads(y, "rows", row0=32, **geo)
        with pytest.raises(ValueError, match="count = 3"):
            ov.heads(y, "rows", count=3, **geo)
        with pytest.raises(ValueError, match="tokens = 0"):
            ov.heads(y, "rows", **(geo | dict(tokens=0)))
        with pytest.raises(TypeError, match="DeviceTensor"):
            ov.heads(random_tensor(rng, I4S, (32, 48)), "rows", **geo)
        w = ov.load(random_tensor(rng, I4S, (32, 48)), "w")
        with pytest.raises(ValueError, match="side 'a'"):
            ov.heads(w, "rows", **geo)
        i8 = ov.load(random_tensor(rng, formats.get("int", 8, True), (32, 48)), "a")
        with pytest.raises(ValueError, match="4-bit"):
            ov.heads(i8, "rows", **geo)
        a_op = ov.heads(y, "rows", **geo)
        with pytest.raises(ValueError, match="is 'a', not 'w'"):
            ov.gemm(a_op, a_op)
        other = ov.heads(y, "kt", **(geo | dict(samples=4, heads=1)))  # K = 48 too
        with pytest.raises(ValueError, match="disagree"):
            ov.gemm(a_op, other)
        assert not ov.can_heads(y, "kt", col0=30, **geo) and ov.can_heads(y, "kt", col0=24, **geo)
        big = ov.load(random_tensor(rng, I4S, (4096, 48)), "a")
        with pytest.raises(ValueError, match="16384-byte on-chip buffer"):
            ov.heads(big, "kt", samples=16, heads=2, tokens=256, width=12)
        y.free()
        assert not ov.can_heads(y, "rows", **geo)
        plain = random_tensor(rng, I4S, (5, 9))
        np.testing.assert_array_equal(ov.gemm(plain, plain), reference.gemm(plain, plain))  # regs back to 0
