"""The ``ant_core`` AXI-Stream format (docs/contracts.md §10): config words, beats, exact timing.

The HLS data mover writes these beats, the RTL core and its Verilated harness read them, and the
tests and benchmarks build them with these functions, so every side speaks one format. The
config word's field positions are :mod:`antq.core.regmap`'s ``CFG_*`` constants (the generated
``hls/ant_config.h`` carries the same ones) and :data:`CFG_STATS`.

:func:`schedule` is the core's timing as closed-form rules: the cycle each input beat is taken
and each output beat is sent, and what the core's counters report, for any beat sequence, input
gaps and output backpressure. The Verilated core is checked against it beat by beat.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import arch, regmap
from .formats import KIND_IDS, Format

K_MAX = (1 << 24) - 1
"""Largest K of one job (the config word's 24-bit field)."""
CFG_STATS = 34
"""Config bit 34: with k = 0, a stats request (docs/contracts.md §10)."""
STATS_WORD = 1 << CFG_STATS
"""The stats request: a config word with only ``stats`` set."""
STATS_BEATS = 4
"""A stats answer: [total, busy, stall_in, stall_out] cycles (TLAST on the fourth)."""
RESERVED_MASK = ~((1 << (CFG_STATS + 1)) - 1) & ((1 << 64) - 1)
"""Config bits 63:35, which must be 0."""

CAPTURE = 4
"""A job's last step taken in cycle a is in PE (0, 0)'s shadow for a read issued in a + 4."""
OUT_DELAY = 2
"""A beat read (issued) in cycle i is on m_axis from cycle i + 2 on (one mux stage, m_axis)."""
LATENCY = CAPTURE + OUT_DELAY
"""L = 6: last step taken in cycle a -> first result beat in cycle a + 6 (output free, sink ready)."""
READ_AHEAD = 4
"""An emitting job's last step waits until the previous readout has at most 4 shadows left to read."""
OUT_SLOTS = 6
"""Output beats read and not yet sent, at most (mux stage, m_axis register, 5-entry FIFO)."""


def flight(rows: int, cols: int) -> int:
    """Cycles a step taken in cycle a stays in the array (a + 1 .. a + R + C + 1): R + C + 1."""
    return rows + cols + 1


def data_bits(rows: int, cols: int) -> int:
    """DATA_W of the input stream: 64 * ceil(4 (R + C) / 64), a whole number of the uint64 words
    a beat is carried in (a multiple of 32 alone would drop a beat's last 32 bits, e.g. 8x16)."""
    return 64 * -(-4 * (rows + cols) // 64)


def _side(f: Format, hi: bool) -> int:
    """One operand's 4-bit config field: kind id bits 1:0, signed bit 2, int8 high nibble bit 3."""
    return KIND_IDS[f.kind] | int(f.signed) << 2 | int(hi) << 3


def config_word(k: int, a: Format, w: Format, *, a_hi: bool = False, w_hi: bool = False,
                acc: bool = False, emit: bool = True) -> int:
    """Beat 0 of a job: K, both type ids and signedness, the int8 high-nibble flags, acc, emit.

    ``a``/``w`` are the 4-bit formats the array decodes (an int8 nibble is int4: the high
    nibble signed as the int8 is, the low nibble unsigned).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= K_MAX:
        raise ValueError(f"k must be an int in 1..{K_MAX}, got {k!r}")
    for name, f in (("a", a), ("w", w)):
        if not isinstance(f, Format) or f.bits != arch.CODE_BITS:
            raise ValueError(f"{name} must be a 4-bit antq Format, got {f!r}")
    for name, hi, f in (("a_hi", a_hi, a), ("w_hi", w_hi, w)):
        if hi and f.kind != "int":
            raise ValueError(f"{name} marks an int8 high nibble, but the format is {f.name}")
    return (int(k) | _side(a, a_hi) << regmap.CFG_A_SIDE | _side(w, w_hi) << regmap.CFG_W_SIDE
            | int(acc) << regmap.CFG_ACC | int(emit) << regmap.CFG_EMIT)


def job_beats(a_codes: np.ndarray, w_codes: np.ndarray, config: int, rows: int, cols: int) -> np.ndarray:
    """The K + 1 beats of one job as a (K + 1, DATA_W / 64) uint64 array (little-endian words).

    ``a_codes`` is (rows, K) and ``w_codes`` (cols, K), 4-bit codes; step k carries a_codes[i, k]
    at bits 4i+3:4i and w_codes[j, k] at bits 4R+4j+3:4R+4j.
    """
    a, w = np.asarray(a_codes), np.asarray(w_codes)
    if a.ndim != 2 or w.ndim != 2 or a.shape[0] != rows or w.shape[0] != cols or a.shape[1] != w.shape[1]:
        raise ValueError(f"need a (rows={rows}, K) and w (cols={cols}, K) code arrays with the same K; "
                         f"got a {a.shape} and w {w.shape}")
    for name, c in (("a", a), ("w", w)):
        if c.dtype.kind not in "iu" or (c.size and (int(c.min()) < 0 or int(c.max()) > 15)):
            raise ValueError(f"{name} codes must be integers in 0..15")
    k = a.shape[1]
    if k != config & K_MAX:
        raise ValueError(f"the config word says K={config & K_MAX} but the codes have K={k}")
    words = data_bits(rows, cols) // 64
    # nibble i of a step = row i (i < R), then column j at nibble R + j
    nib = np.concatenate([a, w]).T.astype(np.uint8)  # (K, R + C)
    nib = np.pad(nib, ((0, 0), (0, words * 16 - rows - cols)))
    packed = (nib[:, 0::2] | nib[:, 1::2] << 4).copy()  # (K, words * 8) bytes, little-endian
    beats = np.zeros((k + 1, words), np.uint64)
    beats[0, 0] = config
    beats[1:] = packed.view("<u8").reshape(k, words)
    return beats


def stats_beats(rows: int, cols: int) -> np.ndarray:
    """The stats request as a (1, DATA_W / 64) beat array."""
    beats = np.zeros((1, data_bits(rows, cols) // 64), np.uint64)
    beats[0, 0] = STATS_WORD
    return beats


def configs(beats: np.ndarray) -> list[int]:
    """The config words of a beat stream (jobs' step beats skipped), in order."""
    b = np.asarray(beats)
    out, n = [], 0
    while n < b.shape[0]:
        word = int(b[n, 0])
        out.append(word)
        n += 1 + (0 if word >> CFG_STATS & 1 else word & K_MAX)
    if n != b.shape[0]:
        raise ValueError(f"the stream ends inside a job: config word {out[-1]:#x} needs {n - b.shape[0]} "
                         "more step beats")
    return out


@dataclass
class Schedule:
    """The timing of one beat stream through ``ant_core`` (cycle 0 = the first cycle the stream runs).

    ``accept[n]`` is the cycle input beat n is taken, ``present[i]`` / ``transfer[i]`` the cycle
    output beat i is first on m_axis / is taken by the sink; ``snapshots`` the cycle of each stats
    answer's snapshot and ``stats`` its four words; ``total`` the cycles until the core is idle
    with every beat taken and sent (what the harness's ``antcore_stream`` returns).
    """

    accept: np.ndarray
    present: np.ndarray
    transfer: np.ndarray
    total: int
    snapshots: list[int] = field(default_factory=list)
    stats: list[tuple[int, int, int, int]] = field(default_factory=list)


class _Output:
    """The read engine and the output path: output beats in task order, with their cycles."""

    def __init__(self, ready: Callable[[int], bool] | None) -> None:
        self.ready = ready
        self.first: list[int] = []  # global index of each task's first beat
        self.cycles: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (issue, present, transfer)
        self.count = 0
        self.last_issue = -1

    def task(self, n: int, eligible: int) -> int:
        """Read a task of n beats that may start in cycle ``eligible``; return its first beat index."""
        start = max(eligible, self.last_issue + 1)
        if self.ready is None:  # the sink takes every beat at once: the slots never run out
            i = start + np.arange(n, dtype=np.int64)
            p = x = i + OUT_DELAY
        else:
            i, p, x = (np.zeros(n, np.int64) for _ in range(3))
            t = start
            for j in range(n):
                g = self.count + j
                if g >= OUT_SLOTS:  # a slot frees once the beat OUT_SLOTS back was taken
                    t = max(t, self.cycle(2, g - OUT_SLOTS, x) + 1)
                i[j] = t
                p[j] = max(t + OUT_DELAY, self.cycle(2, g - 1, x) + 1) if g else t + OUT_DELAY
                xt = int(p[j])
                while not self.ready(xt):
                    xt += 1
                x[j] = xt
                t += 1
        self.first.append(self.count)
        self.cycles.append((i, p, x))
        self.count += n
        self.last_issue = int(i[-1])
        return self.first[-1]

    def cycle(self, which: int, g: int, pending: np.ndarray | None = None) -> int:
        """Issue (0), present (1) or transfer (2) cycle of output beat g; ``pending`` holds the
        transfer cycles of the task being computed, for its own earlier beats."""
        if pending is not None and g >= self.count:
            return int(pending[g - self.count])
        t = bisect.bisect_right(self.first, g) - 1
        return int(self.cycles[t][which][g - self.first[t]])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.cycles:
            return tuple(np.zeros(0, np.int64) for _ in range(3))
        return tuple(np.concatenate([c[w] for c in self.cycles]) for w in range(3))


def schedule(config_words: Sequence[int], rows: int, cols: int, *, gaps: Sequence[int] | None = None,
             ready: Callable[[int], bool] | None = None) -> Schedule:
    """The exact timing of ``ant_core`` (R x C) on a stream, by the rules of docs/contracts.md §10.

    ``config_words`` are the stream's config words in order (a job's K step beats follow its
    config word; :func:`configs` extracts them from a beat array). ``gaps[n]`` (default 0) is the
    number of cycles the source waits after taking beat n - 1 before it offers beat n, which it
    then holds valid until taken; ``ready(t)`` (default always) is the sink's tready in cycle t.
    The core starts idle at cycle 0 with its counters just cleared.
    """
    kinds: list[tuple[str, int, bool]] = []  # (job | stats | noop, k, emit): acc changes no timing
    for word in config_words:
        word = int(word)
        if word & RESERVED_MASK or word < 0:
            raise ValueError(f"config word {word:#x} sets reserved bits 63:35")
        k = word & K_MAX
        if word >> CFG_STATS & 1:
            if word != STATS_WORD:
                raise ValueError(f"a stats request is exactly {STATS_WORD:#x}, not {word:#x}")
            kinds.append(("stats", 0, False))
        else:
            kinds.append(("job" if k else "noop", k, bool(word >> regmap.CFG_EMIT & 1)))
    nbeats = sum(1 + k for _, k, _ in kinds)
    if gaps is not None and len(gaps) != nbeats:
        raise ValueError(f"gaps must have one entry per beat ({nbeats}), got {len(gaps)}")
    gap = np.zeros(nbeats, np.int64) if gaps is None else np.asarray(gaps, np.int64)
    if gap.size and gap.min() < 0:
        raise ValueError("gaps must be >= 0")
    npe = rows * cols
    out = _Output(ready)
    accept = np.zeros(nbeats, np.int64)
    offer = np.zeros(nbeats, np.int64)
    is_stats = np.zeros(nbeats, bool)
    held_from = np.full(nbeats, np.iinfo(np.int64).min)  # a last step may be taken from this cycle
    tasks: list[tuple[int, int]] = []  # (cycle the task was committed, its last output beat)
    stat_tasks: list[int] = []  # first output beat of each stats answer
    readout: int | None = None  # first output beat of the last committed readout
    prev_stats: int | None = None
    t, n = -1, 0  # t: the cycle the previous beat was taken
    for kind, k, emit in kinds:
        o = t + 1 + int(gap[n])
        offer[n] = o
        if kind == "stats":
            is_stats[n] = True
            # held while the previous stats answer waits for its first read
            t = max(o, out.cycle(0, prev_stats)) if prev_stats is not None else o
            accept[n] = t
            prev_stats = out.task(STATS_BEATS, t + 1)
            stat_tasks.append(prev_stats)
            tasks.append((t, prev_stats + STATS_BEATS - 1))
            n += 1
            continue
        accept[n] = t = o
        n += 1
        if kind == "noop":
            continue
        steps = k - 1 if emit else k
        if gaps is None:
            accept[n:n + steps] = t + 1 + np.arange(steps)
            offer[n:n + steps] = accept[n:n + steps]
        else:
            for j in range(steps):
                offer[n + j] = accept[n + j] = accept[n + j - 1] + 1 + int(gap[n + j])
        if steps:
            t = int(accept[n + steps - 1])
        n += steps
        if emit:
            o = t + 1 + int(gap[n])
            offer[n] = o
            if readout is not None:  # the previous readout: started, <= 4 left, all fit in the slots
                h = out.cycle(0, readout + max(0, npe - READ_AHEAD - 1)) + 1
                if readout + npe - OUT_SLOTS - 1 >= 0:
                    h = max(h, out.cycle(2, readout + npe - OUT_SLOTS - 1) + 1)
                held_from[n] = h
                o = max(o, h)
            accept[n] = t = o
            readout = out.task(npe, t + CAPTURE)
            tasks.append((t, readout + npe - 1))
            n += 1
    issue, present, transfer = out.arrays()
    steps_at = accept[_step_mask(kinds, nbeats)]
    d = flight(rows, cols)
    total = max([int(accept[-1]) + 1 if nbeats else 0, int(steps_at.max()) + d + 1 if steps_at.size else 0,
                 int(transfer.max()) + 1 if transfer.size else 0])
    sched = Schedule(accept, present, transfer, total)
    if stat_tasks:
        _counters(sched, [int(issue[b]) for b in stat_tasks], steps_at, d, tasks, offer, is_stats,
                  held_from)
    return sched


def _step_mask(kinds: list[tuple[str, int, bool]], nbeats: int) -> np.ndarray:
    mask = np.zeros(nbeats, bool)
    n = 0
    for _, k, _ in kinds:
        mask[n + 1:n + 1 + k] = True
        n += 1 + k
    return mask


def _union(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of inclusive intervals [starts, ends] as sorted disjoint intervals."""
    keep = starts <= ends
    starts, ends = starts[keep], ends[keep]
    if not starts.size:
        return starts, ends
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], np.maximum.accumulate(ends[order])
    new = np.concatenate([[True], starts[1:] > ends[:-1] + 1])  # a gap before this interval
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:] - 1, [starts.size - 1]])
    return starts[first], ends[last]


def _covered(union: tuple[np.ndarray, np.ndarray], lo: int, hi: int) -> int:
    """Cycles in lo..hi (inclusive) covered by a union of disjoint intervals."""
    a, b = np.maximum(union[0], lo), np.minimum(union[1], hi)
    return int(np.maximum(b - a + 1, 0).sum())


def _counters(s: Schedule, snaps: list[int], steps_at: np.ndarray, d: int, tasks: list[tuple[int, int]],
              offer: np.ndarray, is_stats: np.ndarray, held_from: np.ndarray) -> None:
    """The four counters of every stats answer, from the beats' cycles (docs/contracts.md §10)."""
    # busy: every step's flight and every output task from its commit to its last beat's transfer
    task_acc = np.array([acc for acc, _ in tasks], np.int64)
    task_end = s.transfer[np.array([last for _, last in tasks], np.int64)]
    busy = _union(np.concatenate([steps_at + 1, task_acc + 1]), np.concatenate([steps_at + d, task_end]))
    # input gaps in which the core was ready and expected a beat: after a beat that is not a stats
    # request, before the next is offered (and, before a held last step, once it could be taken)
    lo = np.maximum(s.accept[:-1] + 1, held_from[1:])
    hi = offer[1:] - 1
    expect = ~is_stats[:-1]
    lo, hi = lo[expect], hi[expect]
    if offer.size and not is_stats[-1]:  # after the last beat, until the last snapshot
        lo, hi = np.append(lo, s.accept[-1] + 1), np.append(hi, snaps[-1])
    idle_in = _union(lo, hi)
    stalled_out = _union(s.present, s.transfer - 1)
    prev = -1
    for snap in snaps:
        s.snapshots.append(snap)
        s.stats.append((snap - prev, _covered(busy, prev + 1, snap), _covered(idle_in, prev + 1, snap),
                        _covered(stalled_out, prev + 1, snap)))
        prev = snap


# ---- the closed form of schedule() at full rate (the emulator's core model) ------------------------

def core_latency(rows: int, cols: int) -> int:
    """Cycles from a job's last step taken to its first result on m_axis, output free: L = 6."""
    return LATENCY


class CoreTiming:
    """ant_core's timing, job by job, for a stream offered at full rate to a sink that is always
    ready: :func:`schedule`'s rules (docs/contracts.md §10) in closed form, which the C++ core
    model (hls/ant_core_timing.h, the same code) and the data mover's cycle model use. The tests
    check it against :func:`schedule` and both against the Verilated core.

    Cycle 0 is the first beat's on an idle core with cleared counters. At full rate only the last
    step of an emitting job is ever held: until the previous readout (first read ``readout``) has
    at most READ_AHEAD shadows left, i.e. cycle ``readout + max(1, R*C - 4)``; its own readout is
    read from 4 cycles after that step, one beat per cycle, and on m_axis 2 cycles after each read.
    """

    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols, self.npe = rows, cols, rows * cols
        self.t = 0  # the cycle the core takes the next beat
        self.readout: int | None = None  # first read of the last emitting job's readout
        self.read_end = -1  # the cycle the last output beat so far is read
        self.out_end = 0  # the cycle after the sink took the last output beat so far
        self.snap = -1  # the cycle of the last stats snapshot (-1: since reset)

    def job(self, k: int, emit: bool) -> None:
        """A job of k >= 1 steps: its config beat now, its steps in the next cycles."""
        if k < 1:
            raise ValueError(f"a job has at least one step, got k = {k}")
        last = self.t + k
        if emit:
            if self.readout is not None:
                last = max(last, self.readout + max(1, self.npe - READ_AHEAD))
            self.readout = max(last + CAPTURE, self.read_end + 1)
            self.read_end = self.readout + self.npe - 1
            self.out_end = self.read_end + OUT_DELAY + 1
        self.t = last + 1

    def stats(self) -> tuple[int, int, int, int]:
        """A stats request now: its answer (total, busy, stall_in, stall_out), which clears them.

        At full rate the core is busy in every cycle between two snapshots (a step in flight or
        output pending), except the first beat's own cycle after reset, and never stalls."""
        q = max(self.t, self.snap)  # held until the previous stats answer was started (its snapshot)
        s = max(q + 1, self.read_end + 1)  # the snapshot: when the answer's first beat is read
        total = s - self.snap
        busy = total - 1 if self.snap < 0 else total
        self.snap, self.t = s, q + 1
        self.read_end = s + STATS_BEATS - 1
        self.out_end = self.read_end + OUT_DELAY + 1
        return total, busy, 0, 0
