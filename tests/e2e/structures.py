"""Random-init model structures for the bit-exactness tests: residual CNNs, MobileNetV2 blocks, a ViT
with nn.MultiheadAttention, and the Hugging Face BERT encoder (imported by the e2e tests).

Random weights, so nothing depends on where a trained value happens to round; :func:`randomize`
makes them heavy-tailed (PoT and flint then win some tensors, as on trained models) and gives the
BatchNorms trained-looking statistics with about a third of the gammas negative.
"""

from __future__ import annotations

import torch
from torch import nn


def randomize(model: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(torch.exp(0.8 * torch.randn(m.weight.shape, generator=g)))
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                sign = torch.where(torch.rand(n, generator=g) < 0.35, -1.0, 1.0)
                m.weight.copy_(sign * (0.5 + torch.rand(n, generator=g)))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.3 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))


class BasicBlock(nn.Module):
    """A ResNet basic block: conv-BN-ReLU-conv-BN plus the (downsampled) input, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return torch.relu(h + (x if self.down is None else self.down(x)))


class ResNet18Style(nn.Module):
    """ResNet-18's structure at a small width: a stem conv and a ceil-mode max pool, four stages of two
    basic blocks (strides 1, 2, 2, 2, with 1x1 strided downsampling), global average pool, fc."""

    def __init__(self, width: int = 4, blocks: tuple[int, ...] = (2, 2, 2, 2), classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True))
        layers, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if j == 0 and i > 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layers(self.stem(x))).flatten(1))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand (BN, activation), 3x3 depthwise (BN, activation), 1x1 project (BN),
    plus the input when the shape allows."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, act: type[nn.Module]) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), act(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_res else self.block(x)


class MobileNetV2Style(nn.Module):
    """A stem, inverted residual blocks with ReLU6 (and the Hardswish / SiLU / LeakyReLU of later
    MobileNets and EfficientNets), a grouped 1x1 conv, a ceil-mode average pool and a Linear head."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU6())
        self.blocks = nn.Sequential(
            InvertedResidual(width, width, 1, 4, nn.ReLU6),
            InvertedResidual(width, 2 * width, 2, 4, nn.Hardswish),
            InvertedResidual(2 * width, 2 * width, 1, 2, nn.SiLU))
        self.mix = nn.Conv2d(2 * width, 2 * width, 1, groups=2)
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.AvgPool2d(3, stride=2, ceil_mode=True, count_include_pad=False)
        self.head = nn.Linear(2 * width * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.act(self.mix(self.blocks(self.stem(x)))))
        return self.head(h.flatten(1))


class EncoderBlock(nn.Module):
    """torchvision's ViT encoder block: pre-LN nn.MultiheadAttention and a GELU MLP, residual adds."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        h, _ = self.self_attention(h, h, h, need_weights=False)
        x = x + h
        return x + self.mlp(self.ln_2(x))


class ViTStyle(nn.Module):
    """torchvision's VisionTransformer structure, small: conv patch embedding, a class token expanded
    over the batch, position embedding, encoder blocks with nn.MultiheadAttention, LayerNorm, head."""

    def __init__(self, image: int = 8, patch: int = 2, dim: int = 16, heads: int = 2, depth: int = 2) -> None:
        super().__init__()
        self.dim = dim
        self.conv_proj = nn.Conv2d(1, dim, patch, stride=patch)
        n = (image // patch) ** 2
        self.class_token = nn.Parameter(torch.randn(1, 1, dim) * 0.2)
        self.pos_embedding = nn.Parameter(torch.randn(1, n + 1, dim) * 0.2)
        self.layers = nn.Sequential(*[EncoderBlock(dim, heads, 2 * dim) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = self.conv_proj(x).reshape(b, self.dim, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(b, -1, -1), x], dim=1) + self.pos_embedding
        return self.head(self.ln(self.layers(x))[:, 0])


def bert(layers: int = 2, hidden: int = 32, heads: int = 2, vocab: int = 120, seed: int = 0) -> nn.Module:
    """The stock Hugging Face BertModel (eager attention), random init, small."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads,
                     intermediate_size=2 * hidden, max_position_embeddings=64, attn_implementation="eager")
    return BertModel(cfg, add_pooling_layer=False).eval()


def token_batch(g: torch.Generator, n: int, seq: int, vocab: int = 120) -> dict[str, torch.Tensor]:
    """Token ids and attention masks with padding of several lengths (0 to seq - 2 padded tokens)."""
    ids = torch.randint(1, vocab, (n, seq), generator=g)
    lengths = seq - torch.randint(0, seq - 1, (n,), generator=g)
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask}
