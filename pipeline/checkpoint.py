"""Load BERT / DistilBERT / ALBERT checkpoints into the encoder; save HF-compatible checkpoint folders.

A checkpoint folder is what transformers and sentence-transformers open:
`config.json` (`bert`, or `albert` when the embedding is factorized or layers are shared),
`model.safetensors`, tokenizer files, sentence-transformers module files for embedding models,
and `pocketbert.json`, which records how it was made (parent, layer map, command, versions).

Weights are read with safetensors only: user files are never unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from pocketbert.errors import PocketBertError
from pocketbert.files import atomic_output_dir, path_sha256, provenance, write_json
from pocketbert.pipeline.models.encoder import Encoder, EncoderConfig
from pocketbert.pipeline.tokenizer import build_wordpiece, read_vocab, tokenizer_options, write_vocab

MARKER = "pocketbert.json"
FORMAT_VERSION = 1
SUPPORTED_TYPES = ("bert", "distilbert", "albert")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# Keys a checkpoint may hold that carry nothing we load: buffers, tied decoders, pretraining-only heads.
_IGNORABLE_SUFFIXES = ("position_ids", "predictions.decoder.weight", "predictions.decoder.bias", "vocab_projector.weight")
_IGNORABLE_PREFIXES = ("cls.seq_relationship.", "sop_classifier.")


def find_teacher(path: str | os.PathLike) -> Path | None:
    """The teacher of a checkpoint: the parent of the nearest distilled checkpoint up its parent chain,
    else the end of the chain (a plain HF folder, which is its own teacher); None when the chain breaks.

    A vocabulary trim or layer cut of a distilled student leads to the distillation's teacher, so a
    student distilled from a fine-tuned classifier names that classifier, not the classifier's base.
    """
    path = Path(path)
    for _ in range(16):
        rec = path / MARKER
        if not rec.is_file():
            return path if (path / "config.json").is_file() else None
        try:
            record = json.loads(rec.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        parent = (record.get("parent") or {}).get("path")
        if not parent or not Path(parent).is_dir():
            return None
        if record.get("stage") == "distill":
            return Path(parent)
        path = Path(parent)
    return None


def read_config(path: str | os.PathLike) -> EncoderConfig:
    """The EncoderConfig of a checkpoint folder without reading its weights (by name: `names.read_config`)."""
    path = Path(path)
    return config_from_hf(_read_json(path / "config.json"), path)[0]


# ---------------------------------------------------------------------------------------------
# Config: HF config.json (+ sentence-transformers files) -> EncoderConfig


_ACT = {"gelu": "gelu", "gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_new", "relu": "relu"}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PocketBertError(f"cannot read {path}: {e}; restore the file from its source") from None


def _sentence_transformers_pooling(path: Path) -> tuple[str | None, bool]:
    """Pooling mode and normalisation declared by sentence-transformers files, if any."""
    modules_path = path / "modules.json"
    if not modules_path.is_file():
        return None, False
    modules = _read_json(modules_path)
    pooling, normalize = None, False
    for m in modules:
        kind = m.get("type", "")
        if kind.endswith("Normalize"):
            normalize = True
        elif kind.endswith("Pooling"):
            pcfg_path = path / m.get("path", "") / "config.json"
            if pcfg_path.is_file():
                pcfg = _read_json(pcfg_path)
                if pcfg.get("pooling_mode_cls_token"):
                    pooling = "cls"
                elif pcfg.get("pooling_mode_mean_tokens"):
                    pooling = "mean"
                else:
                    raise PocketBertError(f"{pcfg_path}: only mean or cls pooling is supported")
    return pooling, normalize


def config_from_hf(hf: dict, path: Path) -> tuple[EncoderConfig, int]:
    """HF config dict -> (EncoderConfig without head info, number of ALBERT hidden groups)."""
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_TYPES:
        raise PocketBertError(
            f"{path}/config.json: unsupported model_type {model_type!r}; supported: {', '.join(SUPPORTED_TYPES)}"
        )
    act_key = "activation" if model_type == "distilbert" else "hidden_act"
    act = hf.get(act_key, "gelu")
    if act not in _ACT:
        raise PocketBertError(f"{path}/config.json: unsupported activation {act!r}; supported: {', '.join(_ACT)}")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise PocketBertError(f"{path}/config.json: only absolute position embeddings are supported")
    if model_type == "distilbert":
        if hf.get("sinusoidal_pos_embds"):
            raise PocketBertError(f"{path}/config.json: sinusoidal position embeddings are not supported")
        kw = dict(vocab_size=hf["vocab_size"], hidden_size=hf["dim"], num_hidden_layers=hf["n_layers"],
                  num_attention_heads=hf["n_heads"], intermediate_size=hf["hidden_dim"], type_vocab_size=0,
                  layer_norm_eps=1e-12)
    else:
        kw = dict(vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"],
                  num_hidden_layers=hf["num_hidden_layers"], num_attention_heads=hf["num_attention_heads"],
                  intermediate_size=hf["intermediate_size"], type_vocab_size=hf.get("type_vocab_size", 2),
                  layer_norm_eps=hf.get("layer_norm_eps", 1e-12))
    groups = 0
    if model_type == "albert":
        kw["embedding_size"] = hf.get("embedding_size", 128)
        groups = hf.get("num_hidden_groups", 1)
        if hf.get("inner_group_num", 1) != 1:
            raise PocketBertError(f"{path}/config.json: ALBERT inner_group_num != 1 is not supported")
        if groups == 1:
            kw["sharing"] = "all"
        elif groups != kw["num_hidden_layers"]:
            raise PocketBertError(
                f"{path}/config.json: ALBERT num_hidden_groups must be 1 or num_hidden_layers, got {groups}"
            )
    kw.update(max_position_embeddings=hf.get("max_position_embeddings", 512), hidden_act=_ACT[act],
              pad_token_id=hf.get("pad_token_id", 0) or 0)
    pooling, normalize = _sentence_transformers_pooling(path)
    kw.update(pooling=pooling or "mean", normalize=normalize)
    if hf.get("id2label"):
        kw["id2label"] = {int(k): v for k, v in hf["id2label"].items()}
    try:
        return EncoderConfig(**kw), groups
    except (ValueError, TypeError) as e:
        raise PocketBertError(f"{path}/config.json: {e}") from None


# ---------------------------------------------------------------------------------------------
# Key maps. Our state_dict uses HF BERT names; these translate DistilBERT and ALBERT keys.

# per-layer: (ours, distilbert, albert)
_LAYER_KEYS = (
    ("attention.self.query", "attention.q_lin", "attention.query"),
    ("attention.self.key", "attention.k_lin", "attention.key"),
    ("attention.self.value", "attention.v_lin", "attention.value"),
    ("attention.output.dense", "attention.out_lin", "attention.dense"),
    ("attention.output.LayerNorm", "sa_layer_norm", "attention.LayerNorm"),
    ("intermediate.dense", "ffn.lin1", "ffn"),
    ("output.dense", "ffn.lin2", "ffn_output"),
    ("output.LayerNorm", "output_layer_norm", "full_layer_layer_norm"),
)
_MLM_KEYS = (  # (ours, bert, distilbert, albert)
    ("cls.predictions.transform.dense", "cls.predictions.transform.dense", "vocab_transform", "predictions.dense"),
    ("cls.predictions.transform.LayerNorm", "cls.predictions.transform.LayerNorm", "vocab_layer_norm",
     "predictions.LayerNorm"),
)


def _hf_name_map(cfg: EncoderConfig, model_type: str, base_prefix: str, n_stored_layers: int) -> dict[str, str]:
    """ours -> HF key (without .weight/.bias) for one checkpoint layout."""
    m: dict[str, str] = {}
    emb = ["word_embeddings", "position_embeddings", "LayerNorm"]
    if cfg.type_vocab_size > 0:
        emb.append("token_type_embeddings")
    for e in emb:
        m[f"embeddings.{e}"] = f"{base_prefix}embeddings.{e}"
    if model_type == "albert":
        if cfg.factorized:
            m["encoder.embedding_hidden_mapping_in"] = f"{base_prefix}encoder.embedding_hidden_mapping_in"
        for i in range(n_stored_layers):
            for ours, _, theirs in _LAYER_KEYS:
                m[f"encoder.layer.{i}.{ours}"] = f"{base_prefix}encoder.albert_layer_groups.{i}.albert_layers.0.{theirs}"
        if cfg.with_pooler:
            m["pooler.dense"] = f"{base_prefix}pooler"
    elif model_type == "distilbert":
        for i in range(n_stored_layers):
            for ours, theirs, _ in _LAYER_KEYS:
                m[f"encoder.layer.{i}.{ours}"] = f"{base_prefix}transformer.layer.{i}.{theirs}"
    else:
        for i in range(n_stored_layers):
            for ours, _, _ in _LAYER_KEYS:
                m[f"encoder.layer.{i}.{ours}"] = f"{base_prefix}encoder.layer.{i}.{ours}"
        if cfg.with_pooler:
            m["pooler.dense"] = f"{base_prefix}pooler.dense"
    return m


def _head_map(model_type: str, with_mlm: bool, with_classifier: bool) -> dict[str, str]:
    m: dict[str, str] = {}
    col = {"bert": 1, "distilbert": 2, "albert": 3}[model_type]
    if with_mlm:
        for row in _MLM_KEYS:
            m[row[0]] = row[col]
    if with_classifier:
        m["classifier"] = "classifier"
    return m


def _mlm_bias_key(model_type: str) -> str:
    return {"bert": "cls.predictions.bias", "distilbert": "vocab_projector.bias", "albert": "predictions.bias"}[model_type]


# ---------------------------------------------------------------------------------------------
# Loading


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a .safetensors file; a clear error for a corrupted or truncated file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PocketBertError(
            f"{path} is corrupted or truncated ({msg}); re-download or re-create the checkpoint"
        ) from None


def _find_weights(path: Path) -> Path:
    st = path / "model.safetensors"
    if st.is_file():
        return st
    if (path / "model.safetensors.index.json").is_file():
        raise PocketBertError(f"{path}: sharded safetensors are not supported; save the model as one model.safetensors")
    pickles = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
    if pickles:
        raise PocketBertError(
            f"{path} holds only pickled weights ({', '.join(sorted(pickles))}); pocketbert never unpickles files: "
            "convert them with `transformers` to model.safetensors (save_pretrained(..., safe_serialization=True))"
        )
    raise PocketBertError(f"{path} has no model.safetensors; pass a folder that holds the model weights")


def key_mismatch_summary(missing: list[str], mismatched: list[str], unexpected: list[str]) -> str:
    """One line naming what did not match between a weights file and the encoder (first few of each)."""
    def few(items: list[str], n: int, sep: str = ", ") -> str:
        return f"{sep.join(items[:n])}{' ...' if len(items) > n else ''}"

    parts = []
    if missing:
        parts.append(f"missing {len(missing)}: {few(missing, 6)}")
    if mismatched:
        parts.append(f"shape mismatch {len(mismatched)}: {few(mismatched, 4, '; ')}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)}: {few(unexpected, 6)}")
    return " | ".join(parts)


@dataclass
class LoadedCheckpoint:
    model: Encoder  # or a StaticEncoder (model_type static)
    path: Path
    model_type: str  # of the source checkpoint: bert | distilbert | albert | static
    record: dict = field(default_factory=dict)  # its pocketbert.json, if any


def load_checkpoint(path: str | os.PathLike, with_mlm_head: bool | None = None) -> LoadedCheckpoint:
    """Load a BERT / DistilBERT / ALBERT folder (with or without MLM or classification head) into the encoder.

    Every tensor of the file must map to exactly one parameter of the encoder with the same shape,
    and every parameter must be filled; otherwise the error lists what did not match.

    A model by name (`minilm`, a peer, an .onnx encoder, a static model) loads through `names.load`.

    Args:
        path: a local HF checkpoint folder.
        with_mlm_head: build the MLM head (None: when the checkpoint has one). True on a checkpoint
            without one initialises the transform randomly and ties the decoder to the embeddings.
    Raises:
        PocketBertError: missing folder or weights, unsupported model_type, corrupted file, key mismatch.
    """
    path = Path(path)
    hf, weights, cfg, groups, record = _read_folder(path)
    model_type = hf["model_type"]
    state = read_safetensors(weights)
    heads = _Heads.of(state, model_type)
    if not record.get("config"):
        cfg = _config_with_heads(cfg, heads, state, model_type)
    if with_mlm_head is None:
        with_mlm_head = heads.mlm
    if heads.classifier and model_type == "distilbert":
        raise PocketBertError(
            f"{path}: DistilBERT classification heads (pre_classifier + ReLU) are not supported; "
            "load the base model (DistilBertModel or DistilBertForMaskedLM) and fine-tune with pocketbert"
        )
    model = Encoder(cfg, with_mlm_head=with_mlm_head)
    n_stored = groups if model_type == "albert" else cfg.num_hidden_layers
    name_map = _hf_name_map(cfg, model_type, heads.base_prefix, n_stored)
    name_map.update(_head_map(model_type, heads.mlm and with_mlm_head, heads.classifier))
    ours = model.state_dict()
    mlm_bias_key = _mlm_bias_key(model_type) if heads.mlm and with_mlm_head else None
    target, used, missing, mismatched = _match_keys(state, ours, name_map, mlm_bias_key)
    mismatched += _shared_attention_mismatches(cfg, target)
    unexpected = sorted(
        k for k in state
        if k not in used and not k.endswith(_IGNORABLE_SUFFIXES) and not k.startswith(_IGNORABLE_PREFIXES)
    )
    if missing or mismatched or unexpected:
        raise PocketBertError(f"{weights} does not match a {model_type} encoder "
                              f"({key_mismatch_summary(missing, mismatched, unexpected)})")
    # Every parameter must be filled (random init only for an MLM head that was asked for and absent).
    unfilled = [k for k in ours if k not in target and not (k.startswith("cls.") and not heads.mlm)]
    if unfilled:
        raise PocketBertError(f"{weights}: no weights for {', '.join(unfilled[:6])}")
    model.load_state_dict(target, strict=False)
    model.eval()
    return LoadedCheckpoint(model=model, path=path, model_type=model_type, record=record)


def _read_folder(path: Path) -> tuple[dict, Path, EncoderConfig, int, dict]:
    """A checkpoint folder's HF config, weights file, encoder config (with its number of stored layer groups) and
    pocketbert.json record ({} for a folder pocketbert did not write)."""
    if not path.is_dir():
        raise PocketBertError(f"checkpoint {path} does not exist; pass a local HF model folder")
    if not (path / "config.json").is_file():
        raise PocketBertError(f"{path} has no config.json; pass a HF model folder")
    hf = _read_json(path / "config.json")
    weights = _find_weights(path)
    cfg, groups = config_from_hf(hf, path)
    record = _read_json(path / MARKER) if (path / MARKER).is_file() else {}
    if record.get("config"):
        # Our own checkpoint: the record carries what HF configs cannot (attention-only sharing,
        # pooling, task); the HF config still decides shapes and is cross-checked by the key map.
        try:
            cfg = EncoderConfig.from_dict(record["config"])
        except (ValueError, TypeError) as e:
            raise PocketBertError(f"{path}/{MARKER}: invalid config ({e})") from None
    return hf, weights, cfg, groups, record


@dataclass(frozen=True)
class _Heads:
    """What a weights file holds beside the encoder."""

    base_prefix: str  # "bert." etc. before the encoder's keys; "" in a bare *Model checkpoint
    mlm: bool
    classifier: bool
    pooler: bool

    @classmethod
    def of(cls, state: dict[str, torch.Tensor], model_type: str) -> _Heads:
        base_prefix = {"bert": "bert.", "distilbert": "distilbert.", "albert": "albert."}[model_type]
        if not any(k.startswith(base_prefix) for k in state):
            base_prefix = ""  # a bare *Model checkpoint (e.g. all-MiniLM-L6-v2)
        mlm_prefix = _MLM_KEYS[0][{"bert": 1, "distilbert": 2, "albert": 3}[model_type]]
        pooler_key = {"bert": f"{base_prefix}pooler.dense.weight", "albert": f"{base_prefix}pooler.weight"}.get(model_type)
        return cls(base_prefix=base_prefix, mlm=any(k.startswith(mlm_prefix) for k in state),
                   classifier="classifier.weight" in state, pooler=pooler_key is not None and pooler_key in state)


def _config_with_heads(cfg: EncoderConfig, heads: _Heads, state: dict[str, torch.Tensor],
                       model_type: str) -> EncoderConfig:
    """An HF folder's encoder config completed from its weights: pooler, and the task its head implies."""
    cfg.with_pooler = heads.pooler
    if heads.classifier:
        n = state["classifier.weight"].shape[0]
        id2label = cfg.id2label if len(cfg.id2label) == n else {i: f"LABEL_{i}" for i in range(n)}
        cfg = cfg.replace(task="classification", num_labels=n, id2label=id2label,
                          with_pooler=cfg.with_pooler or model_type != "distilbert")
    elif heads.mlm:
        cfg = cfg.replace(task="mlm")
    return cfg


