"""Typed recipes: YAML files validated into dataclasses, with dotted `key=value` overrides.

    pocketbert distill pipeline/recipes/distill-minilm-sts.yaml train.max_minutes=5 student.layers=0,5

Every key is checked at load time: an unknown key is an error naming it and the nearest valid key
(difflib), a value of the wrong type is an error naming the key, the expected type and the value.
Field comments are the documentation of each key (`pocketbert distill --help` points here).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pocketbert.errors import PocketBertError
from pocketbert.pipeline.objectives import OBJECTIVES
from pocketbert.pipeline.teacher_cache import BACKENDS
from pocketbert.pipeline.validate import check_choice, check_masking, check_positive

PRECISIONS = ("auto", "fp32", "bf16")
METRICS = ("auto", "sts", "accuracy", "mlm_accuracy", "loss")


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=lambda: ["default"])  # files, folders, globs or `default`
    text_field: str | None = None  # JSONL field / TSV-CSV column holding the text (None: auto)
    label_field: str | None = None  # column / field with integer labels (finetune, task distillation)
    max_length: int = 128  # tokens per example, [CLS] and [SEP] included
    batch_size: int = 32  # examples per micro-batch and process
    group_by_length: bool = True  # batches of similar length (less padding)
    holdout: float = 0.0  # fraction of the training texts held out for MLM accuracy (0 = none)
    limit: int | None = None  # use at most this many texts (None = all)
    pairs: list[str] = field(default_factory=list)  # ensemble: TSV files of related sentence pairs (STS-B layout or
    #   sentence1<TAB>sentence2; any score column is ignored) whose sentences are in `train`
    pairs_per_batch: int = 0  # ensemble: that many random pairs added to every batch, so the in-batch similarity
    #   matrix also holds close pairs, not only the near-orthogonal random ones

    def check(self, prefix: str) -> None:
        check_positive(self.max_length, f"{prefix}.max_length", minimum=4)
        if self.pairs_per_batch < 0:
            raise PocketBertError(f"{prefix}.pairs_per_batch must be >= 0, got {self.pairs_per_batch}")
        if self.pairs_per_batch and not self.pairs:
            raise PocketBertError(f"{prefix}.pairs_per_batch needs {prefix}.pairs (TSV files of sentence pairs)")
        check_positive(self.batch_size, f"{prefix}.batch_size")
        if not self.train:
            raise PocketBertError(f"{prefix}.train is empty; list at least one file, folder, glob or `default`")
        if not 0.0 <= self.holdout < 1.0:
            raise PocketBertError(f"{prefix}.holdout must be in [0, 1), got {self.holdout}")


@dataclass
class TrainConfig:
    max_steps: int = 0  # optimizer steps; 0 = run `epochs`
    epochs: float = 1.0  # passes over the data when max_steps is 0
    max_minutes: float = 0.0  # wall-clock budget in minutes (0 = none); the LR decays to 0 at the budget
    lr: float = 5e-4  # peak AdamW learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay (not on biases and LayerNorm)
    warmup: float = 0.05  # warmup: a fraction of the run (< 1) or a number of steps (>= 1)
    grad_accum: int = 1  # micro-batches per optimizer step (effective batch = batch_size x grad_accum x processes)
    clip_norm: float = 1.0  # gradient clipping by global norm (0 = off)
    seed: int = 42
    precision: str = "auto"  # auto (bf16 autocast on GPU, fp32 on CPU) | fp32 | bf16 (GPU only)
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads (0 = torch's default)
    eval_every: int = 0  # evaluate every N steps (0 = only at the end)
    save_every: int = 0  # write a resumable training state every N steps (0 = only at the end / Ctrl-C)
    log_every: int = 10  # metrics.jsonl line every N steps
    keep_best: bool = True  # the output holds the best evaluated weights, not the last ones
    work_dir: str | None = None  # training state, metrics and curves (None: `<out>.work`)

    def check(self, prefix: str) -> None:
        for name in ("max_steps", "eval_every", "save_every", "threads"):
            check_positive(getattr(self, name), f"{prefix}.{name}", minimum=0)
        check_positive(self.grad_accum, f"{prefix}.grad_accum")
        check_positive(self.log_every, f"{prefix}.log_every")
        for name in ("epochs", "max_minutes", "lr", "weight_decay", "warmup", "clip_norm"):
            if getattr(self, name) < 0:
                raise PocketBertError(f"{prefix}.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_steps == 0 and self.epochs == 0 and self.max_minutes == 0:
            raise PocketBertError(f"{prefix}: set a budget: max_steps, epochs or max_minutes")
        check_choice(self.precision, PRECISIONS, f"{prefix}.precision")
        check_choice(self.device, ("auto", "cpu", "cuda"), f"{prefix}.device")


@dataclass
class EvalConfig:
    sts: str | None = None  # STS-B TSV: Spearman x100 of embedding cosines (e.g. ../shared/data/stsb/dev.tsv)
    classification: str | None = None  # labelled dev file (same text_field / label_field as the data): accuracy
    mlm: bool = False  # MLM accuracy on the held-out texts (data.holdout) with fixed masks
    max_examples: int = 2000  # cap on held-out / classification examples per evaluation
    at_start: bool = True  # also evaluate the teacher and the untrained student before training (step 0)
    metric: str = "auto"  # the one that picks the best checkpoint: auto (sts > accuracy > mlm_accuracy) | ...

    def check(self, prefix: str) -> None:
        check_positive(self.max_examples, f"{prefix}.max_examples")
        check_choice(self.metric, METRICS, f"{prefix}.metric")


@dataclass
class TeacherConfig:
    shorthand = "path"  # a plain string in a recipe (`teachers: [minilm]`) is the path

    path: str = "minilm"  # checkpoint folder, `minilm`, `paraphrase-minilm-l3`, or an .onnx encoder (with `tokenizer`)
    weight: float = 1.0  # share of this teacher in the ensemble objective (weights are normalised to sum 1)
    tokenizer: str | None = None  # tokenizer folder of an .onnx teacher
    backend: str = "fp32"  # ensemble teacher pass: fp32 | bf16 (GPU, or a CPU with bf16) | onnx-fp32 | onnx-int8;
    #   a backend other than fp32 is used only where its per-sentence cosine to fp32 is >= 0.99 (teacher_cache.py)


@dataclass
class StudentConfig:
    init: str = "layers"  # layers (copy layers of `source`) | random (`source`'s config, random weights) | a whole checkpoint
    #   (folder, `minilm`, `paraphrase-minilm-l3`)
    layers: str = "every-other"  # layers of `source` for init=layers: 0,2,5 | every-other | first:N | last:N | uniform:N
    source: str | None = None  # checkpoint whose layers, config and tokenizer init=layers/random take (None: the first
    #   teacher); a folder, `minilm` or `paraphrase-minilm-l3`
    num_hidden_layers: int = 0  # depth for init=random (0 = as many as `layers` selects)
    embedding_size: int | None = None  # E < hidden size: factorize the embedding ALBERT-style (E-wide word table,
    #   then E -> H), fitted to the initial student's embedding output on the training text; None keeps it
    intermediate_size: int | None = None  # below the source's FFN width: keep that many feed-forward neurons per
    #   layer, the most active on the training text (weighted by their output norm); None keeps them all


@dataclass
class DistillRecipe:
    """`pocketbert distill`: teachers -> student with the triple, embedding, task or ensemble objective.

    The `loss` section belongs to the objective (pipeline/objectives/): its keys are those of the objective's
    loss dataclass (`TripleLoss`, `EmbeddingLoss`, `TaskLoss`, `EnsembleLoss`), checked when the recipe loads.
    """

    teachers: list[TeacherConfig] = field(default_factory=lambda: [TeacherConfig()])  # checkpoint folders or names
    #   (`minilm`, `paraphrase-minilm-l3`, ...), each `{path, weight, tokenizer}` or just the path; several for ensemble
    objective: str = "triple"  # triple (DistilBERT, MLM teacher) | embedding (sentence embeddings) | task (classifier)
    #   | ensemble (sentence level, width-agnostic, any number of teachers, each with its own tokenizer)
    out: str = "out/distilled"  # output checkpoint folder
    student: StudentConfig = field(default_factory=StudentConfig)
    loss: Any = None  # the objective's loss section (None: its defaults)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self):
        if self.loss is None and self.objective in OBJECTIVES:
            self.loss = OBJECTIVES[self.objective].Loss()

    @classmethod
    def field_types(cls, data: dict, prefix: str) -> dict:
        """The type of `loss` follows `objective` (checked first, so a bad objective is named as such)."""
        objective = data.get("objective", cls.objective)
        check_choice(objective, tuple(OBJECTIVES), f"{prefix}.objective" if prefix else "objective")
        return {"loss": OBJECTIVES[objective].Loss}

    @property
    def objective_class(self):
        return OBJECTIVES[self.objective]

    def check(self) -> None:
        check_choice(self.objective, tuple(OBJECTIVES), "objective")
        if not isinstance(self.loss, OBJECTIVES[self.objective].Loss):
            raise PocketBertError(f"loss is a {type(self.loss).__name__}, but objective {self.objective} takes a "
                                  f"{OBJECTIVES[self.objective].Loss.__name__}")
        self.loss.check("loss")
        self.data.check("data")
        self.train.check("train")
        self.eval.check("eval")
        check_positive(self.student.num_hidden_layers, "student.num_hidden_layers", minimum=0)
        if not self.teachers:
            raise PocketBertError("teachers is empty; name at least one teacher, e.g. teachers=[minilm]")
        for i, t in enumerate(self.teachers):
            if t.weight <= 0:
                raise PocketBertError(f"teachers[{i}].weight must be > 0, got {t.weight}")
            check_choice(t.backend, BACKENDS, f"teachers[{i}].backend")
        for key in ("embedding_size", "intermediate_size"):
            value = getattr(self.student, key)
            if value is not None:
                check_positive(value, f"student.{key}")
                if self.objective not in ("ensemble", "embedding"):
                    raise PocketBertError(f"student.{key} is for sentence-embedding students (objective ensemble "
                                          f"or embedding), not objective {self.objective}")
        if self.data.pairs_per_batch and self.objective != "ensemble":
            raise PocketBertError("data.pairs_per_batch is for objective ensemble")
        self.objective_class.check_recipe(self)


@dataclass
class ModelConfig:
    tokenizer: str = ""  # folder with vocab.txt (and tokenizer_config.json), or `minilm` for its vocabulary
    preset: str = "tiny"  # tiny | minilm: the starting architecture; the keys below override it
    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    num_attention_heads: int | None = None
    intermediate_size: int | None = None
    max_position_embeddings: int | None = None
    embedding_size: int | None = None  # ALBERT factorized embedding E < hidden_size
    sharing: str = "none"  # ALBERT cross-layer sharing: none | all | attention
    hidden_act: str | None = None
    pooling: str = "mean"


@dataclass
class PretrainRecipe:
    """`pocketbert pretrain`: an encoder from scratch with MLM (and optional sentence-order prediction)."""

    out: str = "out/pretrained"
    model: ModelConfig = field(default_factory=ModelConfig)
    mlm_probability: float = 0.15
    mask_ratio: float = 0.8
    random_ratio: float = 0.1
    sop: bool = False  # ALBERT sentence-order prediction: each line is cut in two, halves swapped half the time
    alpha_sop: float = 1.0
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def check(self) -> None:
        if not self.model.tokenizer:
            raise PocketBertError("model.tokenizer is required: a folder with the vocab.txt to pretrain with")
        check_choice(self.model.preset, ("tiny", "minilm"), "model.preset")
        check_masking(self.mlm_probability, self.mask_ratio, self.random_ratio, "")
        self.data.check("data")
        self.train.check("train")
        self.eval.check("eval")


@dataclass
class FinetuneRecipe:
    """`pocketbert finetune`: a classification teacher from an encoder checkpoint."""

    model: str = "minilm"  # checkpoint folder or `minilm`
    out: str = "out/finetuned"
    data: DataConfig = field(default_factory=lambda: DataConfig(label_field="label"))
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def check(self) -> None:
        if self.data.label_field is None:
            raise PocketBertError("data.label_field is required: the column or field with integer labels")
        self.data.check("data")
        self.train.check("train")
        self.eval.check("eval")


# ---------------------------------------------------------------------------------------------
# Validation


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value, tp, key: str):
    """Check `value` against the annotation `tp`; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except PocketBertError as e:
                errors.append(e)
        raise errors[0]
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, (str, int)) and item in (str, int) and not isinstance(value, bool):
            value = [value] if item is str else value
        if isinstance(value, int) and item is int:
            value = [value]
        if not isinstance(value, list):
            raise PocketBertError(f"{key} must be a list of {_type_name(item)}, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise PocketBertError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PocketBertError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PocketBertError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise PocketBertError(f"{key} must be a string, got {value!r}")
        return str(value)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    raise TypeError(f"unsupported recipe type {tp} for {key}")


def _all_keys(cls, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        keys.append(name)
        if dataclasses.is_dataclass(hints[f.name]):
            keys.extend(_all_keys(hints[f.name], name + "."))
    return keys


def build(cls, data, prefix: str = "", root=None, context: str = ""):
    """A dict -> the dataclass `cls`, every key and type checked. Errors name the dotted key.

    A dataclass with a `shorthand` field name also takes a plain value for that field (`teachers: [minilm]`);
    one with a `field_types(data, prefix)` classmethod chooses the types of some fields from its other
    values (a distillation recipe's `loss` section is the objective's); `context` follows the key in errors.
    """
    root = root or cls
    if data is None:
        data = {}
    shorthand = getattr(cls, "shorthand", None)
    if shorthand is not None and isinstance(data, str):
        data = {shorthand: data}
    if not isinstance(data, dict):
        raise PocketBertError(f"{prefix or 'the recipe'} must be a mapping of keys to values, got {data!r}")
    hints = typing.get_type_hints(cls)
    chosen = cls.field_types(data, prefix) if hasattr(cls, "field_types") else {}
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            full = f"{prefix}.{key}" if prefix else str(key)
            near = difflib.get_close_matches(full, _all_keys(root), n=1, cutoff=0.5) or \
                difflib.get_close_matches(str(key), sorted(names), n=1, cutoff=0.5)
            if near and "." not in near[0] and prefix:
                near = [f"{prefix}.{near[0]}"]
            hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys here: {', '.join(sorted(names))}"
            raise PocketBertError(f"unknown recipe key {full!r}{hint}{context}")
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else key
        if key in chosen:  # suggestions come from the chosen type alone, and the error says why it was chosen
            objective = data.get("objective", getattr(cls, "objective", ""))
            kwargs[key] = build(chosen[key], value, full, chosen[key], context=f" (the loss keys of objective {objective})")
            continue
        tp = hints[key]
        kwargs[key] = build(tp, value, full, root) if dataclasses.is_dataclass(tp) else _coerce(value, tp, full)
    return cls(**kwargs)


def parse_overrides(overrides: list[str]) -> dict:
    """`a.b=3` strings -> a nested dict; values are parsed as YAML (`3`, `0.5`, `true`, `[0, 2]`, `null`)."""
    out: dict = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise PocketBertError(f"override {item!r} is not key=value; write for example train.max_steps=100")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (int, float)) and not isinstance(value, bool) and "," in raw:
            value = raw  # `0,2,5` is a layer list string, not the number 25
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise PocketBertError(f"override {item!r} sets a key below a value")
        node[parts[-1]] = value
    return out


def _merge(base: dict, extra: dict) -> dict:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def shipped_recipes(package: str = "pocketbert.pipeline") -> list[Path]:
    """The recipes that ship with pocketbert: `<package>/recipes/*.yaml` (training recipes live in
    pocketbert.pipeline, build recipes in pocketbert)."""
    folder = resources.files(package) / "recipes"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_recipe_path(name: str, package: str = "pocketbert.pipeline") -> Path:
    """A recipe file, or the name of a shipped recipe (`distill-embedding-tiny` ->
    pipeline/recipes/distill-embedding-tiny.yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = shipped_recipes(package)
    for p in shipped:
        if p.stem == name or p.name == name:
            return p
    known = ", ".join(p.stem for p in shipped)
    raise PocketBertError(f"recipe {name} does not exist; pass a YAML file or a shipped recipe ({known})")


def load_recipe(cls, path: str, overrides: list[str] | None = None, package: str = "pocketbert.pipeline"):
    """Read a YAML recipe, apply overrides, validate into `cls` (and run its `check`)."""
    p = resolve_recipe_path(path, package)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise PocketBertError(f"recipe {p} is not valid YAML ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(data, dict):
        raise PocketBertError(f"recipe {p} must be a mapping of keys to values")
    changes = parse_overrides(overrides or [])
    data = _merge(data, changes)
    recipe = build(cls, data)
    recipe.check()
    return recipe


def to_dict(recipe) -> dict:
    return dataclasses.asdict(recipe)
