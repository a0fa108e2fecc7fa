"""The emulated device under the real pynq: .hwh parsing and binding, the exact ap_ctrl_hs model,
memory and cache behaviour, backend selection, and the driver's fault handling."""

from __future__ import annotations

import inspect
import re
import time

import numpy as np
import pynq
import pytest
from antq import driver
from antq.core import arch, epilogue, formats, reference, regmap
from antq.core import backends as backends_core
from antq.core.quantize import QuantizedTensor
from antq.driver import AntOverlay, VersionError
from antq.driver import ip as driver_ip
from antq.driver import overlay as driver_overlay
from antq.emu import BusError, Faults, SimDevice, SimulationError, levels
from antq.model.graph import im2col
from antq.run import open_overlay
from antq.toolchain import hwh, paths
from helpers import random_tensor
from pynq.buffer import PynqBuffer

I4S, F4U = formats.get("int", 4, True), formats.get("flint", 4, False)


@pytest.fixture
def rng():
    return np.random.default_rng(11)


# ---- environment and .hwh -----------------------------------------------------------------------

def test_pinned_pynq_and_numpy():
    assert pynq.__version__ in ("3.0.1", "3.1.2"), "pin pynq to a board image's release (not 4.0)"
    assert int(np.__version__.split(".")[0]) < 2, "PynqBuffer breaks on numpy 2"


def test_committed_hwh_is_generated_from_the_register_map():
    assert hwh.emulation_hwh().read_text() == hwh.generate(), "run `make emu-hwh` and commit the result"


def test_pynq_parses_the_hwh_and_binds_the_driver():
    ov = open_overlay("ref")
    d = ov.ip_dict[hwh.INSTANCE]
    assert d["type"] == regmap.VLNV and d["phys_addr"] == hwh.CTRL_BASE
    regs = d["registers"]
    for r in regmap.registers():
        assert regs[r.name]["address_offset"] == r.offset and regs[r.name]["access"] == r.access
    assert type(getattr(ov, hwh.INSTANCE)) is driver.AntAccelerator
    assert ov.accel.register_map.a_2.address == 0x14 and ov.accel.register_map.cycles_hi.access == "read-only"
    assert pynq.ps.Clocks.fclk0_mhz == pytest.approx(hwh.FCLK0_MHZ)  # set by download from the divisors
    ov.close()


def test_driver_code_never_branches_on_the_emulator():
    for mod in (driver_overlay, driver_ip):
        body = inspect.getsource(mod)
        body = body[body.index('"""', 3) + 3:]  # the code, after the module docstring
        words = (r"\b(SimDevice|SimBuffer|level|LEVELS|ref|csim|rtl|faults|strict|pace|emu)\b"
                 r"|isinstance\(\w*device")
        assert re.findall(words, body) == [], mod.__name__


# ---- backend selection --------------------------------------------------------------------------

@pytest.fixture
def fresh_pynq_devices(monkeypatch):
    """PYNQ probes its devices once per process; these tests need it to probe again."""
    for attr in ("_devices", "_active_device"):
        monkeypatch.delattr(pynq.Device, attr, raising=False)


def test_pynq_device_search_finds_the_level_antq_backend_names(monkeypatch, fresh_pynq_devices):
    monkeypatch.setenv(paths.BACKEND_ENV, "ref")
    ov = AntOverlay()  # no device given: PYNQ's search, where SimDevice._probe_ reads $ANTQ_BACKEND
    assert isinstance(ov.device, SimDevice) and ov.device.level == "ref"
    assert pynq.Device.active_device is ov.device
    buf = pynq.allocate((8,), np.uint8)  # plain pynq code lands on the emulated device too
    assert isinstance(buf, PynqBuffer) and buf.device is ov.device
    ov.close()


@pytest.mark.skipif(paths.on_board(), reason="on a board, auto is the board")
def test_auto_is_csim_off_a_board(monkeypatch, fresh_pynq_devices):
    monkeypatch.delenv(paths.BACKEND_ENV, raising=False)
    with open_overlay() as ov:
        assert ov.device.level == "csim"
    monkeypatch.setenv(paths.BACKEND_ENV, "board")
    assert SimDevice._probe_() == []  # board: the emulator offers nothing