def _match_keys(state: dict[str, torch.Tensor], ours: dict[str, torch.Tensor], name_map: dict[str, str],
                mlm_bias_key: str | None) -> tuple[dict[str, torch.Tensor], set[str], list[str], list[str]]:
    """The file's tensors under our names, by `name_map` (ours -> theirs, without .weight/.bias) and the MLM
    decoder bias when the head is loaded. Returns (target state, file keys used, missing keys, shape
    mismatches)."""
    target: dict[str, torch.Tensor] = {}
    missing, mismatched = [], []
    used = set()
    for our_base, their_base in name_map.items():
        for suffix in (".weight", ".bias"):
            ok, tk = our_base + suffix, their_base + suffix
            if ok not in ours:
                continue
            if tk not in state:
                missing.append(tk)
                continue
            used.add(tk)
            if tuple(state[tk].shape) != tuple(ours[ok].shape):
                mismatched.append(f"{tk} {tuple(state[tk].shape)} vs {tuple(ours[ok].shape)}")
                continue
            target[ok] = state[tk]
    if mlm_bias_key is not None:
        if mlm_bias_key in state:
            target["cls.predictions.bias"] = state[mlm_bias_key]
            used.add(mlm_bias_key)
        else:
            missing.append(mlm_bias_key)
    return target, used, missing, mismatched


