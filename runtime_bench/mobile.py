"""Lower-bound latency on mobile CPU cores you may not have: an estimate, never a measurement.

bound = max(compute, memory): compute = linear FLOPs / the core's peak for the weights' precision +
attention FLOPs / fp32 peak; memory = weight bytes / the bandwidth one core sustains. Real runtimes
reach perhaps 30-70% of these peaks on small GEMMs, so a measured phone number will be higher.
"""

from __future__ import annotations

from pocketbert.runtime_bench.flops import Work

# Per-cycle throughput from the vendors' software optimization guides (issue rate x width of the FMA and
# dot-product pipes). Bandwidth: single-core sustained read bandwidth as measured in public reviews, rounded.
CORES = [
    {
        "core": "Cortex-A55", "example_soc": "little core of Snapdragon 888 / Tensor G2", "clock_ghz": 1.8,
        "simd": "NEON 128-bit, 1 FMA pipe (2x64-bit), SDOT",
        "fp32_flops_per_cycle": 8, "int8_ops_per_cycle": 32, "bandwidth_gb_per_s": 5.0,
        "sources": ["Arm Cortex-A55 Software Optimization Guide (ARM ID 109080): ASIMD FMLA/SDOT throughput",
                    "Anandtech, Snapdragon 888 review: A55 single-core memory bandwidth"],
    },
    {
        "core": "Cortex-A78", "example_soc": "big core of Snapdragon 888 / Dimensity 1200", "clock_ghz": 2.4,
        "simd": "NEON 128-bit, 2 FMA pipes, SDOT (no i8mm)",
        "fp32_flops_per_cycle": 16, "int8_ops_per_cycle": 64, "bandwidth_gb_per_s": 20.0,
        "sources": ["Arm Cortex-A78 Software Optimization Guide (ARM ID 102160): 2x ASIMD FMLA/SDOT per cycle",
                    "Anandtech, Snapdragon 888 review: big-core memory latency and bandwidth"],
    },
    {
        "core": "Cortex-X3", "example_soc": "prime core of Snapdragon 8 Gen 2", "clock_ghz": 3.2,
        "simd": "NEON 128-bit, 4 FMA pipes, SDOT and i8mm (SMMLA)",
        "fp32_flops_per_cycle": 32, "int8_ops_per_cycle": 256, "bandwidth_gb_per_s": 35.0,
        "sources": ["Arm Cortex-X3 Software Optimization Guide (ARM ID 109692): 4x ASIMD FMLA; SMMLA = 2x SDOT MACs",
                    "Chips and Cheese / Anandtech, Snapdragon 8 Gen 2: single-core DRAM bandwidth"],
    },
    {
        "core": "Apple P-core (A16 Everest)", "example_soc": "iPhone 14 Pro / 15", "clock_ghz": 3.46,
        "simd": "NEON 128-bit, 4 FMA pipes, SDOT (AMX units only through Accelerate / Core ML)",
        "fp32_flops_per_cycle": 32, "int8_ops_per_cycle": 128, "bandwidth_gb_per_s": 50.0,
        "sources": ["Dougall Johnson, Apple Firestorm microarchitecture (dougallj.github.io/applecpu): 4 FP/SIMD pipes",
                    "Anandtech, A15/A16 reviews: single-core memory bandwidth"],
    },
]


def estimate_rows(name: str, quant: str, seq_len: int, work: Work) -> list[dict]:
    """One estimate per core for one artifact (1 thread); `quant` picks the weight GEMM precision."""
    out = []
    for c in CORES:
        fp32 = c["fp32_flops_per_cycle"] * c["clock_ghz"]  # GFLOP/s
        int8 = c["int8_ops_per_cycle"] * c["clock_ghz"]
        linear_peak = int8 if quant == "int8" else (2 * fp32 if quant == "fp16" else fp32)
        compute_ms = (work.linear_flops / linear_peak + work.attention_flops / fp32) / 1e6
        memory_ms = work.weight_bytes(quant) / (c["bandwidth_gb_per_s"] * 1e9) * 1e3
        out.append({
            "label": "estimate", "core": c["core"], "example_soc": c["example_soc"], "clock_ghz": c["clock_ghz"],
            "simd": c["simd"], "fp32_gflops_per_core": round(fp32, 2), "int8_gops_per_core": round(int8, 2),
            "bandwidth_gb_per_s": c["bandwidth_gb_per_s"], "name": name, "quant": quant, "seq_len": seq_len,
            "threads": 1, "gflops_per_inference": work.flops / 1e9, "weight_bytes": work.weight_bytes(quant),
            "lower_bound_ms": max(compute_ms, memory_ms), "bound": "compute" if compute_ms >= memory_ms else "memory",
            "sources": list(c["sources"]),
        })
    return out
