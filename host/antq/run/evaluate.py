"""Accuracy on the overlay, checked against the software reference: the ``antq run`` job."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core import container
from ..model.graph import IntegerModel
from .runtime import Runtime


def load_model(path: str | Path) -> IntegerModel:
    """A IntegerModel from a .antq file, with a clear error for anything else."""
    obj = container.load(path)
    if not isinstance(obj, IntegerModel):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a quantized model "
                         "(write one with `antq quantize` or antq.save(path, qmodel))")
    return obj


def held_out(model: IntegerModel, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The model's held-out test split (first ``limit`` samples)."""
    from ..model.datasets import load_dataset

    if not model.dataset:
        raise ValueError("the model file records no dataset, so there is no held-out split to run on")
    x, y = load_dataset(model.dataset, "test")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1 (None: the whole split), got {limit}")
        x, y = x[:limit], y[:limit]
    return x, y


@dataclass
class RunResult:
    """Accuracy of a model on the overlay, and its agreement with the software reference."""

    samples: int
    accuracy: float
    reference_accuracy: float
    mismatched_predictions: int
    identical_logits: bool
    backend: str
    predictions: np.ndarray = field(repr=False)


def evaluate(model: IntegerModel, overlay: Any, x: np.ndarray, y: np.ndarray, *, batch_size: int = 64,
             progress: bool = True) -> RunResult:
    """Run ``x`` on the overlay and on the software reference; count agreement and accuracy."""
    with Runtime(model, overlay) as rt:
        logits = rt.run(x, batch_size=batch_size, progress=progress)
    ref = np.concatenate([model.run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    pred, ref_pred = logits.argmax(-1), ref.argmax(-1)
    return RunResult(len(x), float((pred == y).mean()), float((ref_pred == y).mean()),
                     int((pred != ref_pred).sum()), bool(np.array_equal(logits, ref)),
                     getattr(overlay.device, "level", "board"), pred)