def _shared_attention_mismatches(cfg: EncoderConfig, target: dict[str, torch.Tensor]) -> list[str]:
    """Under attention-only sharing the attention weights are stored once per layer (HF has no such sharing);
    all copies must agree. Returns one line per copy that differs from layer 0."""
    if cfg.sharing != "attention":
        return []
    mismatched = []
    for i in range(1, cfg.num_hidden_layers):
        for ours_key, _, _ in _LAYER_KEYS[:5]:
            for suffix in (".weight", ".bias"):
                a, b = f"encoder.layer.0.{ours_key}{suffix}", f"encoder.layer.{i}.{ours_key}{suffix}"
                if a in target and b in target and not torch.equal(target[a], target[b]):
                    mismatched.append(f"layer {i} {ours_key}{suffix} differs from layer 0 under attention sharing")
    return mismatched


def parent_record(parent: LoadedCheckpoint) -> dict:
    """How a checkpoint made from `parent` names it in its pocketbert.json: where it was, what it was,
    and the hash of the weights it started from."""
    return {"path": str(parent.path.resolve()), "model_type": parent.model_type,
            "weights_sha256": path_sha256(parent.path / "model.safetensors"),
            "num_hidden_layers": parent.model.config.num_hidden_layers}


# ---------------------------------------------------------------------------------------------
# Saving


