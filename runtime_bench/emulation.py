"""ARM64 by emulation: build an aarch64 Python from the registries, run a bundle on emulated Arm cores.

Phones run Arm kernels (XNNPACK / ONNX Runtime NEON, dot-product and i8mm int8 paths) that an x86 host
never exercises, and their int8 results differ from the host's. This module runs each artifact's real
runtime on aarch64 code paths under qemu-user and checks it against the bundle's golden.json.

The environment lives in a cache folder (default ~/.cache/pocketbert/arm64, or $POCKETBERT_ARM64_CACHE),
never in the repository, and is built by `setup()` from the registries only:

    apt/        a private apt state (sources, lists, downloaded .deb files); the host's apt is untouched
    sysroot/    Debian bookworm arm64 python3.11 and its libraries, unpacked with `dpkg -x` (no chroot)
    qemu/       qemu-user from Debian trixie (10.x, statically linked: runs on bookworm as is). Bookworm's
                qemu-user-static 7.2 segfaults importing onnxruntime or ai_edge_litert.
    wheels/     aarch64 wheels from PyPI (pip download --platform manylinux_2_28_aarch64 --python-version 3.11)
    site/       those wheels installed with `pip install --target` (PYTHONPATH of the emulated Python)
    env.json    what was built and how long each step took; written last, it marks a finished set-up

Every step skips what is already there (idempotent) and writes through a temporary name and a rename,
so an interrupted set-up resumes where it stopped. A step that cannot fetch something raises
PocketBertError with one line.

Emulated timings are qemu's translation of Arm code on this host's x86 cores: they are not phone
latencies and go only into rows' `extra` of a results file whose device.environment is "emulation".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pocketbert.errors import PocketBertError

DEFAULT_CACHE = Path.home() / ".cache" / "pocketbert" / "arm64"
CACHE_ENV = "POCKETBERT_ARM64_CACHE"
RUNNER = Path(__file__).with_name("arm64_runner.py")

# Phone-class cores qemu 10 models (the `-cpu` names). a55 / a76: the little and big cores of most
# Android phones since 2018 (a55 and a76 have the dot-product extension, neither has i8mm);
# a710: Armv9 with i8mm and SVE2.
CORES = ("cortex-a53", "cortex-a55", "cortex-a72", "cortex-a76", "cortex-a710")
DEFAULT_CORE = "cortex-a55"

DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SYSROOT_SUITE = "bookworm"  # python3.11, the CPython the cp311 wheels are built for
SYSROOT_PACKAGES = ("python3.11", "libstdc++6", "libgomp1")  # + everything they depend on
QEMU_SUITE = "trixie"
QEMU_PACKAGE = "qemu-user"
PYTHON_IN_SYSROOT = "usr/bin/python3.11"
PIP_PLATFORMS = ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
PIP_PYTHON = "3.11"
# Runtimes matched to the host's installed releases, so the emulated run checks the same release
# the bundle was verified with on the host.
RUNTIME_DISTS = ("numpy", "onnxruntime", "ai-edge-litert")
# ExecuTorch's Python runtime is not used: it imports torch, and PyPI's aarch64 torch wheel (2.13.0,
# manylinux_2_28_aarch64) is the CUDA build, whose import loads libcudart / cuBLAS / cuDNN from the
# nvidia-* wheels (several GB; the CPU-only aarch64 wheel is only on PyTorch's own index). The executorch
# aarch64 wheel itself, though, ships its C++ runtime as shared libraries that need no torch (only its Python
# extension `_C` links libtorch), with headers: `pte_runner.cpp` (ExecuTorch's Module API, beside this file) is
# compiled against them with Debian's aarch64 cross g++ and runs under qemu with the sysroot's libc and
# libstdc++. The host's executorch release, so the Arm run checks the runtime the bundle was verified with.
EXECUTORCH_DIST = "executorch"
EXECUTORCH_LIBS = ("libexecutorch.so", "libexecutorch_kernels_optimized.so", "libexecutorch_backend_xnnpack.so",
                   "libexecutorch_threadpool.so")
PTE_RUNNER_SOURCE = Path(__file__).with_name("pte_runner.cpp")
CROSS_PACKAGE = "g++-aarch64-linux-gnu"  # Debian's cross compiler (gcc 12 on bookworm), fetched if not on PATH
# The wheel's CMake config (lib/cmake/executorch) names these for a consumer of its prebuilt runtime.
EXECUTORCH_DEFINES = ("C10_USING_CUSTOM_GENERATED_MACROS", "ET_EVENT_TRACER_ENABLED", "ET_USE_THREADPOOL")
FORMAT_BACKEND = {"tflite": "litert", "onnx": "onnxruntime", "executorch": "xnnpack"}


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """--cache, else $POCKETBERT_ARM64_CACHE, else ~/.cache/pocketbert/arm64."""
    return Path(path or os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser().resolve()


def host_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist).split("+")[0]  # torch "2.13.0+cpu" -> the PyPI release "2.13.0"
    except PackageNotFoundError:
        return None


def _pin(dist: str) -> str:
    v = host_version(dist)
    return f"{dist}=={v}" if v and dist != "numpy" else dist


# ---------------------------------------------------------------------------------------- set-up


def _one_line(text: str, limit: int = 240) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.startswith(("E:", "ERROR:", "error:"))][-1:]
    warns = [ln for ln in lines if ln.startswith("W:")][:1]  # apt: the first failed fetch names the cause
    return " ".join((errs or warns or lines[-1:] or ["no output"])[0].split())[:limit]


def _run(cmd: list[str], what: str, fix: str, cwd: Path | None = None, env: dict | None = None) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    except FileNotFoundError:
        raise PocketBertError(f"{what}: {cmd[0]} is not installed; {fix}") from None
    if proc.returncode != 0:
        raise PocketBertError(f"{what} failed: {_one_line(proc.stderr + proc.stdout)}; {fix}")
    return proc.stdout + proc.stderr


class _Apt:
    """apt-get with a private state under CACHE/apt: its own sources, lists, status and archives."""

    def __init__(self, root: Path, name: str, arch: str, suite: str, command: str = "pocketbert setup-arm64",
                 host_status: bool = False):
        self.root = root / name
        self.command = command
        etc = self.root / "etc"
        for d in (etc / "preferences.d", self.root / "state" / "lists" / "partial",
                  self.root / "cache" / "archives" / "partial"):
            d.mkdir(parents=True, exist_ok=True)
        (etc / "sources.list").write_text(
            f"deb [arch={arch} signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {suite} main\n", encoding="utf-8")
        status = self.root / "state" / "status"
        if host_status:  # read only: download what this host lacks (tools that run on the host itself)
            status = Path("/var/lib/dpkg/status")
        elif not status.exists():
            status.write_text("", encoding="utf-8")  # an empty system: every dependency gets downloaded
        self.arch, self.suite = arch, suite
        self.opts = [
            f"-oDir::Etc::SourceList={etc / 'sources.list'}", f"-oDir::Etc::SourceParts={etc / 'sources.list.d'}",
            f"-oDir::Etc::Preferences={etc / 'preferences'}", f"-oDir::Etc::PreferencesParts={etc / 'preferences.d'}",
            f"-oDir::State={self.root / 'state'}", f"-oDir::State::status={status}",
            f"-oDir::Cache={self.root / 'cache'}", f"-oAPT::Architecture={arch}", f"-oAPT::Architectures::={arch}",
            "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root", "-oAcquire::Retries=3", "-q",
        ]

    @property
    def archives(self) -> Path:
        return self.root / "cache" / "archives"

    def get(self, args: list[str], what: str) -> None:
        fix = f"check that Debian's package servers can be reached, then run `{self.command}` again"
        if not shutil.which("apt-get"):
            raise PocketBertError(f"{what}: apt-get is not available (a Debian or Ubuntu host is needed); "
                                  "pass --qemu and build the sysroot on a Debian host")
        lists = self.root / "state" / "lists"
        if not any(lists.glob("*Packages*")):
            out = _run(["apt-get", *self.opts, "update"], f"{what}: apt-get update", fix)
            if not any(lists.glob("*Packages*")):  # apt-get update exits 0 when every fetch failed
                raise PocketBertError(f"{what}: cannot fetch the package lists of {DEBIAN_MIRROR} ({self.suite}, "
                                      f"{self.arch}): {_one_line(out) if out.strip() else 'no lists'}; {fix}")
        _run(["apt-get", *self.opts, *args], what, fix, cwd=self.archives)


def _unpack_debs(debs: list[Path], dest: Path, what: str, command: str = "pocketbert setup-arm64") -> None:
    """dpkg -x every .deb into a temporary folder, then rename it to `dest` (all or nothing)."""
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(tmp)], f"{what}: unpacking {deb.name}",
             f"delete {deb} and run `{command}` again")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def _pip(args: list[str], what: str, wheel_source: Path | None) -> None:
    index = ["--no-index", "--find-links", str(wheel_source)] if wheel_source else []
    plat = [x for p in PIP_PLATFORMS for x in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", *args, *index, *plat, "--only-binary=:all:", "--python-version", PIP_PYTHON,
           "--implementation", "cp", "--disable-pip-version-check", "-q"]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode == 0:
        return
    text = proc.stderr + proc.stdout
    for line in text.splitlines():
        if "No matching distribution found for" in line:
            dist = line.split("No matching distribution found for", 1)[1].strip().split(";")[0]
            raise PocketBertError(
                f"{what}: {dist} has no aarch64 wheel for CPython {PIP_PYTHON} (manylinux_2_28_aarch64 or older) "
                f"on {'--wheel-source ' + str(wheel_source) if wheel_source else 'PyPI'}; drop it or pin a release "
                "that ships one")
    raise PocketBertError(f"{what} failed: {_one_line(text)}; check that PyPI can be reached, then run "
                          "`pocketbert setup-arm64` again")


def _wheel_specs(extra: list[str]) -> list[str]:
    return [_pin(d) for d in RUNTIME_DISTS] + list(extra)


def setup(cache: str | os.PathLike | None = None, qemu: str | None = None, extra_wheels: list[str] | None = None,
          wheel_source: str | None = None, log=print) -> dict:
    """Build (or finish building) the emulation environment in `cache`. Returns env.json's content.

    Args:
        qemu: an existing qemu-aarch64 to use (10.x or newer) instead of Debian trixie's qemu-user.
        extra_wheels: more PyPI requirement specs to install into the emulated site-packages.
        wheel_source: a folder of wheels to use instead of PyPI (pip --no-index --find-links).

    Raises:
        PocketBertError: an emulator path that does not exist, a package or wheel that cannot be
            fetched, a wheel without an aarch64 build (one line each).
    """
    root = cache_dir(cache)
    extra_wheels = list(extra_wheels or [])
    qemu_path, source = _check_setup_inputs(qemu, wheel_source, extra_wheels)
    root.mkdir(parents=True, exist_ok=True)
    specs = _wheel_specs(extra_wheels)
    seconds: dict[str, float] = {}
    done: dict[str, str] = {}
    skipped: set[str] = set()  # steps found already done
    # Wheels first: the cheapest step, and the one most likely to refuse (no aarch64 build).
    steps = (("wheels", lambda: _setup_wheels(root, specs, source, log)),
             ("sysroot", lambda: _setup_sysroot(root, log)),
             ("qemu", lambda: _setup_qemu(root, qemu_path, log)),
             ("executorch", lambda: _setup_executorch(root, source, log)))
    for name, step in steps:
        t0 = time.perf_counter()
        ran, done[name] = step()
        seconds[name] = time.perf_counter() - t0
        if not ran:
            skipped.add(name)
    qemu_path = qemu_path or _cached_qemu(root)

    t0 = time.perf_counter()
    env = Environment(root, qemu_path)
    python_version = _import_check(env, qemu_path)
    seconds["import_check"] = time.perf_counter() - t0
    previous = _previous_seconds(root)  # keep the build time of steps this run found already done
    for step in skipped:
        if step in previous:
            seconds[step] = previous[step]
    info = {"cache": str(root), "qemu": str(qemu_path), "qemu_version": env.qemu_version(),
            "sysroot": f"Debian {SYSROOT_SUITE} arm64", "python": python_version,
            "wheels": specs,
            "site_versions": _site_versions(root / "site"), "steps": done,
            "seconds": {k: round(v, 1) for k, v in seconds.items()}}
    from pocketbert.files import write_json

    write_json(root / "env.json", info)
    return info


def _check_setup_inputs(qemu: str | None, wheel_source: str | None,
                        extra_wheels: list[str]) -> tuple[Path | None, Path | None]:
    """The --qemu emulator and the --wheel-source folder, checked, and every extra wheel probed for an aarch64
    build, before anything is written. Returns (emulator or None, wheel folder or None)."""
    qemu_path = None
    if qemu:
        qemu_path = Path(shutil.which(qemu) or qemu).expanduser()
        if not qemu_path.is_file() or not os.access(qemu_path, os.X_OK):
            raise PocketBertError(f"--qemu {qemu}: no such emulator; install qemu-user (10.x) or leave --qemu out "
                                  "to fetch Debian trixie's qemu-user into the cache")
    source = Path(wheel_source).expanduser().resolve() if wheel_source else None
    if source and not source.is_dir():
        raise PocketBertError(f"--wheel-source {wheel_source} is not a folder of wheels")
    if extra_wheels:
        # Each extra requirement alone first, so a missing aarch64 build is named, before anything is written.
        import tempfile

        with tempfile.TemporaryDirectory() as probe:
            for spec in extra_wheels:
                _pip(["download", "--no-deps", "-d", probe, spec], "pip download (aarch64)", source)
    return qemu_path, source


def _setup_wheels(root: Path, specs: list[str], source: Path | None, log) -> tuple[bool, str]:
    """1. The aarch64 wheels, installed into site/ (redone when the specs change). Returns (ran, what is there)."""
    wheels, site = root / "wheels", root / "site"
    wheels.mkdir(exist_ok=True)
    stamp = json.dumps({"specs": specs})
    stamp_file = root / "site.json"
    ran = not (site.is_dir() and stamp_file.is_file() and stamp_file.read_text(encoding="utf-8") == stamp)
    if ran:
        log(f"[setup-arm64] aarch64 wheels: {', '.join(specs)}")
        _pip(["download", "-d", str(wheels), *specs], "pip download (aarch64)", source)
        tmp = root / "site.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        # Installed from the downloaded wheels only: this step repeats offline.
        _pip(["install", "--target", str(tmp), *specs], "pip install --target (aarch64)", wheels)
        shutil.rmtree(site, ignore_errors=True)
        tmp.rename(site)
        stamp_file.write_text(stamp, encoding="utf-8")
    return ran, f"{len(list(wheels.glob('*.whl')))} wheels"


def _setup_sysroot(root: Path, log) -> tuple[bool, str]:
    """2. Debian arm64 python3.11 + libraries, unpacked into one sysroot (no chroot, no binfmt)."""
    sysroot = root / "sysroot"
    ran = not (sysroot / PYTHON_IN_SYSROOT).is_file()
    if ran:
        log(f"[setup-arm64] Debian {SYSROOT_SUITE} arm64: {' '.join(SYSROOT_PACKAGES)} and dependencies")
        apt = _Apt(root / "apt", "arm64", "arm64", SYSROOT_SUITE)
        apt.get(["-y", "--no-install-recommends", "install", "--download-only",
                 *[f"{p}:arm64" for p in SYSROOT_PACKAGES]], "apt-get download (arm64 sysroot)")
        _unpack_debs(sorted(apt.archives.glob("*.deb")), sysroot, "arm64 sysroot")
    return ran, f"Debian {SYSROOT_SUITE} arm64 python3.11"


def _cached_qemu(root: Path) -> Path:
    return root / "qemu" / "usr" / "bin" / "qemu-aarch64"


def _setup_qemu(root: Path, qemu_path: Path | None, log) -> tuple[bool, str]:
    """3. The emulator: trixie's statically linked qemu-user, unless --qemu names one (a --qemu other than the
    cached emulator counts as a step that ran: no cached build time applies to it)."""
    if qemu_path is not None:
        return qemu_path != _cached_qemu(root), str(qemu_path)
    qemu_path = _cached_qemu(root)
    ran = not qemu_path.is_file()
    if ran:
        log(f"[setup-arm64] Debian {QEMU_SUITE} {QEMU_PACKAGE} (amd64, statically linked)")
        apt = _Apt(root / "apt", "qemu", "amd64", QEMU_SUITE)
        debs = lambda: sorted(apt.archives.glob(f"{QEMU_PACKAGE}_*.deb"))  # noqa: E731
        if not debs():
            apt.get(["download", f"{QEMU_PACKAGE}:amd64"], f"apt-get download {QEMU_PACKAGE} ({QEMU_SUITE})")
        _unpack_debs(debs()[-1:], root / "qemu", "qemu-user")
        # The package holds every guest architecture (~450 MB unpacked): keep qemu-aarch64 only.
        for other in (root / "qemu" / "usr" / "bin").glob("qemu-*"):
            if other.name != "qemu-aarch64":
                other.unlink()
    return ran, str(qemu_path)


def _setup_executorch(root: Path, source: Path | None, log) -> tuple[bool, str]:
    """4. ExecuTorch's C++ runtime (from the aarch64 wheel) and pte_runner built against it."""
    built = (root / "executorch" / "build.json")
    stamp = _pte_runner_stamp()
    ran = not (built.is_file() and json.loads(built.read_text(encoding="utf-8")) == stamp)
    if ran:
        log(f"[setup-arm64] ExecuTorch {stamp['executorch']} aarch64 runtime and pte_runner (cross-compiled)")
        build_pte_runner(root, source, stamp)
    return ran, f"executorch {stamp['executorch']} runtime, {root / 'executorch' / 'pte_runner'}"


