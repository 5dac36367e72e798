"""Docs that stay true: the stated default build matches the default recipe, the runtime_bench README lists
every module, and every repository path a source or doc names exists."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RECIPE = REPO / "pocketbert" / "recipes" / "build-default.yaml"


def _teacher_name(path: str) -> str:
    """How the docs name a teacher of the recipe: the packaged model, a named peer's file, else the folder."""
    from pocketbert.pipeline.peers import NAMED_PEERS

    if path == "minilm":
        return "all-MiniLM-L6-v2"
    if path in NAMED_PEERS:
        return Path(NAMED_PEERS[path][1]).stem
    return Path(path).name


def _default() -> dict:
    """Layers, teachers and steps of the default recipe, read from its YAML."""
    distill = yaml.safe_load(DEFAULT_RECIPE.read_text(encoding="utf-8"))["distill"]
    layers = str(distill["student"]["layers"])
    assert re.fullmatch(r"\d+(,\d+)*", layers), f"teach this test to count the layers of `{layers}`"
    teachers = distill.get("teachers") or [distill["teacher"]]
    return {"layers": len(layers.split(",")), "steps": int(distill["train"]["max_steps"]),
            "teachers": [_teacher_name(t["path"] if isinstance(t, dict) else t) for t in teachers]}


def _statements() -> dict[str, str]:
    """Where the default is described: the Makefile's `build` comment, the README paragraph on `make build`,
    the recipe's own header."""
    make = REPO.joinpath("Makefile").read_text(encoding="utf-8")
    comment = re.search(r"((?:^#.*\n)+)build:", make, re.M)
    readme = REPO.joinpath("README.md").read_text(encoding="utf-8")
    paragraph = re.search(r"^`make build` runs .*?(?:\n\n)", readme, re.M | re.S)
    header = "".join(line for line in DEFAULT_RECIPE.read_text(encoding="utf-8").splitlines(True) if line.startswith("#"))
    assert comment and paragraph, "the Makefile's build comment or the README's `make build` paragraph moved"
    return {"Makefile": comment.group(1), "README.md": paragraph.group(0), DEFAULT_RECIPE.name: header}


def test_the_stated_default_is_the_default_recipe():
    want = _default()
    for where, text in _statements().items():
        text = " ".join(text.replace("#", " ").split())
        layers = re.findall(r"(\d+)-layer student", text)
        steps = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) steps", text)]
        assert layers and {int(n) for n in layers} == {want["layers"]}, f"{where} says {layers}-layer, recipe {want}"
        assert steps and steps[0] == want["steps"], f"{where} says {steps[:1]} steps, the recipe {want['steps']}"
        missing = [t for t in want["teachers"] if t not in text]
        assert not missing, f"{where} does not name the recipe's teachers {missing}"


def test_runtime_bench_readme_lists_every_module():
    readme = REPO.joinpath("runtime_bench", "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([\w.]+)` \|", readme, re.M))
    files = {p.name for p in (REPO / "runtime_bench").iterdir() if p.suffix in (".py", ".json", ".cpp") and p.name != "__init__.py"}
    assert files - listed == set(), f"runtime_bench/README.md's file table misses {sorted(files - listed)}"
    assert listed - files == set(), f"runtime_bench/README.md's file table lists {sorted(listed - files)}, not there"


# Paths named on purpose that do not exist (what would go wrong if they did).
NOT_THERE = {"tests/apps/conftest.py"}
PATH = re.compile(r"(?<![\w/.-])((?:pipeline|export|runtime_bench|pocketbert|android_demo|ios_demo|tests)/"
                  r"[\w/.-]*\w\.(?:py|kt|kts|swift|md|yaml|json|sh))\b")
# `pocketbert.x.y.name` in docs and app sources (Python files hold such names in strings that are not references)
DOTTED = re.compile(r"(?<![\w.])pocketbert\.(bundle|export|pipeline|runtime_bench|files|errors|build|stages|cli|commands)"
                    r"((?:\.\w+)*)")
FOLDERS = {"export": "export", "pipeline": "pipeline", "runtime_bench": "runtime_bench"}


def _tracked(*suffixes: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return [REPO / f for f in out if f.endswith(suffixes) and (REPO / f).is_file()]


def _defines(module: Path, name: str) -> bool:
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return True
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return True
    return False


def _resolves(package: str, rest: list[str]) -> bool:
    path = REPO / FOLDERS.get(package, f"pocketbert/{package}")
    if not path.is_dir():
        path = path.with_suffix(".py")
    for part in rest:
        if path.is_dir() and ((path / part).is_dir() or (path / f"{part}.py").is_file()):
            path = path / part if (path / part).is_dir() else path / f"{part}.py"
            continue
        module = path / "__init__.py" if path.is_dir() else path
        return module.is_file() and _defines(module, part)
    return path.exists()


def test_paths_and_modules_named_in_sources_and_docs_exist():
    stale = []
    for f in _tracked(".py", ".kt", ".kts", ".swift", ".md", ".yaml", ".toml", "Makefile"):
        text = f.read_text(encoding="utf-8", errors="replace")
        where = f.relative_to(REPO)
        stale += [f"{where}: {m.group(1)}" for m in PATH.finditer(text)
                  if "..." not in m.group(1) and m.group(1) not in NOT_THERE and not (REPO / m.group(1)).exists()]
        if f.suffix in (".md", ".kt", ".swift"):
            stale += [f"{where}: {m.group(0)}" for m in DOTTED.finditer(text)
                      if not _resolves(m.group(1), [p for p in m.group(2).split(".") if p])]
    assert not stale, "names that moved or never existed:\n" + "\n".join(stale)
