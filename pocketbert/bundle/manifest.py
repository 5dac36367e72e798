"""A bundle's `manifest.json`, typed and torch-free: `Manifest` and `Artifact` (export fills them and writes
them with `Manifest.write`), and the reader every other stage uses (verify, eval, bench, emulation, the build
and the app fixture generator).

A bundle is trusted only through this module: the schema major version must be one we know, every
path the manifest names must stay inside the bundle, and artifact hashes are checked on request.
See BUNDLE.md for the format.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pocketbert.errors import PocketBertError
from pocketbert.files import path_sha256, read_json, write_json

from .parity import TOLERANCES, Tolerance

# 1.1: golden cases per bucket, artifacts[].invariance. 1.2: every tolerance entry also holds the MLM argmax
# agreement and the bucket-invariance cosine, so that no reader keeps a table of its own. 1.3: artifacts[].min_seq_len
# (a dynamic-length artifact; a reader that ignores it pads to seq_len, which the artifact also takes).
SCHEMA_VERSION = "1.3"
SCHEMA_MAJOR = 1
MANIFEST = "manifest.json"
SCHEMA_FILE = Path(__file__).with_name("manifest.schema.json")


def load_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def path_size(path: str | os.PathLike) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def bucket_for(seq_lens: list[int], n_tokens: int) -> int:
    """The smallest bucket that holds `n_tokens`; the largest (the text is truncated) when none does."""
    buckets = sorted(seq_lens)
    for n in buckets:
        if n >= n_tokens:
            return n
    return buckets[-1]


def input_length(artifact: dict, n_tokens: int) -> int:
    """`Artifact.input_length` of a manifest row (a `Bundle.artifacts` dict)."""
    return Artifact.from_dict(artifact).input_length(n_tokens)


@dataclass
class Artifact:
    """One artifact row of the manifest (BUNDLE.md `artifacts`); results are the dicts the checks return."""

    file: str  # relative to the bundle: `{model}_{backend}_{quant}_seq{N}.{ext}` (naming.artifact_name)
    format: str
    backend: str
    quant: str
    seq_len: int
    size_bytes: int
    sha256: str  # of the file; of a `.mlpackage` folder's files in sorted path order (files.path_sha256)
    export_seconds: float  # conversion and quantization, not verification
    tool_versions: dict[str, str]
    parity: dict  # parity.compare / golden_parity, or a `skipped` result where the runtime cannot run here
    notes: dict
    invariance: dict | None = None  # parity.bucket_invariance at this bucket
    gate: dict | None = None  # export/gate.py gate_family: the format/quant family's geometry gate
    # Set: a dynamic-length artifact, which takes any length from min_seq_len ([CLS] [SEP]: 2) to seq_len and
    # is fed a text's ids unpadded (BUNDLE.md `min_seq_len`); None: exactly seq_len, padded.
    min_seq_len: int | None = None

    @property
    def key(self) -> str:
        """The manifest's `tolerances` key, e.g. `onnx/int8`."""
        return f"{self.format}/{self.quant}"

    def input_length(self, n_tokens: int) -> int:
        """The input length an app feeds this artifact for a text of `n_tokens` ids (truncated to its bucket):
        the bucket (padded), or, for a dynamic-length artifact, the text's own length within
        [min_seq_len, seq_len], not padded. The Kotlin (`Artifact.inputLength`) and Swift
        (`Artifact.inputLength(tokens:)`) cores and the bench's real-length rows hold to it (tests/apps)."""
        if self.min_seq_len is None:
            return self.seq_len
        return max(self.min_seq_len, min(n_tokens, self.seq_len))

    @classmethod
    def from_dict(cls, row: dict) -> Artifact:
        """A (validated) manifest row; keys a newer 1.x writer added are left out."""
        return cls(**{f.name: row.get(f.name) for f in dataclasses.fields(cls)})

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class Manifest:
    """`manifest.json` (BUNDLE.md). `tolerances` holds one entry per format/quant of `artifacts`."""

    model: dict  # name, task, config, num_parameters, parent, optional teacher
    inputs: list[dict]
    outputs: list[dict]
    seq_lens: list[int]
    tokenizer: dict
    golden: dict  # {file, sha256}
    artifacts: list[Artifact]
    provenance: dict
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    labels: list[str] | None = None  # classification only: label names in logit order
    quant_auto: dict | None = None  # --quant auto only: what was tried per format and why the kept rung won
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict:
        """The JSON document, keys in BUNDLE.md's order; absent optional sections are left out."""
        doc = {"schema_version": self.schema_version, "model": self.model, "inputs": self.inputs,
               "outputs": self.outputs, "seq_lens": self.seq_lens, "tokenizer": self.tokenizer,
               "labels": self.labels, "tolerances": {k: t.to_dict() for k, t in self.tolerances.items()},
               "golden": self.golden, "artifacts": [a.to_dict() for a in self.artifacts],
               "provenance": self.provenance, "quant_auto": self.quant_auto}
        return {k: v for k, v in doc.items() if v is not None}

    @classmethod
    def from_dict(cls, doc: dict) -> Manifest:
        """A validated document (`validate_manifest`). A 1.0/1.1 tolerance entry gets the thresholds it lacks
        from export's table for its quantization."""
        tolerances = {k: Tolerance.from_dict(t, TOLERANCES.get(k.split("/", 1)[-1])) for k, t in doc["tolerances"].items()}
        return cls(model=doc["model"], inputs=doc["inputs"], outputs=doc["outputs"], seq_lens=doc["seq_lens"],
                   tokenizer=doc["tokenizer"], golden=doc["golden"],
                   artifacts=[Artifact.from_dict(a) for a in doc["artifacts"]], provenance=doc["provenance"],
                   tolerances=tolerances, labels=doc.get("labels"), quant_auto=doc.get("quant_auto"),
                   schema_version=doc["schema_version"])

    def write(self, folder: str | os.PathLike) -> Path:
        """Validate, then write `folder/manifest.json` (through a temporary file). Returns its path."""
        doc = self.to_dict()
        validate_manifest(doc, "manifest being written")
        path = Path(folder) / MANIFEST
        write_json(path, doc)
        return path

    @classmethod
    def read(cls, folder: str | os.PathLike) -> Manifest:
        """`folder/manifest.json`, validated. Raises PocketBertError (one line) on a missing, broken or
        unknown-version manifest."""
        return cls.from_dict(_read_document(Path(folder)))


