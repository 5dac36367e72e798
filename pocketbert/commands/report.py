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
    from pocketbert.runtime_bench.report import write_report

    r = write_report(args.results, args.out, args.format)
    return {k: r[k] for k in ("out", "files", "rows")}, f"wrote {r['out']} ({r['rows']} rows from {r['results']} results file(s))"
