"""Fixtures of tests/apps: the two app cores and the bundles they answer on (see app_cores.py; imported here
so that pytest registers them)."""

from app_cores import (  # noqa: F401
    core_jar,
    exported,
    minilm_tokenizer_dir,
    pytest_terminal_summary,
    swift_conformance,
    swift_root,
)
