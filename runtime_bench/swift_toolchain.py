"""A Swift 6 toolchain for `swift build` / `swift test` of ios_demo/PocketBertKit on a Linux host.

Debian trixie ships Swift 6.0 as the package `swiftlang`. This module builds a minimal trixie root with
`debootstrap`, installs Swift into it with the root's own apt, and runs Swift in it with `chroot`, as root.
Nothing is installed on the host and nothing goes into the repository. The cache folder (default
~/.cache/pocketbert/swift, or $POCKETBERT_SWIFT_CACHE) holds:

    apt/            a private apt state used only when the host has no `debootstrap` (it fetches the
                    debootstrap .deb); the host's apt is untouched
    debootstrap/    that .deb unpacked (a shell script run with DEBOOTSTRAP_DIR), when the host has none
    root/           Debian trixie, --variant=minbase, plus swiftlang, libc6-dev, libstdc++-14-dev (~2 GB)
    root/work/      package sources copied in for a build (their .build folders are kept between runs)
    env.json        what was built and how long each step took; written last, it marks a finished set-up

/proc: the toolchain finds its libraries through /proc/self/exe, so Swift needs /proc in the root. Every
command in the root runs in its own mount and PID namespace (`unshare --mount --pid --fork
--mount-proc=ROOT/proc`), so that /proc mount exists only while the command runs, only inside that
namespace, and disappears with it even if the process is killed: deleting the cache can never reach the
host's /proc. debootstrap, which mounts /proc and /sys in its target itself, runs in a private mount
namespace too. Where `unshare` is unavailable, /proc is mounted before the command and unmounted in a
`finally`. Before any folder under the cache is deleted, `_refuse_mounts` checks that nothing is mounted
below it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from pocketbert.errors import PocketBertError

from .emulation import DEBIAN_KEYRING, DEBIAN_MIRROR, _Apt, _one_line, _run, _unpack_debs

DEFAULT_CACHE = Path.home() / ".cache" / "pocketbert" / "swift"
CACHE_ENV = "POCKETBERT_SWIFT_CACHE"
SUITE = "trixie"  # the first Debian release with Swift (6.0.3)
PACKAGES = ("swiftlang", "libc6-dev", "libstdc++-14-dev")  # swift's clang links against these
SWIFT = "/usr/bin/swift"
# What the host checks for: /usr/bin/swift is an absolute symlink, which only resolves inside the root.
SWIFT_FILE = "usr/libexec/swift/bin/swift"
WORK = "/work"  # inside the root: where package sources are copied for a build
PATH_IN_ROOT = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COMMAND = "pocketbert setup-swift"


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """--cache, else $POCKETBERT_SWIFT_CACHE, else ~/.cache/pocketbert/swift."""
    return Path(path or os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser().resolve()


def why_impossible() -> str | None:
    """One line saying why a chroot cannot be made on this host, or None when it can."""
    if os.name != "posix" or not Path("/proc/mounts").is_file():
        return "a Linux host is needed (chroot and /proc)"
    if os.geteuid() != 0:
        return "not root: debootstrap and chroot need root (run as root, e.g. in a container or with sudo)"
    if shutil.which("chroot") is None:
        return "no `chroot` on PATH (coreutils)"
    if shutil.which("mount") is None and shutil.which("unshare") is None:
        return "neither `unshare` nor `mount` on PATH (util-linux)"
    return None


# ---------------------------------------------------------------------------------------- mounts


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, as the host sees them (octal escapes of /proc/mounts decoded)."""
    prefix = str(path.resolve())
    out = []
    for line in Path("/proc/mounts").read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        if point == prefix or point.startswith(prefix + "/"):
            out.append(point)
    return out


def _refuse_mounts(path: Path) -> None:
    mounted = _mounts_under(path)
    if mounted:
        raise PocketBertError(f"{mounted[0]} is mounted inside {path}; unmount it (umount -l {mounted[0]}) "
                              "before anything there is deleted")


def _remove(path: Path) -> None:
    """rmtree, only after checking that nothing is mounted below `path`."""
    if path.exists():
        _refuse_mounts(path)
        shutil.rmtree(path)


