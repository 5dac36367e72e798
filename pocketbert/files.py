"""Atomic output folders and provenance records, shared by every stage.

Every stage writes into a temporary sibling folder and renames it into place at the end, so an
interrupted or failing run never leaves a half-written checkpoint or bundle behind.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from pocketbert.errors import PocketBertError


def check_output_dir(out: Path, marker: str) -> None:
    """Refuse an existing `out` unless it is empty or a previous output of ours (holds `marker`)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise PocketBertError(f"output {out} exists and is a file; choose another --out")
    if any(out.iterdir()) and not (out / marker).is_file():
        raise PocketBertError(
            f"output directory {out} exists and is not a pocketbert output (no {marker}); choose another --out or remove it"
        )


@contextmanager
def atomic_output_dir(out: str | os.PathLike, marker: str) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; on success it replaces `out` in one rename.

    `out` may already exist only if it is empty or holds `marker` (a previous output of ours).
    On any exception, Ctrl-C included, the temporary folder is removed and `out` is untouched.
    """
    out = Path(out)
    check_output_dir(out, marker)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the final folder gets the usual permissions
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for f in tmp.rglob("*"):  # some writers (safetensors) create 0600 files
        if f.is_file() and not f.stat().st_mode & 0o044:
            os.chmod(f, 0o666 & ~umask)
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


def read_json(path: str | os.PathLike, missing: str, invalid_fix: str):
    """A JSON document from a file; a one-line PocketBertError when it is not a file (`missing` says what
    to pass instead) or not valid JSON (`invalid_fix` ends the message)."""
    path = Path(path)
    if not path.is_file():
        raise PocketBertError(missing)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PocketBertError(f"{path} is not valid JSON ({e}){invalid_fix}") from None


def write_json(path: str | os.PathLike, obj) -> None:
    """Write JSON through a temporary file and a rename (readers never see half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def path_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file; for a folder (.mlpackage), of its files' relative paths and bytes in sorted path order.

    The project's one content hash: checkpoint parents, bundle artifacts and build stage keys all use it.
    """
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if f != path:
            h.update(f.relative_to(path).as_posix().encode("utf-8") + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def dist_versions(*dists: str) -> dict[str, str]:
    """Installed versions of exactly the named distributions ("not installed" where absent)."""
    out = {}
    for name in dict.fromkeys(dists):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def tool_versions(*dists: str) -> dict[str, str]:
    """Installed versions of the named distributions (plus python, pocketbert and the model stack)."""
    return {"python": platform.python_version(),
            **dist_versions("pocketbert", "torch", "transformers", "tokenizers", "safetensors", *dists)}


def git_commit() -> str | None:
    """The pocketbert source commit, when running from a git checkout (with `+dirty` if modified)."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def provenance(*dists: str, command: str | None = None) -> dict:
    """How an output was made: command line, versions, source commit, time.

    `command` is the `pocketbert ...` line that made it, passed down by the CLI or the build (which runs
    its stages in-process); None means this process's own command line.
    """
    return {
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "versions": tool_versions(*dists),
        "git_commit": git_commit(),
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
