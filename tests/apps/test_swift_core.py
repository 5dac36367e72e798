"""`swift build` and `swift test` of ios_demo/PocketBertKit, in the Debian trixie root of `pocketbert setup-swift`.

Skips with a one-line reason where a chroot is impossible (not root, not Linux) or the root is not set up.
The XCTest summary ('Executed N tests, with F failures') is printed at the end of the pytest run.
"""

from __future__ import annotations

import pytest

from pocketbert.runtime_bench.swift_toolchain import _mounts_under, xctest_summary

from app_cores import SUMMARIES, SWIFT_PACKAGE_IN_ROOT, swift_or_fail

pytestmark = pytest.mark.slow  # the Swift toolchain

MIN_XCTESTS = 55


def test_swift_build_and_xctest(swift_root):
    swift_or_fail(swift_root, ["build"], "swift build")
    r = swift_root.swift(["test"], cwd=SWIFT_PACKAGE_IN_ROOT)
    out = r.stdout + r.stderr
    summary = xctest_summary(out)
    if summary is None or r.returncode != 0:
        failures = [ln for ln in out.splitlines() if "error:" in ln or " failed" in ln][:40]
        SUMMARIES.append(f"XCTest PocketBertKit: FAILED ({summary['line'] if summary else 'no summary'})")
        raise AssertionError(f"swift test failed (exit {r.returncode}):\n" + "\n".join(failures) + "\n" + out[-3000:])
    SUMMARIES.append(f"XCTest PocketBertKit ({swift_root.info.get('swift_version', 'Swift')}): {summary['line']}")
    print(summary["line"])
    assert summary["failures"] == 0 and summary["unexpected"] == 0
    assert summary["tests"] >= MIN_XCTESTS, summary["line"]
    # /proc was mounted only inside the command's own namespace: nothing stays mounted in the root.
    assert _mounts_under(swift_root.sysroot) == []