@contextlib.contextmanager
def _locked(root: Path):
    """One set-up or Swift run at a time per cache (parallel pytest workers share the root)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _has_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "true"], capture_output=True)
    return probe.returncode == 0


def run_in_root(sysroot: Path, argv: list[str], cwd: str = "/", env: dict[str, str] | None = None,
                timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run `argv` in the root with /proc mounted for exactly as long as it runs (see the module doc).

    Returns the CompletedProcess (stdout and stderr as text); a timeout gives returncode 124.
    """
    clean = {"PATH": PATH_IN_ROOT, "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "dumb",
             "DEBIAN_FRONTEND": "noninteractive", **(env or {})}
    inner = ["chroot", str(sysroot), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in clean.items()),
             "/bin/sh", "-c", f"cd {shlex.quote(cwd)} && exec {shlex.join(argv)}"]
    proc_dir = sysroot / "proc"
    proc_dir.mkdir(exist_ok=True)
    if _has_unshare():
        cmd = ["unshare", "--mount", "--pid", "--fork", f"--mount-proc={proc_dir}", *inner]
        return _timed(cmd, timeout)
    _refuse_mounts(proc_dir)
    _run(["mount", "-t", "proc", "proc", str(proc_dir)], f"mount /proc in {sysroot}", "run as root")
    try:
        return _timed(inner, timeout)
    finally:
        if subprocess.run(["umount", str(proc_dir)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(proc_dir)], capture_output=True)


