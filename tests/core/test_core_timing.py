"""stream.CoreTiming, the closed form the emulator's core model uses, equals stream.schedule (the
exact rules of docs/contracts.md §10 that the Verilated core is checked against) at full rate."""

from __future__ import annotations

import pytest
from antq.core import formats, stream
from hypothesis import given, settings
from hypothesis import strategies as st

INT4S = formats.get("int", 4, True)


def _word(k: int, acc: bool, emit: bool) -> int:
    return stream.config_word(k, INT4S, INT4S, acc=acc, emit=emit)


def _closed_form(items: list[tuple[str, int, bool]], rows: int, cols: int):
    """CoreTiming over the items: (first present cycle of each readout, each stats answer, end)."""
    core = stream.CoreTiming(rows, cols)
    presents, answers = [], []
    for kind, k, emit in items:
        if kind == "stats":
            answers.append(core.stats())
            presents.append(core.read_end - stream.STATS_BEATS + 1 + stream.OUT_DELAY)
        else:
            core.job(k, emit)
            if emit:
                presents.append(core.readout + stream.OUT_DELAY)
    return presents, answers, core


def _exact(items: list[tuple[str, int, bool]], rows: int, cols: int):
    words = [stream.STATS_WORD if kind == "stats" else _word(k, False, emit) for kind, k, emit in items]
    s = stream.schedule(words, rows, cols)
    firsts, i = [], 0
    for kind, _k, emit in items:  # the first output beat of each task, in order
        if kind == "stats" or emit:
            firsts.append(int(s.present[i]))
            i += stream.STATS_BEATS if kind == "stats" else rows * cols
    return firsts, s


ITEMS = st.lists(st.one_of(
    st.tuples(st.just("job"), st.integers(1, 300), st.booleans()),
    st.tuples(st.just("job"), st.integers(1, 8), st.just(True)),  # short emitting jobs: held steps
    st.tuples(st.just("stats"), st.just(0), st.just(False))), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(dims=st.sampled_from([(1, 1), (1, 4), (2, 2), (2, 3), (3, 5), (4, 4), (8, 8), (16, 16)]), body=ITEMS)
def test_closed_form_equals_the_schedule_at_full_rate(dims, body):
    rows, cols = dims
    items = [("stats", 0, False), *body, ("stats", 0, False)]  # the data mover's call
    presents, answers, core = _closed_form(items, rows, cols)
    firsts, s = _exact(items, rows, cols)
    assert presents == firsts
    assert answers == s.stats
    assert core.snap == s.snapshots[-1]
    assert core.out_end == int(s.transfer[-1]) + 1


def test_a_long_job_never_waits_and_a_short_one_waits_for_the_readout():
    rows = cols = 16
    core = stream.CoreTiming(rows, cols)
    core.stats()
    core.job(1024, True)
    core.job(1024, True)  # K + 1 >= R*C: the previous readout is long done
    assert core.t == 1 + 2 * 1025
    short = stream.CoreTiming(rows, cols)
    short.stats()
    short.job(8, True)
    first = short.readout
    short.job(8, True)  # its last step waits for the previous readout: first + R*C - 4
    assert short.t == first + rows * cols - stream.READ_AHEAD + 1
    assert short.readout == short.t - 1 + stream.CAPTURE


def test_the_call_counters_are_busy_throughout():
    core = stream.CoreTiming(8, 8)
    first = core.stats()
    assert first == (2, 1, 0, 0)  # the snapshot of the opening request, one cycle after reset
    for _ in range(3):
        core.job(100, True)
    total, busy, stall_in, stall_out = core.stats()
    assert busy == total and stall_in == stall_out == 0
    assert total == core.snap - 1


def test_a_job_needs_a_step():
    with pytest.raises(ValueError, match="at least one step"):
        stream.CoreTiming(4, 4).job(0, True)
