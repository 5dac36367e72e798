HELP = "one command from teacher to a verified, benchmarked mobile bundle and its report"
DESCRIPTION = """Run the whole chain into one folder, each stage a pocketbert command whose output records how it
was made: distil -> trim vocabulary -> export (+ verify) -> evaluate per artifact -> benchmark beside the
teacher -> report. Re-running skips stages whose inputs did not change (content hashes, build.json);
--from STAGE forces that stage and the later ones; an interrupted build resumes (training continues from
its last saved step).

  pocketbert build --out build/default                      # the embedded default recipe
  pocketbert build build-sts train.max_minutes=20 --out build/sts
  pocketbert build my-build.yaml --out build/mine --from export

Recipes: pocketbert/recipes/*.yaml (or your own YAML); override any key with key=value, e.g.
distill.train.max_minutes=5 or export.formats=[onnx,tflite].
"""

STAGES = ("distill", "trim", "export", "eval", "bench", "report")


def add_arguments(p) -> None:
    p.add_argument("recipe", nargs="?", default="build-default",
                   help="build recipe YAML, or a shipped one (pocketbert/recipes/*.yaml); default: build-default")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. distill.train.max_minutes=5")
    p.add_argument("--out", required=True, help="build folder (created; re-running continues it)")
    p.add_argument("--from", dest="from_stage", choices=STAGES, default=None,
                   help="re-run from this stage on, whatever the records say")


def _recipe_classes():
    """The typed build recipe: a distillation recipe plus export, evaluation and benchmark sections."""
    from dataclasses import dataclass, field

    from pocketbert.errors import PocketBertError
    from pocketbert.pipeline.recipe import DistillRecipe

    @dataclass
    class ExportSection:
        formats: list[str] = field(default_factory=lambda: ["executorch", "tflite", "coreml", "onnx"])
        quant: list[str] = field(default_factory=lambda: ["fp32", "int8"])
        seq_len: list[int] = field(default_factory=lambda: [128])  # static buckets, e.g. [32, 128]

    @dataclass
    class EvalSection:
        sts: str | None = None  # STS-B TSV scored through every artifact (None: no quality row)

    @dataclass
    class BenchSection:
        threads: list[int] = field(default_factory=lambda: [1])
        seq_len: list[int] = field(default_factory=lambda: [128])
        runs: int = 50
        warmup: int = 10
        baseline: str | None = "teacher"  # teacher (PyTorch eager fp32, ONNX Runtime fp32/int8) | null
        enabled: bool = True

    @dataclass
    class BuildRecipe:
        """`pocketbert build`: the distillation recipe (its `teacher`, `student`, `data`, `train`, ...) and the
        stages after it. `trim_vocab` lists corpus files for vocabulary trimming after distillation ([] = keep)."""

        distill: DistillRecipe = field(default_factory=DistillRecipe)
        trim_vocab: list[str] = field(default_factory=list)
        export: ExportSection = field(default_factory=ExportSection)
        eval: EvalSection = field(default_factory=EvalSection)
        bench: BenchSection = field(default_factory=BenchSection)

        def check(self) -> None:
            self.distill.check()
            if not self.export.formats or not self.export.quant or not self.export.seq_len:
                raise PocketBertError("export.formats, export.quant and export.seq_len must not be empty")
            for s in self.bench.seq_len:
                if s not in self.export.seq_len:
                    raise PocketBertError(
                        f"bench.seq_len {s} is not an exported bucket; export.seq_len is {self.export.seq_len}")

    return BuildRecipe


def _resolve_build_recipe(name: str):
    from importlib import resources
    from pathlib import Path

    from pocketbert.errors import PocketBertError

    path = Path(name)
    if path.is_file():
        return path
    folder = resources.files("pocketbert") / "recipes"
    shipped = sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml"))
    for p in shipped:
        if p.stem == name or p.name == name:
            return p
    raise PocketBertError(
        f"build recipe {name} does not exist; pass a YAML file or a shipped one ({', '.join(p.stem for p in shipped)})")


def _preflight(recipe) -> None:
    """Everything a stage will read must exist before any training starts."""
    from pathlib import Path

    from pocketbert.errors import PocketBertError
    from pocketbert.pipeline.checkpoint import resolve_teacher

    resolve_teacher(recipe.distill.teacher)  # missing teacher: one-line error now, not after minutes
    for item in recipe.distill.data.train:
        if item != "default" and not any(ch in item for ch in "*?[") and not Path(item).exists():
            raise PocketBertError(f"distill.data.train: corpus {item} does not exist; fix the recipe or pass data.train=...")
    for item in recipe.trim_vocab:
        if not Path(item).is_file():
            raise PocketBertError(f"trim_vocab: corpus {item} does not exist; fix the recipe")
    if recipe.eval.sts and not Path(recipe.eval.sts).is_file():
        raise PocketBertError(f"eval.sts: {recipe.eval.sts} does not exist; fix the recipe or set eval.sts=null")
    if recipe.distill.eval.sts and not Path(recipe.distill.eval.sts).is_file():
        raise PocketBertError(f"distill.eval.sts: {recipe.distill.eval.sts} does not exist; fix the recipe")


