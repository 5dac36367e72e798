HELP = "render benchmark results as a self-contained HTML page (tables + plots) or Markdown"
DESCRIPTION = """Render one or more results files of `pocketbert bench` (host or phone) as a page people can read
on its own: where the numbers come from, the tables, latency-vs-size, quality-vs-latency (where a quality number
is known) and thread-scaling plots (PNG, embedded), per-operator profiles and the mobile-core estimates.

  pocketbert report results.json phone.json --out report.html
  pocketbert report results.json --format md --out BENCHMARKS.md      # plots go to BENCHMARKS_plots/
"""


def add_arguments(p) -> None:
    p.add_argument("results", nargs="+", help="results JSON files written by `pocketbert bench`")
    p.add_argument("--format", choices=["html", "md"], default="html", help="html (default) or md")
    p.add_argument("--out", required=True, help="output file (report.html or report.md)")


def run(args):
    from pathlib import Path

    from pocketbert.errors import PocketBertError
    from pocketbert.runtime_bench.report import plots, render_html, render_md
    from pocketbert.runtime_bench.schema import read_results

    out = Path(args.out)
    if out.is_dir():
        raise PocketBertError(f"--out {out} is a folder; give a file name such as report.{args.format}")
    docs = [(p, read_results(p)) for p in args.results]  # all checked before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    written = [str(out)]
    if args.format == "html":
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
    rows = sum(len(d["rows"]) for _, d in docs)
    return {"out": str(out), "files": written, "rows": rows}, f"wrote {out} ({rows} rows from {len(docs)} results file(s))"
