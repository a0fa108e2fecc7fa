"""``nn.MultiheadAttention`` rebuilt from ``nn.Linear`` layers and explicit matmuls, so antq quantizes it.

``nn.MultiheadAttention`` never calls its ``out_proj`` module and keeps q/k/v in one packed
parameter, so neither its projections nor its Q.K^T and P.V can be quantized as they are.
:func:`replace_attention` (called by ``quantize_model``) swaps every instance for
:class:`MultiheadAttention`, which holds the same weights as four Linear layers and computes the
same function with matmuls that calibration turns into quantized activation x activation GEMMs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MultiheadAttention(nn.Module):
    """The computation of ``nn.MultiheadAttention`` (the same weights and call signature) from four
    Linear projections, ``softmax(Q K^T / sqrt(d) + mask) V`` per head, and the output projection."""

    def __init__(self, mha: nn.MultiheadAttention, name: str = "") -> None:
        super().__init__()
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError(f"{name or 'MultiheadAttention'}: add_bias_kv and add_zero_attn are not "
                             f"supported "
                             "by antq's quantized attention")
        e, h = mha.embed_dim, mha.num_heads
        self.embed_dim, self.num_heads, self.head_dim = e, h, e // h
        self.batch_first = mha.batch_first
        dev, dt = mha.out_proj.weight.device, mha.out_proj.weight.dtype
        bias = mha.in_proj_bias is not None
        self.q_proj = nn.Linear(e, e, bias, device=dev, dtype=dt)
        self.k_proj = nn.Linear(mha.kdim, e, bias, device=dev, dtype=dt)
        self.v_proj = nn.Linear(mha.vdim, e, bias, device=dev, dtype=dt)
        self.out_proj = nn.Linear(e, e, mha.out_proj.bias is not None, device=dev, dtype=dt)
        with torch.no_grad():
            if mha._qkv_same_embed_dim:
                ws = mha.in_proj_weight.chunk(3)
            else:
                ws = (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight)
            for lin, w, i in zip((self.q_proj, self.k_proj, self.v_proj), ws, range(3), strict=True):
                lin.weight.copy_(w)
                if bias:
                    lin.bias.copy_(mha.in_proj_bias[i * e:(i + 1) * e])
            self.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                self.out_proj.bias.copy_(mha.out_proj.bias)
        self.dropout = nn.Dropout(mha.dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.reshape(b, t, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        b, t, e = query.shape
        q, k = self._heads(self.q_proj(query)), self._heads(self.k_proj(key))
        v = self._heads(self.v_proj(value))
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        if is_causal and attn_mask is None:
            raise ValueError("is_causal needs the attn_mask too, as nn.MultiheadAttention does")
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask, float("-inf")) if attn_mask.dtype == torch.bool \
                else scores + attn_mask
        if key_padding_mask is not None:
            pad = key_padding_mask[:, None, None, :]
            scores = scores.masked_fill(pad, float("-inf")) if key_padding_mask.dtype == torch.bool \
                else scores + pad
        att = self.dropout(F.softmax(scores, dim=-1))
        out = self.out_proj(torch.matmul(att, v).transpose(1, 2).reshape(b, t, e))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, att.mean(dim=1) if average_attn_weights else att


def replace_attention(model: nn.Module) -> list[str]:
    """Replace every ``nn.MultiheadAttention`` of ``model`` (in place) by :class:`MultiheadAttention`;
    returns the names of the replaced modules."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, attr)
        new = MultiheadAttention(old, name)
        new.train(old.training)
        setattr(parent, attr, new)
    return names
