"""Render results files as a self-contained HTML page (tables + PNG plots embedded as base64) or Markdown.

The page must read on its own: it says where the numbers come from (host CPU or phone, CPU model, ISA,
threads, pinning), what is measured and what is an estimate.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path

from pocketbert.errors import PocketBertError

OK = "ok"


def _fmt(v, digits: int = 2) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _mb(n) -> str:
    return "-" if n is None else f"{n / 1e6:.2f}"


def _where(doc: dict) -> str:
    d = doc["device"]
    env = {"host": "host CPU (not a phone)", "adb": "Android phone over adb", "ios": "iPhone / iPad (iOS demo app)",
           "emulation": "EMULATED Arm core (qemu user mode): timings are not phone timings"}[d["environment"]]
    parts = [env, d.get("name"), d.get("cpu_model"), d.get("os"), d.get("arch")]
    isa = ", ".join(d.get("isa") or []) or "-"
    cores = f"{d.get('cores_available', d.get('cores', '?'))}/{d.get('cores', '?')} cores"
    return f"{' | '.join(p for p in parts if p)} | ISA: {isa} | {cores} | pinning: {d.get('pinning', '-')}"


def _teacher_keys(doc: dict) -> list[str]:
    return sorted({r["name"] for r in doc["rows"] if r["role"] == "baseline"})


def table_rows(doc: dict) -> tuple[list[str], list[list[str]]]:
    """The main table: one line per row of the results file."""
    bases = _teacher_keys(doc)
    # Binary summaries (benchmark_model) and emulation give a mean, not a p50: the header says which it is.
    emulated = doc["device"]["environment"] == "emulation"
    p50_head = "emulated mean ms" if emulated else (
        "p50 ms" if all("latency_ms_p50" in r for r in doc["rows"] if r["status"] == OK) else "p50 ms (mean where no samples)")
    head = ["name", "role", "format", "quant", "seq", "threads", "status", "size MB", "load ms", "first ms", p50_head,
            "p90 ms", "p99 ms", "trimmed mean ms", "CPU ms p50", "peak RSS +MB", "GFLOP/s", "% of host peak"]
    head += [f"x vs {b}" for b in bases] + [f"CPU-time x vs {b}" for b in bases]
    lines = []
    for r in doc["rows"]:
        ok = r["status"] == OK
        p50 = r.get("latency_ms_p50", r.get("latency_ms_mean"))
        line = [r["name"], r["role"], r["format"], r["quant"], str(r["seq_len"]), str(r["threads"]),
                r["status"] if ok else f"{r['status']}: {r.get('error', '')}", _mb(r.get("size_bytes")),
                _fmt(r.get("load_ms"), 1), _fmt(r.get("first_inference_ms")), _fmt(p50), _fmt(r.get("latency_ms_p90")),
                _fmt(r.get("latency_ms_p99")), _fmt(r.get("latency_ms_trimmed_mean")), _fmt(r.get("cpu_ms_p50")),
                _fmt(r.get("peak_rss_delta_mb"), 1),
                _fmt(r.get("achieved_gflops"), 1),
                _fmt(100 * r["peak_fraction"], 1) if r.get("peak_fraction") is not None else "-"]
        line += [_fmt(r.get("speedup_vs", {}).get(b)) if r["name"] != b else "-" for b in bases]
        line += [_fmt(r.get("cpu_speedup_vs", {}).get(b)) if r["name"] != b else "-" for b in bases]
        lines.append(line)
    return head, lines


def gate_rows(doc: dict) -> tuple[list[str], list[list[str]]]:
    """The geometry gate of each artifact at export (against PyTorch fp32), one line per artifact file."""
    head = ["artifact", "format", "quant", "gate", "STS delta", "top-10 overlap", "min cosine", "bucket cosine",
            "thread cosine", "why it failed"]
    lines, seen = [], set()
    for r in doc["rows"]:
        g = r.get("gate")
        if not g or r["name"] in seen:
            continue
        seen.add(r["name"])
        lines.append([r["name"], r["format"], r["quant"], g["status"], _fmt(g.get("sts_delta")),
                      _fmt(g.get("top10_overlap"), 3), _fmt(g.get("min_cosine"), 4), _fmt(g.get("min_bucket_cosine"), 5),
                      _fmt(g.get("min_thread_cosine"), 6), "; ".join(g.get("reasons", [])) or "-"])
    return head, lines


GATE_NOTE = ("measured at export in each artifact's runtime against PyTorch fp32: STS Spearman x100 delta, top-10 "
             "neighbour overlap and cosines on corpus sentences, one text at every bucket, 1 vs 2 threads (export/gate.py)")


SUITE_KEYS = ("stsb", "sickr", "sst2", "agnews")  # the dev suite's tasks (pipeline/suite.py), then their mean


def _quality(r: dict) -> tuple[str, float] | None:
    """(metric, value) the card decides on: the dev suite's mean where measured, else STS, else the first number."""
    q = {k: v for k, v in (r.get("quality") or {}).items() if isinstance(v, (int, float))}
    for key in ("suite_mean_x100", "sts_spearman_x100"):
        if key in q:
            return key, q[key]
    return next(iter(q.items()), None)


