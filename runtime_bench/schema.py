"""The one results schema (results.schema.json): load, validate, write atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pocketbert.errors import PocketBertError
from pocketbert.files import read_json

SCHEMA_VERSION = "1.1"  # 1.1: real_lengths, role compare
SCHEMA_MAJOR = 1
KIND = "pocketbert-bench-results"
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")


def load_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def validate_results(doc: dict, where: str = "results") -> None:
    """Raise PocketBertError naming the first problem: not ours, unknown major version, schema violation."""
    import jsonschema

    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise PocketBertError(f"{where}: not a pocketbert results file (kind is not {KIND!r}); pass the --out of `pocketbert bench`")
    version = str(doc.get("schema_version", ""))
    if version.split(".")[0] != str(SCHEMA_MAJOR):
        raise PocketBertError(f"{where}: results schema_version {version!r} is not supported (this pocketbert reads {SCHEMA_MAJOR}.x)")
    try:
        jsonschema.validate(doc, load_schema())
    except jsonschema.ValidationError as e:
        loc = "/".join(str(p) for p in e.absolute_path) or "(root)"
        raise PocketBertError(f"{where}: invalid at {loc}: {e.message.splitlines()[0][:200]}") from None


def read_results(path: str | os.PathLike) -> dict:
    path = Path(path)
    doc = read_json(path, f"results file {path} does not exist; pass the --out of `pocketbert bench`", "")
    validate_results(doc, str(path))
    return doc


def write_results(path: str | os.PathLike, doc: dict) -> None:
    """Validate, then write through a temporary file and a rename: readers never see half a file."""
    from pocketbert.files import write_json

    validate_results(doc, str(path))
    write_json(path, doc)


def check_output_file(path: str | os.PathLike) -> Path:
    """Refuse an --out that is a folder or an existing file that is not a results file of ours."""
    path = Path(path)
    if path.is_dir():
        raise PocketBertError(f"--out {path} is a folder; give a file name such as results.json")
    if path.exists():
        try:
            ours = json.loads(path.read_text(encoding="utf-8")).get("kind") == KIND
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise PocketBertError(f"--out {path} exists and is not a pocketbert results file; choose another name")
    return path
