"""`pocketbert build`: the typed recipe and the chain of stages from teacher to report.

Recipes orchestrate; the stages are library calls with typed configs (pipeline: finetune | distill |
pretrain, then a vocabulary trim; export with verify; eval; bench beside the teacher the recipe names;
report). Nothing is passed as command-line text. The resolved recipe of every stage is written under
`<out>/recipes/` (the terminal gets one line per stage), and `pocketbert.stages` skips unchanged stages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pocketbert import console
from pocketbert.bundle.manifest import Manifest
from pocketbert.console import say
from pocketbert.errors import PocketBertError
from pocketbert.export.bundle import DEFAULT_FORMATS, DEFAULT_QUANTS, DEFAULT_SEQ_LENS, ExportConfig
from pocketbert.pipeline.recipe import (
    DistillRecipe,
    FinetuneRecipe,
    PretrainRecipe,
    TeacherConfig,
    load_recipe,
)
from pocketbert.pipeline.static_student import StaticRecipe
from pocketbert.runtime_bench.bench import BenchOptions
from pocketbert.stages import Stage, run_stages

STAGES = ("finetune", "distill", "pretrain", "static", "trim", "export", "eval", "bench", "report")


@dataclass
class ExportSection:
    """The export stage's keys; each default is ExportConfig's (`pocketbert export`'s)."""

    formats: list[str] = field(default_factory=lambda: list(DEFAULT_FORMATS))
    quant: list[str] = field(default_factory=lambda: list(DEFAULT_QUANTS))  # or [auto]: the smallest rung that passes
    seq_len: list[int] = field(default_factory=lambda: list(DEFAULT_SEQ_LENS))  # static buckets, e.g. [32, 128]
    # The geometry gate (export/gate.py) of each format x quant of an embedding model: on sentences of the
    # recipe's own corpus (trim_vocab, else the training data) and on eval.sts when set.
    gate: bool = ExportConfig.gate
    gate_sample: int = ExportConfig.gate_sample  # corpus sentences for the top-10 overlap and cosines (the STS file
    #   is scored whole)
    max_sts_drop: float = ExportConfig.max_sts_drop  # STS points below PyTorch fp32 a rung may lose and pass
    max_mb: float | None = ExportConfig.max_mb  # int4-mixed under a size budget: the most at int8 that fits


@dataclass
class EvalSection:
    sts: str | None = None  # STS-B TSV scored through every artifact (None: no STS row)
    suite: str | None = None  # `dev`: the dev suite (four tasks and their mean, pipeline/suite.py) through every
    #   artifact and for the PyTorch student, the teacher and each peer; the verdict decides on its mean
    refs: list[str] = field(default_factory=list)  # more models scored beside the bundle, not benchmarked (e.g.
    #   [mpnet, potion-base-2m]): names (`pocketbert eval`'s) or checkpoint folders, in eval_refs/ after the bench's
    probe: list[str] = field(default_factory=list)  # [train TSV, dev TSV] (sentence, label): a logistic regression on
    #   the frozen embeddings of the PyTorch student and of each reference ([] = none); see pipeline/evaluate.py


@dataclass
class BenchSection:
    """The bench stage's keys; runs and warmup default to BenchOptions' (`pocketbert bench`'s)."""

    threads: list[int] = field(default_factory=lambda: [1])  # the build measures 1 thread (`bench`: 1 and 2)
    seq_len: list[int] = field(default_factory=lambda: list(DEFAULT_SEQ_LENS))
    runs: int = BenchOptions.runs
    warmup: int = BenchOptions.warmup
    # teacher | peers | teacher,peers | null: the teacher the recipe names and/or pocketbert's named peers,
    # each as users run it (PyTorch eager fp32, ONNX Runtime fp32 and int8), interleaved with the artifacts
    baseline: str | None = "teacher"
    peers: list[str] = field(default_factory=list)  # more peers: folders, named peers, .onnx encoders
    enabled: bool = True

    def references(self) -> tuple[bool, list[str]]:
        """(measure the teacher?, peer names) from `baseline` and `peers`."""
        wanted = set((self.baseline or "").split(","))
        return "teacher" in wanted, (["default"] if "peers" in wanted else []) + self.peers


@dataclass
class BuildRecipe:
    """`pocketbert build`: how the model is made (`distill`, or `pretrain` from scratch, or `static`: a
    model2vec table; `finetune` first makes a classification teacher that `distill` then uses), and the
    stages after it. `trim_vocab` lists the corpus for vocabulary trimming after training: files and/or
    `wordfreq:LANG:N` (the N most frequent words of a language); [] = keep the vocabulary. `table_int4` stores
    the trained word table on the int4 export grid in that same stage (pipeline/student.py, snap_table_int4)."""

    finetune: FinetuneRecipe | None = None
    distill: DistillRecipe | None = None
    pretrain: PretrainRecipe | None = None
    static: StaticRecipe | None = None
    trim_vocab: list[str] = field(default_factory=list)
    table_int4: bool = False
    export: ExportSection = field(default_factory=ExportSection)
    eval: EvalSection = field(default_factory=EvalSection)
    bench: BenchSection = field(default_factory=BenchSection)

    def check(self) -> None:
        if sum(s is not None for s in (self.distill, self.pretrain, self.static)) != 1:
            raise PocketBertError("a build recipe needs exactly one of `distill`, `pretrain` or `static`")
        if self.finetune is not None and self.distill is None:
            raise PocketBertError("`finetune` makes a teacher for `distill`; add a `distill` section")
        if self.static is not None and self.table_int4:
            raise PocketBertError("table_int4 is for transformer students; the static tier quantizes its table at export")
        if self.static is not None and self.trim_vocab:
            raise PocketBertError("a `static` build chooses its vocabulary itself: use static.vocab.source=corpus, "
                                  "not trim_vocab")
        for section in (self.finetune, self.distill, self.pretrain, self.static):
            if section is not None:
                section.check()
        if not self.export.formats or not self.export.quant or not self.export.seq_len:
            raise PocketBertError("export.formats, export.quant and export.seq_len must not be empty")
        if self.bench.baseline not in (None, "teacher", "peers", "teacher,peers"):
            raise PocketBertError(f"bench.baseline {self.bench.baseline!r}: use teacher, peers, teacher,peers or null")
        for s in self.bench.seq_len:
            if s not in self.export.seq_len:
                raise PocketBertError(
                    f"bench.seq_len {s} is not an exported bucket; export.seq_len is {self.export.seq_len}")


def references(teacher: str | None, peers: list[str], tokenizer: str | None = None) -> tuple:
    """(teacher, [peers]) as runtime_bench References: resolved checkpoint folders and their encoder configs.

    `teacher` and each peer are anything a checkpoint argument takes (`minilm`, a folder, a named peer such
    as `paraphrase-minilm-l3`, an `.onnx` encoder with `tokenizer`); `peers` may hold `default` for the named
    peers pocketbert knows (pipeline/peers.py). A static peer (`potion-base-2m`, a model2vec folder) is measured
    as model2vec runs it (numpy), one row.
    """
    from pocketbert.pipeline.models.static import StaticConfig
    from pocketbert.pipeline.names import read_config, resolve
    from pocketbert.pipeline.peers import NAMED_PEERS, expand_peers
    from pocketbert.pipeline.static import NAMED_STATIC, StaticModel, is_static
    from pocketbert.runtime_bench.baselines import Reference

    ref = None
    if teacher is not None:
        path = resolve(teacher)
        ref = Reference(path, read_config(path).to_dict())
    out = []
    for name in expand_peers(peers):
        if is_static(name):  # measured as model2vec runs it (numpy gather + mean)
            model = StaticModel.load(name)
            config = StaticConfig(vocab_size=int(model.embeddings.shape[0]), hidden_size=model.dim).to_dict()
            out.append(Reference.peer(str(name) if str(name) in NAMED_STATIC else Path(name).name, model.path,
                                      config, static=True))
            continue
        path = resolve(name, tokenizer)
        label = str(name) if name in NAMED_PEERS else (Path(name).stem if Path(name).is_file() else Path(name).name)
        out.append(Reference.peer(label, path, read_config(path).to_dict()))
    return ref, out


def load_build_recipe(name: str, overrides: list[str] | None = None) -> BuildRecipe:
    """A build recipe YAML file, or a shipped one (pocketbert/recipes/*.yaml), with dotted overrides."""
    return load_recipe(BuildRecipe, name, overrides, package="pocketbert")


def preflight(recipe: BuildRecipe) -> None:
    """Everything a stage will read must exist before any training starts."""
    from pocketbert.pipeline.names import exists, known_names, resolve
    from pocketbert.pipeline.student import WordFreqSource, is_wordfreq_spec
    from pocketbert.pipeline.suite import load_suite

    if recipe.finetune is not None:
        resolve(recipe.finetune.model)
    elif recipe.distill is not None:
        for i, t in enumerate(recipe.distill.teachers):  # a missing teacher: one line now, not after minutes
            try:
                resolve(t.path, t.tokenizer)
            except PocketBertError as e:
                raise PocketBertError(f"distill.teachers[{i}]: {e}") from None
    elif recipe.static is not None:
        for t in [*recipe.static.teachers, *recipe.static.target_list()]:
            resolve(t)
        for item in recipe.static.data.train:
            if item != "default" and not any(ch in item for ch in "*?[") and not Path(item).exists():
                raise PocketBertError(f"static.data.train: corpus {item} does not exist; fix the recipe")
    for name in ("finetune", "distill", "pretrain"):
        section = getattr(recipe, name)
        if section is None:
            continue
        for item in section.data.train:
            if item != "default" and not any(ch in item for ch in "*?[") and not Path(item).exists():
                raise PocketBertError(f"{name}.data.train: corpus {item} does not exist; fix the recipe")
        for item in section.data.pairs:
            if not Path(item).is_file():
                raise PocketBertError(f"{name}.data.pairs: {item} does not exist; fix the recipe")
        for key in ("sts", "classification"):
            value = getattr(section.eval, key)
            if value and not Path(value).is_file():
                raise PocketBertError(f"{name}.eval.{key}: {value} does not exist; fix the recipe")
    for item in recipe.trim_vocab:
        if is_wordfreq_spec(item):
            WordFreqSource.parse(item).words()  # a malformed spec, unknown language or too large N: now
        elif not Path(item).is_file():
            raise PocketBertError(f"trim_vocab: corpus {item} does not exist; fix the recipe")
    if recipe.eval.sts and not Path(recipe.eval.sts).is_file():
        raise PocketBertError(f"eval.sts: {recipe.eval.sts} does not exist; fix the recipe or set eval.sts=null")
    if recipe.eval.probe and (len(recipe.eval.probe) != 2 or not recipe.eval.sts):
        raise PocketBertError("eval.probe takes [train TSV, dev TSV] and needs eval.sts; fix the recipe or set eval.probe=[]")
    for item in recipe.eval.probe:
        if not Path(item).is_file():
            raise PocketBertError(f"eval.probe: {item} does not exist; fix the recipe or set eval.probe=[]")
    for item in recipe.eval.refs:
        if not exists(item):
            raise PocketBertError(f"eval.refs: {item!r} is neither a known model ({', '.join(known_names())}) nor "
                                  "an existing path; fix the recipe or set eval.refs=[]")
    if recipe.eval.refs and not (recipe.eval.sts or recipe.eval.suite):
        raise PocketBertError("eval.refs needs eval.sts or eval.suite to score them on; fix the recipe")
    if recipe.eval.suite is not None:
        try:
            load_suite(recipe.eval.suite)  # every suite file read and checked now
        except PocketBertError as e:
            raise PocketBertError(f"eval.suite: {e}") from None


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _key(cfg, leave_out: tuple[str, ...] = ()) -> dict:
    """A typed stage config as plain data for its key; `command` (provenance) and `leave_out` are not part of it."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k != "command" and k not in leave_out}


def gate_corpus(recipe: BuildRecipe) -> list[str]:
    """The text sources the export gate samples: the vocabulary-trimming corpus files, else the training data.
    A `wordfreq:LANG:N` item is a word list, not sentences: the gate does not sample it."""
    from pocketbert.pipeline.student import is_wordfreq_spec

    files = [str(Path(p).resolve()) for p in recipe.trim_vocab if not is_wordfreq_spec(p)]
    if files:
        return files
    section = recipe.distill or recipe.pretrain or recipe.static
    return [p if p == "default" or not Path(p).exists() else str(Path(p).resolve()) for p in section.data.train]


def _training_stage(name: str, section, out: Path, output: str, main, command: str,
                    teachers: list | None = None) -> Stage:
    """A finetune / distill / pretrain stage: the section's recipe with the build's folders filled in."""
    work = out / f"{output}.work"
    cfg = dataclasses.replace(section, out=str(out / output),
                              train=dataclasses.replace(section.train, work_dir=str(work)))
    if teachers is not None:
        cfg = dataclasses.replace(cfg, teachers=teachers)
    data = dataclasses.asdict(cfg)
    path = out / "recipes" / f"{name}.yaml"  # the resolved recipe: `pocketbert {name} {path}` re-runs it by hand
    _write_if_changed(path, f"# written by pocketbert build; the stage runs: pocketbert {name} {path}\n"
                      + yaml.safe_dump(data, sort_keys=False))
    corpus = [str(Path(p).resolve()) for p in data["data"]["train"] if p != "default" and Path(p).exists()]
    # distill teachers / finetune base (pretrain has none): local folders are inputs of the stage
    sources = [t["path"] for t in data.get("teachers", [])] + ([data["model"]] if isinstance(data.get("model"), str) else [])
    outside = [str(Path(p).resolve()) for p in sources if Path(p).is_dir()]
    return Stage(name, data, lambda resume: main(cfg, resume=resume, command=f"{command} [stage {name}]"), output,
                 inputs=[*outside, *corpus],
                 resumable=lambda o: work.is_dir(), describe=f"pocketbert {name} {path}")


def _static_stage(section: StaticRecipe, out: Path, main, command: str) -> Stage:
    """The static student stage: the section with the build's folder filled in."""
    cfg = dataclasses.replace(section, out=str(out / "static"), command=f"{command} [stage static]")
    data = _key(cfg)
    path = out / "recipes" / "static.yaml"
    _write_if_changed(path, "# written by pocketbert build: the resolved `static:` section of the build recipe\n"
                      + yaml.safe_dump(data, sort_keys=False))
    corpus = [str(Path(p).resolve()) for p in cfg.data.train if p != "default" and Path(p).exists()]
    sts = [str(Path(cfg.sts).resolve())] if cfg.sts else []
    return Stage("static", data, lambda resume: main(cfg), "static", inputs=[*corpus, *sts],
                 describe=f"static student: model2vec from {', '.join(cfg.teachers)}, dim {cfg.dim}, "
                 f"vocabulary {cfg.vocab.source}, {cfg.train.epochs:g} epoch(s) against {', '.join(cfg.target_list())}")


def _bench_teacher(recipe: BuildRecipe, out: Path) -> str | None:
    """The model the recipe names as the student's teacher: a fine-tuned teacher built here, else the
    distillation's teacher. A pretrained-from-scratch model has none."""
    if recipe.finetune is not None:
        return str(out / "teacher")
    if recipe.static is not None:
        return recipe.static.teachers[0]
    return recipe.distill.teachers[0].path if recipe.distill is not None else None


def plan(recipe: BuildRecipe, out: Path, command: str = "pocketbert build") -> list[Stage]:
    """The build's stages, each with its typed config, in order. `command` is recorded in every output's
    provenance, with the stage's name."""
    from pocketbert.export.bundle import AUTO, ExportConfig
    from pocketbert.export.bundle import main as export_main
    from pocketbert.export.quant import NEEDS_CORPUS
    from pocketbert.files import dist_versions
    from pocketbert.pipeline import distill, finetune, pretrain, static_student
    from pocketbert.pipeline.data import read_texts
    from pocketbert.pipeline.peers import expand_peers
    from pocketbert.pipeline.student import StudentConfig, is_wordfreq_spec
    from pocketbert.pipeline.student import main as student_main
    from pocketbert.pipeline.suite import load_suite

    # The export and bench configs first: a bad value of their sections fails before anything is written.
    checkpoint = ("student" if recipe.trim_vocab or recipe.table_int4 else "distilled" if recipe.distill is not None
                  else "static" if recipe.static is not None else "pretrained")  # what export reads
    e = recipe.export
    # corpus text for the gate, for auto, and for the rungs that calibrate or probe on it (int8-static, int4-mixed)
    sources = gate_corpus(recipe) if e.gate or AUTO in e.quant or set(NEEDS_CORPUS) & set(e.quant) else []
    corpus = read_texts(sources).texts if sources else None
    sts = str(Path(recipe.eval.sts).resolve()) if recipe.eval.sts and (e.gate or AUTO in e.quant) else None
    with _section("export"):
        export = ExportConfig(checkpoint=str(out / checkpoint), out=str(out / "bundle"), formats=e.formats,
                              quants=e.quant, seq_lens=e.seq_len, corpus=corpus, sts=sts, gate=e.gate,
                              gate_sample=e.gate_sample, max_sts_drop=e.max_sts_drop, max_mb=e.max_mb,
                              command=f"{command} [stage export]")
    # The models the bench compares with: the teacher the recipe names and the peers it asks for.
    with_teacher, peers = recipe.bench.references() if recipe.bench.enabled else (False, [])
    teacher = _bench_teacher(recipe, out) if with_teacher else None
    benched = list(dict.fromkeys(([teacher] if teacher else []) + expand_peers(peers)))  # evaluated beside the bundle
    refs = list(dict.fromkeys(benched + recipe.eval.refs))  # and the models only scored (eval.refs), last
    if recipe.bench.enabled:
        quality = ([str(out / "eval.json"), *(str(out / "eval_refs" / f"{i}.json") for i in range(len(benched)))]
                   if recipe.eval.sts or recipe.eval.suite else [])
        with _section("bench"):
            bench = _bench_stage(recipe.bench, out, teacher, peers, quality, command)

    (out / "recipes").mkdir(parents=True, exist_ok=True)  # each training stage's resolved recipe
    stages = []
    if recipe.finetune is not None:
        stages.append(_training_stage("finetune", recipe.finetune, out, "teacher", finetune.main, command))
    if recipe.distill is not None:
        teachers = [TeacherConfig(path=str(out / "teacher"))] if recipe.finetune is not None else None
        stages.append(_training_stage("distill", recipe.distill, out, "distilled", distill.main, command,
                                      teachers=teachers))
    elif recipe.static is not None:
        stages.append(_static_stage(recipe.static, out, static_student.main, command))
    else:
        stages.append(_training_stage("pretrain", recipe.pretrain, out, "pretrained", pretrain.main, command))
    if checkpoint == "student":
        source = "distilled" if recipe.distill is not None else "static" if recipe.static is not None else "pretrained"
        trim = StudentConfig(teacher=str(out / source), layers="all", out=str(out / "student"),
                             trim_vocab=[p if is_wordfreq_spec(p) else str(Path(p).resolve())
                                         for p in recipe.trim_vocab],
                             table_int4=recipe.table_int4, command=f"{command} [stage trim]")
        key = _key(trim)
        if any(is_wordfreq_spec(p) for p in trim.trim_vocab):  # another wordfreq release may rank words anew
            key["wordfreq_version"] = dist_versions("wordfreq")["wordfreq"]
        stages.append(Stage("trim", key, lambda resume: student_main(trim), "student",
                            inputs=[p for p in trim.trim_vocab if not is_wordfreq_spec(p)],
                            describe="pocketbert student --layers all"
                                     + (f" --trim-vocab {' '.join(trim.trim_vocab)}" if trim.trim_vocab else "")
                                     + (" --table-int4" if trim.table_int4 else "")))
    # the key holds the corpus files (their content is an input), not their sentences
    stages.append(Stage("export", {**_key(export, leave_out=("corpus",)), "corpus_files": sources},
                        lambda resume: _export_summary(export_main(export)), "bundle",
                        inputs=[p for p in sources if Path(p).exists()] + ([sts] if sts else []),
                        describe=f"pocketbert export {Path(export.checkpoint).name} ({len(export.formats)} formats, "
                        f"{len(export.quants)} quants, seq {','.join(map(str, export.seq_lens))}"
                        + (", gated" if e.gate else "") + ")"))  # the gate's files: the stage's corpus_files
    evaluated = recipe.eval.sts or recipe.eval.suite
    if evaluated:
        sts = str(Path(recipe.eval.sts).resolve()) if recipe.eval.sts else None
        probe = [str(Path(p).resolve()) for p in recipe.eval.probe]
        suite = load_suite(recipe.eval.suite) if recipe.eval.suite else None
        stages.append(Stage("eval", {"bundle": str(out / "bundle"), "sts": sts, "references": refs, "probe": probe,
                                     "suite": recipe.eval.suite},
                            lambda resume: _eval(out, sts, refs, Path(export.checkpoint), probe, suite), "eval.json",
                            inputs=[*([sts] if sts else []), *probe, *(suite.files if suite else [])],
                            describe="pocketbert eval bundle" + (" --sts" if sts else "")
                            + (f" --suite {suite.name}" if suite else "")
                            + (f" (and {len(refs)} reference{'s' if len(refs) > 1 else ''})" if refs else "")))
    if recipe.bench.enabled:
        stages.append(bench)
        stages.append(Stage("report", {"results": str(out / "results.json")}, lambda resume: _report(out),
                            "report.html", describe="pocketbert report results.json"))
    return stages


@contextlib.contextmanager
def _section(name: str):
    """Name the recipe section in a stage config's validation error (whose message names the command's flag)."""
    try:
        yield
    except PocketBertError as e:
        raise PocketBertError(f"recipe section `{name}`: {e}") from None


def _export_summary(manifest: Manifest) -> dict:
    out = {"artifacts": [{"file": a.file, "size_bytes": a.size_bytes, "parity": a.parity["status"]}
                         | ({"gate": a.gate["status"]} if a.gate else {}) for a in manifest.artifacts]}
    if manifest.quant_auto:
        out["quant_auto"] = {f: c["chosen"] for f, c in manifest.quant_auto["formats"].items()}
    return out


def _eval(out: Path, sts: str | None, refs: list[str], checkpoint: Path, probe: list[str], suite) -> dict:
    """STS and/or the dev suite through every artifact of the bundle (eval.json), and of each reference model in
    PyTorch fp32 (eval_refs/<n>.json), so that the report's verdict compares like with like; with a probe, its
    accuracy for the exported PyTorch checkpoint and for each reference."""
    from pocketbert.export.evaluate import evaluate_bundle
    from pocketbert.pipeline.suite import evaluate_model

    result = evaluate_bundle(out / "bundle", sts, suite=suite)
    if probe:
        student = evaluate_model(checkpoint, sts, probe=probe)
        result |= {"probe_accuracy": student["probe_accuracy"], "probe": student["probe"]}
    (out / "eval_refs").mkdir(exist_ok=True)
    for i, name in enumerate(refs):
        doc = evaluate_model(name, sts, probe=probe or None, suite=suite)
        (out / "eval_refs" / f"{i}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")  # written last: the stage's output
    return result


def _bench_stage(b: BenchSection, out: Path, teacher: str | None, peers: list[str], quality: list[str],
                 command: str) -> Stage:
    from pocketbert.pipeline.suite import dev_files

    # the latency at real lengths: the dev suite's sentences, when the shared data is here
    opts = BenchOptions(bundle=str(out / "bundle"), out=str(out / "results.json"), threads=b.threads,
                        seq_lens=b.seq_len, runs=b.runs, warmup=b.warmup, baseline="teacher" if b.references()[0] else None,
                        quality=quality, command=f"{command} [stage bench]", texts=[str(p) for p in dev_files()] or None)
    config = {**_key(opts), "teacher": teacher, "peers": peers}

    def run(resume: bool) -> dict:

        from pocketbert.runtime_bench.bench import main

        opts.teacher, opts.peers = references(teacher, peers)
        doc, text = main(opts, log=say)
        return {"rows": len(doc["rows"]), "teacher": str(opts.teacher.path) if opts.teacher else None,
                "peers": [str(p.path) for p in opts.peers]}

    return Stage("bench", config, run, "results.json", describe=f"pocketbert bench (threads "
                 f"{','.join(map(str, b.threads))}, seq {','.join(map(str, b.seq_len))}, teacher {teacher or '-'}, "
                 f"peers {','.join(peers) or '-'})")


def _report(out: Path) -> dict:
    from pocketbert.runtime_bench.report import write_report

    write_report([out / "results.json"], out / "report.md", "md")
    return {k: v for k, v in write_report([out / "results.json"], out / "report.html", "html").items()
            if k in ("out", "rows")}


def main(recipe_name: str, overrides: list[str], out: str, from_stage: str | None = None, log=print,
         command: str = "pocketbert build") -> dict:
    """Run a build into `out`; returns `{out, stages: {name: {seconds, status}}}`.

    Raises:
        PocketBertError: a bad recipe, a missing teacher or corpus (before any stage runs), or a stage's error.
    """
    recipe = load_build_recipe(recipe_name, overrides)
    preflight(recipe)
    root = Path(out).resolve()
    stages = plan(recipe, root, command)
    if console.log_path() is not None:  # said once the recipe is accepted: a refused one is one line
        say(f"build: other libraries' messages go to {console.log_path()} (-v shows them here)")
    _write_if_changed(root / "recipes" / "build.yaml", yaml.safe_dump(dataclasses.asdict(recipe), sort_keys=False))
    # the stage lines name the build folder as the user wrote it, not its absolute path: readable at 100 columns
    shown = f"{out.rstrip('/')}/" if not Path(out).is_absolute() else f"{root}/"
    state = run_stages(stages, root, force_from=from_stage, log=lambda line: log(line.replace(f"{root}/", shown)))
    return {"out": str(root), "stages": {k: {"seconds": v.get("seconds"), "status": v.get("status")}
                                         for k, v in state["stages"].items()}}
