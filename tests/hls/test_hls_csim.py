"""The HLS C++ under g++: generated header, C-simulation testbench, other geometries, and the
agreement of the C++ with its single sources (register map, accumulator bound, core stream)."""

from __future__ import annotations

import re
import subprocess

import pytest
from antq.core import arch, formats, regmap, stream
from antq.emu.ip import check_args
from antq.emu.levels import HEADS_ARGS
from antq.toolchain import hls
from helpers import GOLDEN, corrupt_epilogue_golden

GOLDEN_EPILOGUE = GOLDEN.parent / "epilogue.txt"


def test_committed_config_header_is_fresh():
    assert hls.config_path().read_text() == hls.config_header(), "run `make config`, commit ant_config.h"


def test_stale_config_header_is_refused(tmp_path, monkeypatch):
    stale = tmp_path / "ant_config.h"
    fresh = hls.config_header()
    stale.write_text(fresh.replace(f"#define ANT_ROWS {arch.ARRAY_ROWS}\n", "#define ANT_ROWS 4\n"))
    assert stale.read_text() != fresh
    monkeypatch.setattr(hls, "config_path", lambda: stale)
    with pytest.raises(hls.BuildError, match="stale"):
        hls.build("csim")


def test_csim_testbench_golden_and_random():
    r = hls.run_csim(golden=GOLDEN, random=200, seed=3)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "73 golden cases" in r.stdout and "all bit-exact" in r.stdout
    assert "64 epilogue cases" in r.stdout  # tests/golden/epilogue.txt, found beside gemm.txt


def _tb(*args: object, target: str = "tb") -> subprocess.CompletedProcess:
    """The C-simulation testbench (hls/tb/tb_ant_gemm.cpp under g++) run with ``args``; with
    ``target="tb_rtl"`` around the Verilated Verilog core instead of the C++ core model."""
    exe = hls.build(target)
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_csim_testbench_runs_the_epilogue_mode_on_the_golden_vectors():
    """ant_gemm with out_mode set writes every golden epilogue case's codes and packed bytes."""
    r = _tb("none", "--epilogue", GOLDEN_EPILOGUE, "--random", 0)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 golden cases, 64 epilogue cases" in r.stdout and "all bit-exact" in r.stdout


@pytest.mark.parametrize(("tag", "index", "what"), [
    ("codes", 3, "code[0,0] = "),       # a code the IP computes differs
    ("codes", 63, "code[0,0] = "),      # the last case (extreme shifts)
    ("packed", 10, "packed byte 0 = "),  # a 1x1 case: the byte's high nibble is a padding row
    ("packed", 24, "packed byte 0 = "),  # int8 output: two nibble planes
])
def test_csim_testbench_fails_on_a_corrupted_epilogue_golden(tmp_path, tag, index, what):
    bad, name = corrupt_epilogue_golden(GOLDEN_EPILOGUE, tmp_path, tag, index)
    r = _tb("none", "--epilogue", bad, "--random", 0)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"FAIL: epilogue {name}: {what}" in r.stderr, r.stderr
    assert r.stderr.count("FAIL:") == 1 and "FAILED" in r.stdout


def test_the_golden_gemm_and_epilogue_vectors_pass_through_the_verilog_core():
    """The shared golden vectors through the RTL: the same testbench and data mover, the Verilated
    ant_core in place of its C++ model (the rtl emulation level's build)."""
    r = _tb(GOLDEN, "--random", 10, target="tb_rtl")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("[Verilog core]")
    assert "73 golden cases, 64 epilogue cases" in r.stdout and "all bit-exact" in r.stdout


def test_the_verilog_core_build_fails_on_a_corrupted_epilogue_golden(tmp_path):
    bad, name = corrupt_epilogue_golden(GOLDEN_EPILOGUE, tmp_path, "codes", 5)
    r = _tb("none", "--epilogue", bad, "--random", 0, target="tb_rtl")
    assert r.returncode == 1 and f"FAIL: epilogue {name}: code[0,0] = " in r.stderr, r.stdout + r.stderr


