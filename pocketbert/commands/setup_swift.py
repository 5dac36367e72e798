HELP = "build the Swift 6 toolchain (a Debian trixie root with swiftlang) that `swift test` of ios_demo/PocketBertKit runs in"
DESCRIPTION = """Make a minimal Debian trixie root with debootstrap (--variant=minbase) and install Swift 6.0
(`swiftlang`, `libc6-dev`, `libstdc++-14-dev`, about 2 GB) into it with the root's own apt, all from Debian's
registry, into a cache folder: never into the repository, never onto the host (debootstrap itself is fetched
into the cache with a private apt state when the host has none). Swift then runs in the root with chroot,
/proc mounted only for as long as it runs, in a private mount namespace. Needs root on a Linux host.
Idempotent: a second run checks and returns. tests/apps/ run `swift build` and `swift test` there.

  pocketbert setup-swift                       # ~/.cache/pocketbert/swift (or $POCKETBERT_SWIFT_CACHE)
  pocketbert setup-swift --cache /data/swift
"""


def add_arguments(p) -> None:
    p.add_argument("--cache", default=None,
                   help="folder for the root (default $POCKETBERT_SWIFT_CACHE or ~/.cache/pocketbert/swift)")


def run(args):
    import time

    from pocketbert.console import say
    from pocketbert.runtime_bench import swift_toolchain

    t0 = time.perf_counter()
    info = swift_toolchain.setup(args.cache, log=say)
    info["setup_seconds"] = round(time.perf_counter() - t0, 1)
    steps = ", ".join(f"{k} {v} s" for k, v in info["seconds"].items())
    text = (f"Swift root ready in {info['cache']} ({info['setup_seconds']} s; "
            f"{'reused: ' + ', '.join(info['reused']) if info['reused'] else 'built from an empty cache'})\n"
            f"  swift:  {info['swift_version']}\n"
            f"  root:   Debian {info['suite']} minbase + {' '.join(info['packages'])} ({info['size_mb']} MB)\n"
            f"  steps:  {steps}\n"
            f"  test:   pytest tests/apps/test_swift_core.py")
    return info, text