def _suite(r: dict) -> dict:
    """The four suite numbers of a row's quality ({} where the suite did not run)."""
    q = r.get("quality") or {}
    return {k: q[f"suite_{k}_x100"] for k in SUITE_KEYS if isinstance(q.get(f"suite_{k}_x100"), (int, float))}


# Differences the card treats as ties. Quality: STS Spearman x100 differences below 0.5 are within run-to-run
# noise (0.005 on a 0-1 scale). Latency: p50s within 10% of each other count as equal, and size decides (an int8
# and an int4-mixed artifact of one student were 8% apart on this host; on a phone the download is the cost).
QUALITY_NOISE = 0.5
LATENCY_NOISE = 0.10


def quality_noise(values: list[float]) -> float:
    """QUALITY_NOISE on the scale of `values`: points (x100) or a 0-1 fraction."""
    return QUALITY_NOISE if max(abs(v) for v in values) > 1.0 else QUALITY_NOISE / 100


def quality_limits(values: list[float], span: float = 5.0) -> tuple[float, float]:
    """Honest quality axis: at least `span` points and a point of margin, so that artifacts 0.1 apart do
    not look a world apart (STS Spearman x100 differences below 0.5 are within run-to-run noise)."""
    lo, hi = min(values), max(values)
    pad = max(1.0, (span - (hi - lo)) / 2)
    return lo - pad, hi + pad


def _reference_of(name: str) -> str:
    """`teacher_onnx_int8` -> `teacher`, `peer_paraphrase-minilm-l3_pytorch_fp32` -> `peer_paraphrase-minilm-l3`."""
    for tail in ("_pytorch_fp32", "_onnx_fp32", "_onnx_int8", "_model2vec_fp32"):
        if name.endswith(tail):
            return name[: -len(tail)]
    return name