def test_an_explicit_level_becomes_pynqs_active_device():
    with open_overlay("rtl", pace=0) as ov:
        assert pynq.Device.active_device is ov.device and ov.device.level == "rtl"


def test_bad_backend_names_are_refused(monkeypatch, fresh_pynq_devices):
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        open_overlay("gpu")
    monkeypatch.setenv(paths.BACKEND_ENV, "fpga")
    with pytest.raises(ValueError, match="ANTQ_BACKEND"):
        AntOverlay()
    with pytest.raises(TypeError, match="emulator options"):
        open_overlay("auto", pace=0)


def test_the_emulation_levels_are_the_backend_list():
    assert tuple(levels.REGISTRY) == backends_core.LEVELS
    for name in backends_core.LEVELS:
        assert levels.get(name).name == name


@pytest.mark.skipif(paths.on_board(), reason="on a board the board backend is available")
def test_board_backend_off_board_says_why():
    with pytest.raises(RuntimeError, match="fpga_manager"):
        open_overlay("board")


# ---- ap_ctrl_hs ---------------------------------------------------------------------------------

def _slow_call(ov, rng):
    """Start a call that takes ~0.6 M cycles and return its tensors (the IP is busy afterwards)."""
    a, w = random_tensor(rng, I4S, (192, 4096)), random_tensor(rng, I4S, (192, 4096))
    la, lw = ov.load(a, "a"), ov.load_weights(w)
    y = ov._scratch_buffer("y", 192 * 192 * 8)
    ov.accel.start(a=la.address, w=lw.address, y=int(y.physical_address), m=192, n=192, k=4096,
                   a_type=regmap.encode_type(I4S), w_type=regmap.encode_type(I4S))
    return a, w, y


def test_ap_ctrl_hs_handshake_is_exact(rng):
    ov = open_overlay("ref", pace=0.01)  # PL time at 1/100 of the board: the call stays busy
    ctrl = ov.accel.register_map.CTRL.address
    assert ov.accel.read(ctrl) & 0xF == regmap.AP_IDLE
    ov.accel.register_map.IP_IER = 1
    a, w, y = _slow_call(ov, rng)
    first = ov.accel.read(ctrl)
    assert first & regmap.AP_START and not first & (regmap.AP_IDLE | regmap.AP_DONE)  # busy
    polls = 1
    while not (v := ov.accel.read(ctrl)) & regmap.AP_DONE:
        assert v & regmap.AP_START and not v & regmap.AP_IDLE
        polls += 1
    # simulated time advanced while the host polled, until the call's cycle count had passed
    model = ov.device._models[0][2]
    assert polls > 10 and ov.device.now() >= model.started_at + ov.accel.cycles
    assert v & regmap.AP_IDLE and v & regmap.AP_READY and not v & regmap.AP_START  # START self-cleared
    after = ov.accel.read(ctrl)
    assert after & 0xF == regmap.AP_IDLE  # AP_DONE and AP_READY cleared on read
    assert ov.accel.register_map.IP_ISR[0] == 1  # done interrupt status
    ov.accel.register_map.IP_ISR = 1  # toggle on write
    assert ov.accel.register_map.IP_ISR[0] == 0
    assert ov.accel.output("status_ap_vld") == 1 and ov.accel.output("status_ap_vld") == 0
    y.invalidate()
    got = np.array(y[:192 * 192 * 8]).view("<i8").reshape(192, 192)
    np.testing.assert_array_equal(got, reference.gemm(a, w))
    ov.close()


def test_argument_registers_are_write_only_and_outputs_read_only():
    ov = open_overlay("ref")
    rm = ov.accel.register_map
    rm.m = 1234
    assert ov.accel.read(rm.m.address) == 0
    before = ov.accel.output("id_version")
    ov.accel.write(rm.id_version.address, 0xDEAD)
    assert ov.accel.output("id_version") == before == regmap.ID_WORD
    with pytest.raises(SimulationError, match="AUTO_RESTART"):
        ov.accel.write(rm.CTRL.address, regmap.AUTO_RESTART | regmap.AP_START)
    ov.close()


