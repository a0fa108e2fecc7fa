"""The IP's on-chip requantization epilogue (out_mode, docs/contracts.md section 12) on every
emulation level: the packed codes it writes are epilogue.apply_packed of the exact GEMM, bit for bit,
the output is the next layer's activations as it is, and the driver refuses what the IP cannot do."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from antq.core import arch, epilogue, formats, pack, reference, regmap
from antq.core import backends as backends_core
from antq.emu.levels import ref as ref_level
from antq.run import open_overlay
from helpers import random_tensor

I4S, I8S, F4U = formats.get("int", 4, True), formats.get("int", 8, True), formats.get("flint", 4, False)


def _params(rng, a, w, fmt, act, *, spread=0.6):
    """Epilogue parameters for y = a @ w.T with random scales and bias, s_out so the outputs span
    the format's grid (and some saturate)."""
    m, k = a.shape
    n = w.shape[0]
    s_a, s_w = 0.05, rng.uniform(0.5, 2.0, n) * 0.01
    y = reference.gemm(a, w)
    real = y * s_a * s_w
    bias = rng.normal(0, 0.2, n) * max(float(np.abs(real).max()), 1e-3)
    top = float(np.abs(real + bias).max()) or 1.0
    s_out = top / (fmt.max_abs * spread)
    p = epilogue.params(fmt=fmt, s_a=s_a, s_w=s_w, s_out=s_out, bias=bias, act=act,
                        acc_max=epilogue.acc_bound(a.fmt, w.fmt, k))
    return p, y


def _written(ov, out):
    """The bytes the IP wrote into the output tensor's buffer."""
    view = out.buffer[:out.nbytes]
    view.invalidate()
    return np.array(view, dtype=np.uint8)


@pytest.mark.parametrize("level", backends_core.LEVELS)
def test_ip_epilogue_is_apply_packed_of_the_gemm_for_every_format_and_activation(level):
    rng = np.random.default_rng(13)
    pairs = [(I4S, F4U), (I8S, formats.get("pot", 4, True)), (formats.get("float", 4, False), I4S)]
    shapes = [(37, 35, 70), (16, 16, 33), (5, 50, 9)]  # edge tiles both ways, one tile, odd N
    with open_overlay(level) as ov:
        for i, fmt in enumerate(epilogue.output_formats()):
            for j, act in enumerate(epilogue.ACTS):
                (fa, fw), (m, n, k) = pairs[(i + j) % 3], shapes[(i + 2 * j) % 3]
                a, w = random_tensor(rng, fa, (m, k)), random_tensor(rng, fw, (n, k))
                p, y = _params(rng, a, w, fmt, act)
                out = ov.gemm(a, w, epilogue=p)
                assert out.fmt == fmt and out.shape == (m, n) and out.side == "a"
                want = epilogue.apply_packed(y, p, ov.array)
                np.testing.assert_array_equal(_written(ov, out), want, err_msg=f"{level} {fmt.name} {act}")
                codes = epilogue.apply(y, p)
                got = ov.fetch(out)
                np.testing.assert_array_equal(got.codes, codes)
                assert got.fmt == fmt and float(got.scale) == pytest.approx(p.s_out)
                if act != "none":
                    assert not np.any(fmt.values[codes] < 0)  # ReLU: never a negative code
                out.free()
        assert ov.live_buffers == 2 + len(ov._params) == 2 + 30  # scratch a, w; a parameter buffer per Params


def test_the_output_feeds_the_next_layer_without_unpacking():
    rng = np.random.default_rng(5)
    fmt = formats.get("int", 4, False)
    a, w1 = random_tensor(rng, I4S, (40, 64)), random_tensor(rng, I4S, (48, 64))
    w2 = random_tensor(rng, F4U, (24, 48))
    p, y1 = _params(rng, a, w1, fmt, "relu")
    codes = epilogue.apply(y1, p)
    for level in backends_core.LEVELS:
        with open_overlay(level) as ov:
            h = ov.gemm(a, w1, epilogue=p)
            y2 = ov.gemm(h, w2)
            mid = ov.fetch(h)
            np.testing.assert_array_equal(mid.codes, codes)
            np.testing.assert_array_equal(y2, reference.gemm(mid, w2))


