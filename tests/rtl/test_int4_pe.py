"""int4_pe, the int4 baseline PE of the cost report, against antq.reference (see baseline_pe)."""

import pytest
import simrun
from antq.core import arch
from baseline_pe import make_tests

random_operands, corner_operands = make_tests(bits=4)


@pytest.mark.parametrize("sim", simrun.SIMS)
def test_int4_pe(sim):
    simrun.run("int4_pe", sim, "test_int4_pe", {"ACC_W": arch.ACC_BITS})