def test_ip_refuses_bad_arguments_with_a_status():
    ov = open_overlay("csim")
    args = dict(a=0, w=0, y=0, m=4, n=4, k=4, w_type=regmap.encode_type(I4S))
    assert ov.accel.call(1.0, a_type=0x13, **args)[0] == regmap.ST_BAD_A  # pot 1-bit: no such format
    assert ov.accel.call(1.0, a_type=regmap.encode_type(I4S), passes=0b10, **args)[0] == regmap.ST_BAD_PASSES
    too_big = args | {"k": regmap.MAX_DIM + 1}
    assert ov.accel.call(1.0, a_type=regmap.encode_type(I4S), **too_big)[0] == regmap.ST_BAD_SIZE
    ov.close()


# ---- memory and caches --------------------------------------------------------------------------

def test_allocate_returns_page_aligned_pynq_buffers():
    dev = SimDevice("ref", memory_bytes=1 << 20)
    bufs = [dev.allocate((n,), np.uint8) for n in (1, 4096, 5000)]
    assert all(isinstance(b, PynqBuffer) and b.physical_address % driver_overlay.PAGE == 0 for b in bufs)
    assert bufs[0].physical_address >= 1 << 32  # above 4 GB: a forgotten high address word shows
    assert dev.live_buffers == 3
    bufs[1].freebuffer()
    assert dev.live_buffers == 2
    with pytest.raises(BusError, match="freed"):
        dev.flush(bufs[1].bo, 0, bufs[1].virtual_address, 16)
    with pytest.raises(RuntimeError, match="cannot allocate"):
        dev.allocate((2 << 20,), np.uint8)
    with pytest.raises(BusError, match="no buffer"):
        dev.memory(0x1000, 8, "probe")
    with pytest.raises(BusError, match="past the end"):
        dev.memory(bufs[0].physical_address, 4097, "probe")


@pytest.mark.parametrize("hook", ["flush", "invalidate"])
def test_strict_mode_catches_a_missing_cache_operation(monkeypatch, rng, hook):
    a, w = random_tensor(rng, F4U, (9, 40)), random_tensor(rng, I4S, (7, 40))
    monkeypatch.setattr(PynqBuffer, hook, lambda self: None)  # a driver that forgets it
    strict = open_overlay("csim")
    assert not np.array_equal(strict.gemm(a, w), reference.gemm(a, w))
    lax = open_overlay("csim", strict=False)  # coherent buffers would hide the bug
    np.testing.assert_array_equal(lax.gemm(a, w), reference.gemm(a, w))


def test_missing_high_address_word_hits_an_unmapped_address(rng):
    ov = open_overlay("csim")
    a, w = random_tensor(rng, I4S, (8, 16)), random_tensor(rng, I4S, (8, 16))
    la, lw = ov.load(a, "a"), ov.load_weights(w)
    y = ov._scratch_buffer("y", 512)
    rm = ov.accel.register_map
    ov.accel.start(a=la.address, w=lw.address, y=int(y.physical_address), m=8, n=8, k=16,
                   a_type=regmap.encode_type(I4S), w_type=regmap.encode_type(I4S))
    ov.accel.wait(1.0)
    rm.a_1 = la.address & 0xFFFFFFFF
    rm.a_2 = 0  # what a driver writing only the low word leaves behind
    with pytest.raises(BusError, match="reading a"):
        ov.accel.write(rm.CTRL.address, regmap.AP_START)
    assert ov.accel.read(rm.CTRL.address) & regmap.AP_IDLE  # the refused call leaves the IP usable


# ---- faults -------------------------------------------------------------------------------------

def test_hung_device_times_out_and_leaks_nothing(rng):
    ov = open_overlay("csim", timeout=0.3)
    w = ov.load_weights(random_tensor(rng, I4S, (8, 64)))
    a = random_tensor(rng, I4S, (8, 64))
    ov.gemm(a, w)
    live = ov.live_buffers
    assert live == ov.device.live_buffers == 3  # weights + scratch a + scratch y
    ov.device.faults.hang = True
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish within 0.3 s"):
        ov.gemm(a, w)
    assert time.monotonic() - t0 < 0.3 + 1.0
    assert ov.live_buffers == ov.device.live_buffers == live
    with pytest.raises(RuntimeError, match="failed earlier"):
        ov.gemm(a, w)
    ov.close()
    assert ov.live_buffers == 0 and ov.device.live_buffers == 0 and w.freed