def verdict(doc: dict) -> dict | None:
    """The answer a reader wants first: the student against the teacher and the peers at the largest
    bucket and the fewest threads: quality, size, p50 and speed-up, and one sentence on which to ship.

    The student is its best artifact, among those that did not fail the geometry gate: of those whose quality
    is within noise of the best artifact's (`quality_noise`), and whose p50 is within LATENCY_NOISE of the
    fastest of them, the smallest (on a phone the download and the memory are the other costs). Without
    quality, the same on p50 alone. The p50 is the one at real lengths when the bench measured it (what an
    app waits for: a dynamic-length artifact runs a 15-token text at its length, a bucketed one at its
    bucket's), else the one at seq N. A reference model's quality is its fp32 evaluation; its size and latency
    are those of its ONNX Runtime int8 row, the smallest way users ship it.

    The sentence calls the student and the best peer a tie when their quality differs by less than the noise;
    a student that ties and runs faster is the one to ship.
    """
    ok = [r for r in doc["rows"] if r["status"] == OK and r.get("latency_ms_p50") is not None]
    if not ok:
        return None
    t0, n = min(r["threads"] for r in ok), max(r["seq_len"] for r in ok)
    at = [r for r in ok if r["threads"] == t0 and r["seq_len"] == n]
    arts = [r for r in at if r["role"] == "artifact"]
    arts = [r for r in arts if (r.get("gate") or {}).get("status") != "failed"] or arts
    if not arts:
        return None
    student, noise = _pick_student(arts, _real_p50(doc))
    rows = [{"model": "student", "row": student["name"], "quality": (_quality(student) or (None, None))[1],
             "suite": _suite(student), "probe": (student.get("quality") or {}).get("probe_accuracy"),
             "size_mb": (student.get("size_bytes") or 0) / 1e6, "p50_ms": student["latency_ms_p50"], "speedup": 1.0}]
    metric = (_quality(student) or ("sts_spearman_x100", None))[0]
    refs: dict[str, list[dict]] = defaultdict(list)
    for r in at:
        if r["role"] == "baseline":
            refs[_reference_of(r["name"])].append(r)
    for name, group in sorted(refs.items(), key=lambda kv: (not kv[0].startswith("teacher"), kv[0])):
        deploy = next((r for r in group if r["name"].endswith("_onnx_int8")), min(group, key=lambda r: r["latency_ms_p50"]))
        q = next((_quality(r)[1] for r in group if _quality(r)), None)
        probe = next(((r.get("quality") or {}).get("probe_accuracy") for r in group
                      if (r.get("quality") or {}).get("probe_accuracy") is not None), None)
        suite = next((_suite(r) for r in group if _suite(r)), {})
        rows.append({"model": name, "row": deploy["name"], "quality": q, "suite": suite, "probe": probe,
                     "size_mb": (deploy.get("size_bytes") or 0) / 1e6,
                     "p50_ms": deploy["latency_ms_p50"],
                     "speedup": student.get("speedup_vs", {}).get(deploy["name"],
                                                                  deploy["latency_ms_p50"] / student["latency_ms_p50"])})
    peers = [r for r in rows if r["model"].startswith("peer_") and r["quality"] is not None]
    rivals = peers or [r for r in rows[1:] if r["quality"] is not None]
    s = rows[0]
    if s["quality"] is None or not rivals:
        sentence = (f"Measured speed only: the student ({s['row']}) runs in {s['p50_ms']:.2f} ms at seq {n}, {t0} thread(s); "
                    "add `--quality` (pocketbert eval --json) to decide on quality.")
    else:
        best = max(rivals, key=lambda r: r["quality"])
        size = f"{s['size_mb']:.1f} MB against {best['size_mb']:.1f} MB"
        if s["quality"] >= best["quality"]:
            sentence = (f"Ship the student ({s['row']}): {metric} {s['quality']:.2f} against {best['model']}'s "
                        f"{best['quality']:.2f}, {size}, {best['speedup']:.1f}x faster than its ONNX Runtime int8 "
                        f"at seq {n}, {t0} thread(s).")
        elif best["quality"] - s["quality"] < noise and best["speedup"] > 1.0:
            sentence = (f"Ship the student ({s['row']}): it ties {best['model']} on {metric} ({s['quality']:.2f} "
                        f"against {best['quality']:.2f}; differences below {noise:g} are run-to-run noise), {size}, "
                        f"{best['speedup']:.1f}x faster than its ONNX Runtime int8 at seq {n}, {t0} thread(s).")
        else:
            sentence = (f"Ship {best['model']} where quality matters most: {metric} {best['quality']:.2f} against the "
                        f"student's {s['quality']:.2f}. The student ({s['row']}) is {best['speedup']:.1f}x faster and "
                        f"{size}; ship it where that quality loss is acceptable.")
    teacher = next((r for r in rows if r["model"].startswith("teacher") and r["probe"] is not None), None)
    if s["probe"] is not None and teacher is not None:  # what the similarity metric cannot show: did it specialise?
        sentence += (f" Held-out probe (logistic regression on frozen embeddings): student {s['probe']:.2f}, "
                     f"teacher {teacher['probe']:.2f}.")
    real = real_length_p50(doc, student, rows)
    if real:
        sentence += real
    return {"seq_len": n, "threads": t0, "metric": metric, "rows": rows, "sentence": sentence}


def _pick_student(arts: list[dict], real: dict[tuple[str, str], float]) -> tuple[dict, float]:
    """The verdict's student among `arts` (verdict's rule) and the quality noise it used; `real`: the
    real-length p50 per (format, quant), used in place of the seq-N p50 when there."""
    measured = [_quality(r)[1] for r in arts if _quality(r)]
    noise = quality_noise(measured) if measured else 0.0
    best_q = max(measured, default=None)
    pool = [r for r in arts if best_q is None or (_quality(r) and _quality(r)[1] >= best_q - noise)]
    pool = [r for r in pool if (r["format"], r["quant"]) in real] or pool  # one kind of p50 across the pool

    def waits(r: dict) -> float:
        return real.get((r["format"], r["quant"]), r["latency_ms_p50"])

    fastest = min(waits(r) for r in pool)
    near = [r for r in pool if waits(r) <= fastest * (1 + LATENCY_NOISE)]
    return min(near, key=lambda r: (r.get("size_bytes") or 0, waits(r))), noise


