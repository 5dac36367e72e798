"""A build as a chain of typed stages that talk through files, skipped when nothing changed.

Each stage calls one library function with its typed config and writes one output (a folder or a file)
inside the build folder. Its key is the sha256 of that config (as JSON), the content of every outside
file it reads and the key of the stage before it, so a stage re-runs exactly when its inputs changed.
`build.json` records each finished stage (key, seconds, result); an interrupted build re-runs from the
first stage that has not finished, and a stage that can continue its own work (training) resumes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pocketbert.errors import PocketBertError
from pocketbert.files import path_sha256, write_json

STATE_FILE = "build.json"


@dataclass
class Stage:
    name: str
    config: dict  # the stage's typed config as plain data: what its key is made of
    run: Callable[[bool], dict]  # run(resume) -> result summary
    output: str  # relative to the build folder
    inputs: list[str] = field(default_factory=list)  # outside files or folders whose content matters
    resumable: Callable[[Path], bool] | None = None  # does the build folder hold work this stage can resume?
    describe: str = ""  # one line for the terminal


def stage_key(stage: Stage, previous_key: str, cache: dict[str, str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(stage.config, sort_keys=True, default=str).encode())
    h.update(previous_key.encode())
    for name in stage.inputs:
        p = Path(name)
        if not p.exists():
            raise PocketBertError(f"stage {stage.name}: input {p} does not exist; fix the recipe")
        if name not in cache:
            cache[name] = path_sha256(p)  # a file, or a folder's files in sorted path order
        h.update(cache[name].encode())
    return h.hexdigest()


def load_state(out: Path) -> dict:
    path = out / STATE_FILE
    if not path.is_file():
        return {"stages": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {"stages": {}}


def run_stages(stages: list[Stage], out: Path, force_from: str | None = None,
               log: Callable[[str], None] = print) -> dict:
    """Run the stages in order, skipping each whose key matches a finished record and whose output exists.

    Args:
        stages: the chain.
        out: the build folder (holds every output and build.json).
        force_from: re-run this stage and every later one, whatever the records say.
        log: progress lines, one per stage start and end.
    Returns:
        The build state (`stages`: name -> {key, status, seconds, result}).
    """
    names = [s.name for s in stages]
    if force_from is not None and force_from not in names:
        raise PocketBertError(f"--from {force_from!r} is not a stage; stages: {', '.join(names)}")
    out.mkdir(parents=True, exist_ok=True)
    state = load_state(out)
    state.setdefault("stages", {})
    cache: dict[str, str] = {}
    previous = ""
    forced = False
    for i, stage in enumerate(stages, 1):
        forced = forced or stage.name == force_from
        key = stage_key(stage, previous, cache)
        record = state["stages"].get(stage.name, {})
        done = record.get("status") == "done" and record.get("key") == key and (out / stage.output).exists()
        tag = f"[{i}/{len(stages)}] {stage.name}"
        if done and not forced:
            log(f"{tag}: up to date, skipped ({record.get('seconds', 0):.0f} s when it ran)")
            previous = key
            continue
        resume = (not forced and record.get("key") == key and record.get("status") == "started"
                  and stage.resumable is not None and stage.resumable(out))
        log(f"{tag}: {'resuming ' if resume else ''}{stage.describe or stage.name} -> {stage.output}")
        state["stages"][stage.name] = {"key": key, "status": "started", "started_unix": time.time()}
        write_json(out / STATE_FILE, state)
        t0 = time.perf_counter()
        result = stage.run(resume)
        seconds = time.perf_counter() - t0
        state["stages"][stage.name] = {"key": key, "status": "done", "seconds": round(seconds, 1),
                                       "output": stage.output, "result": result}
        write_json(out / STATE_FILE, state)
        log(f"{tag}: done in {seconds:.0f} s")
        previous = key
    # stages from an older recipe that no longer exist are dropped from the record
    state["stages"] = {k: v for k, v in state["stages"].items() if k in names}
    write_json(out / STATE_FILE, state)
    return state