def _timed(cmd: list[str], timeout: float | None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return subprocess.CompletedProcess(cmd, 124, out, f"timed out after {timeout:.0f} s")


# ---------------------------------------------------------------------------------------- set-up


def _debootstrap(root: Path, log) -> tuple[list[str], dict[str, str]]:
    """The host's debootstrap, else Debian trixie's debootstrap .deb fetched with a private apt state."""
    host = shutil.which("debootstrap")
    if host:
        return [host], {}
    unpacked = root / "debootstrap"
    script = unpacked / "usr" / "sbin" / "debootstrap"
    if not script.is_file():
        log(f"[setup-swift] no debootstrap on the host: fetching Debian {SUITE}'s into {unpacked}")
        apt = _Apt(root / "apt", "debootstrap", "amd64", SUITE, command=COMMAND)
        debs = lambda: sorted(apt.archives.glob("debootstrap_*.deb"))  # noqa: E731
        if not debs():
            apt.get(["download", "debootstrap"], f"apt-get download debootstrap ({SUITE})")
        _unpack_debs(debs()[-1:], unpacked, "debootstrap", command=COMMAND)
    return ["sh", str(script)], {"DEBOOTSTRAP_DIR": str(unpacked / "usr" / "share" / "debootstrap")}


def setup(cache: str | os.PathLike | None = None, log=print) -> dict:
    """Build (or finish building) the trixie root with Swift in `cache`. Returns env.json's content.

    Raises:
        PocketBertError: not root / no chroot (one line, with the reason), a package that cannot be
            fetched, a Swift that does not start.
    """
    reason = why_impossible()
    if reason:
        raise PocketBertError(f"cannot build the Swift root here: {reason}")
    root = cache_dir(cache)
    sysroot = root / "root"
    seconds: dict[str, float] = {}
    fresh: set[str] = set()
    with _locked(root):
        # 1. debootstrap --variant=minbase trixie, into a partial folder renamed when complete.
        t0 = time.perf_counter()
        if not (sysroot / "etc" / "debian_version").is_file():
            fresh.add("debootstrap")
            tool, env = _debootstrap(root, log)
            partial = root / "root.partial"
            _remove(partial)
            log(f"[setup-swift] debootstrap --variant=minbase {SUITE} {partial}")
            # Its own mount namespace: the /proc and /sys that debootstrap mounts in the target vanish
            # with it, even when it is killed half-way.
            ns = ["unshare", "--mount", "--fork"] if _has_unshare() else []
            _run([*ns, *tool, "--variant=minbase", f"--keyring={DEBIAN_KEYRING}", SUITE, str(partial),
                  DEBIAN_MIRROR], "debootstrap", f"check that {DEBIAN_MIRROR} can be reached, then run "
                 f"`{COMMAND}` again", env={**os.environ, **env})
            _refuse_mounts(partial)
            _remove(sysroot)
            partial.rename(sysroot)
        seconds["debootstrap"] = time.perf_counter() - t0

        # 2. Swift with the root's own apt (its sources.list is the one debootstrap wrote).
        t0 = time.perf_counter()
        if not (sysroot / SWIFT_FILE).is_file() or not (root / "env.json").is_file():
            fresh.add("swift")
            shutil.copyfile("/etc/resolv.conf", sysroot / "etc" / "resolv.conf")  # name lookup for apt
            log(f"[setup-swift] apt-get install --no-install-recommends {' '.join(PACKAGES)} (in the root, ~2 GB)")
            for argv in (["apt-get", "-q", "update"],
                         ["apt-get", "-q", "-y", "--no-install-recommends", "install", *PACKAGES],
                         ["apt-get", "clean"]):
                proc = run_in_root(sysroot, argv, timeout=3600)
                if proc.returncode != 0:
                    raise PocketBertError(f"{' '.join(argv[:2])} in the {SUITE} root failed: "
                                          f"{_one_line(proc.stderr + proc.stdout)}; check that {DEBIAN_MIRROR} "
                                          f"can be reached, then run `{COMMAND}` again")
        seconds["swift"] = time.perf_counter() - t0

        # 3. Smoke test: the compiler starts (needs /proc).
        t0 = time.perf_counter()
        proc = run_in_root(sysroot, [SWIFT, "--version"], timeout=300)
        if proc.returncode != 0:
            raise PocketBertError(f"`swift --version` in {sysroot} failed: {_one_line(proc.stderr + proc.stdout)}; "
                                  f"delete {root} and run `{COMMAND}` again")
        version = (proc.stdout + proc.stderr).strip().splitlines()[0].strip()
        seconds["check"] = time.perf_counter() - t0

        previous = _read_env(root).get("seconds", {})
        for step in ("debootstrap", "swift"):
            if step not in fresh and step in previous:
                seconds[step] = previous[step]  # keep the build time of a step found already done
        info = {"cache": str(root), "root": str(sysroot), "suite": SUITE, "packages": list(PACKAGES),
                "swift_version": version, "size_mb": _size_mb(sysroot), "reused": sorted({"debootstrap", "swift"} - fresh),
                "seconds": {k: round(v, 1) for k, v in seconds.items()}}
        from pocketbert.files import write_json

        write_json(root / "env.json", info)
    return info


def _read_env(root: Path) -> dict:
    try:
        return json.loads((root / "env.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _size_mb(path: Path) -> int:
    proc = subprocess.run(["du", "-sxm", str(path)], capture_output=True, text=True)
    return int(proc.stdout.split()[0]) if proc.returncode == 0 and proc.stdout else -1


# ------------------------------------------------------------------------------------------- run


class SwiftRoot:
    """A finished set-up: copy a package into the root, run `swift build` / `swift test` there."""

    def __init__(self, root: Path):
        self.cache, self.sysroot = root, root / "root"
        self.info = _read_env(root)

    def copy_in(self, src: Path, dest: str) -> str:
        """Copy the folder `src` to `dest` (a path inside the root, under /work), replacing what was there
        but keeping its `.build` folder (incremental builds). Returns `dest`."""
        if not dest.startswith(WORK + "/"):
            raise ValueError(f"{dest}: copy into {WORK}/ only")
        target = self.sysroot / dest.lstrip("/")
        build = target / ".build"
        keep = target.with_name(f".{target.name}.build-keep")
        _remove(keep)
        if build.is_dir():
            build.rename(keep)
        _remove(target)
        shutil.copytree(src, target, symlinks=True, ignore=shutil.ignore_patterns(".build", ".swiftpm"))
        if keep.is_dir():
            keep.rename(build)
        return dest

    def host_path(self, path_in_root: str) -> Path:
        return self.sysroot / path_in_root.lstrip("/")

    def swift(self, args: list[str], cwd: str, env: dict[str, str] | None = None,
              timeout: float = 1800) -> subprocess.CompletedProcess:
        return self.run([SWIFT, *args], cwd=cwd, env=env, timeout=timeout)

    def run(self, argv: list[str], cwd: str = "/", env: dict[str, str] | None = None,
            timeout: float = 1800) -> subprocess.CompletedProcess:
        """Run a program of the root (e.g. a built Swift executable); one run per cache at a time."""
        with _locked(self.cache):
            return run_in_root(self.sysroot, argv, cwd=cwd, env=env, timeout=timeout)


def open_root(cache: str | os.PathLike | None = None) -> SwiftRoot:
    """The set-up root in `cache`, checked. Raises PocketBertError (one line) naming what is missing."""
    reason = why_impossible()
    if reason:
        raise PocketBertError(f"cannot run Swift in a chroot here: {reason}")
    root = cache_dir(cache)
    fix = f"run `{COMMAND}{'' if cache is None else ' --cache ' + str(root)}`"
    if not (root / "root" / SWIFT_FILE).is_file() or not (root / "env.json").is_file():
        raise PocketBertError(f"no finished Swift root in {root} (root/{SWIFT_FILE} or env.json is missing); {fix}")
    return SwiftRoot(root)


XCTEST_SUMMARY = re.compile(r"Executed (\d+) tests?, with (\d+) failures? \((\d+) unexpected\)")


def xctest_summary(output: str) -> dict | None:
    """The last 'Executed N tests, with F failures (U unexpected)' line of `swift test` output."""
    found = XCTEST_SUMMARY.findall(output)
    if not found:
        return None
    n, failures, unexpected = map(int, found[-1])
    line = next(ln.strip() for ln in reversed(output.splitlines()) if XCTEST_SUMMARY.search(ln))
    return {"tests": n, "failures": failures, "unexpected": unexpected, "line": line}
