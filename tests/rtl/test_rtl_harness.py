"""antq.rtl: the -O3 Verilated ant_core behind the C ABI of docs/contracts.md §10.

Golden vectors and random GEMMs (tiles, int8 nibble passes, K split at max_k) streamed through
the harness, long random streams of jobs and stats requests cycle-exact against
antq.core.stream.schedule (every input beat, every output beat, the total, the counters), the
stream-format encoders against the packed bytes, every error path, the 32x32 core, and the
cached, locked, source-tracking build.
"""

import itertools
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from antq.core import arch, formats, golden, pack, reference, regmap, stream, tiling
from antq.core.quantize import QuantizedTensor
from antq.emu import antcore
from antq.run import microbench
from antq.toolchain import verilator
from helpers import GOLDEN

R, C = arch.ARRAY_ROWS, arch.ARRAY_COLS


@pytest.fixture(scope="module")
def core():
    with antcore.AntCore(R, C) as c:
        yield c


def qt(rng, fmt, shape):
    codes = rng.integers(0, fmt.ncodes, shape)
    return QuantizedTensor(codes, kind=fmt.kind, bits=fmt.bits, signed=fmt.signed)


def test_abi_reports_the_build(core):
    assert (core.rows, core.cols) == (R, C)
    assert core.data_bits == stream.data_bits(R, C) == 64 * -(-4 * (R + C) // 64)
    cfg, _ = golden.read(GOLDEN)
    assert (cfg.rows, cfg.cols) == (R, C), "the golden file and antq.arch disagree on the array"


def test_golden_vectors(core):
    _, cases = golden.read(GOLDEN)
    for c in cases:
        assert np.array_equal(antcore.gemm(c.a, c.w, core), c.y), c.name


def test_wide_stream_16x16():
    """A 16x16 core has a 128-bit s_axis_tdata (two uint64 words per beat in the ABI)."""
    rng = np.random.default_rng(3)
    with antcore.AntCore(16, 16) as big:
        assert big.data_bits == 128
        _, cases = golden.read(GOLDEN)
        for c in cases[::7]:
            assert np.array_equal(antcore.gemm(c.a, c.w, big), c.y), c.name
        fa, fw = formats.get("float", 4, False), formats.get("flint", 4, True)
        a, w = qt(rng, fa, (17, 300)), qt(rng, fw, (33, 300))
        assert np.array_equal(antcore.gemm(a, w, big), reference.gemm(a, w))


def test_job_beats_are_the_packed_tile_steps():
    """Beat j of a job = step j of an activation tile block, then step j of a weight tile block."""
    cfg, cases = golden.read(GOLDEN)
    la, lw = pack.accelerator_layout("a", cfg), pack.accelerator_layout("w", cfg)
    checked = 0
    for c in cases:
        if c.a.bits != 4 or c.w.bits != 4:
            continue
        (m, k), n = c.a.shape, c.w.shape[0]
        _, kpa = la.padded(m, k)
        _, kpw = lw.padded(n, k)
        for ta, tw in itertools.product(range(-(-m // R)), range(-(-n // C))):
            at = np.zeros((R, k), np.uint8)
            wt = np.zeros((C, k), np.uint8)
            at[:min(R, m - ta * R)] = c.a.codes[ta * R:(ta + 1) * R]
            wt[:min(C, n - tw * C)] = c.w.codes[tw * C:(tw + 1) * C]
            beats = stream.job_beats(at, wt, stream.config_word(k, c.a.fmt, c.w.fmt), R, C)
            sa = int.from_bytes(c.packed_a[ta * kpa * R // 2:(ta + 1) * kpa * R // 2].tobytes(), "little")
            sw = int.from_bytes(c.packed_w[tw * kpw * C // 2:(tw + 1) * kpw * C // 2].tobytes(), "little")
            for j in range(k):
                a_step = (sa >> (4 * R * j)) & ((1 << 4 * R) - 1)
                w_step = (sw >> (4 * C * j)) & ((1 << 4 * C) - 1)
                step = a_step | w_step << 4 * R
                assert sum(int(x) << (64 * i) for i, x in enumerate(beats[1 + j])) == step
            checked += 1
    assert checked > 50


def test_config_word_fields():
    fa, fw = formats.get("flint", 4, False), formats.get("int", 4, True)
    w = stream.config_word(1234, fa, fw, a_hi=False, w_hi=True, acc=True, emit=False)
    assert w & 0xFFFFFF == 1234
    assert (w >> 24) & 3 == formats.KIND_IDS["flint"] and not (w >> 26) & 1 and not (w >> 27) & 1
    assert (w >> 28) & 3 == formats.KIND_IDS["int"] and (w >> 30) & 1 and (w >> 31) & 1
    assert (w >> 32) & 1 and not (w >> 33) & 1 and w >> 34 == 0


@pytest.mark.parametrize("fa,fw", [("int8s", "int8s"), ("int8u", "flint4s"), ("pot4u", "pot4u"),
                                   ("float4u", "pot4s"), ("flint4u", "int8u")])
def test_random_gemm_tiles_passes_and_k_split(core, fa, fw):
    """Shapes larger than one tile, odd sizes, and K beyond max_k (pot4u x pot4u: max_k = 7)."""
    def fmt(name):
        return formats.get(name[:-2], int(name[-2]), name[-1] == "s")

    rng = np.random.default_rng(7)
    a, w = fmt(fa), fmt(fw)
    k = 3 * arch.max_k(a, w) + 5 if arch.max_k(a, w) < 100 else 97
    x, y = qt(rng, a, (R + 3, k)), qt(rng, w, (2 * C + 1, k))
    assert np.array_equal(antcore.gemm(x, y, core), reference.gemm(x, y))


def test_job_cycles_are_exact(core):
    """One job on an idle core: K + R + C + 2 cycles, or K + max(R + C - 4, R*C) + 6 with emit
    (the schedule's total), when nothing stalls."""
    f = formats.get("int", 4, False)
    for k, emit in ((1, True), (50, True), (50, False), (3, False)):
        word = stream.config_word(k, f, f, emit=emit)
        beats = stream.job_beats(np.ones((R, k), np.uint8), np.ones((C, k), np.uint8), word, R, C)
        before = core.cycles
        out = core.job(beats)
        want = k + (max(R + C - 4, R * C) + stream.LATENCY if emit else R + C + 2)
        assert core.last_cycles == core.cycles - before == stream.schedule([word], R, C).total == want
        assert (out is not None) == emit and (not emit or (out == k).all())


def random_stream(rng, rows, cols, jobs, kmax):
    """Beats of random jobs (K around R*C, acc/emit chains, int8 passes) and stats requests."""
    parts = [stream.stats_beats(rows, cols)]
    hw = regmap.array_formats()
    npe = rows * cols
    for _ in range(jobs):
        if rng.random() < 0.15:
            parts.append(stream.stats_beats(rows, cols))
        fa, fw = hw[rng.integers(len(hw))], hw[rng.integers(len(hw))]
        k = int(rng.choice([rng.integers(1, 8), npe - 1, npe, rng.integers(1, kmax)]))
        k = max(1, min(k, arch.max_k(fa, fw)))
        a = rng.integers(0, 16, (rows, k)).astype(np.uint8)
        w = rng.integers(0, 16, (cols, k)).astype(np.uint8)
        word = stream.config_word(k, fa, fw, acc=bool(rng.integers(2)), emit=bool(rng.random() < 0.7))
        parts.append(stream.job_beats(a, w, word, rows, cols))
    parts.append(stream.stats_beats(rows, cols))
    return np.concatenate(parts)


def stats_answers(beats, out, rows, cols):
    """The four counters of every stats answer in a stream's output, in order."""
    got, pos = [], 0
    for c in stream.configs(beats):
        if c == stream.STATS_WORD:
            got.append(tuple(int(x) for x in out[pos:pos + 4]))
            pos += 4
        elif c >> regmap.CFG_EMIT & 1:
            pos += rows * cols
    assert pos == out.size
    return got


@pytest.mark.parametrize("rows,cols", list(dict.fromkeys([(R, C), (8, 8), (16, 16), (3, 5)])))
def test_stream_is_cycle_exact(rows, cols):
    """Random streams: every input beat's cycle, every output beat's cycle, the total and every
    stats answer equal antq.core.stream.schedule's (the emulator's cycle models use it)."""
    rng = np.random.default_rng(rows * 100 + cols)
    with antcore.AntCore(rows, cols) as c:
        for trial in range(6):
            beats = random_stream(rng, rows, cols, 12, 3 * rows * cols)
            c.reset()  # the counters count from the first cycle of the stream
            out, out_cycles, cycles = c.stream(beats)
            s = stream.schedule(stream.configs(beats), rows, cols)
            assert np.array_equal(c.last_in_cycles.astype(np.int64), s.accept), trial
            assert np.array_equal(out_cycles.astype(np.int64), s.transfer), trial
            assert cycles == c.last_cycles == s.total, trial
            assert stats_answers(beats, out, rows, cols) == s.stats, trial


def test_stream_results_and_counters(core):
    """Results of chained jobs through one stream are the reference's; the counters of a call
    (stats, jobs, stats) report its cycles, with a busy core and no stalls at full rate."""
    f4, i8 = formats.get("flint", 4, True), formats.get("int", 8, True)
    rng = np.random.default_rng(5)
    a, w = qt(rng, i8, (R, 40)), qt(rng, f4, (C, 40))
    parts, pa = [stream.stats_beats(R, C)], tiling.nibble_planes(a.codes, a.fmt)
    for i, (ca, fa, ha) in enumerate(pa):
        word = stream.config_word(40, fa, f4, a_hi=ha, acc=i > 0, emit=i == len(pa) - 1)
        parts.append(stream.job_beats(ca, w.codes, word, R, C))
    parts.append(stream.stats_beats(R, C))
    core.reset()
    out, _, cycles = core.stream(np.concatenate(parts))
    assert np.array_equal(out[4:4 + R * C].view(np.int32).reshape(R, C), reference.gemm(a, w))
    s = stream.schedule(stream.configs(np.concatenate(parts)), R, C)
    total, busy, stall_in, stall_out = (int(x) for x in out[-4:])
    assert (total, busy, stall_in, stall_out) == s.stats[1]
    assert total == s.snapshots[1] - s.snapshots[0] and busy == total and stall_in == stall_out == 0
    assert cycles == s.total


def test_stream_errors(core):
    f = formats.get("int", 4, False)
    job = stream.job_beats(np.ones((R, 4), np.uint8), np.ones((C, 4), np.uint8),
                           stream.config_word(4, f, f), R, C)
    with pytest.raises(ValueError, match="ends inside a job"):
        core.stream(job[:-1])
    for word in (0, 1 << 35, stream.STATS_WORD | 1, stream.STATS_WORD | 1 << 32):  # one beat each
        bad = job[:1].copy()
        bad[0, 0] = np.uint64(word)
        with pytest.raises(ValueError, match="whole jobs and stats requests"):
            core.stream(bad)
    with pytest.raises(ValueError, match="uint64 words"):
        core.stream(job[:, :0])
    with pytest.raises(verilator.RTLError, match="within 10 cycles"):
        core.stream(job, max_cycles=10)
    out, _, _ = core.stream(np.concatenate([job, stream.stats_beats(R, C)]))  # recovered
    assert np.array_equal(out[:R * C].view(np.int32), np.full(R * C, 4)) and out.size == R * C + 4
    with pytest.raises(ValueError, match="reserved bits"):
        stream.schedule([1 << 40], R, C)
    with pytest.raises(ValueError, match="exactly"):
        stream.schedule([stream.STATS_WORD | 3], R, C)
    with pytest.raises(ValueError, match="one entry per beat"):
        stream.schedule([stream.config_word(4, f, f)], R, C, gaps=[0])


def test_32x32_core_runs_jobs():
    """The ZCU104-sized core (32x32, 256-bit stream) streams a few jobs exactly."""
    rng = np.random.default_rng(32)
    with antcore.AntCore(32, 32) as big:
        assert big.data_bits == 256
        fa, fw = formats.get("flint", 4, False), formats.get("int", 4, True)
        a, w = qt(rng, fa, (40, 300)), qt(rng, fw, (33, 300))
        assert np.array_equal(antcore.gemm(a, w, big), reference.gemm(a, w))
        beats = random_stream(rng, 32, 32, 4, 2000)
        _, out_cycles, cycles = big.stream(beats)
        s = stream.schedule(stream.configs(beats), 32, 32)
        assert np.array_equal(out_cycles.astype(np.int64), s.transfer) and cycles == s.total


def test_bad_input_is_refused(core):
    f4, f8 = formats.get("int", 4, False), formats.get("int", 8, True)
    with pytest.raises(ValueError, match="k must be"):
        stream.config_word(0, f4, f4)
    with pytest.raises(ValueError, match="k must be"):
        stream.config_word(1 << 24, f4, f4)
    with pytest.raises(ValueError, match="4-bit"):
        stream.config_word(3, f8, f4)
    with pytest.raises(ValueError, match="high nibble"):
        stream.config_word(3, formats.get("pot", 4, True), f4, a_hi=True)
    ones = np.ones((R, 4), np.uint8)
    with pytest.raises(ValueError, match="same K"):
        stream.job_beats(ones, np.ones((C, 5), np.uint8), stream.config_word(4, f4, f4), R, C)
    with pytest.raises(ValueError, match="0..15"):
        stream.job_beats(ones * 16, np.ones((C, 4), np.uint8), stream.config_word(4, f4, f4), R, C)
    with pytest.raises(ValueError, match="config word says K=3"):
        stream.job_beats(ones, np.ones((C, 4), np.uint8), stream.config_word(3, f4, f4), R, C)
    good = stream.job_beats(ones, np.ones((C, 4), np.uint8), stream.config_word(4, f4, f4), R, C)
    with pytest.raises(ValueError, match="well-formed"):
        core.job(good[:-1])  # K + 1 beats are needed
    bad = good.copy()
    bad[0, 0] |= np.uint64(1 << 40)  # a reserved bit
    with pytest.raises(ValueError, match="well-formed"):
        core.job(bad)
    with pytest.raises(ValueError, match="uint64 words"):
        core.job(good[:, :0])
    with pytest.raises(ValueError, match="4-bit formats"):
        antcore.gemm(QuantizedTensor(np.zeros((1, 2), np.uint8), kind="int", bits=3, signed=False),
                 QuantizedTensor(np.zeros((1, 2), np.uint8), kind="int", bits=4, signed=False), core)
    with pytest.raises(ValueError, match="int8 nibble"):
        antcore.gemm(QuantizedTensor(np.zeros((1, 2), np.uint8), kind="flint", bits=8, signed=False),
                 QuantizedTensor(np.zeros((1, 2), np.uint8), kind="int", bits=4, signed=False), core)
    one = QuantizedTensor(np.zeros((2, 3), np.uint8), kind="int", bits=4, signed=False)
    with pytest.raises(ValueError, match="K mismatch"):
        antcore.gemm(one, QuantizedTensor(np.zeros((2, 4), np.uint8), kind="int", bits=4, signed=False), core)
    with pytest.raises(ValueError, match="2-D QuantizedTensor"):
        antcore.gemm(one, np.zeros((2, 3)), core)
    assert np.array_equal(core.job(good), np.full((R, C), 4))  # the core is still fine


def test_timeout_raises_and_recovers(core):
    f = formats.get("int", 4, False)
    beats = stream.job_beats(np.ones((R, 500), np.uint8), np.ones((C, 500), np.uint8),
                          stream.config_word(500, f, f), R, C)
    with pytest.raises(verilator.RTLError, match="within 100 cycles"):
        core.job(beats, max_cycles=100)
    assert np.array_equal(core.job(beats), np.full((R, C), 500))


def test_closed_core_and_wrong_library():
    c = antcore.AntCore(R, C)
    c.close()
    with pytest.raises(verilator.RTLError, match="closed"):
        c.reset()
    with pytest.raises(verilator.RTLError, match=f"is a {R}x{C} core"):
        antcore.AntCore(R + 1, C, lib=verilator.lib_path(R, C))
    with pytest.raises(ValueError, match="rows must be"):
        verilator.build(0, 4)


def test_build_is_cached_locked_and_tracks_sources(tmp_path, monkeypatch):
    """A 1x1 core from a copy of the sources: two concurrent builds run the tools once, a second
    call reuses the library, and an edited source rebuilds it."""
    src = tmp_path / "rtl"
    shutil.copytree(verilator.rtl_dir(), src)
    monkeypatch.setattr(verilator, "rtl_dir", lambda: src)
    monkeypatch.setenv("ANTQ_BUILD", str(tmp_path / "build"))
    runs = []
    real_run = verilator._run
    monkeypatch.setattr(verilator, "_run", lambda cmd, log: (runs.append(cmd[0]), real_run(cmd, log)))
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(verilator.build(1, 1))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(paths) == 2 and paths[0] == paths[1] and paths[0].exists()
    assert runs.count(shutil.which("verilator")) == 1, runs
    mtime = paths[0].stat().st_mtime_ns
    assert verilator.build(1, 1) == paths[0] and paths[0].stat().st_mtime_ns == mtime
    (src / "ant_pe.v").write_text((src / "ant_pe.v").read_text() + "\n// edited\n")
    verilator.build(1, 1)
    assert runs.count(shutil.which("verilator")) == 2 and paths[0].stat().st_mtime_ns != mtime
    with antcore.AntCore(1, 1, lib=paths[0]) as one:
        f = formats.get("flint", 4, False)
        x = np.array([[8, 1, 7]], np.uint8)
        assert one.job(stream.job_beats(x, x, stream.config_word(3, f, f), 1, 1))[0, 0] == 64 * 64 + 1 + 49


def test_cli_build_and_bench():
    run = [sys.executable, "-m", "antq"]
    r = subprocess.run([*run, "rtl-build", "--rows", str(R), "--cols", str(C)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and f"libantcore_{R}x{C}.so" in r.stdout, r.stderr
    r = subprocess.run([*run, "bench-rtl", "--rows", str(R), "--cols", str(C), "--k", "64", "--jobs", "2",
                        "--no-cocotb"], capture_output=True, text=True)
    assert r.returncode == 0 and "array cycles/s" in r.stdout, r.stderr
    r = subprocess.run([*run, "rtl-build", "--rows", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "argument --rows: must be at least 1, got 0" in r.stderr


@pytest.mark.slow
def test_cocotb_baseline_of_the_benchmark():
    """bench-rtl's cocotb driver streams the same jobs and counts the same cycles as the harness."""
    c = microbench.bench_cocotb(2, 2, k=100, jobs=2)
    h = microbench.bench_rtl(2, 2, k=100, jobs=2)
    f = formats.get("flint", 4, False), formats.get("flint", 4, True)
    assert c["cycles"] == h["cycles"] == 2 * stream.schedule([stream.config_word(100, *f)], 2, 2).total