@pytest.mark.parametrize("fault,match", [
    (Faults(id_word=(regmap.ID_MAGIC << 8) | (regmap.IP_VERSION + 1)), f"IP version {regmap.IP_VERSION + 1}"),
    (Faults(id_word=0x12345601), "not an antq IP"),
    (Faults(geometry=0), "invalid geometry"),
    (Faults(geometry=regmap.encode_geometry(arch.ArrayConfig(8, 8, 48))), "multiple of 64"),
])
def test_wrong_identification_is_refused(fault, match):
    with pytest.raises(VersionError, match=match):
        open_overlay("ref", faults=fault)


def test_bitstream_with_another_ip_version_is_refused(tmp_path):
    other = hwh.generate().replace(f'VLNV="{regmap.VLNV}"', 'VLNV="antq:hls:ant_gemm:2.0"')
    (tmp_path / "ant.hwh").write_text(other)
    with pytest.warns(UserWarning, match="ignore_version"), pytest.raises(VersionError, match="ant_gemm:2.0"):
        open_overlay("ref", bitfile=tmp_path / "ant.hwh")


def test_missing_metadata_is_a_clear_error(tmp_path):
    (tmp_path / "ant.bit").write_bytes(b"not a bitstream")
    with pytest.raises(RuntimeError, match="Unable to find metadata"):
        open_overlay("ref", bitfile=tmp_path / "ant.bit")


def test_bad_operands_raise_clear_errors(rng):
    ov = open_overlay("ref")
    a, w = random_tensor(rng, I4S, (4, 8)), random_tensor(rng, I4S, (4, 9))
    with pytest.raises(ValueError, match="K mismatch"):
        ov.gemm(a, w)
    with pytest.raises(TypeError, match="QuantizedTensor"):
        ov.gemm(np.zeros((4, 8)), w)
    with pytest.raises(ValueError, match="2-D"):
        ov.gemm(random_tensor(rng, I4S, (2, 2, 9)), w)
    with pytest.raises(ValueError, match="flint3u"):
        ov.gemm(random_tensor(rng, formats.get("flint", 3, False), (4, 9)), w)
    with pytest.raises(ValueError, match="passes"):
        ov.gemm(random_tensor(rng, I4S, (4, 9)), w, passes=16)
    with pytest.raises(ValueError, match="'w' cannot be used as 'a'"):
        ov.gemm(ov.load_weights(w), w)
    ov.close()


def test_narrow_and_wide_ints_are_widened_exactly(rng):
    ov = open_overlay("ref")
    for bits in (2, 3, 5, 6):
        for signed in (False, True):
            f = formats.get("int", bits, signed)
            a, w = random_tensor(rng, f, (5, 21)), random_tensor(rng, I4S, (3, 21))
            np.testing.assert_array_equal(ov.gemm(a, w), reference.gemm(a, w), err_msg=f.name)


def test_out_of_range_sizes_and_misaligned_or_foreign_buffers(rng):
    ov = open_overlay("csim")
    buf = pynq.allocate((4096,), np.uint8, target=ov.device)
    f = formats.get("int", 4, True)
    with pytest.raises(ValueError, match="K = 16777216 is out of range"):
        ov.wrap(buf, f, (8, regmap.MAX_DIM + 1), "w")
    with pytest.raises(ValueError, match="M = 0 is out of range"):
        ov.gemm(random_tensor(rng, f, (0, 8)), random_tensor(rng, f, (4, 8)))
    with pytest.raises(ValueError, match="misaligned"):
        ov.wrap(buf[1:], f, (8, 8), "a")
    other = SimDevice("ref").allocate((4096,), np.uint8)
    with pytest.raises(ValueError, match="foreign buffer"):
        ov.wrap(other, f, (8, 8), "a")
    with pytest.raises(TypeError, match="pynq.allocate"):
        ov.wrap(np.zeros(4096, np.uint8), f, (8, 8), "a")
    with pytest.raises(ValueError, match="needs"):
        ov.wrap(buf[:64], f, (64, 64), "a")
    ov.close()