def _import_check(env: Environment, qemu_path: Path) -> str:
    """5. Smoke test: the emulated Python imports every runtime. Returns its Python version."""
    mods = ["numpy", "onnxruntime", "ai_edge_litert.interpreter"]
    code = "import platform, " + ", ".join(mods) + "; print(platform.machine(), platform.python_version())"
    proc = env.python(["-c", code], core=DEFAULT_CORE, timeout=900)
    if proc.returncode != 0:
        why = f"signal {-proc.returncode}" if proc.returncode < 0 else _one_line(proc.stderr)
        raise PocketBertError(f"emulated import check failed on {DEFAULT_CORE} ({qemu_path}): {why}; "
                              f"delete {env.root} and run `pocketbert setup-arm64` again")
    return proc.stdout.split()[-1]


def _previous_seconds(root: Path) -> dict[str, float]:
    """The step times recorded by the last finished set-up ({} when there is none or it is unreadable)."""
    if not (root / "env.json").is_file():
        return {}
    try:
        return json.loads((root / "env.json").read_text(encoding="utf-8")).get("seconds", {})
    except ValueError:
        return {}


def _pte_runner_stamp() -> dict:
    """What pte_runner is built from: the source's hash and the executorch release (a change rebuilds it)."""
    import hashlib

    version = host_version(EXECUTORCH_DIST)
    if version is None:
        raise PocketBertError("executorch is not installed on this host; install pocketbert's dependencies, then "
                              "run `pocketbert setup-arm64` again")
    return {"executorch": version, "source_sha256": hashlib.sha256(PTE_RUNNER_SOURCE.read_bytes()).hexdigest()}