@pytest.mark.parametrize("level", backends_core.LEVELS)
def test_a_scale_per_column_reaches_the_output_tensor(level):
    """An epilogue with one output scale per column (consumers reading their own columns) runs as
    any other on the IP; the output tensor carries the scales along its columns, a column block
    its own columns' scales, and fetching gives each column's values."""
    rng = np.random.default_rng(8)
    a, w = random_tensor(rng, I4S, (20, 24)), random_tensor(rng, F4U, (36, 24))
    y = reference.gemm(a, w)
    s_out = np.repeat(np.array([0.02, 0.05, 0.11], np.float32), 12)
    p = epilogue.params(fmt=I4S, s_a=0.05, s_w=np.full(36, 0.01), s_out=s_out,
                        acc_max=epilogue.acc_bound(a.fmt, w.fmt, 24))
    codes = epilogue.apply(y, p)
    assert len({tuple(codes[:, c]) for c in range(0, 36, 12)}) > 1  # the scales matter
    with open_overlay(level) as ov:
        out = ov.gemm(a, w, epilogue=p)
        assert out.channel_axis == 1 and np.array_equal(out.scale, s_out)
        got = ov.fetch(out)
        np.testing.assert_array_equal(got.codes, codes)
        np.testing.assert_array_equal(got.dequantize(), epilogue.dequantized(codes, I4S, s_out))
        blk = out.block((0, 16), (12, 24))
        assert np.array_equal(blk.scale, s_out[12:24])
        np.testing.assert_array_equal(ov.fetch(blk).codes, codes[:16, 12:24])
        out.free()


def _sub(p: epilogue.Params, c0: int, c1: int) -> epilogue.Params:
    """The epilogue of columns c0:c1 only."""
    return dataclasses.replace(p, mult=p.mult[c0:c1], bias=p.bias[c0:c1])


@pytest.mark.parametrize("cfg", [arch.DEFAULT, arch.ArrayConfig(8, 8)], ids=["16x16", "8x8"])
@pytest.mark.parametrize("level", backends_core.LEVELS)
def test_calls_write_blocks_of_one_tensor(level, cfg):
    """Calls writing ``out=`` blocks of one ``empty`` tensor fill it exactly as one call would:
    row blocks on tile boundaries, and column blocks (on k_align boundaries) inside one tile block,
    none touching its neighbours (here k_align is 1 on the 16x16 array, 2 on the 8x8 one)."""
    rng = np.random.default_rng(21)
    fmt, t = formats.get("flint", 4, True), cfg.rows
    m, n, k = 3 * t + 5, 21, 19  # a partial last row block, an odd last column block
    a, w = random_tensor(rng, I4S, (m, k)), random_tensor(rng, F4U, (n, k))
    p, y = _params(rng, a, w, fmt, "none")
    want = epilogue.apply(y, p)
    with open_overlay(level, cfg=cfg) as ov:
        ka = pack.accelerator_layout("a", ov.array).k_align
        out = ov.empty((m, n), fmt, scale=p.s_out)
        for r0, r1 in ((0, 2 * t), (2 * t, m)):  # whole-width row blocks
            blk = out.block((r0, r1))
            assert ov.gemm(_rows(a, r0, r1), w, epilogue=p, out=blk) is blk
        np.testing.assert_array_equal(ov.fetch(out).codes, want)
        out2 = ov.empty((m, n), fmt)
        for r0 in range(0, m, t):  # column blocks of each tile block
            r1 = min(r0 + t, m)
            for c0, c1 in ((0, 4 * ka), (4 * ka, 8 * ka), (8 * ka, n)):
                blk2 = out2.block((r0, r1), (c0, c1))
                ov.gemm(_rows(a, r0, r1), _rows(w, c0, c1), epilogue=_sub(p, c0, c1), out=blk2)
        np.testing.assert_array_equal(ov.fetch(out2).codes, want)
        before = ov.live_buffers
        out.free()
        assert blk.freed and ov.live_buffers == before - 1
        with pytest.raises(RuntimeError, match="was freed"):
            ov.gemm(_rows(a, 2 * t, m), w, epilogue=p, out=blk)
        out2.free()


