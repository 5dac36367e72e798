HELP = "build the aarch64 emulation environment (qemu-user + Debian arm64 Python + aarch64 wheels) for `bench --device qemu`"
DESCRIPTION = """Download, from the registries only, what `pocketbert bench BUNDLE --device qemu[:CORE]` needs to
run a bundle's artifacts on emulated phone-class Arm cores: Debian bookworm's arm64 python3.11 and its
libraries (unpacked into a sysroot, no chroot), Debian trixie's statically linked qemu-user 10, and the
aarch64 wheels of numpy, onnxruntime and ai-edge-litert (the host's releases) from PyPI. Everything goes
into a cache folder, never into the repository. Idempotent and resumable: a second run checks and returns.
ExecuTorch .pte artifacts are not run under emulation: PyPI's aarch64 torch wheel is the CUDA build.

  pocketbert setup-arm64                                  # ~/.cache/pocketbert/arm64 (or $POCKETBERT_ARM64_CACHE)
  pocketbert setup-arm64 --cache /data/arm64 --qemu /usr/bin/qemu-aarch64
"""


def add_arguments(p) -> None:
    p.add_argument("--cache", default=None,
                   help="folder for the environment (default $POCKETBERT_ARM64_CACHE or ~/.cache/pocketbert/arm64)")
    p.add_argument("--qemu", default=None,
                   help="use this qemu-aarch64 (10.x or newer) instead of fetching Debian trixie's qemu-user")
    p.add_argument("--extra-wheel", action="append", default=[], metavar="SPEC",
                   help="another PyPI requirement to install into the emulated Python (repeatable)")
    p.add_argument("--wheel-source", default=None,
                   help="a folder of wheels to use instead of PyPI (pip --no-index --find-links)")


def run(args):
    import time

    from pocketbert.console import say
    from pocketbert.runtime_bench import emulation

    t0 = time.perf_counter()
    info = emulation.setup(args.cache, qemu=args.qemu, extra_wheels=args.extra_wheel, wheel_source=args.wheel_source,
                           log=say)
    info["setup_seconds"] = round(time.perf_counter() - t0, 1)
    versions = ", ".join(f"{k} {v}" for k, v in info["site_versions"].items()
                         if k in ("numpy", "onnxruntime", "ai_edge_litert"))
    text = (f"emulation environment ready in {info['cache']} ({info['setup_seconds']} s)\n"
            f"  emulator: {info['qemu_version']} ({info['qemu']})\n"
            f"  python:   {info['python']} aarch64 ({info['sysroot']})\n"
            f"  runtimes: {versions}\n"
            f"  run:      pocketbert bench BUNDLE --device qemu:cortex-a55 --out results.json")
    return info, text
