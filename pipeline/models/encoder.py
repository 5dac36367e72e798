"""One export-friendly BERT-family encoder: BERT, DistilBERT-shaped and ALBERT-style students.

Submodules carry the names of the HF BERT checkpoint (`embeddings.word_embeddings`,
`encoder.layer.{i}.attention.self.query`, ...), so loading a teacher and saving a student are
key-for-key copies checked by count and shape (see `pipeline/checkpoint.py`).

Why not HF `BertModel`: its mask code emits `new_ones` and integer casts that coremltools 9 does not
convert, and its attention dispatch makes `torch.export` graphs depend on the chosen kernel. This file
keeps every shape static given (B, T), uses an additive float mask and has no data-dependent Python
branches, so the same module trains, matches HF to 1e-5, and lowers to ExecuTorch, LiteRT, Core ML
and ONNX.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

SHARING = ("none", "all", "attention")
POOLING = ("mean", "cls")
TASKS = ("embedding", "mlm", "classification")
ACTIVATIONS = ("gelu", "gelu_new", "relu")

# Note: added to the attention scores of padding keys. -1e4 rather than finfo(fp32).min so that
# fp16 runtimes (Core ML's default compute precision) do not overflow to -inf and produce NaN;
# exp(-1e4) is exactly 0 in fp32 and fp16 alike, so outputs match HF's finfo.min mask.
MASK_VALUE = -1e4


@dataclass
class EncoderConfig:
    """Architecture of one encoder. Field names follow HF `BertConfig` where one exists."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2  # 0 = no token-type embedding (DistilBERT)
    embedding_size: int | None = None  # E; None = hidden_size. E < H factorizes (ALBERT)
    sharing: str = "none"  # cross-layer sharing: none | all | attention (ALBERT)
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    pooling: str = "mean"  # sentence embedding pooling: mean | cls
    normalize: bool = False  # L2-normalise sentence embeddings
    task: str = "embedding"  # which head the checkpoint is for: embedding | mlm | classification
    with_pooler: bool = False  # BERT pooler (dense + tanh over [CLS]); classification uses it
    num_labels: int = 0  # classification head size
    id2label: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.embedding_size is None:
            self.embedding_size = self.hidden_size
        self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "embedding_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"config.{name} must be a positive integer, got {value!r}")
        if self.type_vocab_size < 0:
            raise ValueError(f"config.type_vocab_size must be >= 0, got {self.type_vocab_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"config.hidden_size ({self.hidden_size}) must be a multiple of "
                f"config.num_attention_heads ({self.num_attention_heads})"
            )
        if self.embedding_size > self.hidden_size:
            raise ValueError(f"config.embedding_size ({self.embedding_size}) must be <= hidden_size ({self.hidden_size})")
        for name, allowed in (("sharing", SHARING), ("pooling", POOLING), ("task", TASKS), ("hidden_act", ACTIVATIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"config.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.task == "classification":
            if self.num_labels < 2:
                raise ValueError(f"config.num_labels must be >= 2 for classification, got {self.num_labels}")
            self.with_pooler = True
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"config.pad_token_id {self.pad_token_id} is outside the vocabulary (size {self.vocab_size})")

    @property
    def factorized(self) -> bool:
        return self.embedding_size < self.hidden_size

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict:
        d = asdict(self)
        d["id2label"] = {str(k): v for k, v in self.id2label.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EncoderConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown encoder config keys: {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **changes) -> EncoderConfig:
        d = self.to_dict()
        d.update(changes)
        return EncoderConfig.from_dict(d)

    def num_parameters(self) -> int:
        """Parameter count of the backbone plus the head of `task` (tied decoder counted once)."""
        return sum(p.numel() for p in Encoder(self).parameters())


def minilm_l6_config(**overrides) -> EncoderConfig:
    """all-MiniLM-L6-v2: 6 layers, H=384, 12 heads, FFN 1536, uncased WordPiece 30522."""
    return EncoderConfig(**overrides)


def tiny_config(**overrides) -> EncoderConfig:
    """The tiny config beside the preset: what tests and CI build."""
    base = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=64, max_position_embeddings=64)
    base.update(overrides)
    return EncoderConfig(**base)


def _activation(name: str):
    if name == "gelu":
        return F.gelu  # erf form, as HF "gelu"
    if name == "gelu_new":
        return lambda x: F.gelu(x, approximate="tanh")  # ALBERT's default
    return F.relu


# ---------------------------------------------------------------------------------------------
# Backbone. Module names mirror HF BERT (`BertEmbeddings`, `BertLayer`, ...).


class Embeddings(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.embedding_size, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.embedding_size)
        self.token_type_embeddings = (
            nn.Embedding(cfg.type_vocab_size, cfg.embedding_size) if cfg.type_vocab_size > 0 else None
        )
        self.LayerNorm = nn.LayerNorm(cfg.embedding_size, eps=cfg.layer_norm_eps)
        # Not saved: a plain arange sliced to T keeps the export graph static (no `new_ones`).
        self.register_buffer("position_ids", torch.arange(cfg.max_position_embeddings)[None], persistent=False)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        seq_len = input_ids.shape[1]
        x = self.word_embeddings(input_ids) + self.position_embeddings(self.position_ids[:, :seq_len])  # (B, T, E)
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                # Every sentence is segment 0: add row 0 instead of gathering zeros.
                x = x + self.token_type_embeddings.weight[0]
            else:
                x = x + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(x)


class SelfAttention(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.num_heads = cfg.num_attention_heads
        self.head_dim = cfg.head_dim
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bsz, seq_len, hidden = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(bsz, seq_len, self.num_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + mask  # (B, nh, T, T); mask (B, 1, 1, T)
        probs = scores.softmax(dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(bsz, seq_len, hidden)  # (B, T, H)
        return ctx, probs


class SelfOutput(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, ctx: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(ctx) + residual)


class Attention(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.self = SelfAttention(cfg)
        self.output = SelfOutput(cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx, probs = self.self(x, mask)
        return self.output(ctx, x), probs


class Intermediate(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.act = _activation(cfg.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class Output(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Layer(nn.Module):
    def __init__(self, cfg: EncoderConfig, attention: Attention | None = None):
        super().__init__()
        self.attention = attention if attention is not None else Attention(cfg)
        self.intermediate = Intermediate(cfg)
        self.output = Output(cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, probs = self.attention(x, mask)
        return self.output(self.intermediate(h), h), probs


class Stack(nn.Module):
    """`encoder.layer[i]`. Sharing `all` keeps one Layer applied num_hidden_layers times (ALBERT);
    `attention` keeps one Layer per depth whose `attention` submodule is the same object."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.num_hidden_layers = cfg.num_hidden_layers
        self.embedding_hidden_mapping_in = nn.Linear(cfg.embedding_size, cfg.hidden_size) if cfg.factorized else None
        if cfg.sharing == "all":
            self.layer = nn.ModuleList([Layer(cfg)])
        elif cfg.sharing == "attention":
            shared = Attention(cfg)
            self.layer = nn.ModuleList([Layer(cfg, attention=shared) for _ in range(cfg.num_hidden_layers)])
        else:
            self.layer = nn.ModuleList([Layer(cfg) for _ in range(cfg.num_hidden_layers)])

    def layer_at(self, depth: int) -> Layer:
        return self.layer[depth % len(self.layer)]


class Pooler(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (B, H) from [CLS]


class MLMTransform(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        # H -> E so the decoder can be tied to the (V, E) word embeddings when factorized.
        self.dense = nn.Linear(cfg.hidden_size, cfg.embedding_size)
        self.act = _activation(cfg.hidden_act)
        self.LayerNorm = nn.LayerNorm(cfg.embedding_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(x)))


class MLMPredictions(nn.Module):
    def __init__(self, cfg: EncoderConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.transform = MLMTransform(cfg)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self._word_embeddings = [word_embeddings]  # tied decoder; a list keeps it out of state_dict

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(hidden), self._word_embeddings[0].weight, self.bias)  # (B, T, V)


class MLMHead(nn.Module):
    """`cls.predictions.*`, decoder tied to `embeddings.word_embeddings`."""

    def __init__(self, cfg: EncoderConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.predictions = MLMPredictions(cfg, word_embeddings)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.predictions(hidden)


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor  # (B, T, H)
    hidden_states: list[torch.Tensor] | None = None  # L + 1 tensors (B, T, H); [0] is the embedding output
    attentions: list[torch.Tensor] | None = None  # L tensors (B, heads, T, T), softmax probabilities


class Encoder(nn.Module):
    """Backbone plus the heads its config asks for.

    Heads: `embed` (pooled sentence embedding), `cls` (MLM, present when `task == "mlm"` or
    `with_mlm_head`), `pooler` + `classifier` (sequence classification).
    """

    def __init__(self, cfg: EncoderConfig, with_mlm_head: bool | None = None):
        super().__init__()
        self.config = cfg
        self.embeddings = Embeddings(cfg)
        self.encoder = Stack(cfg)
        self.pooler = Pooler(cfg) if cfg.with_pooler else None
        if with_mlm_head is None:
            with_mlm_head = cfg.task == "mlm"
        self.cls = MLMHead(cfg, self.embeddings.word_embeddings) if with_mlm_head else None
        self.classifier = nn.Linear(cfg.hidden_size, cfg.num_labels) if cfg.task == "classification" else None
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # BERT's initialisation: N(0, 0.02) weights, zero biases, unit LayerNorm.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @staticmethod
    def additive_mask(attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) 1/0 mask of any dtype -> (B, 1, 1, T) float: 0 for tokens, MASK_VALUE for padding."""
        return (1.0 - attention_mask.to(torch.float32))[:, None, None, :] * MASK_VALUE

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = self.additive_mask(attention_mask)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, E)
        if self.encoder.embedding_hidden_mapping_in is not None:
            x = self.encoder.embedding_hidden_mapping_in(x)  # (B, T, H)
        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for depth in range(self.config.num_hidden_layers):
            x, probs = self.encoder.layer_at(depth)(x, mask)
            if hidden_states is not None:
                hidden_states.append(x)
            if attentions is not None:
                attentions.append(probs)
        return EncoderOutput(x, hidden_states, attentions)

    # -- heads ---------------------------------------------------------------------------------

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor, normalize: bool | None = None) -> torch.Tensor:
        """(B, T, H) -> (B, H) sentence embedding by the config's pooling, L2-normalised if `normalize`
        (None: as the config says; distillation compares embeddings before normalisation).

        Mean pooling averages over real tokens only, exactly as sentence-transformers does
        (sum / clamp(count, 1e-9)).
        """
        if self.config.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            m = attention_mask.to(hidden.dtype)[:, :, None]  # (B, T, 1)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        if self.config.normalize if normalize is None else normalize:
            pooled = F.normalize(pooled, p=2.0, dim=-1)
        return pooled

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.pool(self(input_ids, attention_mask, token_type_ids).last_hidden_state, attention_mask)

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.cls is None:
            raise ValueError("this model has no MLM head; load it with with_mlm_head=True")
        return self.cls(hidden)

    def classify(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) -> (B, num_labels) logits: BERT's pooler (dense + tanh on [CLS]) then a linear layer."""
        if self.classifier is None:
            raise ValueError("this model has no classification head (config.task != 'classification')")
        hidden = self(input_ids, attention_mask, token_type_ids).last_hidden_state
        return self.classifier(self.pooler(hidden))

    def task_forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The one tensor a deployed model returns for its task: embedding (B, H), MLM logits (B, T, V)
        or class logits (B, num_labels). Exporters trace this."""
        task = self.config.task
        if task == "embedding":
            return self.embed(input_ids, attention_mask)
        if task == "mlm":
            return self.mlm_logits(self(input_ids, attention_mask).last_hidden_state)
        return self.classify(input_ids, attention_mask)