def _real_p50(doc: dict) -> dict[tuple[str, str], float]:
    """(format, quant) -> the artifact family's p50 at real lengths ({} without that section)."""
    rows = (doc.get("real_lengths") or {}).get("rows", [])
    return {(r["format"], r["quant"]): r["latency_ms_p50"] for r in rows if r["status"] == OK and r["role"] == "artifact"}


def real_length_p50(doc: dict, student: dict, rows: list[dict]) -> str:
    """Each verdict row's p50 at real lengths (`real_p50_ms`, from the results' `real_lengths`) and the
    sentence that quotes the student's beside its seq-N p50 ('' without that section)."""
    section = doc.get("real_lengths") or {}
    ok = {r["name"]: r for r in section.get("rows", []) if r["status"] == OK}
    mine = next((r for r in ok.values() if r["role"] == "artifact"
                 and (r["format"], r["quant"]) == (student["format"], student["quant"])), None)
    if mine is None:
        return ""
    rows[0]["real_p50_ms"] = mine["latency_ms_p50"]
    for r in rows[1:]:
        if r["row"] in ok:
            r["real_p50_ms"] = ok[r["row"]]["latency_ms_p50"]
    dist = section["distribution"]
    faster = [f"{r['real_p50_ms'] / mine['latency_ms_p50']:.1f}x faster than {r['row']}"
              for r in rows[1:] if r.get("real_p50_ms")]
    return (f" At real lengths ({dist['texts']} texts, median {dist['tokens_p50']:.0f} tokens, called as an app calls "
            f"it) the student's p50 is {mine['latency_ms_p50']:.2f} ms (p90 {mine['latency_ms_p90']:.2f}), against "
            f"{student['latency_ms_p50']:.2f} ms at seq {student['seq_len']}"
            + (f"; there it runs {' and '.join(faster)}." if faster else "."))


def verdict_table(card: dict) -> tuple[list[str], list[list[str]]]:
    """The card's table: with the dev suite, its four numbers before the mean the card decides on."""
    probe = any(r.get("probe") is not None for r in card["rows"])
    real = any(r.get("real_p50_ms") is not None for r in card["rows"])
    suite = [k for k in SUITE_KEYS if any(k in (r.get("suite") or {}) for r in card["rows"])]
    head = ["model", "measured row", *suite, card["metric"], *(["probe accuracy"] if probe else []), "size MB",
            f"p50 ms (seq {card['seq_len']})", *(["p50 ms (real lengths)"] if real else []), "student x faster"]
    lines = [[r["model"], r["row"], *(_fmt(r["suite"][k]) if k in (r.get("suite") or {}) else "-" for k in suite),
              _fmt(r["quality"]) if r["quality"] is not None else "-",
              *([_fmt(r["probe"]) if r.get("probe") is not None else "-"] if probe else []), _fmt(r["size_mb"], 1),
              _fmt(r["p50_ms"]), *([_fmt(r.get("real_p50_ms"))] if real else []),
              "-" if r["model"] == "student" else _fmt(r["speedup"])] for r in card["rows"]]
    return head, lines