@dataclass
class Bundle:
    """A checked bundle: its folder and manifest dict."""

    root: Path
    manifest: dict

    @property
    def seq_lens(self) -> list[int]:
        return sorted(self.manifest["seq_lens"])

    @property
    def artifacts(self) -> list[dict]:
        return self.manifest["artifacts"]

    @property
    def task(self) -> str:
        return self.manifest["model"]["task"]

    def path(self, rel: str) -> Path:
        """Absolute path of a bundle-relative path; refuses anything that leaves the bundle."""
        return resolve_inside(self.root, rel)

    def artifact_path(self, artifact: dict) -> Path:
        return self.path(artifact["file"])

    def find(self, fmt: str, quant: str, seq_len: int | None = None) -> dict:
        """The artifact of (format, quant) at `seq_len` (None: the largest bucket present)."""
        rows = [a for a in self.artifacts if a["format"] == fmt and a["quant"] == quant]
        if seq_len is not None:
            rows = [a for a in rows if a["seq_len"] == seq_len]
        if not rows:
            have = ", ".join(f"{a['format']}/{a['quant']}/seq{a['seq_len']}" for a in self.artifacts) or "none"
            want = f"{fmt}/{quant}" + (f"/seq{seq_len}" if seq_len is not None else "")
            raise PocketBertError(f"{self.root}: no artifact {want} in the bundle (it has: {have})")
        return max(rows, key=lambda a: a["seq_len"])

    def tolerance(self, artifact: dict) -> Tolerance:
        """What `artifact` is held to: the manifest's entry for its format/quant (a 1.0/1.1 entry completed
        from export's table, `Tolerance.from_dict`)."""
        return Tolerance.from_dict(self.manifest["tolerances"][f"{artifact['format']}/{artifact['quant']}"],
                                   TOLERANCES.get(artifact["quant"]))

    def check_sha256(self, artifact: dict) -> str | None:
        """None when the artifact's bytes match the manifest, else a one-line problem."""
        p = self.artifact_path(artifact)
        if not p.exists():
            return f"{artifact['file']} is missing"
        got = path_sha256(p)
        if got != artifact["sha256"]:
            return f"{artifact['file']} sha256 {got[:12]}... != manifest {artifact['sha256'][:12]}..."
        return None

    def check_all_sha256(self) -> None:
        """Raise PocketBertError on the first artifact (or golden file) whose bytes differ from the manifest."""
        golden = self.manifest["golden"]
        if path_sha256(self.path(golden["file"])) != golden["sha256"]:
            raise PocketBertError(f"{self.root}: {golden['file']} does not match its sha256 in the manifest; re-export the bundle")
        for a in self.artifacts:
            problem = self.check_sha256(a)
            if problem:
                raise PocketBertError(f"{self.root}: {problem}; the file was changed or corrupted, re-export the bundle")

    def golden(self) -> dict:
        return json.loads(self.path(self.manifest["golden"]["file"]).read_text(encoding="utf-8"))