def _cross_compiler(root: Path) -> tuple[str, dict]:
    """Debian's aarch64 cross g++: the host's when on PATH, else fetched into CACHE/cross (a private apt
    state that downloads what this Debian host lacks, unpacked there; the host's apt is untouched).
    Returns (g++ path, environment for running it)."""
    found = shutil.which("aarch64-linux-gnu-g++")
    if found:
        return found, dict(os.environ)
    cross = root / "cross"
    gxx = sorted((cross / "usr" / "bin").glob("aarch64-linux-gnu-g++*"))
    if not gxx:
        apt = _Apt(root / "apt", "cross", "amd64", _host_suite(), host_status=True)
        apt.get(["-y", "--no-install-recommends", "install", "--download-only", f"{CROSS_PACKAGE}:amd64"],
                f"apt-get download {CROSS_PACKAGE}")
        _unpack_debs(sorted(apt.archives.glob("*.deb")), cross, "aarch64 cross compiler")
        gxx = sorted((cross / "usr" / "bin").glob("aarch64-linux-gnu-g++*"))
        if not gxx:
            raise PocketBertError(f"{CROSS_PACKAGE} unpacked into {cross} holds no aarch64-linux-gnu-g++; delete "
                                  f"{cross} and run `pocketbert setup-arm64` again")
    # the cross binutils' own libbfd / libopcodes sit beside the host's libraries in the unpacked tree
    lib = str(cross / "usr" / "lib" / "x86_64-linux-gnu")
    env = {**os.environ, "LD_LIBRARY_PATH": lib + os.pathsep + os.environ.get("LD_LIBRARY_PATH", "")}
    return str(gxx[0]), {**env, "_sysroot": str(cross)}


