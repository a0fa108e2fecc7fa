"""Emulation: a simulated ``pynq.Device`` under the real ``pynq``, so the driver runs unchanged.

Only the device underneath changes. :class:`SimDevice` implements what PYNQ asks of a device
(``REGISTER_RW`` register access dispatched by the ``.hwh``'s ``ip_dict`` address ranges,
``allocate`` returning ``PynqBuffer`` s with page-aligned fake physical addresses,
``flush``/``invalidate``, ``download``) and behind the ``ant_gemm`` registers puts a model of the
HLS IP with the ``ap_ctrl_hs`` handshake modelled exactly (AP_START self-clears when the call
completes, AP_DONE and AP_READY clear on read, AP_IDLE is low while busy, argument registers are
write-only). Three compute levels sit behind the same registers:

========  ============================================================  ======================
level     what computes                                                 cycle count
========  ============================================================  ======================
``ref``   :func:`antq.reference.gemm` (numpy) on the unpacked buffers   :func:`model_cycles`
``csim``  the HLS C++ (``hls/``) built with g++ with its C++ core model  the same model, counted
``rtl``   the same HLS data mover linked with the Verilated ``ant_core`` core cycles are real
========  ============================================================  ======================

Select the mode once, before any pynq object exists: ``ANTQ_BACKEND=ref|csim|rtl|board|auto`` or
:func:`select`. Simulated time runs at the PL clock (from the ``.hwh``'s FCLK0 via the PS clock
stub) while the host polls: every register access costs :data:`ACCESS_CYCLES`, time also follows
the wall clock (``pace`` = 1: as fast as the board, never faster), and a call started at cycle t
completes at t + its cycle count. The model computes the whole call inside the AP_START write, so
an emulated call takes max(compute time, board time); ``pace=0`` drops the board pacing (a call
completes as soon as it is computed), which is what the emulator's own benchmarks use.

In strict mode (the default) every buffer has a device-side shadow: the IP reads and writes only
the shadow, ``flush()`` copies host to shadow and ``invalidate()`` shadow to host, so a missing
call gives wrong data, as on a board with cached buffers.
"""

from __future__ import annotations

import bisect
import ctypes
import math
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pynq
import pynq.ps
from pynq.buffer import PynqBuffer

from . import arch, formats, hls, hwh, pack, reference, regmap
from .quantize import QuantizedTensor

ENV = "ANTQ_BACKEND"
LEVELS = ("ref", "csim", "rtl")
BACKENDS = ("auto", "board", *LEVELS)
FPGA_MANAGER = Path("/sys/class/fpga_manager")
PAGE = 4096
ACCESS_CYCLES = 20
"""PL cycles one AXI-Lite register access from the PS takes (about 0.2 us at 100 MHz)."""
POISON = 0xA5
"""Initial device-side content of a new buffer in strict mode (what DDR held before)."""


class SimulationError(RuntimeError):
    """The simulator itself failed or was asked for something it does not model."""


class BusError(RuntimeError):
    """An access to an address where nothing is mapped (a DECERR on the board)."""


@dataclass
class Faults:
    """Faults to inject into the emulated IP (tests of the driver's error paths)."""

    hang: bool = False
    """The IP accepts AP_START and never finishes."""
    id_word: int | None = None
    """Report this identification word instead of :data:`antq.regmap.ID_WORD`."""
    geometry: int | None = None
    """Report this geometry word instead of the emulated array's."""


class SimClocks:
    """Stand-in for ``pynq.ps.Clocks``' Zynq implementation: records the PL clocks PYNQ sets."""

    def __init__(self, io_pll_mhz: float = float(hwh.IO_PLL_MHZ), cpu_mhz: float = 650.0) -> None:
        self.io_pll_mhz, self.cpu_mhz = io_pll_mhz, cpu_mhz
        self.pl_mhz = {i: 100.0 if i == 0 else 50.0 for i in range(4)}

    def set_pl_clk(self, clk_idx: int, div0: int | None = None, div1: int | None = None,
                   clk_mhz: float = 100.0) -> None:
        if clk_idx not in range(4):
            raise ValueError(f"Valid PL clock index is 0 - 3, not {clk_idx}")
        self.pl_mhz[clk_idx] = self.io_pll_mhz / (div0 * div1) if div0 and div1 else float(clk_mhz)

    def get_pl_clk(self, clk_idx: int) -> float:
        if clk_idx not in range(4):
            raise ValueError(f"Valid PL clock index is 0 - 3, not {clk_idx}")
        return self.pl_mhz[clk_idx]

    def get_cpu_mhz(self) -> float:
        return self.cpu_mhz


