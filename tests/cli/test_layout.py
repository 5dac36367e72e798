"""The package layout holds: one import root, and imports that flow one way between stages."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# folder -> project modules it may import (prefix match). No exceptions: the bundle contract is its own
# torch-free package that export writes through and every reader reads through.
# pocketbert.console is the one output channel every stage speaks through (torch-free, no imports of its own)
ALLOWED = {
    "pipeline": ("pocketbert.pipeline", "pocketbert.errors", "pocketbert.files", "pocketbert.console"),
    "pocketbert/bundle": ("pocketbert.bundle", "pocketbert.errors", "pocketbert.files"),
    "export": ("pocketbert.export", "pocketbert.bundle", "pocketbert.errors", "pocketbert.files", "pocketbert.console",
               "pocketbert.pipeline.models", "pocketbert.pipeline.checkpoint", "pocketbert.pipeline.tokenizer",
               "pocketbert.pipeline.evaluate",
               "pocketbert.pipeline.names",  # a checkpoint to export is given by name or path, static models too
               "pocketbert.pipeline.suite",  # the dev suite every artifact is scored on
               "pocketbert.pipeline.quantize"),  # the one int4 / int8 grid: the table snap and every exporter share it
    "runtime_bench": ("pocketbert.runtime_bench", "pocketbert.bundle", "pocketbert.errors", "pocketbert.files",
                      "pocketbert.console"),
}


def _project_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.split(".")[0] in ("pocketbert", "pipeline", "export", "runtime_bench")}


def test_imports_flow_one_way():
    bad = []
    for stage, allowed in ALLOWED.items():
        for path in (REPO / stage).rglob("*.py"):
            for name in _project_imports(path):
                # `from pocketbert.pipeline import x` names a module x: judge the longest dotted form
                if not name.startswith(allowed) and not any(name == a.rsplit(".", 1)[0] for a in allowed):
                    bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, "\n".join(bad)


# pipeline modules that import another pipeline module inside a function, each with its reason. None: the one
# module that resolves model names (pipeline/names.py) sits above checkpoint, peers and static, so nothing in
# pipeline/ needs to hide an import loop. Optional heavy dependencies (sklearn, onnx, model2vec, matplotlib) are
# not pipeline modules and may still be imported where they are used.
FUNCTION_LEVEL_IMPORTS: dict[str, str] = {}


def test_no_function_level_imports_across_pipeline_modules():
    found = []
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                for name in names:
                    if name.startswith("pocketbert.pipeline") and f"{path.relative_to(REPO)}:{fn.name}" \
                            not in FUNCTION_LEVEL_IMPORTS:
                        found.append(f"{path.relative_to(REPO)}:{node.lineno} ({fn.name}) imports {name}")
                        break
    assert not found, "imports inside functions across pipeline/ modules:\n" + "\n".join(found)


def test_one_import_root_and_console_script(tmp_path):
    code = ("import importlib.util as u; import pocketbert.pipeline, pocketbert.export, pocketbert.runtime_bench; "
            "print(u.find_spec('pipeline') is None or 'site-packages/pipeline' in str(u.find_spec('pipeline').origin), "
            "pocketbert.pipeline.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    flag, where = out.split()
    assert flag == "True" and where.startswith(str(REPO / "pipeline"))
    help_text = subprocess.run([sys.executable, "-m", "pocketbert", "--help"], capture_output=True, text=True,
                               check=True).stdout
    for command in ("student", "embed", "eval"):
        assert command in help_text


def test_bundle_contract_is_torch_free():
    """Phone-side and bench-side tools read bundles without importing torch or any training code."""
    code = ("import sys, pocketbert.bundle.manifest, pocketbert.bundle.naming, pocketbert.bundle.parity; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers') "
            "or m.startswith(('pocketbert.pipeline', 'pocketbert.export'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tests_import_helpers_not_each_other():
    """Test modules share plain functions through tests/helpers/, never by importing another test module or
    conftest.py (whose fixtures pytest injects by name): the import of a test module runs its module-level code
    and ties one test file's layout to another's. Imports inside functions count too."""
    found = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "conftest" or name.split(".")[-1].startswith("test_"):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert not found, "move the shared function into tests/helpers/:\n" + "\n".join(found)
