HELP = "one command from teacher to a verified, benchmarked mobile bundle and its report"
DESCRIPTION = """Run the whole chain into one folder, each stage a pocketbert command whose output records how it
was made: distil -> trim vocabulary -> export (+ verify) -> evaluate per artifact -> benchmark beside the
teacher -> report. Re-running skips stages whose inputs did not change (content hashes, build.json);
--from STAGE forces that stage and the later ones; an interrupted build resumes (training continues from
its last saved step).

  pocketbert build --out build/default                      # the embedded default recipe
  pocketbert build build-sts distill.train.max_steps=500 --out build/sts
  pocketbert build my-build.yaml --out build/mine --from export

Recipes: pocketbert/recipes/*.yaml (or your own YAML); override any key with key=value, e.g.
distill.train.max_steps=200 or export.formats=[onnx,tflite].
"""

def add_arguments(p) -> None:
    from pocketbert.build import STAGES

    p.add_argument("recipe", nargs="?", default="build-default",
                   help="build recipe YAML, or a shipped one (pocketbert/recipes/*.yaml); default: build-default")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. distill.train.max_steps=200")
    p.add_argument("--out", required=True, help="build folder (created; re-running continues it)")
    p.add_argument("--from", dest="from_stage", choices=STAGES, default=None,
                   help="re-run from this stage on, whatever the records say")


def log_file(args):
    """Other libraries' output goes to the build folder's log (pocketbert/console.py); -v keeps it on the terminal."""
    from pathlib import Path

    return Path(args.out) / "build.log"


def run(args):
    from pathlib import Path

    from pocketbert.build import main
    from pocketbert.console import step

    recipe, overrides = args.recipe, list(args.overrides)
    if "=" in recipe and not Path(recipe).exists():  # `pocketbert build key=value ...`: overrides of the default
        recipe, overrides = "build-default", [recipe, *overrides]
    summary = main(recipe, overrides, args.out, from_stage=args.from_stage, command=args.command_line, log=step)
    out = summary["out"]
    lines = [f"build {out}:"] + [f"  {k:<8} {v['status']:<5} {v['seconds'] or 0:7.0f} s"
                                 for k, v in summary["stages"].items()]
    if (Path(out) / "report.md").is_file():
        lines.append(f"report: {out}/report.html (and report.md)")
    return summary, "\n".join(lines)
