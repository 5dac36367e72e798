"""Plain helpers that test modules share: tiny checkpoints and bundles, synthetic texts, process setup.

Test modules import from here, never from each other or from conftest.py (a rule tests/cli/test_layout.py
holds); conftest.py keeps the fixtures and builds them from these helpers. tests/ is on pytest's pythonpath,
so this package imports as `helpers`.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def default_sigint() -> None:
    """Popen preexec_fn: a child that reacts to SIGINT as in a terminal, even when this test run was started
    in the background (where the shell makes children ignore SIGINT, and Python then keeps ignoring it)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