def _hf_config(cfg: EncoderConfig) -> tuple[dict, str, str]:
    """EncoderConfig -> (config.json dict, model_type, HF architecture name)."""
    albert = cfg.factorized or cfg.sharing != "none"
    task_arch = {"embedding": "Model", "mlm": "ForMaskedLM", "classification": "ForSequenceClassification"}[cfg.task]
    d = {
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": cfg.hidden_act,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": cfg.max_position_embeddings,
        "type_vocab_size": max(cfg.type_vocab_size, 1),
        "initializer_range": 0.02,
        "layer_norm_eps": cfg.layer_norm_eps,
        "pad_token_id": cfg.pad_token_id,
        "position_embedding_type": "absolute",
    }
    if albert:
        d.update(model_type="albert", embedding_size=cfg.embedding_size,
                 num_hidden_groups=1 if cfg.sharing == "all" else cfg.num_hidden_layers, inner_group_num=1,
                 hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        arch = "Albert" + task_arch
    else:
        d["model_type"] = "bert"
        arch = "Bert" + task_arch
    if cfg.task == "classification":
        d["id2label"] = {str(i): cfg.id2label.get(i, f"LABEL_{i}") for i in range(cfg.num_labels)}
        d["label2id"] = {v: int(k) for k, v in d["id2label"].items()}
    d["architectures"] = [arch]
    return d, d["model_type"], arch


def hf_state_dict(model: Encoder) -> dict[str, torch.Tensor]:
    """Our state_dict in the HF layout of `_hf_config(model.config)`, contiguous and unshared."""
    cfg = model.config
    _, model_type, _ = _hf_config(cfg)
    base_prefix = "" if cfg.task == "embedding" else f"{model_type}."
    if model_type == "albert" and cfg.task == "embedding":
        base_prefix = ""
    n_stored = 1 if cfg.sharing == "all" else cfg.num_hidden_layers
    name_map = _hf_name_map(cfg, model_type, base_prefix, n_stored)
    name_map.update(_head_map(model_type, model.cls is not None, model.classifier is not None))
    ours = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for our_base, their_base in name_map.items():
        for suffix in (".weight", ".bias"):
            if our_base + suffix in ours:
                out[their_base + suffix] = ours[our_base + suffix].detach().clone().contiguous()
    if model.cls is not None:
        bias = ours["cls.predictions.bias"].detach().clone()
        out[_mlm_bias_key(model_type)] = bias
        # HF ties decoder.weight to the embeddings and keeps decoder.bias == bias; write both so that
        # older transformers versions load without "newly initialised" warnings.
        dec = "cls.predictions.decoder" if model_type == "bert" else "predictions.decoder"
        out[f"{dec}.weight"] = ours["embeddings.word_embeddings.weight"].detach().clone()
        out[f"{dec}.bias"] = bias.clone()
    return out


def _sentence_transformers_files(dst: Path, cfg: EncoderConfig, max_seq_length: int) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if cfg.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (dst / "2_Normalize").mkdir()
    write_json(dst / "modules.json", modules)
    (dst / "1_Pooling").mkdir()
    write_json(dst / "1_Pooling" / "config.json", {
        "word_embedding_dimension": cfg.hidden_size,
        "pooling_mode_cls_token": cfg.pooling == "cls",
        "pooling_mode_mean_tokens": cfg.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    })
    write_json(dst / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})