def _host_suite() -> str:
    """The Debian suite of this host (the cross compiler's libraries must match its own)."""
    try:
        fields = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    except OSError:
        fields = {}
    return fields.get("VERSION_CODENAME", "").strip('"') or SYSROOT_SUITE


def build_pte_runner(root: Path, wheel_source: Path | None, stamp: dict) -> Path:
    """Fetch the executorch aarch64 wheel (the host's release), unpack its runtime libraries and headers into
    CACHE/executorch, and compile pte_runner.cpp against them with the aarch64 cross g++ (rpath $ORIGIN/lib)."""
    import tempfile
    import zipfile

    dest = root / "executorch"
    wheels = root / "wheels"
    spec = f"{EXECUTORCH_DIST}=={stamp['executorch']}"
    found = sorted(wheels.glob(f"executorch-{stamp['executorch']}-*aarch64*.whl"))
    if not found:
        _pip(["download", "--no-deps", "-d", str(wheels), spec], "pip download executorch (aarch64)", wheel_source)
        found = sorted(wheels.glob(f"executorch-{stamp['executorch']}-*aarch64*.whl"))
    if not found:
        raise PocketBertError(f"pip download {spec} gave no aarch64 wheel in {wheels}; run `pocketbert setup-arm64` "
                              "again")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "lib").mkdir(parents=True)
    with zipfile.ZipFile(found[-1]) as whl:
        for name in whl.namelist():
            if name.endswith("/"):
                continue
            if name.startswith("executorch/include/"):
                target = tmp / name.removeprefix("executorch/")
            elif name.startswith("executorch/lib/") and Path(name).name in EXECUTORCH_LIBS:
                target = tmp / "lib" / Path(name).name
            else:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(whl.read(name))
    missing = [lib for lib in EXECUTORCH_LIBS if not (tmp / "lib" / lib).is_file()]
    if missing:
        raise PocketBertError(f"the executorch {stamp['executorch']} aarch64 wheel has no {', '.join(missing)}: "
                              "its runtime cannot be run under emulation")
    gxx, env = _cross_compiler(root)
    sysroot = env.pop("_sysroot", None)
    include = tmp / "include"
    with tempfile.TemporaryDirectory() as build:
        out = Path(build) / "pte_runner"
        cmd = [gxx, *([f"--sysroot={sysroot}"] if sysroot else []), "-std=c++17", "-O2", "-w",
               *(f"-D{d}" for d in EXECUTORCH_DEFINES), f"-I{include}",
               f"-I{include / 'executorch' / 'runtime' / 'core' / 'portable_type' / 'c10'}", str(PTE_RUNNER_SOURCE),
               "-o", str(out), f"-L{tmp / 'lib'}", "-Wl,--no-as-needed",
               *(f"-l{lib.removeprefix('lib').removesuffix('.so')}" for lib in EXECUTORCH_LIBS), "-Wl,-rpath,$ORIGIN/lib"]
        _run(cmd, "compiling pte_runner for aarch64", f"check {gxx}, then run `pocketbert setup-arm64` again", env=env)
        shutil.copy2(out, tmp / "pte_runner")
    (tmp / "build.json").write_text(json.dumps(stamp), encoding="utf-8")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest / "pte_runner"