def test_wrapped_user_buffers_are_valid_operands(rng):
    from antq.core import pack

    ov = open_overlay("csim")
    a, w = random_tensor(rng, I4S, (10, 33), scale=0.25), random_tensor(rng, F4U, (6, 33), scale=2.0)
    bufs = []
    for t, side in ((a, "a"), (w, "w")):
        p = pack.pack(t.codes, t.bits, pack.accelerator_layout(side, ov.array))
        b = pynq.allocate((p.size,), np.uint8, target=ov.device)
        b[:] = p
        b.flush()
        bufs.append(ov.wrap(b, t.fmt, t.shape, side, scale=t.scale))
    np.testing.assert_array_equal(ov.gemm(*bufs), reference.gemm(a, w))
    np.testing.assert_array_equal(ov.gemm_float(*bufs), reference.gemm_float(a, w))
    assert ov.live_buffers == 1  # only the y scratch buffer: wrapped buffers stay the caller's


def test_soak_1000_calls_keeps_buffers_flat(rng):
    ov = open_overlay("csim")
    hw = ov.load_weights(random_tensor(rng, I4S, (16, 64)))
    a = random_tensor(rng, F4U, (8, 64))
    ov.gemm(a, hw)
    live, dev_live = ov.live_buffers, ov.device.live_buffers
    for _ in range(1000):
        ov.gemm(a, hw)
    assert (ov.live_buffers, ov.device.live_buffers) == (live, dev_live) == (3, 3)
    ov.close()
    assert ov.device.live_buffers == 0


def test_other_array_geometry_is_read_from_the_ip(rng):
    cfg = arch.ArrayConfig(rows=16, cols=4)
    ov = open_overlay("csim", cfg=cfg)
    assert ov.array == cfg and ov.array.peak_macs_per_cycle == 64
    for fa, fw in ((I4S, F4U), (formats.get("int", 8, True), formats.get("pot", 4, True))):
        a, w = random_tensor(rng, fa, (37, 70)), random_tensor(rng, fw, (9, 70))
        np.testing.assert_array_equal(ov.gemm(a, w), reference.gemm(a, w))
    ov.close()


@pytest.mark.parametrize("cfg", [arch.ArrayConfig(8, 16), arch.ArrayConfig(32, 8)], ids=str)
def test_rtl_level_carries_every_bit_of_a_beat(rng, cfg):
    """4(R + C) an odd multiple of 32 (96 and 160 bits): each beat still travels whole, so the
    Verilated core computes what csim's C++ core computes (DATA_W is whole uint64 words; with a
    multiple of 32 alone the harness dropped a beat's last 32 bits and the rtl level was wrong)."""
    a, w = random_tensor(rng, I4S, (13, 40)), random_tensor(rng, F4U, (cfg.cols + 3, 40))
    for level in ("csim", "rtl"):
        with open_overlay(level, cfg=cfg, pace=0) as ov:
            np.testing.assert_array_equal(ov.gemm(a, w), reference.gemm(a, w), err_msg=level)