def write_tokenizer_files(dst: Path, tokens: list[str], options: dict, max_length: int) -> None:
    """vocab.txt, tokenizer.json (rebuilt from the vocabulary), tokenizer_config.json, special_tokens_map.json."""

    write_vocab(dst / "vocab.txt", tokens)
    tok = build_wordpiece(tokens, options["lowercase"], options["strip_accents"], options["tokenize_chinese_chars"])
    tok.save(str(dst / "tokenizer.json"))
    write_json(dst / "tokenizer_config.json", {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": options["lowercase"],
        "strip_accents": options["strip_accents"] if options["strip_accents"] != options["lowercase"] else None,
        "tokenize_chinese_chars": options["tokenize_chinese_chars"],
        "do_basic_tokenize": True,
        "model_max_length": max_length,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
    })
    write_json(dst / "special_tokens_map.json", {
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
    })


def save_checkpoint(model: Encoder, out: str | os.PathLike, tokenizer_src: Path | None = None,
                    tokens: list[str] | None = None, tokenizer_opts: dict | None = None,
                    record: dict | None = None, command: str | None = None) -> Path:
    """Write an HF-compatible checkpoint folder atomically (temporary folder, then rename).

    Args:
        model: the encoder; its config decides the HF layout (bert or albert) and head.
        out: the folder; it may exist only if empty or a previous pocketbert checkpoint.
        tokenizer_src: folder whose tokenizer files are copied unchanged (when `tokens` is None).
        tokens: a new vocabulary (after trimming); tokenizer files are rebuilt from it.
        tokenizer_opts: lower-casing / accent options when rebuilding (default: read from tokenizer_src).
        record: what to add to pocketbert.json (parent, layer_map, ...); provenance is added here.
        command: the `pocketbert ...` line recorded in the provenance (None: this process's).
    Returns:
        The final folder.
    """
    cfg = model.config
    out = Path(out)
    hf_cfg, model_type, arch = _hf_config(cfg)
    max_len = min(cfg.max_position_embeddings, 512)
    with atomic_output_dir(out, MARKER) as tmp:
        state = hf_state_dict(model)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        write_json(tmp / "config.json", hf_cfg)
        if tokens is not None:
            opts = tokenizer_opts or (tokenizer_options(tokenizer_src) if tokenizer_src else None)
            if opts is None:
                raise PocketBertError("save_checkpoint: tokenizer options are needed to rebuild the tokenizer")
            write_tokenizer_files(tmp, tokens, opts, max_len)
        elif tokenizer_src is not None:
            if not (tokenizer_src / "vocab.txt").is_file():
                raise PocketBertError(f"{tokenizer_src} has no vocab.txt to copy into the checkpoint")
            for name in TOKENIZER_FILES:
                if (tokenizer_src / name).is_file():
                    shutil.copyfile(tokenizer_src / name, tmp / name)
            if not (tmp / "tokenizer.json").is_file():
                opts = tokenizer_options(tokenizer_src)
                build_wordpiece(read_vocab(tmp / "vocab.txt"), opts["lowercase"], opts["strip_accents"],
                                opts["tokenize_chinese_chars"]).save(str(tmp / "tokenizer.json"))
        if cfg.task == "embedding":
            _sentence_transformers_files(tmp, cfg, max_seq_length=min(256, max_len))
        full = {
            "format_version": FORMAT_VERSION,
            "kind": "checkpoint",
            "model_type": model_type,
            "architecture": arch,
            "task": cfg.task,
            "config": cfg.to_dict(),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            **(record or {}),
            "weights_sha256": path_sha256(tmp / "model.safetensors"),
            "provenance": provenance(command=command),
        }
        write_json(tmp / MARKER, full)
    return out