def real_length_table(doc: dict) -> tuple[str, list[str], list[list[str]]]:
    """The real-length section: a one-line description of the texts, and a row per artifact family / baseline:
    p50, p90, CPU p50, then per bucket (share of texts) p50, and speed-ups over the compared rows."""
    section = doc.get("real_lengths")
    if not section:
        return "", [], []
    dist = section["distribution"]
    buckets = sorted(dist["share_by_bucket"], key=int)
    shares = ", ".join(f"{100 * dist['share_by_bucket'][b]:.0f}% in bucket {b}" for b in buckets)
    files = ", ".join(Path(f).name if "/" not in f else "/".join(Path(f).parts[-2:]) for f in section["source"]["files"])
    text = (f"{dist['texts']} texts ({files}): tokens p50 {dist['tokens_p50']:.0f}, p90 {dist['tokens_p90']:.0f}; "
            f"{shares}; {100 * dist.get('truncated_share', 0):.1f}% truncated. {section['source']['sample']} of them "
            f"(seed {section['source']['seed']}) timed per row at {section['threads']} thread(s), interleaved in "
            f"{section.get('rounds', 1)} rounds; each text called as an app calls it (buckets: padded to the smallest "
            "bucket that holds it; dynamic: its own length).")
    head = ["name", "role", "shape", "p50 ms", "p90 ms", "CPU ms p50",
            *[f"bucket {b}: p50 ms (CPU)" for b in buckets], "speed-up (CPU) vs"]
    lines = []
    for r in section["rows"]:
        if r["status"] != OK:
            lines.append([r["name"], r["role"], r.get("shape", "-"), r["status"], *["-"] * (len(head) - 4)])
            continue
        per = r.get("per_bucket", {})
        lines.append([r["name"], r["role"], r.get("shape", "-"), _fmt(r["latency_ms_p50"]), _fmt(r["latency_ms_p90"]),
                      _fmt(r["cpu_ms_p50"]),
                      *[f"{_fmt(per[b]['latency_ms_p50'])} ({_fmt(per[b].get('cpu_ms_p50'))})" if b in per else "-"
                        for b in buckets],
                      ", ".join(f"{v:.2f}x ({r.get('cpu_speedup_vs', {}).get(k, 0):.2f}x) {k}"
                                for k, v in r.get("speedup_vs", {}).items()) or "-"])
    return text, head, lines


def estimate_table(doc: dict) -> tuple[list[str], list[list[str]]]:
    est = doc.get("estimates") or []
    cores = list(dict.fromkeys(e["core"] for e in est))
    by = defaultdict(dict)
    for e in est:
        by[(e["name"], e["seq_len"], e["quant"])][e["core"]] = e
    head = ["name", "seq", "quant", "GFLOP", "weights MB"] + [f"{c} ms" for c in cores]
    lines = []
    for (name, seq, quant), cells in by.items():
        any_e = next(iter(cells.values()))
        lines.append([name, str(seq), quant, _fmt(any_e["gflops_per_inference"], 3), _mb(any_e["weight_bytes"])]
                     + [f"{cells[c]['lower_bound_ms']:.2f} ({cells[c]['bound'][0]})" if c in cells else "-" for c in cores])
    return head, lines


def estimate_sources(doc: dict) -> list[str]:
    seen = {}
    for e in doc.get("estimates") or []:
        seen.setdefault(e["core"], (e, e["sources"]))
    return [f"{core}: {e['clock_ghz']} GHz, {e['simd']}, {e['fp32_gflops_per_core']} GFLOP/s fp32, "
            f"{e['int8_gops_per_core']} GOP/s int8, {e['bandwidth_gb_per_s']} GB/s. Sources: {'; '.join(src)}"
            for core, (e, src) in seen.items()]


# ---------------------------------------------------------------- plots

def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _label(r: dict) -> str:
    return f"{r['name'].rsplit('.', 1)[0]}"