@pytest.mark.parametrize(("fa", "fw", "m", "n", "k", "out"), [
    (formats.get("int", 8, True), F4U, 20, 12, 300, None),  # int8 x flint4: two chained passes
    (I4S, F4U, 37, 70, 5000, None),  # K split into jobs, edge tiles
    (formats.get("pot", 4, False), formats.get("pot", 4, False), 16, 24, 40, None),  # max_k = 7: held steps
    (I4S, I4S, 8, 8, 3, None),  # K + 1 < R*C: every readout waits for the previous one
    (I4S, F4U, 37, 70, 300, I4S),  # the epilogue: parameter load, packed stores, edge tiles
    (formats.get("int", 8, True), F4U, 20, 12, 300, formats.get("int", 8, False)),  # int8 out: two planes
    (I4S, I4S, 8, 8, 3, formats.get("pot", 4, True)),  # store-light tiny tiles
], ids=["int8xflint4", "int4-long-k", "pot4u-short-jobs", "tiny", "epi-int4s", "epi-int8u", "epi-tiny"])
def test_levels_count_the_same_cycles(rng, fa, fw, m, n, k, out):
    """Tolerance 0: the cycle model is one per-stage model of the dataflow on every level, and the
    core's counters on the rtl level come from the Verilated core's own stats answers, which the
    closed-form core timing of the ref and csim levels must equal exactly. With an epilogue output
    format ``out`` the IP writes packed codes, and they are epilogue.apply_packed of the GEMM."""
    a, w = random_tensor(rng, fa, (m, k)), random_tensor(rng, fw, (n, k))
    p = None if out is None else epilogue.params(
        fmt=out, s_a=0.1, s_w=rng.uniform(0.5, 1.5, n), s_out=0.1 * a.fmt.max_abs * w.fmt.max_abs * k ** 0.5
        / out.max_abs, act="relu", acc_max=epilogue.acc_bound(a.fmt, w.fmt, k))
    seen = {}
    for level in backends_core.LEVELS:
        with open_overlay(level) as ov:
            if p is None:
                np.testing.assert_array_equal(ov.gemm(a, w), reference.gemm(a, w))
            else:
                h = ov.gemm(a, w, epilogue=p)
                np.testing.assert_array_equal(ov.fetch(h).codes, epilogue.apply(reference.gemm(a, w), p))
            t = ov.last_timing
            seen[level] = (ov.last_cycles, t.core_busy, t.stall_in, t.stall_out)
    assert seen["ref"] == seen["csim"] == seen["rtl"], seen
    cycles, busy, stall_in, stall_out = seen["rtl"]
    assert 0 < busy < cycles and stall_in == stall_out == 0


@pytest.mark.parametrize(("fa", "fw", "geometry", "out"), [
    (I4S, F4U, (2, 5, 7, 6, (3, 3), (1, 1), (1, 1), (1, 1)), None),  # conv fast path, batch 2
    (formats.get("int", 8, True), F4U, (1, 3, 9, 8, (3, 3), (2, 2), (1, 1), (1, 1)), None),  # one code/cycle
    (formats.get("pot", 4, False), formats.get("pot", 4, False), (1, 4, 6, 6, (3, 3), (1, 1), (0, 0), (1, 1)),
     None),  # 7-step jobs: the window counters jump job by job
    (I4S, F4U, (1, 16, 8, 8, (3, 3), (1, 1), (1, 1), (1, 1)), I4S),  # conv -> packed codes
], ids=["conv-fast", "conv-int8-stride2", "conv-pot4u-short-jobs", "conv-epi"])
def test_levels_count_the_same_cycles_in_conv_mode(rng, fa, fw, geometry, out):
    """The same tolerance 0 for conv-mode calls (on-chip im2col): the source load and the gather's
    cycles in the model are the same on every level, and so are the core's counters."""
    b, c, h, w, kernel, stride, padding, dilation = geometry
    x = random_tensor(rng, fa, (b * h * w, c))
    codes = im2col(x.codes.reshape(b, h, w, c).transpose(0, 3, 1, 2), kernel, stride, padding, dilation)
    a = QuantizedTensor(codes, kind=fa.kind, bits=fa.bits, signed=fa.signed)
    m, k = a.shape
    n = 20
    wt = random_tensor(rng, fw, (n, k))
    p = None if out is None else epilogue.params(
        fmt=out, s_a=0.1, s_w=rng.uniform(0.5, 1.5, n), s_out=0.1 * fa.max_abs * fw.max_abs * k ** 0.5
        / out.max_abs, act="relu", acc_max=epilogue.acc_bound(fa, fw, k))
    seen = {}
    for level in backends_core.LEVELS:
        with open_overlay(level) as ov:
            op = ov.im2col(ov.load(x, "a"), (h, w), kernel, stride, padding, dilation)
            if p is None:
                np.testing.assert_array_equal(ov.gemm(op, wt), reference.gemm(a, wt))
            else:
                np.testing.assert_array_equal(ov.fetch(ov.gemm(op, wt, epilogue=p)).codes,
                                              epilogue.apply(reference.gemm(a, wt), p))
            t = ov.last_timing
            seen[level] = (ov.last_cycles, t.core_busy, t.stall_in, t.stall_out)
    assert seen["ref"] == seen["csim"] == seen["rtl"], seen
    cycles, busy, _, stall_out = seen["rtl"]
    assert 0 < busy < cycles and stall_out == 0
