"""int8_pe, the int8 baseline PE of the cost report, against antq.reference (see baseline_pe)."""

import pytest
import simrun
from antq.core import arch
from baseline_pe import make_tests

random_operands, corner_operands = make_tests(bits=8)


@pytest.mark.parametrize("sim", simrun.SIMS)
def test_int8_pe(sim):
    simrun.run("int8_pe", sim, "test_int8_pe", {"ACC_W": arch.ACC_BITS})
