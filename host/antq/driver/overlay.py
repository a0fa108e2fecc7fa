"""The PYNQ driver of the antq overlay: the same code on a board and on the emulated device.

>>> from antq.driver import AntOverlay
>>> ov = AntOverlay()                         # on a board; or antq.open_overlay("csim") in emulation
>>> y = ov.gemm(a, w)                         # a (M, K), w (N, K) QuantizedTensors -> int64 (M, N)
>>> ov.last_cycles, ov.last_timing            # the IP's cycle counter; the per-call breakdown
>>> hw = ov.load_weights(w)                   # packed once, resident in device memory
>>> y = ov.gemm(a, hw); ov.live_buffers; hw.free(); ov.close()
>>> nxt = ov.gemm(a, hw, epilogue=p)          # requantized on chip: a DeviceTensor of p.fmt codes,
>>> z = ov.gemm(nxt, hw2); ov.fetch(nxt)      # the next layer's activations as they are
>>> ov.traffic                                # host <-> device bytes and result reads so far
>>> x = ov.im2col(nxt, (H, W), (3, 3), padding=(1, 1))  # a conv layer's operand, built by the IP
>>> z = ov.gemm(x, hw3, epilogue=p3)          # from nxt's NHWC pixels: conv -> conv on the device

Only real ``pynq`` objects are used: ``Overlay`` (bound to the bitstream's ``.hwh``),
:class:`~antq.driver.ip.AntAccelerator` (a ``DefaultIP`` bound to :data:`antq.core.regmap.VLNV`),
``register_map`` names for every argument, ``pynq.allocate`` buffers with ``flush()`` /
``invalidate()``, and a poll of one control-register read with a timeout. The device underneath
is a ``pynq.Device``: PYNQ's own on a board, or :class:`antq.emu.SimDevice` in emulation, given
as ``device=`` or chosen by PYNQ (``pynq.Device.active_device``); this module never imports the
emulator and nothing below depends on which it is.

K is split in the IP (``hls/ant_gemm.cpp``): it runs jobs of at most ``antq.core.arch.max_k``
steps and adds their results in int64, so any K up to :data:`antq.core.regmap.MAX_DIM` is exact.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pynq
import pynq.ps
from pynq.buffer import PynqBuffer

from ..core import arch, formats, pack, regmap
from ..core.epilogue import Params as EpilogueParams
from ..core.epilogue import acc_bound, param_buffer
from ..core.quantize import QuantizedTensor
from ..toolchain.paths import BITFILE_ENV, BOARD_ENV, source_dir
from .ip import AntAccelerator

BOARD_DIRS = {"Pynq-Z1": "pynq-z1", "Pynq-Z2": "pynq-z2", "ZCU104": "zcu104", "KV260": "kv260"}
"""``$BOARD`` as set by each PYNQ image -> folder under ``bitstreams/``."""
DEFAULT_TIMEOUT = 10.0
PAGE = 4096
"""Host page size: device buffers are allocated in whole pages."""


class VersionError(RuntimeError):
    """The bitstream's IP is not the one this driver was written for."""


@dataclass
class GemmTiming:
    """Where the time of one ``gemm`` call went (wall seconds, and the IP's own cycle count)."""

    pack_s: float = 0.0
    """Validating and packing operands into device buffers."""
    flush_s: float = 0.0
    """Copy-in: ``flush()`` of the buffers packed by this call."""
    start_s: float = 0.0
    """Writing the argument registers and AP_START (in emulation the model computes in this write)."""
    compute_s: float = 0.0
    """Polling until AP_DONE (on a board, the accelerator's run time)."""
    invalidate_s: float = 0.0
    """Copy-out: ``invalidate()`` of the result."""
    unpack_s: float = 0.0
    """Reading the int64 result (and rescaling, for ``gemm_float``)."""
    total_s: float = 0.0
    cycles: int = 0
    """The IP's cycle counter for this call."""
    clock_mhz: float = 0.0
    """PL clock the IP runs at (FCLK0)."""
    core_busy: int = 0
    """Cycles the core had steps in its array or results on the way out (its own counter)."""
    stall_in: int = 0
    """Cycles the core waited for a beat inside a job: the data mover starved it."""
    stall_out: int = 0
    """Cycles a result waited for the data mover (backpressure)."""
    timeout_s: float = 0.0
    """The wait this call allowed (the overlay's timeout, or more for a large call)."""

    @property
    def device_s(self) -> float:
        """Accelerator time projected from the cycle count at the PL clock."""
        return self.cycles / (self.clock_mhz * 1e6) if self.clock_mhz else float("nan")

    def as_dict(self) -> dict[str, float]:
        return asdict(self) | {"device_s": self.device_s}


@dataclass
class Traffic:
    """Bytes the host moved to and from device memory, and the results it read (cumulative)."""

    to_device: int = 0
    """Operands packed by a call and flushed, and epilogue parameter buffers (once each)."""
    from_device: int = 0
    """int64 results and fetched codes, invalidated and read."""
    reads: int = 0
    """IP results the host read: int64 outputs and :meth:`AntOverlay.fetch` es."""

    def since(self, before: Traffic) -> Traffic:
        return Traffic(self.to_device - before.to_device, self.from_device - before.from_device,
                       self.reads - before.reads)

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(self.to_device + other.to_device, self.from_device + other.from_device,
                       self.reads + other.reads)