def plots(doc: dict) -> list[tuple[str, bytes]]:
    """(title, PNG bytes) for: latency vs size, quality vs latency (where known), thread scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    ok = [r for r in doc["rows"] if r["status"] == OK and r.get("latency_ms_p50", r.get("latency_ms_mean"))]
    out = []
    if not ok:
        return out
    p50 = lambda r: r.get("latency_ms_p50", r.get("latency_ms_mean"))  # noqa: E731
    t0 = min(r["threads"] for r in ok)
    seqs = sorted({r["seq_len"] for r in ok})
    sized = [r for r in ok if r.get("size_bytes") and r["threads"] == t0]
    if sized:
        fig, axes = plt.subplots(1, len(seqs), figsize=(5.5 * len(seqs), 4.2), squeeze=False, constrained_layout=True)
        for ax, n in zip(axes[0], seqs):
            for r in [r for r in sized if r["seq_len"] == n]:
                marker = "s" if r["role"] == "baseline" else "o"
                ax.scatter(r["size_bytes"] / 1e6, p50(r), marker=marker, s=40,
                           color="tab:red" if r["role"] == "baseline" else "tab:blue")
                ax.annotate(_label(r), (r["size_bytes"] / 1e6, p50(r)), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            ax.tick_params(axis="x", which="minor", labelsize=7)
            ax.set_xlabel("size (MB, log)")
            ax.set_ylabel("p50 latency (ms)")
            ax.set_title(f"seq {n}, {t0} thread(s): blue = artifacts, red = baselines", fontsize=9)
            ax.grid(alpha=0.3)
        out.append(("Latency against size", _png(fig)))
    n_max = max(seqs)
    qual = [r for r in ok if r["threads"] == t0 and r["seq_len"] == n_max and _quality(r)]
    if qual:
        fig, ax = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
        markers = "osD^v<>ph*"
        for i, r in enumerate(qual):
            key, val = _quality(r)
            ax.scatter(p50(r), val, marker=markers[i % len(markers)], s=50, label=_label(r),
                       edgecolors="tab:red" if r["role"] == "baseline" else "none")
            ax.set_ylabel(key)
        ax.set_ylim(*quality_limits([_quality(r)[1] for r in qual]))
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel(f"p50 latency (ms, log), seq {n_max}, {t0} thread(s)")
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
        ax.grid(alpha=0.3)
        out.append(("Quality against latency", _png(fig)))
    threads = sorted({r["threads"] for r in ok})
    if len(threads) > 1:
        n = n_max
        fig, ax = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
        for name in dict.fromkeys(r["name"] for r in ok if r["seq_len"] == n):
            pts = sorted((r["threads"], p50(r)) for r in ok if r["name"] == name and r["seq_len"] == n)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name.rsplit(".", 1)[0])
        ax.set_xticks(threads)
        ax.set_xlabel("threads")
        ax.set_ylabel("p50 latency (ms)")
        ax.set_yscale("log")
        ax.set_title(f"thread scaling at seq {n}", fontsize=9)
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
        ax.grid(alpha=0.3)
        out.append(("Thread scaling", _png(fig)))
    return out


# ---------------------------------------------------------------- HTML and Markdown

def _html_table(head, lines) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in lines)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}.warn{background:#fff4d6;padding:.6em;border-left:4px solid #e0a000}
img{max-width:100%;border:1px solid #eee}.small{font-size:12px;color:#555}
.verdict{background:#eef6ee;border-left:4px solid #2a8a2a;padding:.2em 1em;margin:1em 0}"""


