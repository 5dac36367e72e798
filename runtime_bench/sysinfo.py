"""What machine the numbers come from: CPU model, ISA features that matter for inference, cores, OS."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

# /proc/cpuinfo flag -> the name we report. x86: AVX2/AVX-512/VNNI/AMX; Arm: NEON (asimd), dot product, i8mm.
ISA_FLAGS = {
    "avx2": "avx2", "fma": "fma", "avx512f": "avx512f", "avx512_vnni": "avx512_vnni", "avx512_bf16": "avx512_bf16",
    "avx_vnni": "avx_vnni", "amx_tile": "amx_tile", "amx_int8": "amx_int8", "amx_bf16": "amx_bf16",
    "asimd": "neon", "neon": "neon", "asimddp": "asimddp", "i8mm": "i8mm", "sve": "sve", "sve2": "sve2",
    "bf16": "bf16", "fphp": "fp16",
}


def _cpuinfo() -> tuple[str | None, list[str]]:
    model, flags = None, set()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or None, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    isa = sorted({ISA_FLAGS[f] for f in flags if f in ISA_FLAGS})
    return model or platform.processor() or None, isa


def available_cores() -> list[int]:
    """Cores this process may run on (affinity mask), or all cores where the OS has no affinity API."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def host_info() -> dict:
    """The schema's `device` object for the machine running this process."""
    model, isa = _cpuinfo()
    info = {
        "environment": "host",
        "name": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "cpu_model": model or "unknown",
        "isa": isa,
        "cores": os.cpu_count() or 1,
        "cores_available": len(available_cores()),
        "pinning": "sched_setaffinity to the first N available cores" if hasattr(os, "sched_setaffinity")
        else "not available on this OS",
    }
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_mb"] = round(pages * size / 2**20)
    except (ValueError, OSError, AttributeError):
        pass
    return info