def resolve_inside(root: Path, rel: str) -> Path:
    """`root / rel`, refusing absolute paths and paths that leave `root` (`../x`, symlinks out)."""
    if not isinstance(rel, str) or not rel or os.path.isabs(rel) or "\\" in rel:
        raise PocketBertError(f"{root}: manifest path {rel!r} must be relative to the bundle; re-export the bundle")
    root_real = Path(os.path.realpath(root))
    target = Path(os.path.realpath(root / rel))
    if target != root_real and root_real not in target.parents:
        raise PocketBertError(f"{root}: manifest path {rel!r} points outside the bundle; refusing to read it")
    return root / rel


def validate_manifest(manifest: dict, where: str = "manifest") -> None:
    """Schema major version, then the JSON Schema (when `jsonschema` is installed), then cross-field checks."""
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if not isinstance(version, str) or not version.split(".")[0].isdigit():
        raise PocketBertError(f"{where}: no valid schema_version; this is not a pocketbert bundle manifest")
    major = int(version.split(".")[0])
    if major != SCHEMA_MAJOR:
        raise PocketBertError(
            f"{where}: schema_version {version} is not supported (this pocketbert reads {SCHEMA_MAJOR}.x); "
            "use a matching pocketbert version or re-export the bundle"
        )
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema is a dependency; apps-side tools may lack it
        jsonschema = None
    if jsonschema is not None:
        try:
            jsonschema.validate(manifest, load_schema())
        except jsonschema.ValidationError as e:
            loc = "/".join(str(p) for p in e.absolute_path) or "(root)"
            raise PocketBertError(f"{where}: invalid at {loc}: {e.message.splitlines()[0][:200]}") from None
    buckets = manifest["seq_lens"]
    if buckets != sorted(set(buckets)):
        raise PocketBertError(f"{where}: seq_lens {buckets} must be sorted and distinct")
    for a in manifest["artifacts"]:
        if a["seq_len"] not in buckets:
            raise PocketBertError(f"{where}: artifact {a['file']} has seq_len {a['seq_len']} not in seq_lens {buckets}")
        if a.get("min_seq_len", a["seq_len"]) > a["seq_len"]:
            raise PocketBertError(f"{where}: artifact {a['file']} has min_seq_len {a['min_seq_len']} > seq_len {a['seq_len']}")
        key = f"{a['format']}/{a['quant']}"
        if key not in manifest["tolerances"]:
            raise PocketBertError(f"{where}: no tolerance for {key} (artifact {a['file']})")


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Open a bundle folder: read and validate `manifest.json`, check every named path stays inside.

    Hashes are not checked here (that reads every artifact); call `Bundle.check_all_sha256()`.
    Raises:
        PocketBertError: missing folder or manifest, bad JSON, unknown major version, schema violation,
            a path outside the bundle, a missing file.
    """
    root = Path(path)
    manifest = _read_document(root)
    bundle = Bundle(root, manifest)
    tok = manifest["tokenizer"]
    for rel in (tok["vocab_file"], tok["tokenizer_file"], manifest["golden"]["file"], *(a["file"] for a in manifest["artifacts"])):
        p = bundle.path(rel)
        if not p.exists():
            raise PocketBertError(f"{root}: {rel} named in the manifest is missing; re-export the bundle")
    return bundle


def _read_document(root: Path) -> dict:
    """`root/manifest.json` as a validated dict."""
    if not root.is_dir():
        raise PocketBertError(f"bundle {root} does not exist or is not a folder; pass the --out folder of `pocketbert export`")
    mpath = root / MANIFEST
    manifest = read_json(mpath, f"{root} has no {MANIFEST}; pass a bundle written by `pocketbert export`",
                         "; re-export the bundle")
    validate_manifest(manifest, str(mpath))
    return manifest