def _site_versions(site: Path) -> dict:
    out = {}
    for d in site.glob("*.dist-info"):
        name, _, ver = d.name[: -len(".dist-info")].partition("-")
        out[name] = ver
    return dict(sorted(out.items()))


# ------------------------------------------------------------------------------------------- run


class Environment:
    """A built emulation environment: qemu-aarch64 + sysroot + site-packages."""

    def __init__(self, root: Path, qemu: Path):
        self.root, self.qemu = root, qemu
        self.sysroot, self.site = root / "sysroot", root / "site"

    def qemu_version(self) -> str:
        out = subprocess.run([str(self.qemu), "--version"], capture_output=True, text=True).stdout
        return out.splitlines()[0].strip() if out else "unknown"

    @property
    def pte_runner(self) -> Path:
        return self.root / "executorch" / "pte_runner"

    def python(self, args: list[str], core: str, timeout: float) -> subprocess.CompletedProcess:
        return self.run([str(self.sysroot / PYTHON_IN_SYSROOT), *args], core, timeout)

    def run(self, args: list[str], core: str, timeout: float) -> subprocess.CompletedProcess:
        """An aarch64 program under qemu on `core`, with the sysroot's loader and libraries."""
        cmd = [str(self.qemu), "-cpu", core, "-L", str(self.sysroot), *args]
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(self.site), "PYTHONNOUSERSITE": "1", "HOME": str(self.root),
               "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "LANG": "C.UTF-8"}
        try:
            return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(cmd, 124, "", f"timed out after {timeout:.0f} s under emulation")


