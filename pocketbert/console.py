"""One output channel for what a person reads, and a quiet terminal.

Every stage says its lines through `say` (the `pocketbert` logger at INFO) and draws progress bars on `stream()`;
nothing else in the product prints. The CLI configures this once per command (`session`):

- the terminal shows pocketbert's own lines, each one line, and the progress bar within `columns()`;
- with a log file (`pocketbert build` writes `<out>/build.log`), everything else goes to that file: other
  libraries' warnings (`logging.captureWarnings`), their logging, their prints, and what the C++ runtimes write to
  file descriptors 1 and 2 (the descriptors themselves point at the file while the session lasts); pocketbert's own
  lines go there too, with times, so the log reads as one story;
- `-v` (verbose) redirects nothing: every library's output on the terminal as it comes, and pocketbert's DEBUG lines.

Torch-free: the CLI imports it before any command module has loaded a heavy dependency.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

LOGGER = logging.getLogger("pocketbert")
_terminal: tuple[TextIO, TextIO] | None = None  # (stdout, stderr) of the terminal while fds 1 and 2 point at a log
_log: TextIO | None = None  # that log
_discard = False  # the command failed on bad input: remove the log and the folders made for it


def say(msg: str) -> None:
    """One line for a person (a stage's step or artifact); to the log file as well when there is one."""
    LOGGER.info(msg)


def step(msg: str) -> None:
    """A line of a command's own record on stdout (a build's `[k/n] stage: ...` lines), and in the log file."""
    print(msg, file=out(), flush=True)
    if _log is not None:
        _log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} pocketbert STEP: {msg}\n")


def log_path() -> Path | None:
    """The log file other libraries' output goes to in this session (None: the terminal)."""
    return Path(_log.name) if _log is not None else None


def discard_log() -> None:
    """The command refused its input: if nothing but the log was written, the session removes it (and the folders
    it made), so that a refused command leaves nothing behind; a command that failed after writing keeps its log."""
    global _discard
    _discard = True


def stream() -> TextIO:
    """Where progress bars and pocketbert's lines are drawn: the terminal's stderr."""
    return _terminal[1] if _terminal else sys.stderr


def out() -> TextIO:
    """Where a command's result (its text or --json) goes: the terminal's stdout."""
    return _terminal[0] if _terminal else sys.stdout


def columns(default: int = 100) -> int:
    """The terminal's width (COLUMNS, else `default`, when it is not a terminal)."""
    with contextlib.suppress(AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return os.get_terminal_size(stream().fileno()).columns
    with contextlib.suppress(ValueError):
        return int(os.environ.get("COLUMNS", default))
    return default


class _TerminalHandler(logging.StreamHandler):
    """Writes to `stream()` as it is at each record (a test's captured stderr, or the terminal behind a log)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = stream()
        super().emit(record)


def _terminal_copy(fd: int, obj: TextIO) -> tuple[TextIO, int | None]:
    """A text stream that still reaches what `obj` reached once fd `fd` points elsewhere, and the dup'ed fd (None
    when `obj` is not backed by that fd, e.g. a test's in-memory capture, which the redirect does not touch)."""
    try:
        if obj.fileno() != fd:
            return obj, None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return obj, None
    dup = os.dup(fd)
    return os.fdopen(dup, "w", buffering=1, encoding=getattr(obj, "encoding", None) or "utf-8",
                     errors="replace", closefd=False), dup


@contextlib.contextmanager
def session(verbose: bool = False, log_file: str | os.PathLike | None = None) -> Iterator[Path | None]:
    """Configure output for one command: yields the log file in use (None: everything on the terminal)."""
    global _terminal, _log
    terminal = _TerminalHandler()
    terminal.setFormatter(logging.Formatter("%(message)s"))
    terminal.setLevel(logging.DEBUG if verbose else logging.INFO)
    old_level, old_propagate = LOGGER.level, LOGGER.propagate
    LOGGER.setLevel(logging.DEBUG)
    LOGGER.propagate = False  # our lines reach the terminal once, not again through the root logger
    LOGGER.addHandler(terminal)
    if verbose or log_file is None:
        try:
            yield None
        finally:
            LOGGER.removeHandler(terminal)
            LOGGER.setLevel(old_level)
            LOGGER.propagate = old_propagate
        return

    global _discard
    path = Path(log_file)
    made = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    _discard = False
    sys.stdout.flush()
    sys.stderr.flush()
    (t_out, dup_out), (t_err, dup_err) = _terminal_copy(1, sys.stdout), _terminal_copy(2, sys.stderr)
    saved = os.dup(1), os.dup(2)
    log = open(path, "a", buffering=1, encoding="utf-8", errors="replace")
    to_file = logging.StreamHandler(log)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    root = logging.getLogger()
    old_root_level = root.level
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    _terminal, _log = (t_out, t_err), log
    LOGGER.addHandler(to_file)
    root.addHandler(to_file)
    root.setLevel(min(old_root_level, logging.INFO) if old_root_level else logging.INFO)
    logging.captureWarnings(True)
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        for s in (sys.stdout, sys.stderr, t_out, t_err, log):
            with contextlib.suppress(Exception):
                s.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, dup_out, dup_err):
            if fd is not None:
                os.close(fd)
        _terminal = _log = None
        root.removeHandler(to_file)
        root.setLevel(old_root_level)
        LOGGER.removeHandler(to_file)
        LOGGER.removeHandler(terminal)
        LOGGER.setLevel(old_level)
        LOGGER.propagate = old_propagate
        log.close()
        if _discard and [p for p in path.parent.iterdir()] == [path]:  # refused before writing anything else
            path.unlink(missing_ok=True)
            for d in made:  # innermost first
                with contextlib.suppress(OSError):
                    d.rmdir()
            _discard = False