class DeviceTensor:
    """Codes of one format packed in the accelerator layout, resident in a device buffer.

    Made by :meth:`AntOverlay.load_weights` / :meth:`AntOverlay.load` (the overlay owns the buffer
    and counts it in ``live_buffers`` until :meth:`free` or ``close()``) or by
    :meth:`AntOverlay.wrap` around a buffer you allocated and packed yourself.
    """

    def __init__(self, overlay: AntOverlay, buffer: PynqBuffer, fmt: formats.Format, shape: tuple[int, int],
                 side: str, scale: np.ndarray | None, channel_axis: int | None, owned: bool) -> None:
        self._overlay, self.buffer, self.fmt, self.side = overlay, buffer, fmt, side
        self.shape = (int(shape[0]), int(shape[1]))
        self.scale, self.channel_axis, self.owned = scale, channel_axis, owned
        self.nbytes = pack.accelerator_layout(side, overlay.array).nbytes(self.shape, fmt.bits)
        self._freed = False
        self._parent: DeviceTensor | None = None

    @property
    def freed(self) -> bool:
        return self._freed or (self._parent is not None and self._parent.freed)

    @freed.setter
    def freed(self, v: bool) -> None:
        self._freed = bool(v)

    @property
    def address(self) -> int:
        return int(self.buffer.physical_address)

    def free(self) -> None:
        """Release the device buffer (if the overlay owns it); the tensor cannot be used afterwards."""
        if not self.freed and self.owned:
            self._overlay._free(self.buffer)
            if self in self._overlay._handles:
                self._overlay._handles.remove(self)
        self.freed = True

    def block(self, rows: tuple[int, int], cols: tuple[int, int] | None = None) -> DeviceTensor:
        """The codes ``[r0:r1, c0:c1]`` as a tensor of their own in the same buffer (no copy), for
        ``gemm(..., out=...)``: several calls' outputs written side by side into one operand.

        A block is itself a packed matrix only where the layout allows: rows from a tile boundary
        to a tile boundary (or the last row), all columns or, within one tile block, columns from a
        ``k_align`` boundary to one (or the last column); one nibble plane (codes of 2-4 bits). The
        block is freed with this tensor."""
        layout = pack.accelerator_layout(self.side, self._overlay.array)
        (r0, r1), (c0, c1) = (int(v) for v in rows), (int(v) for v in (cols or (0, self.shape[1])))
        t, ka = layout.tile, layout.k_align
        why = None
        if not (0 <= r0 < r1 <= self.shape[0] and 0 <= c0 < c1 <= self.shape[1]):
            why = "it is empty or outside the tensor"
        elif pack.planes(self.fmt.bits) != 1:
            why = f"{self.fmt.name} codes are two nibble planes, each spanning the whole tensor"
        elif r0 % t or (r1 % t and r1 != self.shape[0]):
            why = f"its rows must start and end on a {t}-row tile boundary (or end at the last row)"
        elif (c0, c1) != (0, self.shape[1]) and (r1 - r0 > t or c0 % ka
                                                 or ((c1 - c0) % ka and c1 != self.shape[1])):
            why = (f"a column range must lie in one {t}-row tile block and start and end on a multiple "
                   f"of {ka} columns (or end at the last column)")
        if why is not None:
            raise ValueError(f"block rows {r0}:{r1}, columns {c0}:{c1} of {self!r} is not a packed matrix: "
                             f"{why}")
        kpad = layout.padded(*self.shape)[1]
        start = (r0 * kpad + c0 * t) // 2
        scale = self.scale
        if self.channel_axis is not None:  # the block's own rows' or columns' scales
            scale = scale[(r0, c0)[self.channel_axis]:(r1, c1)[self.channel_axis]]
        view = DeviceTensor(self._overlay, self.buffer, self.fmt, (r1 - r0, c1 - c0), self.side, scale,
                            self.channel_axis, owned=False)
        view.buffer = self.buffer[start:start + view.nbytes]
        view._parent = self
        return view

    def __repr__(self) -> str:
        state = "freed" if self.freed else f"{self.nbytes} bytes at 0x{self.address:x}"
        return f"DeviceTensor({self.fmt.name}, shape={self.shape}, side={self.side!r}, {state})"


class ConvOperand:
    """The im2col of a device tensor of NHWC pixels, as the IP generates it (conv mode): made by
    :meth:`AntOverlay.im2col`, taken by :meth:`AntOverlay.gemm` as ``a``.

    ``shape`` is (B*OH*OW, C*kh*kw), rows (b, oy, ox) and K in (c, i, j) order (PyTorch's
    ``weight.reshape(N, -1)``); ``fmt`` and ``scale`` are the source's. Nothing is copied: the IP
    reads ``src`` (B*H*W, C) into its on-chip source buffer and builds each A word itself.
    """

    side = "a"

    def __init__(self, src: DeviceTensor, conv: regmap.Conv, conv_hw: int, conv_win: int) -> None:
        self.src, self.conv, self.conv_hw, self.conv_win = src, conv, conv_hw, conv_win
        self.fmt, self.scale, self.channel_axis = src.fmt, src.scale, None
        oh, ow = conv.out_hw
        self.shape = (conv.batch * oh * ow, conv.channels * conv.kernel[0] * conv.kernel[1])

    @property
    def address(self) -> int:
        return self.src.address

    @property
    def nbytes(self) -> int:
        return self.src.nbytes

    @property
    def freed(self) -> bool:
        return self.src.freed

    def __repr__(self) -> str:
        c = self.conv
        return (f"ConvOperand({self.fmt.name}, shape={self.shape}, source "
                f"{c.batch}x{c.h}x{c.w}x{c.channels}, kernel={c.kernel}, stride={c.stride}, "
                f"padding={c.padding}, dilation={c.dilation})")


class HeadsOperand:
    """An attention operand the IP generates from a device tensor of codes (heads mode,
    docs/contracts.md section 15): made by :meth:`AntOverlay.heads`, taken by
    :meth:`AntOverlay.gemm` as ``a`` (rule ``rows``) or ``w`` (``kt``, ``v``).

    ``shape`` is the block-diagonal operand of one ``MatmulLayer`` call (S samples' g heads):
    (count*T, S*g*D) for ``rows``, (g*T, S*g*D) for ``kt``, (g*D, S*g*T) for ``v``; ``fmt`` and
    ``scale`` are the source's (the scale of the columns it reads). Nothing is copied: the IP reads
    the source rows of the call's samples into an on-chip buffer and builds each word itself.
    """

    def __init__(self, src: DeviceTensor, offset: int, nbytes: int, geometry: regmap.Heads,
                 side: regmap.HeadsSide, count: int, scale: np.ndarray) -> None:
        self.src, self.offset, self.nbytes = src, offset, nbytes
        """The source tensor, the byte offset of the row tile the IP reads from, the bytes it reads."""
        self.geometry, self.spec, self.count = geometry, side, count
        self.side = "a" if side.rule == "rows" else "w"
        self.fmt, self.scale, self.channel_axis = src.fmt, scale, None
        rows, k = geometry.dims(side, self.side)
        self.shape = (count * geometry.tokens if side.rule == "rows" else rows, k)

    @property
    def address(self) -> int:
        return self.src.address + self.offset

    @property
    def freed(self) -> bool:
        return self.src.freed

    def __repr__(self) -> str:
        g, sd = self.geometry, self.spec
        return (f"HeadsOperand({sd.rule}, {self.fmt.name}, shape={self.shape}, S={g.samples}, g={g.heads}, "
                f"T={g.tokens}, D={g.width}, columns from {sd.col0} every {sd.stride})")