def run_pte(env: Environment, bundle, artifact: dict, golden: dict, core: str, timed_runs: int,
            timeout: float) -> tuple[subprocess.CompletedProcess, dict | None]:
    """One .pte through pte_runner on the emulated core: every golden case that fits its bucket, padded to it
    as arm64_runner pads (so golden_parity and the host comparison read the same cases). Returns the process
    and arm64_runner's row shape ({file, status, outputs, load_ms, first_inference_ms, inference_ms}), None
    when it failed."""
    import tempfile

    from pocketbert.bundle.parity import case_inputs, cases_for

    pad_id = bundle.manifest["tokenizer"]["special_tokens"]["[PAD]"]
    cases = cases_for(golden, artifact["seq_len"])
    with tempfile.TemporaryDirectory(prefix="pocketbert-pte-") as tmp:
        path = Path(tmp) / "cases.txt"
        lines = []
        for case in cases:
            ids, mask = case_inputs(case, artifact["seq_len"], pad_id)
            lines.append(" ".join(map(str, [ids.shape[1], *ids[0].tolist(), *mask[0].tolist()])))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        proc = env.run([str(env.pte_runner), str(bundle.artifact_path(artifact)), str(path), str(max(timed_runs, 1))],
                       core=core, timeout=timeout)
    if proc.returncode != 0:
        return proc, None
    outputs, values = [], {}
    for line in proc.stdout.splitlines():
        head, _, rest = line.partition(" ")
        if head == "out":
            outputs.append([float(v) for v in rest.split()])
        elif head in ("load_ms", "first_ms", "run_ms"):
            values[head] = float(rest)
    if len(outputs) != len(cases) or set(values) != {"load_ms", "first_ms", "run_ms"}:
        return subprocess.CompletedProcess(proc.args, 1, proc.stdout, "pte_runner printed an incomplete answer"), None
    return proc, {"rows": [{"file": artifact["file"], "status": "ok", "outputs": outputs, "load_ms": values["load_ms"],
                            "first_inference_ms": values["first_ms"],
                            "inference_ms": [values["run_ms"]] * max(timed_runs, 1)}],
                  "versions": {"executorch": json.loads((env.pte_runner.parent / "build.json").read_text())["executorch"]}}


def open_environment(cache: str | os.PathLike | None = None) -> Environment:
    """The set-up environment in `cache`, checked. Raises PocketBertError (one line) naming what is missing."""
    root = cache_dir(cache)
    fix = f"run `pocketbert setup-arm64{'' if cache is None else ' --cache ' + str(root)}`"
    if not (root / "sysroot" / PYTHON_IN_SYSROOT).is_file():
        raise PocketBertError(f"no aarch64 sysroot in {root} (sysroot/{PYTHON_IN_SYSROOT} is missing); {fix}")
    info = {}
    if (root / "env.json").is_file():
        try:
            info = json.loads((root / "env.json").read_text(encoding="utf-8"))
        except ValueError:
            info = {}
    qemu = Path(info.get("qemu") or root / "qemu" / "usr" / "bin" / "qemu-aarch64")
    if not qemu.is_file() or not os.access(qemu, os.X_OK):
        raise PocketBertError(f"no emulator: {qemu} does not exist or is not executable; {fix}")
    if not (root / "site").is_dir() or not (root / "env.json").is_file():
        raise PocketBertError(f"the emulation environment in {root} is not finished (no site/ or env.json); {fix}")
    return Environment(root, qemu)


def parse_device(device: str) -> str:
    """`qemu` or `qemu:CORE` -> the core name. Raises PocketBertError for an unknown core."""
    _, _, core = device.partition(":")
    core = core or DEFAULT_CORE
    if core not in CORES:
        raise PocketBertError(f"--device {device}: unknown core {core!r}; use qemu:{' or qemu:'.join(CORES)}")
    return core


def check_row(bundle, artifact: dict, golden: dict, row: dict) -> dict:
    """Parity of the emulated outputs against golden.json with the bundle's tolerance (the check
    `pocketbert verify` runs: pocketbert.bundle.parity.golden_parity)."""
    import numpy as np

    from pocketbert.bundle.parity import golden_parity

    outs = ([np.asarray(p, dtype=np.int64) for p in row["argmax"]] if "argmax" in row
            else [np.asarray(o, dtype=np.float32) for o in row["outputs"]])
    return golden_parity(golden, artifact, outs, bundle.tolerance(artifact))