def _rows(q, r0: int, r1: int):
    return type(q)(q.codes[r0:r1], kind=q.kind, bits=q.bits, signed=q.signed, scale=q.scale)


def test_blocks_that_are_not_packed_matrices_are_refused():
    rng = np.random.default_rng(22)
    a, w = random_tensor(rng, I4S, (40, 8)), random_tensor(rng, I4S, (24, 8))
    p, _ = _params(rng, a, w, I4S, "none")
    with open_overlay("ref") as ov, open_overlay("ref") as other:
        out = ov.empty((40, 24), I4S)
        for rows, cols, why in (((8, 16), None, "tile boundary"), ((0, 20), None, "tile boundary"),
                                ((0, 32), (0, 8), "one 16-row tile block"), ((0, 41), None, "outside"),
                                ((16, 16), None, "empty")):
            with pytest.raises(ValueError, match=why):
                out.block(rows, cols)
        with pytest.raises(ValueError, match="two nibble planes"):
            ov.empty((40, 24), I8S).block((0, 16))
        with pytest.raises(ValueError, match="give epilogue= too"):
            ov.gemm(a, w, out=out)
        with pytest.raises(ValueError, match=r"writes int4s codes \(40, 24\)"):
            ov.gemm(a, w, epilogue=p, out=out.block((0, 16)))
        with pytest.raises(ValueError, match="another AntOverlay"):
            ov.gemm(a, w, epilogue=p, out=other.empty((40, 24), I4S))
        with pytest.raises(TypeError, match="out must be a DeviceTensor"):
            ov.gemm(a, w, epilogue=p, out=np.zeros(10))
        with pytest.raises(ValueError, match="not an accelerator format"):
            ov.empty((4, 4), formats.get("int", 6, True))


def test_parameter_buffer_is_written_once_per_params_object():
    rng = np.random.default_rng(2)
    a, w = random_tensor(rng, I4S, (20, 30)), random_tensor(rng, I4S, (17, 30))
    p, _ = _params(rng, a, w, I4S, "none")
    with open_overlay("ref") as ov:
        outs = [ov.gemm(a, w, epilogue=p) for _ in range(3)]
        assert len(ov._params) == 1
        before = ov.live_buffers
        for o in outs:
            o.free()
        assert ov.live_buffers == before - 3
        q = epilogue.Params(p.fmt, p.shift, p.mult, p.bias, p.lo, p.hi, p.acc_max, p.s_out)
        ov.gemm(a, w, epilogue=q).free()
        assert len(ov._params) == 2