def run(args):
    import dataclasses
    import json
    from pathlib import Path

    import yaml

    from pocketbert.cli import run_command
    from pocketbert.pipeline.recipe import load_recipe
    from pocketbert.stages import Stage, run_stages

    build_recipe_cls = _recipe_classes()
    recipe = load_recipe(build_recipe_cls, str(_resolve_build_recipe(args.recipe)), args.overrides)
    _preflight(recipe)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    # The distillation stage reads a recipe file written here (its content is part of the stage key).
    distill = dataclasses.asdict(recipe.distill)
    distill["out"] = str(out / "distilled")
    distill["train"]["work_dir"] = str(out / "distilled.work")
    (out / "recipes").mkdir(exist_ok=True)
    distill_yaml = out / "recipes" / "distill.yaml"
    text = "# written by pocketbert build; the stage runs: pocketbert distill " + str(distill_yaml) + "\n"
    text += yaml.safe_dump(distill, sort_keys=False)
    if not distill_yaml.is_file() or distill_yaml.read_text() != text:
        distill_yaml.write_text(text)
    (out / "recipes" / "build.yaml").write_text(yaml.safe_dump(dataclasses.asdict(recipe), sort_keys=False))

    corpus = [str(Path(p).resolve()) for p in distill["data"]["train"] if p != "default" and Path(p).exists()]
    teacher_inputs = [] if recipe.distill.teacher == "minilm" else [str(Path(recipe.distill.teacher).resolve())]
    stages = [Stage(
        "distill", ["distill", str(distill_yaml)], "distilled",
        inputs=[str(distill_yaml), *teacher_inputs, *corpus],
        resume_argv=["--resume"], resumable=lambda o: (o / "distilled.work").is_dir(),
    )]
    checkpoint = "distilled"
    if recipe.trim_vocab:
        trim = [str(Path(p).resolve()) for p in recipe.trim_vocab]
        stages.append(Stage("trim", ["student", "--teacher", str(out / "distilled"), "--layers", "all",
                                     "--trim-vocab", *trim, "--out", str(out / "student")], "student", inputs=trim))
        checkpoint = "student"
    stages.append(Stage("export", [
        "export", str(out / checkpoint), "--out", str(out / "bundle"),
        "--formats", ",".join(recipe.export.formats), "--quant", ",".join(recipe.export.quant),
        "--seq-len", ",".join(map(str, recipe.export.seq_len))], "bundle"))
    if recipe.eval.sts:
        sts = str(Path(recipe.eval.sts).resolve())
        stages.append(Stage("eval", ["eval", str(out / "bundle"), "--sts", sts], "eval.json", inputs=[sts]))
    if recipe.bench.enabled:
        bench = ["bench", str(out / "bundle"), "--threads", ",".join(map(str, recipe.bench.threads)),
                 "--seq-len", ",".join(map(str, recipe.bench.seq_len)), "--runs", str(recipe.bench.runs),
                 "--warmup", str(recipe.bench.warmup), "--out", str(out / "results.json")]
        if recipe.bench.baseline:
            bench += ["--baseline", recipe.bench.baseline]
        stages.append(Stage("bench", bench, "results.json"))
        stages.append(Stage("report", ["report", str(out / "results.json"), "--out", str(out / "report.html")],
                            "report.html"))

    def run_stage(argv: list[str]) -> dict:
        result = run_command(argv)
        if argv[0] == "eval":  # eval prints; its table is this stage's output file
            (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
        if argv[0] == "report":
            run_command(["report", str(out / "results.json"), "--format", "md", "--out", str(out / "report.md")])
        return result

    state = run_stages(stages, out, run_stage, force_from=args.from_stage)
    summary = {"out": str(out), "stages": {k: {"seconds": v.get("seconds"), "status": v.get("status")}
                                           for k, v in state["stages"].items()}}
    lines = [f"build {out}:"] + [f"  {k:<8} {v['status']:<5} {v['seconds'] or 0:7.0f} s"
                                 for k, v in summary["stages"].items()]
    if (out / "report.md").is_file():
        lines.append(f"report: {out / 'report.html'} (and report.md)")
    return summary, "\n".join(lines)