def _compare_with_host(bundle, artifact: dict, golden: dict, emulated: dict) -> dict:
    """The same runner on this host (x86 kernels): how far the Arm kernels' outputs are from the host's.

    Arm and x86 int8 kernels differ (NEON dot-product vs VNNI/AMX), so int8 outputs are close but
    usually not identical; fp32 differs only by summation order.
    """
    import numpy as np

    from . import arm64_runner

    pad_id = bundle.manifest["tokenizer"]["special_tokens"]["[PAD]"]
    host = arm64_runner.run_artifact(np, str(bundle.root), artifact, golden, pad_id, 1, 0, "argmax" in emulated)
    if host["status"] != "ok":
        return {"status": "not run", "reason": host.get("error", "")[:200]}
    if "argmax" in emulated:
        same = sum(int(np.sum(np.asarray(x) == np.asarray(y))) for x, y in zip(host["argmax"], emulated["argmax"]))
        total = sum(len(x) for x in host["argmax"])
        return {"status": "compared", "argmax_agreement": same / max(total, 1)}
    diffs = [float(np.max(np.abs(np.asarray(h, dtype=np.float64) - np.asarray(e, dtype=np.float64)), initial=0.0))
             for h, e in zip(host["outputs"], emulated["outputs"])]
    return {"status": "compared", "max_abs_diff": max(diffs, default=0.0),
            "identical_cases": sum(d == 0.0 for d in diffs), "cases": len(diffs)}


def run_bundle(bundle_path, out, device: str, formats: list[str] | None = None, threads: int = 1,
               timed_runs: int = 3, cache: str | os.PathLike | None = None, timeout: float = 1800,
               log=print) -> dict:
    """Run every artifact of the bundle on one emulated core; write and return the results document.

    A row is "ok" when the artifact's outputs on the emulated core are within the bundle's tolerance
    of golden.json, "failed" (with the reason) otherwise, "skipped" where the format has no aarch64
    Linux runtime here (Core ML; ExecuTorch when the set-up has not built pte_runner).
    """
    from pocketbert.bundle.manifest import load_bundle

    from . import schema

    core = parse_device(device)
    env = open_environment(cache)
    bundle = load_bundle(bundle_path)
    out = schema.check_output_file(out)
    if formats:
        unknown = sorted(set(formats) - {a["format"] for a in bundle.artifacts})
        if unknown:
            raise PocketBertError(f"--formats {','.join(unknown)}: not in {bundle.root}")
    info = json.loads((env.root / "env.json").read_text(encoding="utf-8"))
    bundle.check_all_sha256()
    golden = bundle.golden()
    artifacts = [a for a in bundle.artifacts if not formats or a["format"] in formats]
    seq_lens = sorted({a["seq_len"] for a in artifacts}) or bundle.seq_lens
    doc = _results_head(bundle, info, core, threads, timed_runs, seq_lens)
    for a in artifacts:
        base = {"name": a["file"], "file": a["file"], "format": a["format"], "backend": a["backend"],
                "quant": a["quant"], "seq_len": a["seq_len"], "threads": threads, "role": "artifact",
                "size_bytes": int(a.get("size_bytes", 0))}
        reason = _skip_reason(env, a)
        if reason:
            row = {**base, "status": "skipped", "error": reason, "extra": {"core": core}}
            outcome = f"skipped ({reason})"
        else:
            t0 = time.perf_counter()
            proc, result = _run_artifact(env, bundle, a, golden, core, threads, timed_runs, timeout)
            row, outcome = _artifact_row(bundle, a, golden, core, base, proc, result, time.perf_counter() - t0)
        doc["rows"].append(row)
        log(f"[bench qemu:{core}] {a['file']}: {outcome}")
    doc["complete"] = True
    schema.write_results(out, doc)
    return doc


def _results_head(bundle, info: dict, core: str, threads: int, timed_runs: int, seq_lens: list[int]) -> dict:
    """The results document without rows: the bundle, the emulated device, the run's configuration."""
    import platform
    import socket

    from . import schema

    return {
        "schema_version": schema.SCHEMA_VERSION, "kind": schema.KIND, "complete": False,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "bundle": {"path": str(bundle.root), "model_name": bundle.manifest["model"]["name"], "task": bundle.task,
                   "num_parameters": int(bundle.manifest["model"].get("num_parameters", 0))},
        "device": {"environment": "emulation", "name": f"qemu-aarch64 -cpu {core} on {socket.gethostname()}",
                   "os": "Linux (qemu user mode, Debian bookworm arm64 sysroot)", "arch": "aarch64",
                   "cpu_model": f"{core} (emulated by {info.get('qemu_version', 'qemu')} on host {platform.machine()})",
                   "cores": 1, "pinning": "not available (qemu user mode)"},
        "config": {"threads": [threads], "runs": timed_runs, "warmup": 0, "seq_lens": seq_lens,
                   "emulation": {"core": core, "qemu": info.get("qemu_version"), "python": info.get("python"),
                                 "site_versions": info.get("site_versions", {}),
                                 "note": "emulated wall times are qemu TCG on this host's x86 cores, not phone "
                                         "latencies; rows keep them under extra.emulated_* only"}},
        "rows": [],
    }


