"""Phones you do have: push the bundle over adb, run a benchmark on the phone, pull results in our schema.

Two ways to measure (see ADB.md for the real-device steps):
  app     the Android demo's headless benchmark, one `am start` per thread count:
          adb shell am start -W -S -n PKG/.BenchmarkActivity --es bundle_dir DIR --ei runs N --ei warmup N
              --ei threads T --es results_file benchmark_results.json
          then poll for /sdcard/Android/data/PKG/files/benchmark_results.json and pull it (the app writes this schema).
  binary  a user-supplied benchmark binary pushed to /data/local/tmp/pocketbert/bin: LiteRT `benchmark_model`
          (.tflite artifacts) or ExecuTorch `executor_runner` (.pte artifacts); its text output is parsed.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from pocketbert.errors import PocketBertError
from pocketbert.runtime_bench import flops, mobile
from pocketbert.runtime_bench.schema import KIND, SCHEMA_VERSION, validate_results, write_results

REMOTE_ROOT = "/data/local/tmp/pocketbert"
RESULTS_FILE = "benchmark_results.json"


class Adb:
    """Thin wrapper over the `adb` client for one device."""

    def __init__(self, serial: str | None = None, exe: str | None = None):
        self.exe = exe or shutil.which("adb")
        if not self.exe:
            raise PocketBertError("adb not found on PATH; install Android platform-tools (apt install adb) "
                                  "or use --device host")
        serials = self.devices()
        if not serials:
            raise PocketBertError("no Android device attached (`adb devices` lists none); connect a phone with "
                                  "USB debugging on, or use --device host")
        if serial is None:
            if len(serials) > 1:
                raise PocketBertError(f"{len(serials)} devices attached ({', '.join(serials)}); pick one with --device adb:SERIAL")
            serial = serials[0]
        elif serial not in serials:
            raise PocketBertError(f"device {serial} is not attached (adb lists {', '.join(serials)}); check --device adb:SERIAL")
        self.serial = serial

    def _run(self, args: list[str], timeout: float = 300, check: bool = True) -> str:
        cmd = [self.exe, *(["-s", self.serial] if getattr(self, "serial", None) else []), *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PocketBertError(f"`adb {' '.join(args[:2])}` did not finish in {timeout:.0f} s; check the device") from None
        if check and proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise PocketBertError(f"`adb {' '.join(args[:2])}` failed: {msg[-1] if msg else proc.returncode}")
        return proc.stdout

    def devices(self) -> list[str]:
        out = self._run(["devices"], timeout=30)
        return [ln.split()[0] for ln in out.splitlines()[1:] if ln.strip() and ln.split()[-1] == "device"]

    def shell(self, command: str, timeout: float = 300, check: bool = True) -> str:
        return self._run(["shell", command], timeout=timeout, check=check)

    def push(self, local: Path, remote: str) -> None:
        self._run(["push", str(local), remote], timeout=1800)

    def pull(self, remote: str, local: Path) -> None:
        self._run(["pull", remote, str(local)], timeout=600)

    def exists(self, remote: str) -> bool:
        return self.shell(f"test -f {shlex.quote(remote)} && echo yes || echo no", timeout=30).strip().endswith("yes")

    def device_info(self) -> dict:
        def prop(name: str) -> str:
            return self.shell(f"getprop {name}", timeout=30, check=False).strip()

        cpuinfo = self.shell("cat /proc/cpuinfo", timeout=30, check=False)
        features, hardware = set(), ""
        for line in cpuinfo.splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "features":
                features.update(value.split())
            elif key.strip().lower() == "hardware" and not hardware:
                hardware = value.strip()
        isa = sorted({"neon" if f == "asimd" else f for f in features if f in ("asimd", "asimddp", "i8mm", "sve", "sve2", "bf16", "fphp")})
        cores = self.shell("nproc", timeout=30, check=False).strip()
        return {
            "environment": "adb", "serial": self.serial,
            "name": f"{prop('ro.product.manufacturer')} {prop('ro.product.model')}".strip() or self.serial,
            "os": f"Android {prop('ro.build.version.release')}".strip(), "arch": prop("ro.product.cpu.abi") or "unknown",
            "cpu_model": hardware or prop("ro.soc.model") or prop("ro.board.platform") or "unknown",
            "isa": isa, "cores": int(cores) if cores.isdigit() else 1,
            "pinning": "not pinned (the app and the binary run under Android's scheduler)",
        }


def push_bundle(adb: Adb, bundle) -> str:
    remote = f"{REMOTE_ROOT}/{Path(bundle.root).resolve().name}"
    adb.shell(f"rm -rf {shlex.quote(remote)} && mkdir -p {REMOTE_ROOT}")
    adb.push(Path(bundle.root), remote)
    return remote


def run_app(adb: Adb, remote_bundle: str, package: str, threads: int, runs: int, warmup: int, timeout: float) -> dict:
    """One headless run of the demo app; returns its results document (validated)."""
    results = f"/sdcard/Android/data/{package}/files/{RESULTS_FILE}"
    adb.shell(f"rm -f {shlex.quote(results)}", check=False)
    adb.shell(f"am start -W -S -n {package}/.BenchmarkActivity --es bundle_dir {shlex.quote(remote_bundle)} "
              f"--ei runs {runs} --ei warmup {warmup} --ei threads {threads} --es results_file {RESULTS_FILE}")
    deadline = time.monotonic() + timeout
    while not adb.exists(results):
        if time.monotonic() > deadline:
            raise PocketBertError(f"the app wrote no {results} within {timeout:.0f} s; check `adb logcat` and --timeout")
        time.sleep(0.5)
    with tempfile.TemporaryDirectory() as d:
        local = Path(d) / RESULTS_FILE
        for _ in range(20):  # the app renames its file into place; a pull right after may still race it
            adb.pull(results, local)
            try:
                doc = json.loads(local.read_text(encoding="utf-8"))
                break
            except ValueError:
                time.sleep(0.5)
        else:
            raise PocketBertError(f"{results} from the phone is not valid JSON")
    validate_results(doc, f"{adb.serial}:{results}")
    if not doc.get("complete", True) and not doc.get("rows"):
        # The app could not open the bundle (missing manifest, newer schema, bad sha256, ...): its one-line
        # reason is in extra.error; nothing was measured.
        error = (doc.get("extra") or {}).get("error") or "; ".join(doc.get("notes") or []) or "no reason given"
        raise PocketBertError(f"the demo app on {adb.serial} measured nothing: {error}")
    return doc


_TFLITE_TIMINGS = re.compile(r"Inference timings in us: Init: ([\d.]+), First inference: ([\d.]+), "
                             r"Warmup \(avg\): ([\d.e+]+), Inference \(avg\): ([\d.e+]+)")
_TFLITE_STATS = re.compile(r"count=(\d+) .*?min=([\d.]+) max=([\d.]+) avg=([\d.e+]+) std=([\d.]+)"
                           r"(?: p5=([\d.]+) median=([\d.]+) p95=([\d.]+))?")
_TFLITE_MEM = re.compile(r"Memory footprint delta from the start of the tool \(MB\): init=([\d.]+) overall=([\d.]+)")
_ET_TOTAL = re.compile(r"executed successfully (\d+) time\(s\) in ([\d.]+) ms")


def parse_binary_output(kind: str, text: str) -> dict:
    """Row metrics from `benchmark_model` or `executor_runner` output; raises ValueError when none are found.

    These tools print summaries, not samples: percentiles appear only where the tool prints them (median),
    and `latency_note` says which numbers the row has.
    """
    if kind == "benchmark_model":
        t = _TFLITE_TIMINGS.search(text)
        stats_lines = list(_TFLITE_STATS.finditer(text))
        s = stats_lines[-1] if stats_lines else None  # the last stats line is the timed runs (the first, warm-up)
        if not t and not s:
            raise ValueError("no `Inference timings` line in benchmark_model output")
        row = {}
        if t:
            row.update(load_ms=float(t.group(1)) / 1e3, first_inference_ms=float(t.group(2)) / 1e3,
                       latency_ms_mean=float(t.group(4)) / 1e3)
        if s:
            row.update(runs=int(s.group(1)), latency_ms_min=float(s.group(2)) / 1e3, latency_ms_max=float(s.group(3)) / 1e3,
                       latency_ms_mean=float(s.group(4)) / 1e3, latency_ms_std=float(s.group(5)) / 1e3)
            if s.group(7):
                row["latency_ms_p50"] = float(s.group(7)) / 1e3
        m = _TFLITE_MEM.search(text)
        if m:
            row["peak_rss_delta_mb"] = float(m.group(2))
        row["latency_note"] = "from benchmark_model's summary (mean, std, min, max; median where printed)"
        return row
    m = _ET_TOTAL.search(text)
    if not m:
        raise ValueError("no `executed successfully N time(s) in T ms` line in executor_runner output")
    n, total = int(m.group(1)), float(m.group(2))
    return {"runs": n, "latency_ms_mean": total / max(n, 1),
            "latency_note": "executor_runner prints only the total time of its iterations: mean = total / N"}


def run_binary(adb: Adb, bundle, remote_bundle: str, binary: Path, threads: list[int], runs: int, warmup: int) -> list[dict]:
    kind = "executor_runner" if "executor" in binary.name else "benchmark_model"
    fmt = "executorch" if kind == "executor_runner" else "tflite"
    remote_bin = f"{REMOTE_ROOT}/bin/{binary.name}"
    adb.shell(f"mkdir -p {REMOTE_ROOT}/bin")
    adb.push(binary, remote_bin)
    adb.shell(f"chmod 755 {shlex.quote(remote_bin)}")
    rows = []
    for a in [a for a in bundle.artifacts if a["format"] == fmt]:
        model = f"{remote_bundle}/{a['file']}"
        for t in threads:
            row = {"name": Path(a["file"]).name, "file": a["file"], "format": a["format"], "backend": a["backend"],
                   "quant": a["quant"], "seq_len": a["seq_len"], "threads": t, "role": "artifact",
                   "size_bytes": a["size_bytes"]}
            if kind == "benchmark_model":
                cmd = (f"{remote_bin} --graph={shlex.quote(model)} --num_threads={t} --num_runs={runs} "
                       f"--warmup_runs={warmup} --report_peak_memory_footprint=true")
            else:
                cmd = f"{remote_bin} --model_path={shlex.quote(model)} --num_executions={runs} --cpu_threads={t}"
            out = adb.shell(cmd + " 2>&1", timeout=1800, check=False)
            try:
                row.update(parse_binary_output(kind, out))
                row["status"] = "ok"
            except ValueError as e:
                tail = [ln for ln in out.strip().splitlines() if ln.strip()]
                row.update(status="failed", error=f"{e}; last line: {tail[-1][:200] if tail else '(no output)'}")
            rows.append(row)
    return rows


def run_adb_bench(bundle, out: Path, serial: str | None, threads: list[int], seq_lens: list[int], runs: int,
                  warmup: int, binary: str | None = None, package: str = "io.pocketbert.demo",
                  timeout: float = 600, command: str | None = None) -> dict:
    """Measure on the attached phone; write `out` (our schema, environment `adb`) and return it."""
    from pocketbert.files import provenance

    binary_path = Path(binary) if binary else None
    if binary_path is not None and not binary_path.is_file():
        raise PocketBertError(f"--binary {binary} does not exist; give the path of benchmark_model or executor_runner")
    adb = Adb(serial)
    device = adb.device_info()
    remote = push_bundle(adb, bundle)
    doc = {
        "schema_version": SCHEMA_VERSION, "kind": KIND, "complete": False,
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bundle": {"path": str(Path(bundle.root).resolve()), "model_name": bundle.manifest["model"]["name"],
                   "task": bundle.task, "num_parameters": int(bundle.manifest["model"]["num_parameters"])},
        "device": device,
        "config": {"threads": threads, "runs": runs, "warmup": warmup, "seq_lens": seq_lens, "batch_size": 1},
        "rows": [], "estimates": [], "provenance": provenance(command=command), "notes": [],
    }
    if binary_path is not None:
        doc["rows"] = [r for r in run_binary(adb, bundle, remote, binary_path, threads, runs, warmup)
                       if r["seq_len"] in seq_lens]
        doc["notes"].append(f"measured with {binary_path.name} on the phone")
        write_results(out, doc)
    else:
        for t in threads:
            app_doc = run_app(adb, remote, package, t, runs, warmup, timeout)
            doc["rows"].extend(r for r in app_doc["rows"] if r["seq_len"] in seq_lens)
            doc["notes"].extend(app_doc.get("notes", []))
            for k in ("cpu_model", "isa", "cores", "memory_mb"):  # the app may know more than getprop
                if app_doc["device"].get(k) and not doc["device"].get(k):
                    doc["device"][k] = app_doc["device"][k]
            write_results(out, doc)  # saved after every thread count: an interrupted run keeps what it measured
    config = dict(bundle.manifest["model"]["config"], task=bundle.task)
    for a in bundle.artifacts:
        if a["seq_len"] in seq_lens:
            work = flops.encoder_work(config, a["seq_len"])
            doc["estimates"].extend(mobile.estimate_rows(Path(a["file"]).name, a["quant"], a["seq_len"], work))
            for r in doc["rows"]:
                if r["name"] == Path(a["file"]).name and r.get("status") == "ok":
                    r["gflops_per_inference"] = work.flops / 1e9
                    lat = r.get("latency_ms_p50") or r.get("latency_ms_mean")
                    if lat:
                        r["achieved_gflops"] = work.flops / 1e9 / (lat / 1e3)
    doc["complete"] = True
    write_results(out, doc)
    return doc
