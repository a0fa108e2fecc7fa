"""Brevitas (Xilinx's PyTorch quantization library) as a peer in the report: its W4A4 PTQ of the same model.

Optional: ``pip install brevitas==0.13.4`` (it keeps torch 2.13.0). The recipe is the best of
Brevitas' own ImageNet PTQ example (``brevitas_examples``, layerwise backend: an input and a weight
quantizer per Linear layer, the placement antq uses): layerwise activation equalization (alpha
0.5), then symmetric int4 weights per output channel and int4 activations per tensor, both with
MSE-searched scales, float scales and float bias, every layer at 4 bits.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

RECIPE = ("layerwise activation equalization (alpha 0.5); int4 symmetric weights per channel and int4 "
          "activations per tensor, MSE-searched float scales; float bias; first and last layers at 4 bits "
          "too")


def quantize(model: nn.Module, calib: dict) -> tuple[nn.Module, str]:
    """(Brevitas-quantized copy of ``model``, the recipe) calibrated on the keyword inputs ``calib``."""
    from brevitas.graph.calibrate import calibration_mode
    from brevitas.graph.equalize import activation_equalization_mode
    from brevitas_examples.imagenet_classification.ptq.ptq_common import quantize_model

    m = copy.deepcopy(model).eval()
    inputs = {k: torch.from_numpy(v) for k, v in calib.items()}
    with torch.no_grad():
        with activation_equalization_mode(m, alpha=0.5, layerwise=True, add_mul_node=True):
            m(**inputs)
    m = quantize_model(m, backend="layerwise", weight_bit_width=4, act_bit_width=4, bias_bit_width=None,
                       weight_quant_granularity="per_channel", act_quant_percentile=99.999,
                       act_quant_type="sym", scale_factor_type="float_scale", quant_format="int",
                       layerwise_first_last_bit_width=4, weight_param_method="mse", act_param_method="mse")
    with torch.no_grad(), calibration_mode(m):
        m(**inputs)
    return m.eval(), RECIPE