def _skip_reason(env: Environment, artifact: dict) -> str | None:
    """Why an artifact cannot run on emulated aarch64 Linux here, or None when it can."""
    if artifact["format"] == "executorch" and not env.pte_runner.is_file():
        return (f"no ExecuTorch runtime in {env.root} (executorch/pte_runner): run `pocketbert setup-arm64` "
                "again to build it")
    if artifact["format"] == "coreml":
        return "Core ML runs only on Apple devices: no aarch64 Linux runtime to emulate"
    if artifact["format"] not in FORMAT_BACKEND:
        return f"{artifact['format']} has no aarch64 Linux runtime here"
    return None


def _run_artifact(env: Environment, bundle, artifact: dict, golden: dict, core: str, threads: int, timed_runs: int,
                  timeout: float) -> tuple[subprocess.CompletedProcess, dict | None]:
    """One artifact in its runtime on the emulated core: pte_runner for a .pte, the Python runner otherwise.
    Returns the process and its parsed result (None when it failed or printed no JSON)."""
    from pocketbert.bundle import parity as contract_parity

    if artifact["format"] == "executorch":
        return run_pte(env, bundle, artifact, golden, core, timed_runs, timeout)
    spec = json.dumps({"bundle": str(bundle.root), "files": [artifact["file"]], "threads": threads,
                       "timed_runs": timed_runs, "parity": contract_parity.__file__})  # the runner loads it
    proc = env.python([str(RUNNER), spec], core=core, timeout=timeout)
    try:
        result = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        result = None
    return proc, result


def _artifact_row(bundle, artifact: dict, golden: dict, core: str, base: dict,
                  proc: subprocess.CompletedProcess, result: dict | None, wall: float) -> tuple[dict, str]:
    """The results row of one emulated run (golden parity, the distance to the host's outputs, emulated times)
    and the outcome the log line gives."""
    if result is None:
        err = _one_line(proc.stderr) or f"exit code {proc.returncode}"
        if proc.returncode < 0:
            err = f"the emulated process died with signal {-proc.returncode} ({err})"
        return {**base, "status": "failed", "error": err[:300], "extra": {"core": core}}, f"failed ({err[:200]})"
    r = result["rows"][0]
    extra = {"core": core, "emulated_process_s": round(wall, 2), "runtime_versions": result.get("versions", {})}
    if r["status"] != "ok":
        return ({**base, "status": r["status"], "error": r.get("error", "")[:300], "extra": extra},
                f"{r['status']} ({r.get('error')})")
    parity = check_row(bundle, artifact, golden, r)
    extra["vs_host"] = _compare_with_host(bundle, artifact, golden, r)
    extra.update({"parity": parity, "host_parity": artifact.get("parity", {}),
                  "emulated_load_ms": round(r["load_ms"], 1),
                  "emulated_first_inference_ms": round(r["first_inference_ms"], 1),
                  "emulated_inference_ms": [round(x, 1) for x in r["inference_ms"]]})
    row = {**base, "status": "ok" if parity["status"] == "passed" else "failed", "extra": extra}
    if r["inference_ms"]:
        # The schema wants a latency on an ok row: the emulated mean, labelled as such in the row
        # itself (and the whole file is device.environment "emulation").
        row["latency_ms_mean"] = round(sum(r["inference_ms"]) / len(r["inference_ms"]), 1)
        row["latency_note"] = (f"EMULATED: qemu-aarch64 -cpu {core} wall time on the host's x86 cores "
                               f"(mean of {len(r['inference_ms'])}); not a phone latency, compare only with "
                               "other emulation rows")
    if row["status"] == "failed":
        row["error"] = f"golden parity failed on emulated {core}: {parity.get('reason')}"
    return row, f"parity {parity['status']}, max abs diff {parity['max_abs_diff']}"


def parity_table(doc: dict) -> str:
    """Human text: artifact x core, parity and max abs diff vs golden, emulated time (labelled)."""
    lines = ["EMULATION (qemu user mode): parity on Arm kernels; times are emulated, not phone latencies",
             f"{'artifact':40} {'core':12} {'parity':8} {'max abs diff':>13} {'min cosine':>11} {'vs x86 host':>12} "
             f"{'emulated ms':>12}"]
    for r in doc["rows"]:
        x = r.get("extra", {})
        p = x.get("parity", {})
        status = p.get("status") or r["status"]
        mad = "-" if p.get("max_abs_diff") is None else f"{p['max_abs_diff']:.3g}"
        cos = "-" if p.get("min_cosine") is None else f"{p['min_cosine']:.6f}"
        ms = x.get("emulated_inference_ms") or []
        ms = f"{sorted(ms)[len(ms) // 2]:.0f}" if ms else "-"
        vh = x.get("vs_host", {}).get("max_abs_diff")
        vh = "-" if vh is None else f"{vh:.3g}"
        lines.append(f"{r['name']:40} {x.get('core', '-'):12} {status:8} {mad:>13} {cos:>11} {vh:>12} {ms:>12}")
        if r.get("error"):
            lines.append(f"    {r['error']}")
    return "\n".join(lines)