def test_csim_testbench_finds_the_epilogue_golden_beside_the_gemm_one(tmp_path):
    """gemm_golden.txt (a board folder of antq vitis) pairs with epilogue_golden.txt beside it;
    without one the run says the epilogue mode was not checked."""
    gemm = tmp_path / "gemm_golden.txt"
    gemm.write_text(GOLDEN.read_text())
    r = _tb(gemm, "--random", 0)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "epilogue mode is not checked" in r.stdout and "0 epilogue cases" in r.stdout
    bad, name = corrupt_epilogue_golden(GOLDEN_EPILOGUE, tmp_path, "codes", 5)
    bad.rename(tmp_path / "epilogue_golden.txt")
    r = _tb(gemm, "--random", 0)
    assert r.returncode == 1 and f"FAIL: epilogue {name}: code[" in r.stderr, r.stdout + r.stderr


def test_csim_testbench_refuses_a_missing_or_foreign_epilogue_golden(tmp_path):
    r = _tb("none", "--epilogue", tmp_path / "nope.txt", "--random", 0)
    assert r.returncode == 2 and "cannot open golden file" in r.stderr
    other = tmp_path / "epilogue.txt"
    other.write_text(GOLDEN_EPILOGUE.read_text().replace("array 16 16 64", "array 8 8 64", 1))
    r = _tb("none", "--epilogue", other, "--random", 0)
    assert r.returncode == 2 and "golden file is for a 8x8 array" in r.stderr


@pytest.mark.parametrize("cfg", [arch.ArrayConfig(16, 16), arch.ArrayConfig(3, 5),
                                 arch.ArrayConfig(4, 8, 128), arch.ArrayConfig(8, 8, 64, 24)], ids=str)
