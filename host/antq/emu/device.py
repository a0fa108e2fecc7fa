"""The simulated ``pynq.Device``: registers, buffers, clocks and time, under the real ``pynq``.

Only the device underneath changes. :class:`SimDevice` implements what PYNQ asks of a device
(``REGISTER_RW`` register access dispatched by the ``.hwh``'s ``ip_dict`` address ranges,
``allocate`` returning ``PynqBuffer`` s with page-aligned fake physical addresses,
``flush``/``invalidate``, ``download``) and puts behind the ``ant_gemm`` registers a model of the
HLS IP (:mod:`antq.emu.ip`) that computes at one level of :mod:`antq.emu.levels`.

PYNQ finds the device through :meth:`SimDevice._probe_` (``$ANTQ_BACKEND``), or it is given to
``AntOverlay(device=...)`` directly. Simulated time runs at the PL clock (from the ``.hwh``'s
FCLK0 via the PS clock stub) while the host polls: every register access costs
:data:`ACCESS_CYCLES`, time also follows the wall clock (``pace`` = 1: as fast as the board,
never faster), and a call started at cycle t completes at t + its cycle count. The model computes
the whole call inside the AP_START write, so an emulated call takes max(compute time, board
time); ``pace=0`` drops the board pacing (a call completes as soon as it is computed), which is
what the emulator's own benchmarks use.

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

from ..core import arch, regmap
from ..core.backends import AUTO, BACKENDS, BOARD, LEVELS
from ..driver.overlay import PAGE
from ..toolchain import hwh
from ..toolchain.paths import BACKEND_ENV, on_board
from . import levels
from .errors import BusError, SimulationError
from .ip import AntGemmModel

ACCESS_CYCLES = 20
"""PL cycles one AXI-Lite register access from the PS takes (about 0.2 us at 100 MHz)."""
POISON = 0xA5
"""Initial device-side content of a new buffer in strict mode (what DDR held before)."""


@dataclass
class Faults:
    """Faults to inject into the emulated IP (tests of the driver's error paths)."""

    hang: bool = False
    """The IP accepts AP_START and never finishes."""
    id_word: int | None = None
    """Report this identification word instead of :data:`antq.core.regmap.ID_WORD`."""
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
        """What PYNQ's device search finds: the level ``$ANTQ_BACKEND`` names, or with ``auto`` (the
        default) the csim emulator off a board; nothing for ``board`` or on a board with ``auto``.
        This is antq's one backend selector (:func:`antq.run.open_overlay` uses it too)."""
        choice = os.environ.get(BACKEND_ENV) or AUTO
        if choice not in BACKENDS:
            raise ValueError(f"{BACKEND_ENV}={choice!r} names no backend; expected one of "
                             f"{', '.join(BACKENDS)}")
        if choice == AUTO:
            choice = BOARD if on_board() else "csim"
        return [cls(choice)] if choice in LEVELS else []

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
        self.default_bitfile = hwh.emulation_hwh()
        self.clocks = _clocks()
        self.compute = levels.get(level)(cfg)
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
