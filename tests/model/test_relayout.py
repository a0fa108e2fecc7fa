"""IntegerModel.run keeps a value a runtime left on the device through ops that only move its
elements (hostops.LAYOUT_OPS): they move its index (DeviceValue.relayout); any other op fetches it."""

import numpy as np
import pytest
from antq.core import formats
from antq.core.quantize import QuantizedTensor
from antq.model import graph
from antq.model.graph import DeviceValue, GemmLayer, IntegerModel, Node, Requant

I4S, I4U = formats.get("int", 4, True), formats.get("int", 4, False)


class Held(DeviceValue):
    """A device value stand-in: the requantized values, fetched only by materialize()."""

    def __init__(self, values: np.ndarray, log: list, index: np.ndarray | None = None) -> None:
        self.values, self.log, self.batch = values, log, values.shape[0]
        self.index = np.arange(values.size).reshape(values.shape) if index is None else index

    def relayout(self, op):
        self.log.append("relayout")
        return Held(self.values, self.log, op(self.index))

    def shaped(self):
        self.log.append("shape")
        return self.index

    def materialize(self) -> np.ndarray:
        self.log.append("fetch")
        return self.values.reshape(-1)[self.index]


def _model(tail: list[Node]) -> IntegerModel:
    rng = np.random.default_rng(0)
    w = QuantizedTensor(rng.integers(0, 16, (12, 6)).astype(np.uint8), kind="int", bits=4, signed=True,
                        scale=np.full(12, 0.05, np.float32), channel_axis=0)
    layer = GemmLayer("fc", "linear", w, np.zeros(12, np.float32), I4S, np.float32(0.1), (4, 6),
                      out=Requant(I4U, np.float32(0.2), "relu", "next"))
    return IntegerModel([Node("x", "input", kwargs={"shape": [4, 6], "dtype": "float32"}),
                         Node("fc", "gemm", [{"ref": "x"}], layer=layer), *tail])


def _requantize(log):
    def requantize(a, w, p, layer, batch):  # the layer's own epilogue, kept "on the device"
        y = graph.requantized(graph.reference.gemm(a, w), p, layer.out)
        return Held(layer.output_layout(y, batch), log)
    return requantize


@pytest.mark.parametrize("tail, want", [
    # transpose, reshape, getitem: moved as indices, one fetch at the output
    ([Node("t", "transpose", [{"ref": "fc"}, 1, 2]), Node("r", "reshape", [{"ref": "t"}, -1, 12, 4]),
      Node("g", "getitem", [{"ref": "r"}, [slice(None), slice(2, 9)]]),
      Node("out", "output", [{"ref": "g"}])],
     ["relayout", "relayout", "relayout", "fetch"]),
    # a computing op fetches first
    ([Node("a", "add", [{"ref": "fc"}, 1.0]), Node("out", "output", [{"ref": "a"}])], ["fetch"]),
    # shape reads (HF attention's context.size()[:-2] + (d,)) are answered from the indices: the
    # value stays for the reshape they feed
    ([Node("s", "size", [{"ref": "fc"}, 0]), Node("d", "dim", [{"ref": "fc"}]),
      Node("h", "getattr", [{"ref": "fc"}, "shape"]), Node("g", "getitem", [{"ref": "h"}, slice(None, -1)]),
      Node("sh", "add", [{"ref": "g"}, [3, 4]]), Node("r", "reshape", [{"ref": "fc"}, {"ref": "sh"}]),
      Node("out", "output", [{"ref": "r"}])],
     ["shape", "shape", "shape", "relayout", "fetch"]),
    # the value also in a layout op's other argument: fetched, then the op runs on the host
    ([Node("e", "expand", [{"ref": "fc"}, {"ref": "fc"}]), Node("out", "output", [{"ref": "e"}])],
     None),
])
def test_layout_ops_move_indices_and_give_the_same_values(tail, want):
    model = _model(tail)
    x = np.random.default_rng(1).normal(0, 0.3, (3, 4, 6)).astype(np.float32)
    log: list = []
    if want is None:  # expand(x, x) is no valid expand: the error names the node, as without the device
        with pytest.raises(ValueError, match="node 'e' \\(expand\\)"):
            model.run(x)
        with pytest.raises(ValueError, match="node 'e' \\(expand\\)"):
            model.run(x, requantize=_requantize(log))
        assert log == ["fetch"]
        return
    ref = model.run(x)
    assert np.array_equal(model.run(x, requantize=_requantize(log)), ref)
    assert log == want
