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

STAGES = ("finetune", "distill", "pretrain", "trim", "export", "eval", "bench", "report")


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
    from pocketbert.pipeline.recipe import DistillRecipe, FinetuneRecipe, PretrainRecipe

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
        """`pocketbert build`: how the model is made (`distill`, or `pretrain` from scratch; `finetune` first
        makes a classification teacher that `distill` then uses), and the stages after it. `trim_vocab`
        lists corpus files for vocabulary trimming after training ([] = keep the vocabulary)."""

        finetune: FinetuneRecipe | None = None
        distill: DistillRecipe | None = None
        pretrain: PretrainRecipe | None = None
        trim_vocab: list[str] = field(default_factory=list)
        export: ExportSection = field(default_factory=ExportSection)
        eval: EvalSection = field(default_factory=EvalSection)
        bench: BenchSection = field(default_factory=BenchSection)

        def check(self) -> None:
            if (self.distill is None) == (self.pretrain is None):
                raise PocketBertError("a build recipe needs exactly one of `distill` or `pretrain`")
            if self.finetune is not None and self.distill is None:
                raise PocketBertError("`finetune` makes a teacher for `distill`; add a `distill` section")
            for section in (self.finetune, self.distill, self.pretrain):
                if section is not None:
                    section.check()
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

    if recipe.finetune is not None:
        resolve_teacher(recipe.finetune.model)
    elif recipe.distill is not None:
        resolve_teacher(recipe.distill.teacher)  # missing teacher: one-line error now, not after minutes
    for name in ("finetune", "distill", "pretrain"):
        section = getattr(recipe, name)
        if section is None:
            continue
        for item in section.data.train:
            if item != "default" and not any(ch in item for ch in "*?[") and not Path(item).exists():
                raise PocketBertError(f"{name}.data.train: corpus {item} does not exist; fix the recipe")
        for key in ("sts", "classification"):
            value = getattr(section.eval, key)
            if value and not Path(value).is_file():
                raise PocketBertError(f"{name}.eval.{key}: {value} does not exist; fix the recipe")
    for item in recipe.trim_vocab:
        if not Path(item).is_file():
            raise PocketBertError(f"trim_vocab: corpus {item} does not exist; fix the recipe")
    if recipe.eval.sts and not Path(recipe.eval.sts).is_file():
        raise PocketBertError(f"eval.sts: {recipe.eval.sts} does not exist; fix the recipe or set eval.sts=null")


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

    # Training stages read recipe files written here (their content is part of the stage key).
    (out / "recipes").mkdir(exist_ok=True)
    (out / "recipes" / "build.yaml").write_text(yaml.safe_dump(dataclasses.asdict(recipe), sort_keys=False))
    stages = []

    def training_stage(name: str, section, output: str, teacher: str | None = None) -> None:
        data = dataclasses.asdict(section)
        data["out"] = str(out / output)
        data["train"]["work_dir"] = str(out / f"{output}.work")
        if teacher is not None:
            data["teacher"] = teacher
        path = out / "recipes" / f"{name}.yaml"
        text = f"# written by pocketbert build; the stage runs: pocketbert {name} {path}\n"
        text += yaml.safe_dump(data, sort_keys=False)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
        corpus = [str(Path(p).resolve()) for p in data["data"]["train"] if p != "default" and Path(p).exists()]
        source = data.get("teacher") or data.get("model")  # distill teacher / finetune base; pretrain has none
        outside = [str(Path(source).resolve())] if isinstance(source, str) and Path(source).is_dir() else []
        work = out / f"{output}.work"
        stages.append(Stage(name, [name, str(path)], output, inputs=[str(path), *outside, *corpus],
                            resume_argv=["--resume"], resumable=lambda o, w=work: w.is_dir()))

    if recipe.finetune is not None:
        training_stage("finetune", recipe.finetune, "teacher")
    if recipe.distill is not None:
        teacher = str(out / "teacher") if recipe.finetune is not None else None
        training_stage("distill", recipe.distill, "distilled", teacher=teacher)
        checkpoint = "distilled"
    else:
        training_stage("pretrain", recipe.pretrain, "pretrained")
        checkpoint = "pretrained"
    if recipe.trim_vocab:
        trim = [str(Path(p).resolve()) for p in recipe.trim_vocab]
        stages.append(Stage("trim", ["student", "--teacher", str(out / checkpoint), "--layers", "all",
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
        if recipe.eval.sts:
            bench += ["--quality", str(out / "eval.json")]  # STS per artifact for the quality-vs-latency plot
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
