"""ant_core_bb (hls/ant_core_bb.v), the Vitis RTL-blackbox wrapper: one ant_gemm call per ap_start.

A cycle-level caller drives both FIFO-protocol streams and ap_ctrl_chain itself: a source FIFO
(s_axis_dout / s_axis_empty_n, popped on s_axis_read) fed by a producer with random gaps, which
holds the next call's beats, and a few beats past the last call, behind the current call; a sink
that takes m_axis_din on m_axis_write while m_axis_full_n, with random backpressure; and random
ap_ce low cycles. A call is what hls/ant_gemm.cpp feed() sends: a stats request, random jobs
(acc/emit chains, mixed types, int8 nibble passes, a k = 0 no-op word), a closing stats request.

Every cycle: no FIFO read or write while ap_ce is low or outside a call, no read past the call's
closing stats request, ap_idle / ap_done / ap_ready as ap_ctrl_chain says (ap_idle low from the
start until ap_continue; ap_done rises once per call, after the last output beat was written,
and holds until ap_continue is taken; ap_ready in its first cycle with ap_ce high, once), and
the control state holds while ap_ce is low. Every call: each result against antq.core.reference,
tlast on the last beat of every answer, both stats answers. At full rate and under backpressure
alone the wrapper is cycle-exact against antq.core.stream.schedule: the beats taken and sent,
the closing stats answer's four counters, and ap_done one cycle after the core's idle.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import cocotb
import numpy as np
import pytest
import simrun
from antq.core import arch, formats, regmap, stream
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly
from helpers import passes, tile_product

WRAPPER = simrun.ROOT / "hls" / "ant_core_bb.v"
HW = regmap.array_formats()
I8 = [formats.get("int", 8, s) for s in (False, True)]
NOOP = 1 << regmap.CFG_EMIT | 1 << regmap.CFG_ACC  # k = 0 and no stats: taken and ignored


def bursts(rng, p, n, longest=5):
    """n cycles of a pause pattern: True with probability p, in bursts of 1..longest cycles."""
    out = np.zeros(n, bool)
    t = 0
    while t < n:
        b = int(rng.integers(1, longest + 1))
        out[t:t + b] = bool(rng.random() < p)
        t += b
    return out


@dataclass
class Call:
    """One ap_start: its stream items and how the caller handshakes; the run fills in the rest."""

    items: list                 # (beats, want): want (R, C) results, "stats", or None (no output)
    start_delay: int = 0        # cycles from the previous call's ap_continue to ap_start
    cont_delay: int | None = 0  # cycles from ap_done to ap_continue; None: ap_continue always high
    keep_start: bool = False    # ap_start stays high after ap_ready: the next call is queued at once
    reads: list = field(default_factory=list)   # cycle of every beat read
    writes: list = field(default_factory=list)  # (cycle, tdata, tlast) of every beat written
    done: int = -1              # the cycle ap_done rose
    readies: list = field(default_factory=list)  # cycles with ap_ready

    @property
    def n_out(self):
        return sum(stream.STATS_BEATS if isinstance(w, str) else w.size for _, w in self.items
                   if w is not None)


class TB:
    def __init__(self, dut):
        self.dut = dut
        env = simrun.tb_env()
        self.rows, self.cols = env["rows"], env["cols"]
        self.npe = self.rows * self.cols
        self.data_w = stream.data_bits(self.rows, self.cols)
        assert len(dut.s_axis_dout) == self.data_w + 1 and len(dut.m_axis_din) == 33
        self.rng = np.random.default_rng(cocotb.RANDOM_SEED)
        self.model = np.zeros((self.rows, self.cols), np.int64)
        # ce-low situations seen (see run)
        self.frozen = {"input": 0, "output": 0, "start": 0, "continue": 0, "ready": 0}
        cocotb.start_soon(Clock(dut.ap_clk, 10, "ns").start())

    async def reset(self, cycles=3):
        d = self.dut
        await FallingEdge(d.ap_clk)
        d.ap_rst.value = 1
        for s in (d.ap_start, d.ap_continue, d.s_axis_empty_n, d.s_axis_dout, d.m_axis_full_n):
            s.value = 0
        d.ap_ce.value = 1
        for _ in range(cycles):
            await FallingEdge(d.ap_clk)
        d.ap_rst.value = 0
        self.model[:] = 0

    # ---- calls and their expected output ----
    def job(self, ca, fa, ha, cw, fw, hw, acc, emit):
        """Beats of one job and the output it must produce (None without emit); updates the model."""
        cfg = stream.config_word(ca.shape[1], fa, fw, a_hi=ha, w_hi=hw, acc=acc, emit=emit)
        if not acc:
            self.model[:] = 0
        self.model = (self.model + tile_product(ca, fa, ha, cw, fw, hw) + 2**31) % 2**32 - 2**31
        return stream.job_beats(ca, cw, cfg, self.rows, self.cols), (self.model.copy() if emit else None)

    def call_items(self, n, kmax=60):
        """A data mover's call: stats, n random jobs (and their int8 passes) with a no-op word
        among them, stats. The first job clears (acc = 0), as feed()'s first pass does."""
        pairs = list(itertools.product(HW, HW)) + list(itertools.product(I8, I8))
        jobs = []
        for i in range(n):
            fa, fw = pairs[int(self.rng.integers(len(pairs)))]
            k = int(self.rng.choice([self.rng.integers(1, 6), self.npe - 1, self.npe,
                                     self.rng.integers(1, kmax)]))
            k = max(1, min(k, arch.max_k(fa, fw)))
            a = self.rng.integers(0, fa.ncodes, (self.rows, k)).astype(np.uint8)
            w = self.rng.integers(0, fw.ncodes, (self.cols, k)).astype(np.uint8)
            chain = list(itertools.product(passes(a, fa), passes(w, fw)))
            keep = i > 0 and bool(self.rng.integers(2))
            for j, ((ca, pfa, ha), (cw, pfw, hw)) in enumerate(chain):
                emit = j == len(chain) - 1 or bool(self.rng.random() < 0.2)
                jobs.append(self.job(ca, pfa, ha, cw, pfw, hw, acc=keep or j > 0, emit=emit))
        noop = np.zeros((1, self.data_w // 64), np.uint64)
        noop[0, 0] = NOOP
        jobs.insert(int(self.rng.integers(1, len(jobs) + 1)), (noop, None))
        stats = (stream.stats_beats(self.rows, self.cols), "stats")
        return [stats, *jobs, stats]

    def words(self, items):
        """(tdata, tlast) of every beat: tlast on a job's last step, as feed() sets it."""
        out = []
        for beats, _ in items:
            for n, b in enumerate(beats):
                word = sum(int(x) << (64 * i) for i, x in enumerate(b))
                out.append((word, int(n > 0 and n == len(beats) - 1)))
        return out

    # ---- the cycle-level caller ----
    async def run(self, calls, gaps=0.0, full=0.0, ce_low=0.0, ce_burst=5, hold=0, depth=8, tail=30):
        """Run ``calls`` one ap_start each and check the protocol every cycle. ``gaps``: the
        producer skips a cycle with this probability (0: the FIFO holds every beat from the
        start); ``full``: the sink is full; ``ce_low``: ap_ce is low (in bursts up to ce_burst);
        ``hold``: ap_ce is also low for the first ``hold`` cycles of every ap_start in idle and
        the first ``hold`` + 1 of every ap_done (its first included). Returns the sink's ready
        pattern (indexed by cycle)."""
        d, rng = self.dut, self.rng
        words, ends = [], []
        for c in calls:
            words += self.words(c.items)
            ends.append(len(words))
        # past the last call: never to be read
        words += [(stream.STATS_WORD, 0), (NOOP, 0), (1, 1)]
        cycles = 40 * len(words) + 200 * len(calls) + tail + 1000
        produce = ~bursts(rng, gaps, cycles) if gaps else None
        full_n = ~bursts(rng, full, cycles) if full else np.ones(cycles, bool)
        ce = ~bursts(rng, ce_low, cycles, ce_burst) if ce_low else np.ones(cycles, bool)
        avail = len(words) if produce is None else 0
        head, ci, t, ack = 0, 0, 0, 0
        phase, start, ready_due, start_t = "idle", 0, False, None
        while True:
            assert t < cycles, f"call {ci} not done after {t} cycles"
            c = calls[ci] if ci < len(calls) else None
            await FallingEdge(d.ap_clk)
            if c is not None and phase == "idle" and t >= ack + c.start_delay:
                start = 1
            cont = int(c is not None and (c.cont_delay is None or
                                          (phase == "done" and t >= c.done + c.cont_delay)))
            if phase == "idle" and start and start_t is None:
                start_t = t
            has, en = head < avail, bool(ce[t])
            if hold and ((phase == "idle" and start and t < start_t + hold) or
                         (phase == "busy" and int(d.ap_done.value)) or  # ap_done is a register
                         (phase == "done" and t <= c.done + hold)):
                en = False
            d.s_axis_empty_n.value = int(has)
            word, last = words[head] if has else (stream.STATS_WORD, 1)  # garbage when empty
            d.s_axis_dout.value = last << self.data_w | word
            d.m_axis_full_n.value = int(full_n[t])
            d.ap_ce.value = int(en)
            d.ap_start.value = start
            d.ap_continue.value = cont
            await ReadOnly()
            read, write = int(d.s_axis_read.value), int(d.m_axis_write.value)
            idle, done, ready = int(d.ap_idle.value), int(d.ap_done.value), int(d.ap_ready.value)
            if not en:
                self.frozen["input"] += phase == "busy" and has
                waiting = int(d.core.m_axis_tvalid.value)  # the core has a beat for the sink
                self.frozen["output"] += phase == "busy" and bool(full_n[t]) and waiting
                self.frozen["start"] += phase == "idle" and start
                self.frozen["continue"] += phase == "done" and cont
            # the FIFOs
            if read:
                assert en and has, f"cycle {t}: FIFO read with ap_ce={int(en)}, empty_n={int(has)}"
                end = ends[min(ci, len(ends) - 1)]
                assert phase == "busy" and head < end, \
                    f"cycle {t}: FIFO read of beat {head} ({phase}; the call ends at beat {end})"
                c.reads.append(t)
                head += 1
            if write:
                assert en and full_n[t], \
                    f"cycle {t}: FIFO write with ap_ce={int(en)}, full_n={int(full_n[t])}"
                assert phase == "busy", f"cycle {t}: FIFO write while {phase}"
                v = int(d.m_axis_din.value)
                c.writes.append((t, v & 0xFFFFFFFF, v >> 32))
            # ap_ctrl_chain
            assert idle == (phase == "idle"), f"cycle {t}: ap_idle={idle} while {phase}"
            if phase == "busy" and done:
                assert not write and len(c.writes) == c.n_out, \
                    f"cycle {t}: ap_done with {len(c.writes)} of {c.n_out} output beats written"
                assert head == ends[ci], f"cycle {t}: ap_done before the closing stats request was read"
                phase, ready_due, c.done = "done", True, t
            assert done == (phase == "done"), f"cycle {t}: ap_done={done} while {phase}"
            want_ready = phase == "done" and ready_due and en
            assert ready == want_ready, \
                f"cycle {t}: ap_ready={ready} (ap_done={done}, ap_ce={int(en)}, shown: {not ready_due})"
            self.frozen["ready"] += phase == "done" and ready_due and not en
            if ready:
                c.readies.append(t)
                ready_due = False
                start = int(c.keep_start)
            # what the clock edge does
            if phase == "idle" and start and en:
                phase, start_t = "busy", None
                if c is None:
                    raise AssertionError(f"cycle {t}: started without a call")
            elif phase == "done" and cont and en:
                assert not ready_due
                phase, ack = "idle", t + 1
                ci += 1
            if produce is not None and produce[t] and avail < len(words) and avail - head < depth:
                avail += 1
            t += 1
            if ci == len(calls):
                tail -= 1
                if tail < 0:
                    break
        assert head == ends[-1], "a beat past the last call was read"
        for c in calls:
            assert len(c.readies) == 1 and c.readies[0] >= c.done, f"ap_ready in cycles {c.readies}"
        return full_n

    # ---- checks after a run ----
    def answers(self, c):
        """Check a call's output (results, tlast); return its two stats answers."""
        got, i, stats = c.writes, 0, []
        for n_item, (_, want) in enumerate(c.items):
            if want is None:
                continue
            n = stream.STATS_BEATS if isinstance(want, str) else self.npe
            seg = got[i:i + n]
            i += n
            assert [b[2] for b in seg] == [0] * (n - 1) + [1], f"item {n_item}: tlast {[b[2] for b in seg]}"
            vals = np.array([b[1] for b in seg], np.uint32)
            if isinstance(want, str):
                stats.append(tuple(int(v) for v in vals))
            else:
                y = vals.view(np.int32).reshape(self.rows, self.cols)
                assert np.array_equal(y, want), f"item {n_item}:\n{y}\n!=\n{want}"
        assert i == len(got) and len(stats) == 2
        return stats

    def check_schedule(self, c, full_n):
        """At full input rate: the call through the wrapper is the core's schedule, shifted to its
        first read; the closing answer's counters are the model's; ap_done follows idle by one."""
        stats = self.answers(c)
        t0 = c.reads[0]
        beats = np.concatenate([b for b, _ in c.items])
        ready = None if full_n[t0:].all() else (lambda u: bool(full_n[t0 + u]))
        sched = stream.schedule(stream.configs(beats), self.rows, self.cols, ready=ready)
        assert np.array_equal(np.array(c.reads) - t0, sched.accept), "beats read in other cycles"
        assert np.array_equal(np.array([w[0] for w in c.writes]) - t0, sched.transfer), \
            "beats written in other cycles"
        assert c.done - t0 == sched.total + 1, f"ap_done in cycle {c.done - t0}, core idle in {sched.total}"
        assert stats[1] == sched.stats[1], f"closing stats {stats[1]}, model {sched.stats[1]}"
        return sched


@cocotb.test()
async def full_rate_calls_are_cycle_exact(dut):
    """The FIFO never empty, the sink never full, ap_ce high: two calls in a row, each taken and
    answered exactly on the core's schedule; the closing answer counts the call (busy all along,
    no stalls)."""
    tb = TB(dut)
    await tb.reset()
    calls = [Call(tb.call_items(6)), Call(tb.call_items(6), start_delay=3, cont_delay=None)]
    full_n = await tb.run(calls)
    for c in calls:
        sched = tb.check_schedule(c, full_n)
        total, busy, stall_in, stall_out = sched.stats[1]
        assert busy == total and stall_in == stall_out == 0


@cocotb.test()
async def backpressure_alone_is_cycle_exact(dut):
    """A full sink now and then: still the core's schedule beat by beat, stall_out counted."""
    tb = TB(dut)
    await tb.reset()
    calls = [Call(tb.call_items(6), cont_delay=2), Call(tb.call_items(6), start_delay=1)]
    full_n = await tb.run(calls, full=0.4)
    assert sum(tb.check_schedule(c, full_n).stats[1][3] for c in calls) > 0


@cocotb.test()
async def calls_with_gaps_backpressure_and_ce(dut):
    """Empty FIFO gaps, a full sink and ap_ce low cycles at random, four calls with different
    handshakes (ap_continue late or always high; the next ap_start held from the previous
    ap_ready): every result exact, both stats answers, nothing read past a call."""
    tb = TB(dut)
    await tb.reset()
    calls = [Call(tb.call_items(6), cont_delay=4, keep_start=True),
             Call(tb.call_items(6), cont_delay=None),
             Call(tb.call_items(6), start_delay=5, cont_delay=1, keep_start=True),
             Call(tb.call_items(6), cont_delay=0)]
    await tb.run(calls, gaps=0.3, full=0.4, ce_low=0.25)
    for c in calls:
        total, busy, stall_in, stall_out = tb.answers(c)[1]
        # stall_in and stall_out may count the same cycle (a beat awaited while a result waits for
        # the sink: contracts §10 defines them apart), so each is bounded by the call, not their sum
        assert 0 < busy <= total and stall_in < total and stall_out < total


@cocotb.test()
async def ce_low_freezes_the_wrapper(dut):
    """Long ap_ce low spells land while beats wait in the FIFO, results wait for the sink,
    ap_start waits in idle, ap_continue in done and ap_ready in ap_done's first cycle: no read,
    no write, no state change, and ap_ready only once ap_ce is high."""
    tb = TB(dut)
    await tb.reset()
    calls = [Call(tb.call_items(4), cont_delay=0), Call(tb.call_items(4), start_delay=2, cont_delay=None)]
    await tb.run(calls, gaps=0.1, full=0.2, ce_low=0.5, ce_burst=12, hold=3)
    for c in calls:
        tb.answers(c)
    assert all(tb.frozen.values()), f"ap_ce low spells did not cover every situation: {tb.frozen}"


SIZES = [(2, 2), (3, 5), (4, 4)]


@pytest.mark.parametrize("rows,cols", SIZES, ids=[f"{r}x{c}" for r, c in SIZES])
def test_ant_core_bb(rows, cols, monkeypatch):
    # simrun builds overlay/rtl; the wrapper lives in hls/
    rtl = simrun.sources
    monkeypatch.setattr(simrun, "sources", lambda: [WRAPPER, *rtl()])
    simrun.run("ant_core_bb", "verilator", "test_ant_core_bb", {"ROWS": rows, "COLS": cols},
               tb_env={"rows": rows, "cols": cols})