def _heads_geometry(A: object, W: object) -> regmap.Heads | None:
    """The heads-mode geometry of a call whose operands may be :class:`HeadsOperand`: both sides'
    S, g, T and D must agree (one call multiplies one set of products)."""
    ga = A.geometry if isinstance(A, HeadsOperand) else None
    gw = W.geometry if isinstance(W, HeadsOperand) else None
    if ga is None and gw is None:
        return None
    dims = {(g.samples, g.heads, g.tokens, g.width) for g in (ga, gw) if g is not None}
    if len(dims) != 1:
        raise ValueError(f"the heads operands disagree on (S, g, T, D): {sorted(dims)}")
    s, g, t, d = dims.pop()
    return regmap.Heads(s, g, t, d, None if ga is None else A.spec, None if gw is None else W.spec)


def _pair(name: str, v) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v), int(v)
    try:
        t = tuple(v)
    except TypeError:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}") from None
    if len(t) != 2 or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in t):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return int(t[0]), int(t[1])


def default_bitfile(device: pynq.Device) -> Path:
    """``$ANTQ_BITFILE``, else the device's own (the emulator's ``.hwh``), else
    ``bitstreams/<board>/ant.bit`` for the board image's ``$BOARD``."""
    if os.environ.get(BITFILE_ENV):
        return Path(os.environ[BITFILE_ENV])
    if getattr(device, "default_bitfile", None):
        return Path(device.default_bitfile)
    board = os.environ.get(BOARD_ENV, "")
    if board not in BOARD_DIRS:
        raise RuntimeError(f"no bitstream known for BOARD={board!r} (known: {', '.join(BOARD_DIRS)}); "
                           f"pass AntOverlay(path) or set {BITFILE_ENV}")
    path = source_dir("bitstreams") / BOARD_DIRS[board] / "ant.bit"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: build it with `make bitstream "
                                f"BOARD={BOARD_DIRS[board]}` on a Vivado host (see bitstreams/README.md)")
    return path


def _hardware_tensor(t: QuantizedTensor, name: str) -> QuantizedTensor:
    """``t`` in a format the IP decodes (:func:`antq.core.regmap.as_accelerator_format`): narrower
    or wider ints are re-encoded as int4/int8 with the same values."""
    try:
        fmt = regmap.as_accelerator_format(t.fmt)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    if fmt == t.fmt:
        return t
    codes = formats.encode(fmt.kind, fmt.bits, fmt.signed, t.values())
    return QuantizedTensor(codes, kind=fmt.kind, bits=fmt.bits, signed=fmt.signed, scale=t.scale,
                           channel_axis=t.channel_axis)


