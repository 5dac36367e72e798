"""Read and check a bundle's `manifest.json` without torch (verify, eval, bench, emulation, the build and
the app fixture generator all read bundles through this module).

A bundle is trusted only through this module: the schema major version must be one we know, every
path the manifest names must stay inside the bundle, and artifact hashes are checked on request.
See BUNDLE.md for the format.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from pocketbert.errors import PocketBertError
from pocketbert.files import path_sha256, read_json

SCHEMA_VERSION = "1.1"  # 1.1: golden cases per bucket, artifacts[].invariance
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
    """The input length an app feeds `artifact` for a text of `n_tokens` ids (truncated to its bucket):
    the bucket (`seq_len`, padded), or, for a dynamic-length artifact (`min_seq_len`), the text's own length
    within [min_seq_len, seq_len], not padded."""
    if "min_seq_len" not in artifact:
        return artifact["seq_len"]
    return max(artifact["min_seq_len"], min(n_tokens, artifact["seq_len"]))


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

    def tolerance(self, artifact: dict) -> dict:
        return self.manifest["tolerances"][f"{artifact['format']}/{artifact['quant']}"]

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
    if not root.is_dir():
        raise PocketBertError(f"bundle {root} does not exist or is not a folder; pass the --out folder of `pocketbert export`")
    mpath = root / MANIFEST
    manifest = read_json(mpath, f"{root} has no {MANIFEST}; pass a bundle written by `pocketbert export`",
                         "; re-export the bundle")
    validate_manifest(manifest, str(mpath))
    bundle = Bundle(root, manifest)
    tok = manifest["tokenizer"]
    for rel in (tok["vocab_file"], tok["tokenizer_file"], manifest["golden"]["file"], *(a["file"] for a in manifest["artifacts"])):
        p = bundle.path(rel)
        if not p.exists():
            raise PocketBertError(f"{root}: {rel} named in the manifest is missing; re-export the bundle")
    return bundle
