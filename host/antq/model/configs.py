"""Quantization configs: which ANT candidate types (or baseline) and bit width each layer gets.

Configs (the paper's names): ``int``, ``ip`` (int, PoT), ``ip-f`` (int, PoT, flint: ANT),
``fip-f`` (float, int, PoT, flint), ``ant4-8`` (``ip-f`` at 4 bits with int8 first and last
layers, or the given ``int8_layers``), plus the software-only baselines ``nf4``, ``fp4`` and
``int4-pc`` (:mod:`antq.model.baselines`). numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import formats, regmap
from .baselines import BASELINES

CANDIDATES: dict[str, tuple[str, ...]] = {
    "int": ("int",),
    "ip": ("int", "pot"),
    "ip-f": ("int", "pot", "flint"),
    "fip-f": ("float", "int", "pot", "flint"),
}
"""Candidate types of each ANT config (evaluated in ANT's order int, flint, pot, float)."""
ANT48 = "ant4-8"
CONFIGS: tuple[str, ...] = (*CANDIDATES, ANT48, *BASELINES)
"""Every config name quantize_model takes."""
ANT_CONFIGS: tuple[str, ...] = (*CANDIDATES, ANT48)
"""The configs that export to the accelerator (the others are software-only baselines)."""


@dataclass(frozen=True)
class LayerSpec:
    """How one layer is quantized: an ANT candidate set (or a baseline) and a bit width."""

    scheme: str
    bits: int

    @property
    def baseline(self) -> bool:
        return self.scheme in BASELINES

    def __str__(self) -> str:
        return self.scheme if self.baseline else f"{self.scheme}/{self.bits}"


INT8 = LayerSpec("int", 8)


def _check_bits(bits: Any, what: str = "bits") -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not (
            formats.MIN_BITS <= bits <= formats.MAX_BITS):
        raise ValueError(f"{what} must be an int from {formats.MIN_BITS} to {formats.MAX_BITS}, got {bits!r}")
    return int(bits)


def _check_config(config: Any) -> str:
    if not isinstance(config, str) or config not in CONFIGS:
        raise ValueError(f"unknown config {config!r}; expected one of {', '.join(CONFIGS)}")
    return config


def _layer_name(ref: str | int, names: Sequence[str]) -> str:
    if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
        if not -len(names) <= ref < len(names):
            raise ValueError(f"layer index {ref} out of range: the model has {len(names)} quantizable layers")
        return names[ref]
    if ref not in names:
        raise ValueError(f"no quantizable layer named {ref!r}; the layers are {', '.join(names)}")
    return ref


def _override_spec(base: LayerSpec, value: Any, name: str) -> LayerSpec:
    if isinstance(value, str):
        if value == "int8":
            return INT8
        return _base_spec(value, 4 if _check_config(value) in BASELINES or value == ANT48 else base.bits)
    if isinstance(value, dict):
        unknown = set(value) - {"config", "bits"}
        if unknown:
            raise ValueError(f"override for {name}: unknown keys {sorted(unknown)}; use 'config' and 'bits'")
        return _base_spec(value.get("config", base.scheme), value.get("bits", base.bits))
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return _base_spec(base.scheme, value)
    raise ValueError(f"override for {name} must be a config name, 'int8', a bit width or a dict, got "
                     f"{value!r}")


def _base_spec(config: str, bits: Any) -> LayerSpec:
    config, bits = _check_config(config), _check_bits(bits)
    if config == ANT48:
        if bits != 4:
            raise ValueError("ant4-8 is 4-bit ip-f with int8 layers; for another width use config='ip-f' "
                             "with int8_layers=[...]")
        return LayerSpec("ip-f", 4)
    if config in BASELINES and bits != 4:
        raise ValueError(f"{config} is a 4-bit codebook; bits must be 4, got {bits}")
    return LayerSpec(config, bits)


def layer_specs(names: Sequence[str], config: str = "ip-f", bits: int = 4,
                overrides: dict[str, Any] | None = None,
                int8_layers: Sequence[str | int] | None = None) -> dict[str, LayerSpec]:
    """The :class:`LayerSpec` of every layer for a config, int8 list and per-layer overrides.

    ``int8_layers`` names layers (or indices in quantizable-layer order) that use int8; for
    ``ant4-8`` it defaults to the first and last layer. ``overrides`` maps a layer name to a config
    name, ``"int8"``, a bit width, or ``{"config": ..., "bits": ...}``.
    """
    base = _base_spec(config, bits)
    if config == ANT48 and int8_layers is None:
        int8_layers = [0, -1]
    specs = {n: base for n in names}
    for ref in int8_layers or []:
        specs[_layer_name(ref, names)] = INT8
    for ref, value in (overrides or {}).items():
        name = _layer_name(ref, names)
        specs[name] = _override_spec(specs[name], value, name)
    return specs


TARGETS = ("overlay",)
"""``quantize_model(target=...)``: the hardware a model is quantized for (None: the host, any format)."""


def undecodable(spec: LayerSpec) -> list[str]:
    """The formats a layer of this spec may choose that the accelerator cannot run
    (:func:`antq.core.regmap.as_accelerator_format`): software-only baselines, and pot/flint/float
    at any width but 4 (ints of 2-8 bits run as int4 or int8 nibble passes)."""
    if spec.baseline:
        return [spec.scheme]
    kinds = ("int",) if spec.bits > 6 else CANDIDATES[spec.scheme]
    bad = []
    for kind in kinds:
        for signed in (False, True):
            try:
                regmap.as_accelerator_format(formats.get(kind, spec.bits, signed))
            except formats.FormatError:
                continue  # the format does not exist (e.g. signed 2-bit flint): never chosen
            except ValueError:
                bad.append(formats.get(kind, spec.bits, signed).name)
    return bad


def check_target(specs: dict[str, LayerSpec], target: str) -> None:
    """Raise ValueError, naming the layers and formats, if a layer could choose a format ``target``
    cannot run. Decided from the candidates, before calibration, so it never depends on the data."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)} (or None for the "
                         f"host)")
    bad = {name: undecodable(spec) for name, spec in specs.items()}
    bad = {name: b for name, b in bad.items() if b}
    if bad:
        by_spec: dict[str, list[str]] = {}
        for name, b in bad.items():
            by_spec.setdefault(f"{specs[name]} may choose {', '.join(b)}", []).append(name)
        detail = "; ".join(f"{what} ({', '.join(names) if len(names) <= 4 else f'{len(names)} layers'})"
                           for what, names in by_spec.items())
        raise ValueError(f"target='overlay': the accelerator decodes every 4-bit int/pot/flint/float format "
                         f"and ints of 2-8 bits (as int4 or int8 nibble passes), not {detail}; quantize "
                         "with bits=4, or with config='int' at other widths")