def render_html(docs: list[tuple[str, dict]]) -> str:
    """A self-contained page: no external file, script or style."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>pocketbert benchmark report</title>",
             f"<style>{CSS}</style></head><body><h1>pocketbert benchmark report</h1>"]
    for src, doc in docs:
        b = doc.get("bundle", {})
        parts.append(f"<h2>{html.escape(b.get('model_name', src))} <span class='small'>({html.escape(src)})</span></h2>")
        card = verdict(doc)
        if card:
            parts.append(f"<div class='verdict'><h3>Verdict</h3><p><b>{html.escape(card['sentence'])}</b></p>"
                         + _html_table(*verdict_table(card)) + "</div>")
        parts.append(f"<p class='warn'><b>Measured on:</b> {html.escape(_where(doc))}</p>")
        c = doc["config"]
        parts.append(f"<p class='small'>threads {c['threads']}, seq_lens {c['seq_lens']}, {c['runs']} timed runs after "
                     f"{c['warmup']} warm-up, batch {c.get('batch_size', 1)}"
                     + (f", {c['rounds']} interleaved rounds (speedups are medians of per-round ratios; 'CPU-time x' compares "
                        "process CPU time per inference, which other processes on a shared machine do not inflate)"
                        if c.get("rounds") else "")
                     + ("" if doc.get("complete", True) else " - <b>incomplete run</b>: rows measured before it stopped")
                     + f". Created {html.escape(doc.get('created_utc', '-'))}.</p>")
        pk = doc.get("peak") or {}
        if pk.get("fp32_gflops"):
            per = ", ".join(f"{t} thr: {_fmt(v.get('fp32_gflops'), 0)} GFLOP/s fp32, {_fmt(v.get('int8_gops'), 0)} GOP/s int8"
                            for t, v in pk.get("per_thread", {}).items())
            parts.append(f"<p><b>Host peak</b> (measured in this run, {html.escape(pk.get('method', ''))}): {html.escape(per)}. "
                         "% of host peak = time the row's GEMM work takes at that peak / measured p50.</p>")
        parts.append("<h3>Results</h3>" + _html_table(*table_rows(doc)))
        text, head, lines = real_length_table(doc)
        if lines:
            parts.append(f"<h3>Latency at real lengths</h3><p class='small'>{html.escape(text)}</p>" + _html_table(head, lines))
        head, lines = gate_rows(doc)
        if lines:
            parts.append(f"<h3>Geometry gate</h3><p class='small'>{html.escape(GATE_NOTE)}</p>" + _html_table(head, lines))
        for title, png in plots(doc):
            parts.append(f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' "
                         f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
        prof = [r for r in doc["rows"] if r.get("ops_top") or r.get("ops_profile_note")]
        if prof:
            parts.append("<h3>Per-operator profile (top operators by time)</h3>")
            for r in prof:
                ops = ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in r.get("ops_top", [])[:6]) or "-"
                parts.append(f"<p class='small'><b>{html.escape(r['name'])}</b> seq {r['seq_len']}: {html.escape(ops)}"
                             f" <i>({html.escape(r.get('ops_profile_note', ''))})</i></p>")
        head, lines = estimate_table(doc)
        if lines:
            parts.append("<h3>Phones you do not have: lower-bound latency, an <u>estimate</u></h3>"
                         "<p class='small'>max(FLOPs / core peak, weight bytes / bandwidth), 1 thread; (c) compute-bound, "
                         "(m) memory-bound. Real runtimes reach a fraction of these peaks, so expect phones to be slower.</p>")
            parts.append(_html_table(head, lines))
            parts.append("<ul class='small'>" + "".join(f"<li>{html.escape(s)}</li>" for s in estimate_sources(doc)) + "</ul>")
        if doc.get("notes"):
            parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in doc["notes"]) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_table(head, lines) -> str:
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    return "\n".join(["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(map(esc, line)) + " |" for line in lines])


def render_md(docs: list[tuple[str, dict]], plot_links: dict[str, list[tuple[str, str]]] | None = None) -> str:
    out = ["# pocketbert benchmark report", ""]
    for src, doc in docs:
        out += [f"## {doc.get('bundle', {}).get('model_name', src)} ({src})", ""]
        card = verdict(doc)
        if card:
            out += ["### Verdict", "", f"**{card['sentence']}**", "", _md_table(*verdict_table(card)), ""]
        out += [f"> Measured on: {_where(doc)}", ""]
        c = doc["config"]
        out += [f"threads {c['threads']}, seq_lens {c['seq_lens']}, {c['runs']} runs after {c['warmup']} warm-up.", ""]
        out += [_md_table(*table_rows(doc)), ""]
        text, head, lines = real_length_table(doc)
        if lines:
            out += ["### Latency at real lengths", "", text, "", _md_table(head, lines), ""]
        head, lines = gate_rows(doc)
        if lines:
            out += ["### Geometry gate", "", GATE_NOTE + ".", "", _md_table(head, lines), ""]
        for title, path in (plot_links or {}).get(src, []):
            out += [f"![{title}]({path})", ""]
        head, lines = estimate_table(doc)
        if lines:
            out += ["### Mobile cores: lower-bound latency (estimate, 1 thread)", "", _md_table(head, lines), ""]
            out += [f"- {s}" for s in estimate_sources(doc)] + [""]
        if doc.get("notes"):
            out += ["Notes:", ""] + [f"- {n}" for n in doc["notes"]] + [""]
    return "\n".join(out)


def write_report(results: list, out, fmt: str = "html") -> dict:
    """Render results files into `out` (HTML with embedded plots, or Markdown with PNGs beside it).

    Every results file is read and checked before anything is written; `out` appears in one rename.
    """
    from pathlib import Path

    from .schema import read_results

    out = Path(out)
    if out.is_dir():
        raise PocketBertError(f"--out {out} is a folder; give a file name such as report.{fmt}")
    docs = [(str(p), read_results(p)) for p in results]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    written = [str(out)]
    if fmt == "html":
        tmp.write_text(render_html(docs), encoding="utf-8")
    else:
        plot_dir = out.with_name(f"{out.stem}_plots")
        links = {}
        for i, (src, doc) in enumerate(docs):
            for j, (title, png) in enumerate(plots(doc)):
                plot_dir.mkdir(exist_ok=True)
                f = plot_dir / f"{i}_{j}_{title.lower().replace(' ', '_')}.png"
                f.write_bytes(png)
                links.setdefault(src, []).append((title, f"{plot_dir.name}/{f.name}"))
                written.append(str(f))
        tmp.write_text(render_md(docs, links), encoding="utf-8")
    tmp.replace(out)
    return {"out": str(out), "files": written, "rows": sum(len(d["rows"]) for _, d in docs), "results": len(docs)}
