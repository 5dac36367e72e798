"""`pocketbert setup-swift` and its library (runtime_bench/swift_toolchain.py), without building a root."""

from __future__ import annotations

import pytest

from pocketbert.cli import main
from pocketbert.runtime_bench import swift_toolchain


def test_not_root_is_one_line_and_exit_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(swift_toolchain.os, "geteuid", lambda: 1000)
    assert swift_toolchain.why_impossible().startswith("not root")
    assert main(["setup-swift", "--cache", str(tmp_path / "swift")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pocketbert setup-swift: error: cannot build the Swift root here: not root")
    assert "\n" not in err and not (tmp_path / "swift").exists()  # nothing written


def test_open_root_names_the_set_up_command(tmp_path):
    if swift_toolchain.why_impossible():
        pytest.skip(swift_toolchain.why_impossible())
    with pytest.raises(swift_toolchain.PocketBertError, match="run `pocketbert setup-swift --cache"):
        swift_toolchain.open_root(tmp_path / "empty")


def test_xctest_summary_is_the_last_total():
    out = ("Test Suite 'A' passed at x.\n\t Executed 4 tests, with 0 failures (0 unexpected) in 0.1 (0.1) seconds\n"
           "Test Suite 'All tests' failed at y.\n\t Executed 57 tests, with 2 failures (1 unexpected) in 2.7 (2.7) "
           "seconds\n")
    s = swift_toolchain.xctest_summary(out)
    assert (s["tests"], s["failures"], s["unexpected"]) == (57, 2, 1)
    assert s["line"].startswith("Executed 57 tests")
    assert swift_toolchain.xctest_summary("no tests ran") is None


def test_mounts_under_reads_proc_mounts(tmp_path):
    assert swift_toolchain._mounts_under(tmp_path) == []
    assert "/proc" in swift_toolchain._mounts_under(swift_toolchain.Path("/proc"))