class AntOverlay(pynq.Overlay):
    """The antq overlay: bitstream (or the emulator's ``.hwh``), ``ant_gemm`` IP, device buffers."""

    def __init__(self, bitfile: str | os.PathLike | None = None, *, device: pynq.Device | None = None,
                 timeout: float = DEFAULT_TIMEOUT, download: bool = True) -> None:
        if device is None:
            device = pynq.Device.active_device
        if not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self._owned: dict[int, PynqBuffer] = {}
        self._scratch: dict[str, PynqBuffer] = {}
        self._handles: list[DeviceTensor] = []
        self._params: dict[int, tuple[EpilogueParams, PynqBuffer]] = {}
        self._fault: str | None = None
        self._closed = False
        super().__init__(str(bitfile or default_bitfile(device)), download=download, device=device)
        self.accel = self._find_accelerator()
        self.array = self._identify()
        self.clock_mhz = float(pynq.ps.Clocks.fclk0_mhz)
        self.last_cycles = 0
        self.last_timing = GemmTiming()
        self.traffic = Traffic()
        """Host <-> device bytes and result reads so far (``traffic.since(before)`` for a span)."""

    # ---- identification -----------------------------------------------------------------------

    def _find_accelerator(self) -> AntAccelerator:
        names = [n for n, d in self.ip_dict.items() if d.get("type") == regmap.VLNV]
        if not names:
            family = regmap.VLNV.rpartition(":")[0]
            seen = [f"{n} ({d.get('type')})" for n, d in self.ip_dict.items()
                    if str(d.get("type", "")).startswith(family)]
            raise VersionError(f"{self.bitfile_name} has no {regmap.VLNV} IP"
                               + (f"; it has {', '.join(seen)}: rebuild the bitstream or update antq" if seen
                                  else f" (IPs: {', '.join(self.ip_dict) or 'none'})"))
        ip = functools.reduce(getattr, names[0].split("/"), self)
        if not isinstance(ip, AntAccelerator):
            raise VersionError(f"{names[0]} did not bind to AntAccelerator but to {type(ip).__name__}")
        return ip

    def _identify(self) -> arch.ArrayConfig:
        id_word, geometry = self.accel.identify(self.timeout)
        if id_word >> 8 != regmap.ID_MAGIC:
            raise VersionError(f"{regmap.TOP} reports id word 0x{id_word:08x}, which is not an antq IP "
                               f"(expected 'ANT' = 0x{regmap.ID_MAGIC:06x} in bits 31:8)")
        if id_word & 0xFF != regmap.IP_VERSION:
            raise VersionError(f"the bitstream's {regmap.TOP} is IP version {id_word & 0xFF}, this driver "
                               f"needs version {regmap.IP_VERSION}: rebuild the bitstream (make bitstream) "
                               "or use the antq release that matches it")
        try:
            cfg = regmap.decode_geometry(geometry)
        except ValueError as e:
            raise VersionError(f"{regmap.TOP} reports an invalid geometry word 0x{geometry:08x}: {e}") from e
        if cfg.bus_bits % 64 or not 16 <= cfg.acc_bits <= 64:
            raise VersionError(f"{regmap.TOP} reports geometry 0x{geometry:08x} ({cfg}): the bus must be a "
                               "multiple of 64 bits and the accumulators 16..64 bits")
        return cfg

    @property
    def peak_macs_per_s(self) -> float:
        """R * C MACs per cycle at the PL clock."""
        return self.array.peak_macs_per_cycle * self.clock_mhz * 1e6

    # ---- buffers ------------------------------------------------------------------------------

    @property
    def live_buffers(self) -> int:
        """Device buffers this overlay holds now (scratch buffers and loaded tensors)."""
        return len(self._owned)

    def _allocate(self, nbytes: int) -> PynqBuffer:
        buf = pynq.allocate((nbytes,), np.uint8, target=self.device, cacheable=True)
        self._owned[id(buf)] = buf
        if buf.physical_address % (self.array.bus_bits // 8):
            self._free(buf)
            raise RuntimeError(f"pynq.allocate returned an address 0x{buf.physical_address:x} that is not "
                               f"aligned to the {self.array.bus_bits}-bit bus")
        return buf

    def _free(self, buf: PynqBuffer) -> None:
        if self._owned.pop(id(buf), None) is not None:
            buf.freebuffer()

    def _scratch_buffer(self, role: str, nbytes: int) -> PynqBuffer:
        """A reused buffer per role, grown to a power of two when a call needs more."""
        buf = self._scratch.get(role)
        if buf is None or buf.nbytes < nbytes:
            if buf is not None:
                self._free(buf)
            buf = self._scratch[role] = self._allocate(max(PAGE, 1 << (max(nbytes, 1) - 1).bit_length()))
        return buf

    @property
    def closed(self) -> bool:
        """True after :meth:`close`: the overlay's device buffers are freed and it refuses every call."""
        return self._closed

    def _check_usable(self) -> None:
        if self._closed:
            raise RuntimeError("this AntOverlay is closed (close() freed its device buffers); open a new "
                               "one with antq.open_overlay()")
        if self._fault:
            raise RuntimeError(f"the accelerator failed earlier ({self._fault}) and may still be running; "
                               "close() this overlay and load it again")

    def _pack_into(self, buf: PynqBuffer, t: QuantizedTensor, side: str) -> int:
        layout = pack.accelerator_layout(side, self.array)
        packed = pack.pack(t.codes, t.bits, layout)
        buf[:packed.size] = packed
        return packed.size

    def load(self, t: QuantizedTensor, side: str = "w") -> DeviceTensor:
        """Pack ``t`` once into its own device buffer (flushed) for reuse across calls."""
        self._check_usable()
        t = self._checked(t, side)
        nbytes = pack.accelerator_layout(side, self.array).nbytes(t.shape, t.bits)
        buf = self._allocate(nbytes)
        self._pack_into(buf, t, side)
        buf.flush()
        self.traffic.to_device += nbytes
        h = DeviceTensor(self, buf, t.fmt, t.shape, side, t.scale, t.channel_axis, owned=True)
        self._handles.append(h)
        return h

    def empty(self, shape: tuple[int, int], fmt: formats.Format, *, scale: float | None = None,
              side: str = "a") -> DeviceTensor:
        """An uninitialized device tensor of ``fmt`` codes (M, N), packed as ``side``: the output of
        several epilogue calls, each writing its :meth:`DeviceTensor.block` (``gemm(..., out=)``)."""
        self._check_usable()
        if not regmap.supported(fmt):
            raise ValueError(f"{fmt.name} is not an accelerator format")
        if side not in ("a", "w"):
            raise ValueError(f"side must be 'a' (activations) or 'w' (weights), got {side!r}")
        rows, k = (int(v) for v in shape)
        self._check_dims(side, rows, k)
        buf = self._allocate(pack.accelerator_layout(side, self.array).nbytes((rows, k), fmt.bits))
        sc = None if scale is None else np.asarray(scale, np.float32)
        h = DeviceTensor(self, buf, fmt, (rows, k), side, sc, None, owned=True)
        self._handles.append(h)
        return h

    def load_weights(self, w: QuantizedTensor) -> DeviceTensor:
        """Weights (N, K) packed once and kept in device memory: pass the result to :meth:`gemm`."""
        return self.load(w, "w")

    def wrap(self, buffer: PynqBuffer, fmt: formats.Format, shape: tuple[int, int], side: str,
             scale: float | np.ndarray | None = None, channel_axis: int | None = None) -> DeviceTensor:
        """Use a buffer you allocated and packed yourself (accelerator layout, flushed) as an operand."""
        if not isinstance(buffer, PynqBuffer):
            raise TypeError(f"expected a pynq.allocate'd buffer, got {type(buffer).__name__}")
        if buffer.device is not self.device:
            raise ValueError("foreign buffer: it was allocated on another device than this overlay's")
        if buffer.dtype != np.uint8 or buffer.ndim != 1 or not buffer.flags.c_contiguous:
            raise TypeError(f"packed buffer must be 1-D contiguous uint8, got {buffer.dtype} {buffer.shape}")
        align = self.array.bus_bits // 8
        if buffer.physical_address % align:
            raise ValueError(f"misaligned buffer: physical address 0x{buffer.physical_address:x} is not a "
                             f"multiple of {align} bytes (the bus width)")
        if side not in ("a", "w"):
            raise ValueError(f"side must be 'a' (activations) or 'w' (weights), got {side!r}")
        if not regmap.supported(fmt):
            raise ValueError(f"{fmt.name} is not an accelerator format")
        rows, k = shape
        self._check_dims(side, rows, k)
        need = pack.accelerator_layout(side, self.array).nbytes((rows, k), fmt.bits)
        if buffer.nbytes < need:
            raise ValueError(f"buffer has {buffer.nbytes} bytes; {fmt.name} {shape} packed needs {need}")
        sc = None if scale is None else np.asarray(scale, np.float32)
        return DeviceTensor(self, buffer, fmt, shape, side, sc, channel_axis, owned=False)

    # ---- conv mode: on-device im2col ------------------------------------------------------------

    def _check_source(self, src: object, mode: str, holds: str) -> None:
        """``src`` checked as the source an operand mode (im2col, heads) generates its operand from."""
        if not isinstance(src, DeviceTensor):
            raise TypeError(f"{mode} takes a DeviceTensor of {holds}, e.g. the output of "
                            f"gemm(..., epilogue=p), not {type(src).__name__}")
        if src.freed:
            raise RuntimeError(f"{src!r} was freed")
        if src._overlay is not self:
            raise ValueError("that DeviceTensor belongs to another AntOverlay")
        if src.side != "a":
            raise ValueError(f"{mode} needs a source packed as activations (side 'a'), not {src.side!r}")

    def _conv(self, src: DeviceTensor, hw, kernel, stride, padding, dilation) -> ConvOperand:
        """The conv operand, or ValueError naming what the IP cannot do (the checks of im2col)."""
        self._check_source(src, "im2col", "NHWC pixels (B*H*W, C)")
        if src.channel_axis is not None:
            raise ValueError(f"im2col needs a per-tensor scaled source, not one scaled along axis "
                             f"{src.channel_axis}")
        hw, kernel, stride = _pair("hw", hw), _pair("kernel", kernel), _pair("stride", stride)
        padding, dilation = _pair("padding", padding), _pair("dilation", dilation)
        conv_hw, conv_win = regmap.encode_conv(hw, kernel, stride, padding, dilation)
        rows, c = src.shape
        h, w = hw
        if rows % (h * w):
            raise ValueError(f"the source has {rows} pixel rows, not a whole number of {h}x{w} images")
        oh, ow = regmap.conv_out_hw(hw, kernel, stride, padding, dilation)
        if oh < 1 or ow < 1:
            raise ValueError(f"no output pixels for a {h}x{w} input with kernel {kernel}, stride {stride}, "
                             f"padding {padding}, dilation {dilation}")
        m, k = rows // (h * w) * oh * ow, c * kernel[0] * kernel[1]
        self._check_dims("a", m, k)
        conv = regmap.decode_conv(conv_hw, conv_win, m, k, src.fmt, self.array)
        return ConvOperand(src, conv, conv_hw, conv_win)

    def im2col(self, src: DeviceTensor, hw: tuple[int, int], kernel: tuple[int, int] | int,
               stride: tuple[int, int] | int = (1, 1), padding: tuple[int, int] | int = (0, 0),
               dilation: tuple[int, int] | int = (1, 1)) -> ConvOperand:
        """A conv layer's GEMM operand built by the IP from ``src`` (conv mode, docs/contracts.md
        section 14): ``src`` holds B*H*W pixel rows (b, y, x) x C channels as codes packed as
        activations (what ``gemm(..., epilogue=p)`` returns), ``hw`` = (H, W); the result has shape
        (B*OH*OW, C*kh*kw) and is what ``antq.model.graph.im2col`` makes of the NCHW codes. Pass it
        to :meth:`gemm` as ``a``. ValueError names the problem when the IP cannot take the geometry
        (4-bit kernel/stride/padding/dilation fields, a source larger than ``regmap.SRC_BYTES``);
        :meth:`can_im2col` asks without raising."""
        self._check_usable()
        return self._conv(src, hw, kernel, stride, padding, dilation)

    def can_im2col(self, src: DeviceTensor, hw: tuple[int, int], kernel: tuple[int, int] | int,
                   stride: tuple[int, int] | int = (1, 1), padding: tuple[int, int] | int = (0, 0),
                   dilation: tuple[int, int] | int = (1, 1)) -> bool:
        """Can the IP generate this im2col from ``src`` (no device access)? False where
        :meth:`im2col` would raise ValueError or TypeError."""
        try:
            self._conv(src, hw, kernel, stride, padding, dilation)
        except (ValueError, TypeError, RuntimeError):
            return False
        return True

    # ---- heads mode: attention's operands generated on the device -----------------------------

    def heads(self, src: DeviceTensor, rule: str, *, samples: int, heads: int, tokens: int, width: int,
              col0: int = 0, stride: int | None = None, row0: int = 0, count: int | None = None
              ) -> HeadsOperand:
        """One block-diagonal attention operand of ``samples`` (S) samples' ``heads`` (g) heads,
        built by the IP from ``src`` (heads mode, docs/contracts.md section 15): ``src`` holds
        (B*T, Ks) codes packed as activations (what ``gemm(..., epilogue=p)`` returns), sample b's
        token t in row b*T + t, head h's D columns from ``col0 + h*stride`` (stride default D).
        ``rule`` ``"rows"`` gives A = Q (row (s, m), step (s', h, k): Q[s, h, m, k] where s' = s),
        ``"kt"`` W for B = K^T, ``"v"`` W for B = V (row (h, n), step (s', h', k): B[s', h, k, n]
        where h' = h), code 0 elsewhere: ``antq.model.graph.MatmulLayer.calls_of``. The call
        starts at source row ``row0`` and takes ``count`` <= S samples (default: what is left, at
        most S); samples past them are code 0. ValueError names what the IP cannot take."""
        self._check_usable()
        self._check_source(src, "heads", "codes (B*T, K)")
        if rule not in regmap.HEADS_RULES:
            raise ValueError(f"rule must be one of {sorted(regmap.HEADS_RULES)}, got {rule!r}")
        if src.fmt.bits != arch.CODE_BITS:
            raise ValueError(f"heads mode reads 4-bit sources, not {src.fmt.name}")
        stride = width if stride is None else stride
        nrows, ks = src.shape
        vals = {"samples": samples, "heads": heads, "tokens": tokens, "width": width, "col0": col0,
                "stride": stride, "row0": row0}
        for name, v in vals.items():
            low = 0 if name in ("col0", "row0", "stride") else 1
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"heads {name} = {v!r}: expected an int >= {low}")
        if row0 >= nrows:
            raise ValueError(f"row0 = {row0} is past the source's {nrows} rows")
        left = -(-(nrows - row0) // tokens)
        count = min(samples, left) if count is None else count
        if not 1 <= count <= min(samples, left):
            raise ValueError(f"count = {count}: the call takes 1..{min(samples, left)} samples "
                             f"(S = {samples}, {left} left from row {row0})")
        tile = self.array.rows
        t0 = row0 // tile * tile  # the IP reads from the row tile of the call's first sample
        end = min(nrows, row0 + count * tokens)
        side = regmap.HeadsSide(rule, int(ks), int(end - t0), int(col0), int(stride), int(row0 - t0))
        geo = regmap.Heads(int(samples), int(heads), int(tokens), int(width),
                           side if rule == "rows" else None, None if rule == "rows" else side)
        regmap.encode_heads(geo)  # every field fits its bits
        rows, k = geo.dims(side, "a" if rule == "rows" else "w")
        self._check_dims("a" if rule == "rows" else "w", count * tokens if rule == "rows" else rows, k)
        if col0 + (heads - 1) * stride + width > ks:
            raise ValueError(f"{heads} heads of {width} columns from column {col0}, {stride} apart, pass the "
                             f"source's {ks} columns")
        layout = pack.accelerator_layout("a", self.array)
        limit = regmap.SRC_BYTES if rule == "rows" else regmap.HEADS_W_BYTES
        nbytes = layout.plane_nbytes(side.src_rows, ks)
        if nbytes > limit:
            raise ValueError(f"the call's source rows ({side.src_rows} x {ks}, {nbytes} bytes packed) do not "
                             f"fit the IP's {limit}-byte on-chip buffer")
        scale = src.scale
        if src.channel_axis is not None:  # the scale of the columns it reads, which must be one
            sc = np.asarray(src.scale)
            cols = np.concatenate([sc[col0 + h * stride:col0 + h * stride + width] for h in range(heads)])
            if (cols != cols[0]).any():
                raise ValueError(f"the columns this operand reads have {np.unique(cols).size} different "
                                 "scales; one operand needs one")
            scale = cols[0]
        return HeadsOperand(src, layout.plane_nbytes(t0, ks), nbytes, geo, side, int(count),
                            None if scale is None else np.float32(scale))

    def can_heads(self, src: DeviceTensor, rule: str, **geometry) -> bool:
        """Can the IP generate this heads-mode operand (no device access)? False where
        :meth:`heads` would raise ValueError, TypeError or RuntimeError."""
        try:
            self.heads(src, rule, **geometry)
        except (ValueError, TypeError, RuntimeError):
            return False
        return True

    def close(self) -> None:
        """Free every device buffer this overlay holds (scratch and loaded tensors)."""
        for h in list(self._handles):
            h.free()
        self._handles.clear()
        self._params.clear()
        for buf in list(self._owned.values()):
            self._free(buf)
        self._scratch.clear()
        self._closed = True

    def __enter__(self) -> AntOverlay:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- GEMM ---------------------------------------------------------------------------------

    def call_timeout(self, m: int, n: int, k: int, fa: formats.Format, fw: formats.Format,
                     conv: regmap.Conv | None = None, heads: regmap.Heads | None = None) -> float:
        """Seconds to wait for one call: the overlay's timeout, or ten times a generous estimate of
        the call's cycles at the PL clock when that is longer (a large int8 GEMM takes a while; a
        conv-mode call off the fast path and a heads-mode call gather one code per cycle)."""
        cfg = self.array
        tiles = -(-m // cfg.rows) * -(-n // cfg.cols)
        passes = bin(regmap.pass_mask(fa, fw)).count("1")
        words = (m + n * -(-m // cfg.rows)) * k * 8 // cfg.bus_bits
        estimate = tiles * (passes * (k + 1) + 2 * cfg.rows * cfg.cols) + words + m * n
        if conv is not None:
            estimate += tiles * 2 * (k + 1) * (1 if conv.fast else cfg.rows) + conv.source_nbytes(fa, cfg)
        if heads is not None:
            estimate += tiles * 2 * (k + 1) * max(cfg.rows, cfg.cols) + sum(
                x.source_nbytes(cfg) for x in (heads.a, heads.w) if x is not None)
        return max(self.timeout, 10 * estimate / (self.clock_mhz * 1e6))

    @staticmethod
    def _check_dims(side: str, rows: int, k: int) -> None:
        for what, v in (("M" if side == "a" else "N", rows), ("K", k)):
            if not 1 <= v <= regmap.MAX_DIM:
                raise ValueError(f"{what} = {v} is out of range: the IP takes 1..{regmap.MAX_DIM}")

    def _checked(self, t: QuantizedTensor, side: str) -> QuantizedTensor:
        name = "a" if side == "a" else "w"
        if not isinstance(t, QuantizedTensor):
            raise TypeError(f"{name} must be a QuantizedTensor or a DeviceTensor, got {type(t).__name__} "
                            "(quantize it first, e.g. antq.quantize_tensor)")
        if t.ndim != 2:
            raise ValueError(f"{name} must be 2-D ({'M' if side == 'a' else 'N'}, K), got shape {t.shape}")
        self._check_dims(side, *t.shape)
        return _hardware_tensor(t, name)

    def _operand(self, t: QuantizedTensor | DeviceTensor | ConvOperand | HeadsOperand, side: str
                 ) -> tuple[DeviceTensor | ConvOperand | HeadsOperand, bool]:
        """(device tensor, packed by this call) for an operand given either way."""
        if isinstance(t, HeadsOperand):
            if t.side != side:
                raise ValueError(f"a heads operand of rule {t.spec.rule!r} is {t.side!r}, not {side!r}")
            if t.freed:
                raise RuntimeError(f"the source of {t!r} was freed")
            if t.src._overlay is not self:
                raise ValueError("that HeadsOperand's source belongs to another AntOverlay")
            return t, False
        if isinstance(t, ConvOperand):
            if side != "a":
                raise ValueError("an im2col operand (ConvOperand) can only be a, the activations")
            if t.freed:
                raise RuntimeError(f"the source of {t!r} was freed")
            if t.src._overlay is not self:
                raise ValueError("that ConvOperand's source belongs to another AntOverlay")
            return t, False
        if isinstance(t, DeviceTensor):
            if t.freed:
                raise RuntimeError(f"{t!r} was freed")
            if t._overlay is not self:
                raise ValueError("that DeviceTensor belongs to another AntOverlay")
            if t.side != side:
                raise ValueError(f"a DeviceTensor packed as {t.side!r} cannot be used as {side!r}")
            return t, False
        t = self._checked(t, side)
        layout = pack.accelerator_layout(side, self.array)
        buf = self._scratch_buffer(side, layout.nbytes(t.shape, t.bits))
        self._pack_into(buf, t, side)
        return DeviceTensor(self, buf, t.fmt, t.shape, side, t.scale, t.channel_axis, owned=False), True

    def gemm(self, a: QuantizedTensor | DeviceTensor | ConvOperand | HeadsOperand,
             w: QuantizedTensor | DeviceTensor | HeadsOperand, *,
             epilogue: EpilogueParams | None = None, out: DeviceTensor | None = None, passes: int = 0,
             return_cycles: bool = False
             ) -> np.ndarray | DeviceTensor | tuple[np.ndarray | DeviceTensor, int]:
        """int64 (M, N) accumulators of ``a`` (M, K) times ``w`` (N, K) transposed, bit-exact.

        With ``epilogue`` (:class:`antq.core.epilogue.Params` of N columns) the IP requantizes on
        chip (docs/contracts.md section 12) and the result is a :class:`DeviceTensor` of
        ``epilogue.fmt`` codes (M, N), packed as activations (side ``"a"``) with scale
        ``epilogue.s_out``: pass it to the next ``gemm`` as ``a`` as it is, :meth:`fetch` it to the
        host, and ``free()`` it when done (it is counted in ``live_buffers``). The parameter buffer
        is written once per Params object and kept on the device. ``out`` (an activation tensor of
        ``epilogue.fmt`` and shape (M, N), say a :meth:`DeviceTensor.block` of an :meth:`empty` one)
        is where the IP writes them instead of a new buffer; it is returned.
        ``a`` may be an :meth:`im2col` operand: the IP then builds A on chip from its source; ``a``
        and ``w`` may be :meth:`heads` operands (attention's Q, K^T, V from a projection's codes).
        ``passes`` selects int8 nibble passes (bit ``a_hi * 2 + w_hi``; 0 = all the types need).
        With ``return_cycles`` the IP's cycle count comes back too (it is also ``last_cycles``).
        """
        if out is not None and epilogue is None:
            raise ValueError("out= is where the epilogue writes its codes: give epilogue= too")
        y, _, _ = self._run(a, w, passes, epilogue, out)
        return (y, self.last_cycles) if return_cycles else y

    def fetch(self, t: DeviceTensor) -> QuantizedTensor:
        """The codes of a device tensor back on the host (``invalidate()`` and unpack)."""
        if not isinstance(t, DeviceTensor):
            raise TypeError(f"expected a DeviceTensor, got {type(t).__name__}")
        if t.freed:
            raise RuntimeError(f"{t!r} was freed")
        view = t.buffer[:t.nbytes]
        view.invalidate()
        self.traffic.from_device += t.nbytes
        self.traffic.reads += 1
        codes = pack.unpack(np.array(view, dtype=np.uint8), t.fmt.bits, t.shape,
                            pack.accelerator_layout(t.side, self.array))
        return QuantizedTensor(codes, kind=t.fmt.kind, bits=t.fmt.bits, signed=t.fmt.signed,
                               scale=1.0 if t.scale is None else t.scale, channel_axis=t.channel_axis)

    def _param_buffer(self, p: EpilogueParams) -> PynqBuffer:
        """The device copy of ``p``'s parameter buffer, written and flushed once per Params object."""
        hit = self._params.get(id(p))
        if hit is not None and hit[0] is p:
            return hit[1]
        words = param_buffer(p)
        buf = self._allocate(words.nbytes)
        buf[:words.nbytes] = words.view(np.uint8)
        buf[:words.nbytes].flush()
        self.traffic.to_device += words.nbytes
        self._params[id(p)] = (p, buf)
        return buf

    def release(self, p: EpilogueParams) -> None:
        """Free the device copy of ``p``'s parameter buffer, if there is one (a Runtime does it
        when it closes; a later ``gemm(..., epilogue=p)`` writes it again)."""
        hit = self._params.pop(id(p), None)
        if hit is not None:
            self._free(hit[1])

    def _check_epilogue(self, p: object, A: DeviceTensor, W: DeviceTensor) -> None:
        if not isinstance(p, EpilogueParams):
            raise TypeError(f"epilogue must be antq.core.epilogue.Params (epilogue.params(...)), "
                            f"got {type(p).__name__}")
        n, k = W.shape
        if p.channels != n:
            raise ValueError(f"the epilogue has {p.channels} output columns but w has N = {n}")
        if n > regmap.EPI_MAX_COLS:
            raise ValueError(f"N = {n}: the IP's epilogue keeps at most {regmap.EPI_MAX_COLS} columns' "
                             "parameters on chip; run this layer with int64 output")
        if not regmap.epilogue_tiles_ok(self.array):
            cfg = self.array
            raise ValueError(f"a {cfg.rows}x{cfg.cols} array on a {cfg.bus_bits}-bit bus cannot write packed "
                             "output tiles (needs R even and C*4R a multiple of the bus)")
        bound = acc_bound(A.fmt, W.fmt, k)
        if p.acc_max < bound:
            raise ValueError(f"the epilogue is valid for |acc| <= {p.acc_max}, but {A.fmt.name} x "
                             f"{W.fmt.name} with K = {k} can reach {bound} (acc * M + B could overflow "
                             "int64); make it with acc_max=epilogue.acc_bound(a, w, K)")

    def gemm_float(self, a: QuantizedTensor | DeviceTensor, w: QuantizedTensor | DeviceTensor) -> np.ndarray:
        """Rescaled float32 (M, N): ``gemm * scale_a[m] * scale_w[n]``, as antq.core.reference.gemm_float."""
        y, A, W = self._run(a, w, 0)
        t = time.perf_counter()
        scales = []
        for name, op, shape in (("a", A, (-1, 1)), ("w", W, (1, -1))):
            if op.scale is None:
                raise ValueError(f"{name} has no scale (wrap() it with scale=...)")
            if op.channel_axis not in (None, 0):
                raise ValueError(f"{name} must be scaled per tensor or along axis 0, not {op.channel_axis}")
            scales.append(op.scale.astype(np.float64).reshape(shape))
        out = (y.astype(np.float64) * scales[0] * scales[1]).astype(np.float32)
        self.last_timing.unpack_s += time.perf_counter() - t
        self.last_timing.total_s += time.perf_counter() - t
        return out

    def _out(self, t: object, p: EpilogueParams, m: int, n: int) -> DeviceTensor:
        """``t`` checked as the place for a call's (m, n) epilogue codes."""
        if not isinstance(t, DeviceTensor):
            raise TypeError(f"out must be a DeviceTensor (AntOverlay.empty(...).block(...)), got "
                            f"{type(t).__name__}")
        if t._overlay is not self:
            raise ValueError("that out DeviceTensor belongs to another AntOverlay")
        if t.freed:
            raise RuntimeError(f"out {t!r} was freed")
        if t.side != "a" or t.fmt != p.fmt or t.shape != (m, n):
            raise ValueError(f"out is {t!r}, but this call writes {p.fmt.name} codes ({m}, {n}) packed as "
                             "'a'")
        return t

    def _run(self, a, w, passes: int, epi: EpilogueParams | None = None, into: DeviceTensor | None = None
             ) -> tuple[np.ndarray | DeviceTensor, DeviceTensor, DeviceTensor]:
        self._check_usable()
        t0 = time.perf_counter()
        A, fresh_a = self._operand(a, "a")
        W, fresh_w = self._operand(w, "w")
        if A.shape[1] != W.shape[1]:
            raise ValueError(f"K mismatch: a is {A.shape} (M, K) and w is {W.shape} (N, K)")
        m, k = A.shape
        n = W.shape[0]
        if not 0 <= passes < 16:
            raise ValueError(f"passes must be a 4-bit mask, got {passes}")
        p_addr, out_mode = 0, 0
        if epi is None:
            ybuf = self._scratch_buffer("y", m * n * 8)
        else:
            self._check_epilogue(epi, A, W)
            p_addr = int(self._param_buffer(epi).physical_address)
            out_mode = regmap.encode_out_mode(epi.fmt, epi.shift)
            if into is not None:
                out = self._out(into, epi, m, n)
            else:
                nbytes = pack.accelerator_layout("a", self.array).nbytes((m, n), epi.fmt.bits)
                scale = None if epi.s_out is None else np.asarray(epi.s_out, np.float32)
                axis = None if scale is None or scale.ndim == 0 else 1  # one scale per column
                out = DeviceTensor(self, self._allocate(nbytes), epi.fmt, (m, n), "a", scale, axis,
                                   owned=True)
                self._handles.append(out)
            ybuf = out.buffer
        try:
            cycles, counters, wait_s, (t1, t2, t3, t4) = self._call(A, W, fresh_a, fresh_w, ybuf, passes,
                                                                    p_addr, out_mode)
        except TimeoutError:
            raise  # the IP may still write the output buffer: close() frees it
        except BaseException:
            if epi is not None and into is None:
                out.free()
            raise
        if epi is not None:  # the output stays on the device as the next layer's activations
            self.last_cycles = cycles
            self.last_timing = GemmTiming(t1 - t0, t2 - t1, t3 - t2, t4 - t3, 0.0, 0.0, t4 - t0, cycles,
                                          self.clock_mhz, *counters, wait_s)
            return out, A, W
        yv = ybuf[:m * n * 8]
        yv.invalidate()
        self.traffic.from_device += m * n * 8
        self.traffic.reads += 1
        t5 = time.perf_counter()
        y = np.array(yv.view("<i8"), dtype=np.int64).reshape(m, n)
        t6 = time.perf_counter()
        self.last_cycles = cycles
        self.last_timing = GemmTiming(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t6 - t0, cycles,
                                      self.clock_mhz, *counters, wait_s)
        return y, A, W

    def _call(self, A: DeviceTensor | ConvOperand, W: DeviceTensor, fresh_a: bool, fresh_w: bool,
              ybuf: PynqBuffer, passes: int, p_addr: int, out_mode: int
              ) -> tuple[int, list[int], float, tuple[float, ...]]:
        """Flush the fresh operands, run the IP, wait: (cycles, counters, wait, times t1..t4)."""
        m, k = A.shape
        n = W.shape[0]
        t1 = time.perf_counter()
        for op, fresh in ((A, fresh_a), (W, fresh_w)):
            if fresh:
                op.buffer[:op.nbytes].flush()
                self.traffic.to_device += op.nbytes
        t2 = time.perf_counter()
        conv_hw, conv_win = (A.conv_hw, A.conv_win) if isinstance(A, ConvOperand) else (0, 0)
        geo = _heads_geometry(A, W)
        self.accel.start(a=A.address, w=W.address, y=int(ybuf.physical_address), m=m, n=n, k=k,
                         a_type=regmap.encode_type(A.fmt), w_type=regmap.encode_type(W.fmt), passes=passes,
                         p=p_addr, out_mode=out_mode, conv_hw=conv_hw, conv_win=conv_win,
                         heads=regmap.encode_heads(geo))
        t3 = time.perf_counter()
        wait_s = self.call_timeout(m, n, k, A.fmt, W.fmt, A.conv if isinstance(A, ConvOperand) else None, geo)
        try:
            self.accel.wait(wait_s)
        except TimeoutError as e:
            self._fault = str(e)
            raise
        status, cycles = self.accel.output("status"), self.accel.cycles
        counters = [self.accel.output(r) for r in ("core_busy", "stall_in", "stall_out")]
        if status != regmap.ST_OK:
            why = regmap.STATUS.get(status, f"status {status}")
            raise RuntimeError(f"{regmap.TOP} refused the call: {why}")
        t4 = time.perf_counter()
        return cycles, counters, wait_s, (t1, t2, t3, t4)