def _clocks() -> SimClocks:
    """The PS clock stub, installed as pynq's Clocks implementation on a non-Zynq CPU."""
    inst = getattr(pynq.ps.Clocks, "_real_instance", None)
    if not isinstance(inst, SimClocks):
        if pynq.ps.CPU_ARCH in (pynq.ps.ZYNQ_ARCH, pynq.ps.ZU_ARCH):
            raise SimulationError("running on a Zynq CPU: use the board backend, not the emulator")
        inst = SimClocks()
        pynq.ps.Clocks._real_instance = inst
    return inst


class SimBuffer(PynqBuffer):
    """A ``PynqBuffer`` whose release (``freebuffer``, ``with``, garbage collection) tells the device."""

    def freebuffer(self) -> None:
        dev = self.__dict__.pop("_sim_device", None)
        if dev is not None:
            dev._release(self.bo)


@dataclass
class _Allocation:
    bo: int
    phys: int
    nbytes: int
    vaddr: int
    shadow: np.ndarray | None


class SimDevice(pynq.Device):
    """A simulated PYNQ device with the ``ant_gemm`` IP computed at ``level`` (ref, csim or rtl)."""

    _probe_priority_ = 10

    @classmethod
    def _probe_(cls) -> list[SimDevice]:
        level = os.environ.get(ENV, "")
        return [cls(level)] if level in LEVELS else []

    def __init__(self, level: str = "csim", *, strict: bool = True, cfg: arch.ArrayConfig = arch.DEFAULT,
                 arena_base: int = 0x8_0000_0000, memory_bytes: int = 512 << 20, pace: float = 1.0,
                 faults: Faults | None = None) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown emulation level {level!r}; expected one of {', '.join(LEVELS)}")
        if arena_base % PAGE:
            raise ValueError(f"arena_base 0x{arena_base:x} is not page aligned")
        if not pace >= 0:
            raise ValueError(f"pace must be >= 0 (1 = board speed, 0 = unpaced), got {pace!r}")
        super().__init__(f"antq-sim-{level}")
        self.name = "antq-emulation"
        self.capabilities = {"REGISTER_RW": True}
        self.level, self.strict, self.cfg = level, strict, cfg
        self.faults = faults or Faults()
        self.memory_bytes, self.pace = memory_bytes, float(pace)
        self.default_bitfile = hwh.EMULATION_HWH
        self.clocks = _clocks()
        self.lib = hls.load(level, cfg) if level != "ref" else None
        if self.lib is not None and (self.lib.antgemm_id_word() != regmap.ID_WORD
                                     or self.lib.antgemm_geometry() != regmap.encode_geometry(cfg)):
            raise SimulationError(f"the {level} library was built for another register map or array")
        self._allocs: dict[int, _Allocation] = {}
        self._by_phys: dict[int, _Allocation] = {}
        self._starts: list[int] = []
        self._next_phys, self._next_bo = arena_base, 1
        self._models: list[tuple[int, int, AntGemmModel]] = []
        self._t0 = time.perf_counter()
        self._cycle = 0
        self.register_accesses = 0

    # ---- pynq.Device interface ----------------------------------------------------------------

    def get_bitfile_metadata(self, bitfile_name: str, partial: bool = False):
        from pynq.metadata.runtime_metadata_parser import RuntimeMetadataParser
        from pynqmetadata.frontends import Metadata

        path = Path(bitfile_name)
        hwh_path = path if path.suffix == ".hwh" else path.with_suffix(".hwh")
        if not hwh_path.is_file():
            raise RuntimeError(f"Unable to find metadata for bitstream {bitfile_name}: no {hwh_path.name}")
        parser = RuntimeMetadataParser(Metadata(input=hwh_path))
        parser.refresh_hierarchy_dict()
        return parser

    def download(self, bitstream, parser=None) -> None:
        """'Program' the PL: build one model per ant_gemm IP in the ``.hwh`` (state reset)."""
        if parser is None:
            raise SimulationError("the emulator needs the .hwh metadata to know what to emulate")
        self._models = []
        for name, d in parser.ip_dict.items():
            if d.get("type") == regmap.VLNV and d.get("phys_addr") is not None:
                base, size = int(d["phys_addr"]), int(d["addr_range"])
                self._models.append((base, base + size, AntGemmModel(self, name, d)))
        self._models.sort(key=lambda t: t[0])
        self.post_download(bitstream, parser, self.name)

    def gen_cache(self, bitstream, parser=None) -> None:
        """No metadata cache in emulation (the board's version pickles into site-packages)."""

    def allocate(self, shape, dtype, **kwargs) -> PynqBuffer:
        """A ``PynqBuffer`` at a page-aligned fake physical address (``cacheable`` etc. accepted)."""
        unknown = set(kwargs) - {"cacheable", "target", "memidx"}
        if unknown:
            raise TypeError(f"allocate() got unexpected keyword arguments {sorted(unknown)}")
        dt = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        nbytes = math.prod(shape) * dt.itemsize
        span = max(PAGE, -(-nbytes // PAGE) * PAGE)
        if self.live_bytes + span > self.memory_bytes:
            raise RuntimeError(f"SimDevice: cannot allocate {nbytes} bytes: {self.live_bytes} of "
                               f"{self.memory_bytes} bytes of device memory are in use")
        bo, phys = self._next_bo, self._next_phys
        self._next_bo += 1
        self._next_phys += span
        buf = SimBuffer(shape, dt, device=self, device_address=phys, bo=bo, coherent=not self.strict)
        buf._sim_device = self
        shadow = np.full(nbytes, POISON, np.uint8) if self.strict else None
        self._allocs[bo] = self._by_phys[phys] = _Allocation(bo, phys, nbytes, buf.virtual_address, shadow)
        self._starts.append(phys)
        return buf

    def flush(self, bo, offset, ptr, size) -> None:
        a = self._alloc(bo, "flush")
        if offset < 0 or offset + size > a.nbytes:
            raise BusError(f"flush of bytes {offset}..{offset + size} outside buffer {bo} ({a.nbytes} bytes)")
        if a.shadow is not None:
            ctypes.memmove(a.shadow.ctypes.data + offset, ptr, size)

    def invalidate(self, bo, offset, ptr, size) -> None:
        a = self._alloc(bo, "invalidate")
        if offset < 0 or offset + size > a.nbytes:
            raise BusError(f"invalidate of bytes {offset}..{offset + size} outside buffer {bo} "
                           f"({a.nbytes} bytes)")
        if a.shadow is not None:
            ctypes.memmove(ptr, a.shadow.ctypes.data + offset, size)

    def read_registers(self, address: int, length: int) -> bytes:
        model, off = self._model_at(address, length)
        return b"".join(struct.pack("<I", model.read(off + i)) for i in range(0, length, 4))

    def write_registers(self, address: int, data: bytes) -> None:
        model, off = self._model_at(address, len(data))
        for i in range(0, len(data), 4):
            model.write(off + i, struct.unpack_from("<I", data, i)[0])

    # ---- emulator interface -------------------------------------------------------------------

    @property
    def live_buffers(self) -> int:
        """Device buffers allocated and not yet freed."""
        return len(self._allocs)

    @property
    def live_bytes(self) -> int:
        return sum(max(PAGE, -(-a.nbytes // PAGE) * PAGE) for a in self._allocs.values())

    @property
    def clock_hz(self) -> float:
        return self.clocks.get_pl_clk(0) * 1e6

    def now(self) -> int:
        """Current PL cycle: advances by every register access and, paced, with wall time."""
        wall = int((time.perf_counter() - self._t0) * self.clock_hz * self.pace) if self.pace else 0
        self._cycle = max(self._cycle + ACCESS_CYCLES, wall)
        return self._cycle

    def memory(self, addr: int, nbytes: int, what: str) -> np.ndarray:
        """The device-side bytes ``[addr, addr + nbytes)`` as a uint8 view; raises BusError if unmapped."""
        i = bisect.bisect_right(self._starts, addr) - 1
        a = self._by_phys[self._starts[i]] if i >= 0 else None
        if a is None or addr + nbytes > a.phys + a.nbytes:
            where = (f"it runs past the end of the {a.nbytes}-byte buffer at 0x{a.phys:x}" if a
                     else "no buffer is allocated there")
            raise BusError(f"{what}: the IP would access 0x{addr:x}..0x{addr + nbytes:x} but {where}")
        off = addr - a.phys
        if a.shadow is not None:
            return a.shadow[off:off + nbytes]
        raw = (ctypes.c_uint8 * a.nbytes).from_address(a.vaddr)
        return np.frombuffer(raw, np.uint8)[off:off + nbytes]

    def _alloc(self, bo: int, what: str) -> _Allocation:
        if bo not in self._allocs:
            raise BusError(f"{what} of buffer {bo}, which was freed or belongs to another device")
        return self._allocs[bo]

    def _release(self, bo: int) -> None:
        a = self._allocs.pop(bo, None)
        if a is not None:
            del self._by_phys[a.phys]
            self._starts.remove(a.phys)

    def _model_at(self, address: int, length: int) -> tuple[AntGemmModel, int]:
        self.register_accesses += 1
        if address % 4 or length % 4:
            raise BusError(f"unaligned register access at 0x{address:x} ({length} bytes)")
        for lo, hi, model in self._models:
            if lo <= address and address + length <= hi:
                return model, address - lo
        raise BusError(f"no emulated IP is mapped at 0x{address:x} (was the overlay downloaded?)")


# ---- the ant_gemm IP model ----------------------------------------------------------------------

def check_args(m: int, n: int, k: int, a_type: int, w_type: int, passes: int,
               cfg: arch.ArrayConfig = arch.DEFAULT) -> tuple[int, int]:
    """(status, selected pass mask) exactly as the HLS top function decides them."""
    if m == n == k == 0:
        return regmap.ST_OK, 0
    try:
        fa = regmap.decode_type(a_type)
    except (ValueError, KeyError):
        return regmap.ST_BAD_A, 0
    try:
        fw = regmap.decode_type(w_type)
    except (ValueError, KeyError):
        return regmap.ST_BAD_W, 0
    need = regmap.pass_mask(fa, fw)
    sel = passes or need
    if sel & ~need:
        return regmap.ST_BAD_PASSES, sel
    if arch.max_k(fa, fw, cfg.acc_bits) == 0:
        return regmap.ST_BAD_PAIR, sel
    if not all(1 <= d <= regmap.MAX_DIM for d in (m, n, k)):
        return regmap.ST_BAD_SIZE, sel
    return regmap.ST_OK, sel


def model_cycles(m: int, n: int, k: int, fa: formats.Format, fw: formats.Format, sel: int,
                 cfg: arch.ArrayConfig = arch.DEFAULT) -> int:
    """Cycles the IP counts for one call with the C++ core model (see hls/ant_gemm.cpp)."""
    R, C, B = cfg.rows, cfg.cols, cfg.bus_bits
    J = regmap.job_steps(fa, fw, cfg)
    nj, ntm, ntn = -(-k // J), -(-m // R), -(-n // C)
    use_a = [bool(sel & 0x3), bool(sel & 0xC)]
    use_w = [bool(sel & 0x5), bool(sel & 0xA)]
    npasses = bin(sel).count("1")

    def words(k0: int, kl: int, tile: int) -> int:
        return -(-(k0 + kl) * 4 * tile // B) - (k0 * 4 * tile) // B

    per_tile_jobs = 0  # loads and core cycles of one (tm, tn) tile, A counted separately
    a_cost = 0
    for j in range(nj):
        k0, kl = j * J, min(J, k - j * J)
        a_cost += sum(regmap.MEM_LATENCY + words(k0, kl, R) for p in range(2) if use_a[p])
        per_tile_jobs += sum(regmap.MEM_LATENCY + words(k0, kl, C) for p in range(2) if use_w[p])
        per_tile_jobs += npasses * (kl + 1 + regmap.CORE_LATENCY) + R * C + 1  # one emitting pass per job
    a_loads = ntm * (ntn if nj > 1 else 1)
    cycles = regmap.CALL_OVERHEAD + ntm * ntn * per_tile_jobs + a_loads * a_cost
    for tm in range(ntm):
        rows = min(R, m - tm * R)
        for tn in range(ntn):
            cycles += rows * (regmap.MEM_LATENCY + min(C, n - tn * C))
    return cycles


def _plane_values(codes: np.ndarray, fmt: formats.Format, hi: int) -> np.ndarray:
    """int64 values of one nibble plane of ``codes`` (with its pass shift for a high nibble)."""
    if fmt.bits <= arch.CODE_BITS:
        return np.asarray(fmt.values)[codes].astype(np.int64)
    if not hi:
        return (codes & 0xF).astype(np.int64)
    h = (codes >> 4).astype(np.int64)
    return ((h - 16 * (h >= 8)) if fmt.signed else h) << 4


def reference_call(mem_a: np.ndarray, mem_w: np.ndarray, m: int, n: int, k: int, fa: formats.Format,
                   fw: formats.Format, sel: int, cfg: arch.ArrayConfig) -> np.ndarray:
    """The ``ref`` level: unpack both operands and compute with :mod:`antq.reference`."""
    a = pack.unpack(np.ascontiguousarray(mem_a), fa.bits, (m, k), pack.accelerator_layout("a", cfg))
    w = pack.unpack(np.ascontiguousarray(mem_w), fw.bits, (n, k), pack.accelerator_layout("w", cfg))
    if sel == regmap.pass_mask(fa, fw):
        return reference.gemm(QuantizedTensor(a, kind=fa.kind, bits=fa.bits, signed=fa.signed),
                              QuantizedTensor(w, kind=fw.kind, bits=fw.bits, signed=fw.signed))
    y = np.zeros((m, n), np.int64)
    for p in range(4):
        if sel >> p & 1:
            y += _plane_values(a, fa, p >> 1) @ _plane_values(w, fw, p & 1).T
    return y


class AntGemmModel:
    """Register-level model of one ``ant_gemm`` IP: ap_ctrl_hs, arguments, and a compute level."""

    def __init__(self, device: SimDevice, name: str, description: dict) -> None:
        self.device, self.name = device, name
        regs = description["registers"]
        need = {r.name for r in regmap.registers() if not r.name.endswith("_ap_vld")}  # what the driver uses
        missing = sorted(need - set(regs))
        if missing:
            raise SimulationError(f"{name}: the .hwh lacks registers {missing}; it is not a "
                                  f"{regmap.VLNV} (IP version {regmap.IP_VERSION}) register map")
        self._by_offset = {int(v["address_offset"]): k for k, v in regs.items()}
        self._access = {k: v["access"] for k, v in regs.items()}
        self.values: dict[str, int] = dict.fromkeys(regs, 0)
        self.start = self.done = self.ready = 0
        self.idle = 1
        self.gier = self.ier = self.isr = 0
        self.done_at: int | None = None
        self.started_at = 0
        self._pending: dict[str, int] = {}
        self.calls = 0

    def _update(self) -> None:
        if self.done_at is None or self.device.faults.hang or self.device.now() < self.done_at:
            return
        self.done_at = None
        self.start, self.done, self.ready, self.idle = 0, 1, 1, 1
        for name, v in self._pending.items():
            self.values[name] = v
            if f"{name}_ap_vld" in self.values:
                self.values[f"{name}_ap_vld"] = 1
        self.isr |= self.ier & 0x3

    def read(self, offset: int) -> int:
        self._update()
        name = self._by_offset.get(offset)
        if name is None:
            return 0
        if name == "CTRL":
            v = self.start | self.done << 1 | self.idle << 2 | self.ready << 3
            self.done = self.ready = 0  # clear on read
            return v
        if name == "GIER":
            return self.gier
        if name == "IP_IER":
            return self.ier
        if name == "IP_ISR":
            return self.isr
        if self._access[name] == "write-only":
            return 0
        v = self.values[name]
        if name.endswith("_ap_vld"):
            self.values[name] = 0  # clear on read
        return v

    def write(self, offset: int, value: int) -> None:
        self._update()
        name = self._by_offset.get(offset)
        if name is None:
            return
        if name == "CTRL":
            if value & regmap.AUTO_RESTART:
                raise SimulationError(f"{self.name}: AUTO_RESTART is not modelled (the driver never uses it)")
            if value & regmap.AP_START and self.idle:
                self._start()
        elif name == "GIER":
            self.gier = value & 1
        elif name == "IP_IER":
            self.ier = value & 3
        elif name == "IP_ISR":
            self.isr ^= value & 3  # toggle on write
        elif self._access[name] != "read-only":
            self.values[name] = value & 0xFFFFFFFF

    def _arg(self, name: str) -> int:
        return self.values[name]

    def _ptr(self, name: str) -> int:
        return self.values[f"{name}_1"] | self.values[f"{name}_2"] << 32

    def _start(self) -> None:
        self.start, self.idle, self.done, self.ready = 1, 0, 0, 0
        self.calls += 1
        if self.device.faults.hang:
            return  # busy for ever: done_at stays None until the next download()
        started = self.started_at = self.device.now()
        try:
            self._pending, cycles = self._compute()
        except Exception:
            self.start, self.idle = 0, 1  # the emulator refused the call; leave the IP usable
            raise
        self.done_at = started + cycles if self.device.pace else started

    def _compute(self) -> tuple[dict[str, int], int]:
        dev = self.device
        m, n, k = self._arg("m"), self._arg("n"), self._arg("k")
        at, wt, passes = self._arg("a_type"), self._arg("w_type"), self._arg("passes")
        status, sel = check_args(m, n, k, at, wt, passes, dev.cfg)
        out = {"id_version": regmap.ID_WORD, "geometry": regmap.encode_geometry(dev.cfg), "status": status}
        cycles = regmap.CALL_OVERHEAD
        if status == regmap.ST_OK and m:
            fa, fw = regmap.decode_type(at), regmap.decode_type(wt)
            na, nw, ny = regmap.footprint(m, n, k, fa, fw, dev.cfg)
            mem_a = dev.memory(self._ptr("a"), na, f"{self.name} reading a")
            mem_w = dev.memory(self._ptr("w"), nw, f"{self.name} reading w")
            mem_y = dev.memory(self._ptr("y"), ny, f"{self.name} writing y")
            if dev.lib is None:
                mem_y.view(np.int64)[:] = reference_call(mem_a, mem_w, m, n, k, fa, fw, sel, dev.cfg).ravel()
                cycles = model_cycles(m, n, k, fa, fw, sel, dev.cfg)
            else:
                res = (ctypes.c_uint32 * 5)()
                rc = dev.lib.antgemm_call(mem_a.ctypes.data, mem_w.ctypes.data, mem_y.ctypes.data,
                                          m, n, k, at, wt, passes, res)
                if rc:
                    raise SimulationError(f"{self.name} ({dev.level}): {dev.lib.antgemm_error().decode()}")
                if (res[0], res[1], res[2]) != (out["id_version"], out["geometry"], status):
                    raise SimulationError(f"{self.name}: the {dev.level} library disagrees with the model "
                                          f"on id/geometry/status: {tuple(res)[:3]}")
                cycles = res[3] | res[4] << 32
        if dev.faults.id_word is not None:
            out["id_version"] = dev.faults.id_word
        if dev.faults.geometry is not None:
            out["geometry"] = dev.faults.geometry
        out["cycles_lo"], out["cycles_hi"] = cycles & 0xFFFFFFFF, cycles >> 32
        return out, cycles


# ---- backend selection ----------------------------------------------------------------------------

def on_board() -> bool:
    """True on a Zynq board with an FPGA manager (where PYNQ's EmbeddedDevice works)."""
    return FPGA_MANAGER.is_dir() and any(FPGA_MANAGER.iterdir())


def select(backend: str | None = None, **kwargs) -> pynq.Device:
    """Choose the device once: ``board``, an emulation level, or ``auto`` (board if present, else csim).

    ``backend=None`` reads ``ANTQ_BACKEND`` (default ``auto``). For an emulation level this installs
    a fresh :class:`SimDevice` (``kwargs`` go to it) as ``pynq.Device.active_device``; for
    ``board`` it returns PYNQ's own device, which needs ``XILINX_XRT`` set (as the board image's
    ``/etc/profile.d/pynq_venv.sh`` does) and root.
    """
    backend = backend or os.environ.get(ENV) or "auto"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (from the argument or {ENV}); "
                         f"expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "board" if on_board() else "csim"
    if backend == "board":
        if kwargs:
            raise TypeError(f"the board backend takes no emulator options, got {sorted(kwargs)}")
        if not on_board():
            raise RuntimeError(f"no FPGA manager at {FPGA_MANAGER}: this is not a PYNQ board; "
                               f"use an emulation level ({', '.join(LEVELS)})")
        if "XILINX_XRT" not in os.environ:
            raise RuntimeError("XILINX_XRT is not set, so PYNQ registers no board device; "
                               "source /etc/profile.d/pynq_venv.sh (and run as root)")
        return pynq.Device.active_device
    dev = SimDevice(backend, **kwargs)
    pynq.Device.active_device = dev
    return dev