def test_the_parameter_buffer_layout_round_trips():
    rng = np.random.default_rng(3)
    for fmt in epilogue.output_formats():
        for n in (1, 2, 7):
            a, w = random_tensor(rng, I4S, (3, 11)), random_tensor(rng, I4S, (n, 11))
            p, _ = _params(rng, a, w, fmt, "relu6")
            words = epilogue.param_buffer(p)
            assert words.dtype == np.dtype("<i8") and words.size == epilogue.param_words(fmt, n)
            assert words.size == -(-n // 2) + n + 2 + (0 if fmt.bits == 8 else len(epilogue.grid(fmt)) - 1)
            back = epilogue.read_param_buffer(words, fmt, p.shift, n)
            assert (back.mult, back.bias, back.lo, back.hi) == (p.mult, p.bias, p.lo, p.hi)
            assert back.acc_max >= p.acc_max
    bad = epilogue.param_buffer(p).copy()
    bad[-1] += 1
    if p.fmt.bits != 8:
        with pytest.raises(ValueError, match="thresholds"):
            epilogue.read_param_buffer(bad, p.fmt, p.shift, p.channels)


@pytest.mark.parametrize("out", [None, I4S, formats.get("int", 8, False)], ids=["int64", "int4s", "int8u"])
def test_store_cost_is_the_packed_bytes(out):
    """8 bytes per output in int64 mode, 0.5 (4-bit) or 1 (int8) with the epilogue: the model's store
    stage counts 64-bit words; the parameter load is a fill cost."""
    cfg = arch.DEFAULT
    m, n, k = 64, 64, 128
    cycles, (_, _, store), _ = ref_level.model_cycles(m, n, k, I4S, I4S, 1, cfg, out)
    per_output = {None: 8, I4S: 0.5}.get(out, 1)
    assert store * 8 == m * n * per_output
    base, _, _ = ref_level.model_cycles(m, n, k, I4S, I4S, 1, cfg)
    if out is not None:
        assert cycles <= base + regmap.MEM_LATENCY + epilogue.param_words(out, n)


def test_driver_refuses_what_the_epilogue_cannot_do():
    rng = np.random.default_rng(4)
    a, w = random_tensor(rng, I4S, (8, 16)), random_tensor(rng, I4S, (10, 16))
    p, _ = _params(rng, a, w, I4S, "none")
    with open_overlay("ref") as ov:
        with pytest.raises(TypeError, match="epilogue must be antq.core.epilogue.Params"):
            ov.gemm(a, w, epilogue="relu")
        w2 = random_tensor(rng, I4S, (11, 16))
        with pytest.raises(ValueError, match="10 output columns but w has N = 11"):
            ov.gemm(a, w2, epilogue=p)
        small = epilogue.Params(p.fmt, p.shift, p.mult, p.bias, p.lo, p.hi, acc_max=1)
        with pytest.raises(ValueError, match="can reach"):
            ov.gemm(a, w, epilogue=small)
        wide = random_tensor(rng, I4S, (regmap.EPI_MAX_COLS + 1, 2))
        pw = epilogue.params(fmt=I4S, s_a=1.0, s_w=1.0, s_out=1.0, channels=regmap.EPI_MAX_COLS + 1,
                             acc_max=epilogue.acc_bound(I4S, I4S, 2))
        with pytest.raises(ValueError, match="at most 4096"):
            ov.gemm(random_tensor(rng, I4S, (2, 2)), wide, epilogue=pw)
        assert ov.live_buffers == 0 or all(not h.freed for h in ov._handles)
    with pytest.raises(TypeError, match="must be an antq.core.formats.Format"):
        epilogue.Params("int4s", 4, (1,), (0,))
    with pytest.raises(ValueError, match="epilogue writes 4-bit"):
        epilogue.Params(formats.get("int", 6, True), 4, (1,), (0,))


def test_an_array_without_whole_word_tiles_refuses_the_epilogue():
    rng = np.random.default_rng(6)
    cfg = arch.ArrayConfig(3, 5)
    a, w = random_tensor(rng, I4S, (6, 8)), random_tensor(rng, I4S, (5, 8))
    p, _ = _params(rng, a, w, I4S, "none")
    with open_overlay("ref", cfg=cfg) as ov:
        with pytest.raises(ValueError, match="cannot write packed output tiles"):
            ov.gemm(a, w, epilogue=p)


def test_the_ip_refuses_a_bad_out_mode_with_a_status():
    rng = np.random.default_rng(7)
    a, w = random_tensor(rng, I4S, (4, 8)), random_tensor(rng, I4S, (4, 8))
    with open_overlay("ref") as ov:
        la, lw = pack.accelerator_layout("a", ov.array), pack.accelerator_layout("w", ov.array)
        A = ov.wrap(_packed(ov, a, la), I4S, a.shape, "a")
        W = ov.wrap(_packed(ov, w, lw), I4S, w.shape, "w")
        y = ov._scratch_buffer("y", 4096)
        pot4u = formats.get("pot", 4, False)
        ov.accel.start(a=A.address, w=W.address, y=int(y.physical_address), m=4, n=4, k=8,
                       a_type=regmap.encode_type(I4S), w_type=regmap.encode_type(I4S),
                       out_mode=regmap.encode_type(pot4u) | 50 << 8)  # S > max_shift(pot4u) = 49
        ov.accel.wait(5.0)
        assert ov.accel.output("status") == regmap.ST_BAD_MODE


def _packed(ov, t, layout):
    import pynq

    data = pack.pack(t.codes, t.bits, layout)
    buf = pynq.allocate((max(data.size, 64),), np.uint8, target=ov.device)
    buf[:data.size] = data
    buf.flush()
    return buf
