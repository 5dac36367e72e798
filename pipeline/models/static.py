"""The static (model2vec-style) student: one embedding row per token, mean-pooled, L2-normalised.

No attention, no position: a sentence embedding is the mean of the rows of its tokens. The module takes
the bundle contract's inputs (`input_ids`, `attention_mask`, (B, T), [CLS] ... [SEP] [PAD]...) and gives
exactly what model2vec's `StaticModel.encode` gives for the same text, which tokenizes without [CLS]/[SEP]
and drops [UNK]: the ids in `skip_ids` ([CLS], [SEP], [PAD], [UNK]) get weight 0, so the app tokenizers
need no change. Submodule names follow the encoder's (`embeddings.word_embeddings`), so the exporters'
embedding quantizers (int8 per row, int4 per group) apply unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

# Note: model2vec has no sequence limit; 512 bounds the export buckets as the transformer students' do.
STATIC_MAX_POSITIONS = 512


@dataclass
class StaticConfig:
    """Architecture of a static student. Keys the bench and report read (hidden_size, num_hidden_layers,
    intermediate_size, vocab_size) keep the encoder's names; a static model has no layers."""

    vocab_size: int
    hidden_size: int  # the embedding dimension D
    skip_ids: list[int] = field(default_factory=list)  # token ids that never count ([CLS], [SEP], [PAD], [UNK])
    pad_token_id: int = 0
    normalize: bool = True
    pooling: str = "mean"
    task: str = "embedding"
    max_position_embeddings: int = STATIC_MAX_POSITIONS
    model_type: str = "static"
    num_hidden_layers: int = 0
    num_attention_heads: int = 0
    intermediate_size: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"config.{name} must be a positive integer, got {value!r}")
        bad = [i for i in self.skip_ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"config.skip_ids {bad} are outside the vocabulary (size {self.vocab_size})")
        if self.pooling != "mean" or self.task != "embedding" or self.model_type != "static":
            raise ValueError("a static model is a mean-pooled embedding model (pooling mean, task embedding)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StaticConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


class StaticEmbeddings(nn.Module):
    def __init__(self, cfg: StaticConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)


class StaticEncoder(nn.Module):
    """forward / embed / task_forward(input_ids (B, T), attention_mask (B, T)) -> (B, D) sentence embedding."""

    def __init__(self, cfg: StaticConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = StaticEmbeddings(cfg)

    def token_weights(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) float: 1 for a token that counts, 0 for padding and `skip_ids`. Comparisons with constants,
        not a gathered (V,) table: nothing to store or quantize."""
        w = attention_mask.to(torch.float32)
        for i in self.config.skip_ids:
            w = w * (input_ids != i).to(torch.float32)
        return w

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids = input_ids.to(torch.int64)
        x = self.embeddings.word_embeddings(ids)  # (B, T, D)
        w = self.token_weights(ids, attention_mask).unsqueeze(-1)  # (B, T, 1)
        # An input with no counted token (empty text) gives the zero vector, as model2vec does.
        pooled = (x * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)  # (B, D)
        return F.normalize(pooled, p=2.0, dim=-1, eps=1e-12) if self.config.normalize else pooled

    forward = embed

    def task_forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.embed(input_ids, attention_mask)


def tiny_static_config(**overrides) -> StaticConfig:
    """A small config for tests: 16-d rows over a vocabulary set by the test (default 128 tokens)."""
    return StaticConfig(**{"vocab_size": 128, "hidden_size": 16, "skip_ids": [0, 1, 2, 3], **overrides})