def test_csim_testbench_other_geometries(cfg):
    r = hls.run_csim(golden=None, random=120, seed=5, cfg=cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{cfg.rows}x{cfg.cols} array, {cfg.bus_bits}-bit bus" in r.stdout


def test_testbench_refuses_a_golden_file_for_another_array():
    r = hls.run_csim(golden=GOLDEN, random=0, cfg=arch.ArrayConfig(4, 4))
    assert r.returncode == 2 and f"golden file is for a {arch.ARRAY_ROWS}x{arch.ARRAY_COLS} array" in r.stderr


def test_top_function_signature_is_the_register_map():
    src = (hls.hls_dir() / "ant_gemm.cpp").read_text()
    sig = re.search(r"void ant_gemm\((.*?)\)\s*\{", src, re.S)[1]
    params = [p.split()[-1].lstrip("*") for p in sig.replace("\n", " ").split(",")]
    assert params == [a.name for a in regmap.ARGS]
    for a in regmap.ARGS:
        decl = next(p for p in sig.split(",") if p.split()[-1].lstrip("*") == a.name)
        assert ("*" in decl) == (a.kind != "in"), a.name
        assert re.search(rf"#pragma HLS INTERFACE s_axilite port = {a.name} bundle = control", src), a.name
        if a.kind == "ptr":
            pragma = rf"#pragma HLS INTERFACE m_axi port = {a.name} offset = slave bundle = gmem"
            assert re.search(pragma, src), a.name
    assert "#pragma HLS INTERFACE s_axilite port = return bundle = control" in src
    # the emulator's C ABI (hls/sim_api.cpp antgemm_call, typed by hls.load): the pointers, then
    # every scalar argument in regmap.ARGS order, then the outputs and the model's stages
    api = (hls.hls_dir() / "sim_api.cpp").read_text()
    sig = re.search(r"int antgemm_call\((.*?)\)\s*\{", api, re.S)[1]
    params = [p.split()[-1].lstrip("*") for p in sig.replace("\n", " ").split(",")]
    assert params == [a.name for a in regmap.ARGS if a.kind != "out"] + ["out", "stages"]
    assert len(hls.load("csim").antgemm_call.argtypes) == len(params)


def test_max_k_matches_antq_arch():
    lib = hls.load("csim")
    fmts = regmap.array_formats() + [formats.get("int", 8, s) for s in (False, True)]
    for fa in fmts:
        for fw in fmts:
            assert lib.antgemm_max_k(regmap.encode_type(fa), regmap.encode_type(fw)) == arch.max_k(fa, fw)
    assert lib.antgemm_max_k(0x13, regmap.encode_type(fmts[0])) == 0  # not a format


def test_status_decisions_match_the_python_model():
    """The C++ check of the arguments and antq.emu.ip.check_args agree (no memory is touched)."""
    import ctypes

    lib = hls.load("csim")
    out, stages = (ctypes.c_uint32 * 8)(), (ctypes.c_uint64 * 3)()
    i4, i8 = regmap.encode_type(formats.get("int", 4, True)), regmap.encode_type(formats.get("int", 8, True))
    cases = [(0, 0, 0, 0, 0, 0), (1, 1, 1, 0x13, i4, 0), (1, 1, 1, i4, 0x9F, 0), (1, 1, 1, i4, i4, 2),
             (1, 1, 1, i8, i4, 0b1000), (0, 1, 1, i4, i4, 0), (1, 1, regmap.MAX_DIM + 1, i4, i4, 0),
             (1, 1, 1, i4 | 0x100, i4, 0), (1, 1, 1, i4 | 0x8, i4, 0), (1, 1, 1, 0x81, i4, 0)]  # 0x81: pot8u
    cases = [(*c, 0) for c in cases]
    pot4u = regmap.encode_type(formats.get("pot", 4, False))
    # out_mode: S = 0, S beyond max_shift (pot4u 49, int8s 56), not a format, bits above 13, N too large
    cases += [(1, 1, 1, i4, i4, 0, i4), (1, 1, 1, i4, i4, 0, pot4u | 50 << 8),
              (1, 1, 1, i4, i4, 0, i8 | 57 << 8), (1, 1, 1, i4, i4, 0, 0x81 | 8 << 8),
              (1, 1, 1, i4, i4, 0, i4 | 8 << 8 | 1 << 14),
              (1, regmap.EPI_MAX_COLS + 1, 1, i4, i4, 0, i4 | 8 << 8), (0, 0, 0, 0, 0, 0, 0x81)]
    cases = [(*c, 0, 0) for c in cases]
    # conv mode: source too big (4096 x 33 int4 codes > SRC_BYTES; int8 4096 x 17), kh = 0, K not
    # C*kh*kw, M not B*OH*OW, no output pixel, dh = 0
    hw64, win1 = regmap.encode_conv((64, 64), (1, 1))
    _, win3 = regmap.encode_conv((64, 64), (3, 3))
    cases += [(4096, 8, 33, i4, i4, 0, 0, hw64, win1), (4096, 8, 17, i8, i4, 0, 0, hw64, win1),
              (4096, 8, 10, i4, i4, 0, 0, hw64, win1 & ~0xF), (4096, 8, 10, i4, i4, 0, 0, hw64, win3),
              (4095, 8, 10, i4, i4, 0, 0, hw64, win1),
              (16, 8, 9, i4, i4, 0, 0, *regmap.encode_conv((2, 2), (3, 3))),
              (4096, 8, 9, i4, i4, 0, 0, hw64, win3 & ~(0xF << 24))]
    cases = [(*c, (0,) * 6) for c in cases]
    # heads mode (S = 2, g = 2, T = 8, D = 4: rows and kt take M <= 16 / N = 16 and K = 16, v N = 8
    # and K = 32): every check of regmap.decode_heads answers ST_BAD_HEADS, after the earlier ones
    i8u = regmap.encode_type(formats.get("int", 8, False))
    rows, kt, v = _heads_regs(a=1), _heads_regs(w=2), _heads_regs(w=3)
    bad = [(16, 5, 16, i4, i4, 0, 0, 0, 0, _heads_regs(top=1)),  # bits 31:20 set, rules 0
           (16, 5, 16, i4, i4, 0, 0, 0, 0, _heads_regs(a=1, top=0x800)),
           (16, 5, 16, i4, i4, 0, 0, 0, 0, _heads_regs(a=2)),  # a W rule on A
           (16, 5, 16, i4, i4, 0, 0, 0, 0, _heads_regs(a=3)),
           (16, 16, 16, i4, i4, 0, 0, 0, 0, _heads_regs(w=1)),  # A's rule on W
           (16, 5, 16, i4, i4, 0, 0, *regmap.encode_conv((4, 4), (1, 1)), rows),  # a valid conv too
           (16, 5, 16, i4, i4, 0, 0, 0, 0, _heads_regs(a=1, s=0)),
           (16, 5, 16, i4, i4, 0, 0, 0, 0, _heads_regs(a=1, g=0)),
           (16, 5, 16, i4, i4, 0, 0, 0, 0, _heads_regs(a=1, t=0)),
           (16, 5, 16, i4, i4, 0, 0, 0, 0, _heads_regs(a=1, d=0)),
           (16, 5, 16, i4, i4, 0, 0, 0, 0, rows[:1] + (0,) * 5),  # T = D = 0, a zero source
           (17, 5, 16, i4, i4, 0, 0, 0, 0, rows), (16, 5, 15, i4, i4, 0, 0, 0, 0, rows),  # M > S*T, K
           (3, 15, 16, i4, i4, 0, 0, 0, 0, kt), (3, 16, 17, i4, i4, 0, 0, 0, 0, kt),  # N != g*T, K
           (3, 9, 32, i4, i4, 0, 0, 0, 0, v), (3, 8, 16, i4, i4, 0, 0, 0, 0, v),  # N != g*D, K
           (16, 5, 16, i8u, i4, 0, 0, 0, 0, rows), (3, 16, 16, i4, i8u, 0, 0, 0, 0, kt),  # not 4-bit
           (16, 5, 16, i4, i4, 0, 0, 0, 0, _heads_regs(a=1, r0=16)),  # r0 >= R
           (3, 16, 16, i4, i4, 0, 0, 0, 0, _heads_regs(w=2, r0=16)),
           (16, 5, 16, i4, i4, 0, 0, 0, 0, _heads_regs(a=1, rs=0)),  # Rs = 0
           (16, 5, 16, i4, i4, 0, 0, 0, 0, _heads_regs(a=1, ks=7)),  # c0 + (g-1)*hs + D > Ks
           (3, 8, 32, i4, i4, 0, 0, 0, 0, _heads_regs(w=3, c0=1)),
           (3, 16, 16, i4, i4, 0, 0, 0, 0, _heads_regs(w=2, hs=5)),
           (16, 5, 16, i4, i4, 0, 0, 0, 0, _heads_regs(a=1, ks=32, rs=4097)),  # > SRC_BYTES
           (3, 16, 16, i4, i4, 0, 0, 0, 0, _heads_regs(w=2, ks=32, rs=1025)),  # > HEADS_W_BYTES
           (16, 16, 16, i4, i4, 0, 0, 0, 0, _heads_regs(a=1, w=2, rs=0)),  # W's checks too with A's rule
           (16, 8, 32, i4, i4, 0, 0, 0, 0, _heads_regs(a=1, w=3))]  # rows x v: K = S*g*D != S*g*T
    first = [(16, 5, 16, i4, i4, 0, 0, hw64, win1 & ~0xF, rows),  # a bad conv: ST_BAD_CONV first
             (16, 5, 16, i4, i4, 0, i4, 0, 0, rows)]  # a bad out_mode: ST_BAD_MODE first
    for c, st in [(c, regmap.ST_BAD_HEADS) for c in bad] + list(zip(first, (
            regmap.ST_BAD_CONV, regmap.ST_BAD_MODE), strict=True)):
        assert check_args(*c[:6], arch.DEFAULT, *c[6:9], _heads(c[9]))[0] == st, c
    for m, n, k, at, wt, passes, mode, chw, cwin, hregs in cases + bad + first:
        want = check_args(m, n, k, at, wt, passes, arch.DEFAULT, mode, chw, cwin, _heads(hregs))[0]
        assert want != regmap.ST_OK or m == 0
        rc = lib.antgemm_call(None, None, None, None, m, n, k, at, wt, passes, mode, chw, cwin, *hregs, out,
                              stages)
        assert rc == 0
        assert (out[0], out[1], out[2]) == (regmap.ID_WORD, regmap.encode_geometry(arch.DEFAULT), want), \
            (m, n, k, hex(at), hex(wt), passes, hex(mode), hex(chw), hex(cwin), [hex(r) for r in hregs])
    assert check_args(1, 1, 1, i4, i4, 0, arch.DEFAULT, pot4u | 49 << 8)[0] == regmap.ST_OK
    assert check_args(4096, 8, 32, i4, i4, 0, arch.DEFAULT, 0, hw64, win1)[0] == regmap.ST_OK  # 64 KiB
    for m, n, k, hregs in [(16, 5, 16, rows), (9, 5, 16, rows), (3, 16, 16, kt), (3, 8, 32, v),
                           (16, 16, 16, _heads_regs(a=1, w=2)), (16, 5, 16, _heads_regs(a=1, r0=15, rs=9)),
                           (16, 5, 16, _heads_regs(a=1, ks=32, rs=4096)),  # exactly SRC_BYTES
                           (3, 16, 16, _heads_regs(w=2, ks=32, rs=1024)),  # exactly HEADS_W_BYTES
                           (16, 5, 16, _heads_regs(ks=0, rs=0, s=0))]:  # rules 0: the rest ignored
        assert check_args(m, n, k, i4, i4, 0, arch.DEFAULT, 0, 0, 0, _heads(hregs))[0] == regmap.ST_OK, \
            (m, n, k, hregs)


def _heads(hregs: tuple[int, ...]) -> dict[str, int]:
    return dict(zip(HEADS_ARGS, hregs, strict=True))


def _heads_regs(a: int = 0, w: int = 0, s: int = 2, g: int = 2, t: int = 8, d: int = 4, ks: int = 8,
                rs: int = 16, c0: int = 0, hs: int = 4, r0: int = 0, top: int = 0) -> tuple[int, ...]:
    """The six heads registers, raw (regmap.encode_heads refuses the out-of-range fields tested
    here), both sides with the same source and window; rules a (A) and w (W)."""
    src, col = ks | rs << 16, c0 | hs << 16 | r0 << 24
    return (a | w << 2 | s << 4 | g << 12 | top << 20, t | d << 16, src, col, src, col)


def test_type_encoding_round_trips():
    for f in formats.all_formats():
        if regmap.supported(f):
            assert regmap.decode_type(regmap.encode_type(f)) == f
        else:
            with pytest.raises(ValueError, match="decodes 4-bit"):
                regmap.encode_type(f)


def test_core_config_word_fields_match_the_rtl_helper():
    fa, fw = formats.get("flint", 4, True), formats.get("int", 4, False)
    word = stream.config_word(77, fa, fw, a_hi=False, w_hi=True, acc=True, emit=True)
    side_a = formats.KIND_IDS[fa.kind] | 1 << 2
    side_w = formats.KIND_IDS[fw.kind] | 1 << 3
    assert word == (77 | side_a << regmap.CFG_A_SIDE | side_w << regmap.CFG_W_SIDE
                    | 1 << regmap.CFG_ACC | 1 << regmap.CFG_EMIT)


def test_build_errors_name_the_compiler(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with pytest.raises(hls.BuildError, match="no working C\\+\\+ compiler"):
        hls.build("tb")


@pytest.mark.slow
def test_csim_testbench_long_random_sweep():
    r = hls.run_csim(golden=GOLDEN, random=5000, seed=11)
    assert r.returncode == 0, r.stdout + r.stderr
