"""The conformance suite both app cores answer: cases generated once per test run, judged here.

The Kotlin core (android_demo/core on the JVM) and the Swift core (ios_demo/PocketBertKit in the Swift root)
each get the same request folder and write answers with their own functions (the ones the apps call:
`WordPieceTokenizer.encode`, `Bundle.open` / `ModelBundle.open`, `SelfTest.bundle`); nothing is judged
inside a core. Case families:

- tokenizer/<variant>: ids of HF `tokenizers` (MiniLM vocabulary) for every shared-data sentence, edge
  cases, random mixed-script strings and a sweep of every code point; the variants turn lower-casing,
  accent stripping and CJK splitting off one at a time and all together;
- bundle/<case>: the golden self-test on a bundle exported in the same run, with outputs recorded from
  onnxruntime at every bucket, the same on a static (model2vec-style) student's bundle (fp32, int8, int4
  tables; empty texts give the zero vector), and bad bundles (altered golden id, altered golden output, an output altered
  at one bucket, no manifest, a newer schema, a missing artifact, a damaged artifact); and the thresholds the cores
  read from the manifest: outputs moved within the exported thresholds pass, and the same outputs fail once the
  manifest's threshold is tighter (parity `max_abs_diff`, bucket invariance `min_invariance_cosine`);
- postprocess/<function>: what the apps show from model outputs: similarity ranking (`Similarity.topK`, cosine)
  and label probabilities (`Similarity.classify` / `Classifier.predictions`), against numpy;
- calls: how the app calls each format/quant for a text (`Bundle.encodeFor` / `ModelBundle.call`: the artifact,
  the input length, the ids), against the bench's real-length rows (runtime_bench/lengths.py), on a bundle with a
  dynamic-length family, a static family at both buckets and a static family at one bucket.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

MIN_DATA_SENTENCES = 2000
# (name, lowercase, strip_accents, tokenize_chinese_chars); "minilm" uses the model's own tokenizer.json.
VARIANTS = [
    ("no-lowercase", False, True, True),
    ("no-accent-strip", True, False, True),
    ("no-cjk-split", True, True, False),
    ("all-off", False, False, False),
]


def _data_sentences(data_dir: Path) -> list[str]:
    out = []
    for name in ("dev.tsv", "train.tsv"):
        for line in (data_dir / "stsb" / name).read_text(encoding="utf-8").splitlines():
            cols = line.split("\t")
            if len(cols) >= 3:
                out += [cols[-3], cols[-2]]
    lines = (data_dir / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    out += [ln.rsplit("\t", 1)[0] for ln in lines[1:] if "\t" in ln]
    return list(dict.fromkeys(out))


def _edge_cases() -> list[str]:
    cases = [
        "", " ", "   ", "\t", "\n", "\r\n", " \t\n\r ", "\u00a0", "\u3000", "\u2003\u2009\u202f", "\u200b", "\ufeff",
        # accents and case
        "Café déjà vu", "naïve façade Ångström über São Paulo", "ÀÉÎÕÜ àéîõü ÇçÑñ", "Ærøskøbing Œuvre ß ẞ",
        "e\u0301 vs \u00e9", "a\u0300\u0301\u0302b", "İstanbul ıi", "ΟΔΟΣ Σίσυφος ς", "Ǆǅǆ ǈ", "ﬁﬂ ﬃ",
        "ΑΘΗΝΑ Αθήνα", "Москва ЁЖ ёж", "Ⅻ ⅻ ① ⑴ ⒜", "Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３", "ℌℍ ℎ ℏ",
        # CJK and other scripts
        "我喜欢自然语言处理。", "東京は日本の首都です。", "한국어 문장입니다", "ひらがなカタカナ", "ｶﾀｶﾅ",
        "𠀀𠀁𪜀𫝀𫠠𬺰丽", "中文English混合123", "ไทยภาษา", "हिन्दी भाषा", "مرحبا بالعالم", "שלום עולם",
        "Tiếng Việt có dấu", "Ελληνικά", "ქართული", "Հայերեն", "ᚠᚢᚦ", "𝐀𝐁𝐂 𝔸𝔹ℂ",
        # emoji
        "I love it 😀👍🏽 so much 🎉!", "👨‍👩‍👧‍👦", "🇫🇷🇯🇵", "❤️ ☺️", "😀😀😀", "a😀b", "🥲🫠🫶", "©®™",
        # control and special characters
        "tab\there\x00null\x07bell\u200bzero-width\ufeffbom", "\x00", "\ufffd", "a\ufffdb", "\x1b[31mred\x1b[0m",
        "line1\u2028line2\u2029line3", "\x85next", "a\x0bb\x0cc", "soft\u00adhyphen", "rtl\u202emark\u202c",
        "\ue000private\U000f0000", "\U000e0041tag", "zero\u200dwidth\u200cjoiner",
        # punctuation
        "Wait... what?! (Really) -- yes; no: maybe, \"quoted\" & 'single' [brackets] {braces}.",
        "¿Qué? ¡Sí! «guillemets» „quotes“ ‘single’ — – … · • §¶", "$€£¥₹ 100% #1 @user ~tilde ^caret |pipe| `tick`",
        "a_b a-b a/b a\\b a+b a=b a<b a>b", "https://example.com/path?q=1&x=y#frag", "someone@example.org",
        "3.14159 1,000,000 -42 +7 1e-5 0x1F", "don't it's we'll I'd've", "C++ C# .NET F#", "「引用」『二重』【括弧】",
        # special tokens in the text
        "hello [MASK] world", "[CLS] x [SEP]", "x[CLS]y", "[mask] [Mask]", "[[SEP]]", "[UNK][PAD]", "[MASK",
        # long words
        "x" * 99, "x" * 100, "x" * 101, "a" * 150 + " after", "supercalifragilisticexpialidocious" * 3,
        "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis", "é" * 100, "é" * 101,
        "😀" * 100, "😀" * 101, "中" * 200, "ab" * 60, "unaffable unbelievably", "x" * 5000,
        "word " * 300, " ".join(["The quick brown fox jumps over the lazy dog."] * 40),
    ]
    return cases


def _random_strings(n: int, seed: int = 0) -> list[str]:
    """Random mixes of ASCII, Latin-1, combining marks, CJK, emoji, spaces, controls and punctuation."""
    rng = random.Random(seed)
    pools = [
        [chr(c) for c in range(0x20, 0x7F)], [chr(c) for c in range(0xA0, 0x250)], [chr(c) for c in range(0x300, 0x370)],
        [chr(c) for c in range(0x4E00, 0x4E80)], [chr(c) for c in range(0x1F300, 0x1F680)],
        [" ", "\t", "\n", "\u00a0", "\u3000"], [chr(c) for c in range(0, 0x20)], list("!?.,;:'\"()[]{}-—…«»"),
        [chr(c) for c in range(0x370, 0x530)], [chr(c) for c in range(0xAC00, 0xAC80)], ["[MASK]", "[SEP]", "[CLS]"],
    ]
    words = "the a man woman dog playing guitar café naïve running quickly unbelievable".split()
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 30)):
            if rng.random() < 0.4:
                parts.append(rng.choice(words))
            else:
                parts.append("".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 6))))
            parts.append(rng.choice([" ", " ", "", "\t"]))
        out.append("".join(parts))
    return out


def _codepoint_sweep() -> list[str]:
    """Every code point of planes 0-3 and 14 (plus every 97th elsewhere), each as `a<c>b <c>`, 256 per string."""
    cps = [c for c in range(0x40000) if not 0xD800 <= c <= 0xDFFF]
    cps += list(range(0xE0000, 0xF0000)) + list(range(0x40000, 0xE0000, 97)) + list(range(0xF0000, 0x110000, 97))
    return [" ".join(f"a{chr(c)}b {chr(c)}" for c in cps[i:i + 256]) for i in range(0, len(cps), 256)]


@dataclass
class Family:
    name: str
    options: dict
    texts: list[str]
    expected: list[list[int]]


@dataclass
class Cases:
    """One generated request folder (`root/request.json`) and what the answers are judged against."""

    root: Path
    families: list[Family] = field(default_factory=list)
    bundles: dict[str, dict] = field(default_factory=dict)  # name -> {"path": Path, "expect": str, ...}
    postprocess: dict = field(default_factory=dict)  # {vectors, logits, labels}
    calls: dict = field(default_factory=dict)  # {"bundle": Path, "texts": [str]}

    @property
    def request(self) -> Path:
        return self.root / "request.json"


def tokenizer_families(vocab_dir: Path, data_dir: Path) -> list[Family]:
    from tokenizers import Tokenizer

    from pocketbert.pipeline.tokenizer import build_wordpiece, read_vocab

    hf = Tokenizer.from_file(str(vocab_dir / "tokenizer.json"))
    hf.no_padding()
    hf.no_truncation()
    data = _data_sentences(data_dir)
    assert len(data) >= MIN_DATA_SENTENCES, f"only {len(data)} shared-data sentences in {data_dir}"
    sweep = _codepoint_sweep()
    texts = data + _edge_cases() + _random_strings(1000) + sweep
    default = {"lowercase": True, "strip_accents": True, "tokenize_chinese_chars": True}
    families = [Family("tokenizer/minilm", default, texts, [e.ids for e in hf.encode_batch(texts)])]
    vocab = read_vocab(vocab_dir / "vocab.txt")
    for k, (name, lower, strip, cjk) in enumerate(VARIANTS, start=1):
        tok = build_wordpiece(vocab, lower, strip, cjk)
        texts = _edge_cases() + _random_strings(1000, seed=k + 1) + sweep
        options = {"lowercase": lower, "strip_accents": strip, "tokenize_chinese_chars": cjk}
        families.append(Family(f"tokenizer/{name}", options, texts, [e.ids for e in tok.encode_batch(texts)]))
    return families


def _replay_row(replay: dict, artifact: str, golden: dict, case: str) -> dict:
    """The recorded row of golden case `case` in `artifact`'s replay."""
    ids = next(c["ids"] for c in golden["cases"] if c["name"] == case)
    return next(r for r in replay[artifact] if r["input_ids"][: len(ids)] == ids and sum(r["attention_mask"]) == len(ids))


def _alter_replay_at_one_bucket(replay: dict, manifest: dict, golden: dict, case: str = "plain",
                                turn: float = 0.045) -> str:
    """Turn one recorded output of the largest bucket's artifact by `turn` (noise orthogonal to it, `turn` times
    its norm: cosine 1 / sqrt(1 + turn^2) to the original; 0.045: ~0.999, within reach of a lax check, but not of
    the 0.9999 fp32 bucket-invariance bound). Returns the artifact."""
    import numpy as np

    art = max(manifest["artifacts"], key=lambda a: a["seq_len"])
    row = _replay_row(replay, art["file"], golden, case)
    out = np.asarray(row["output"], dtype=np.float64)
    noise = np.random.default_rng(0).standard_normal(out.shape)
    noise -= noise @ out / (out @ out) * out  # orthogonal to the output
    row["output"] = [float(v) for v in out + turn * np.linalg.norm(out) * noise / np.linalg.norm(noise)]
    return art["file"]


def _shift_replay(replay: dict, manifest: dict, golden: dict, delta: float, case: str = "plain") -> None:
    """Move the first value of one case's recorded output by `delta` in every artifact (at every bucket alike, so
    bucket invariance still holds)."""
    for a in manifest["artifacts"]:
        _replay_row(replay, a["file"], golden, case)["output"][0] += delta


def _edit_manifest(bundle: Path, change) -> None:
    path = bundle / "manifest.json"
    m = json.loads(path.read_text(encoding="utf-8"))
    change(m)
    path.write_text(json.dumps(m, indent=2), encoding="utf-8")


def _set_tolerances(key: str, value: float):
    """A manifest change: `key` of every `tolerances` entry set to `value`."""
    def change(m: dict) -> None:
        for entry in m["tolerances"].values():
            entry[key] = value
    return change


def build(root: Path, families: list[Family], vocab: Path, exported: dict[str, Path]) -> Cases:
    """Write the request folder: tokenizer texts, the exported bundle and its bad copies, request.json."""
    root.mkdir(parents=True, exist_ok=True)
    cases = Cases(root, families)
    shutil.copyfile(vocab, root / "vocab.txt")
    request = {"tokenizer": [], "bundles": [], "answers_file": "answers.json",
               "postprocess": postprocess_inputs()}
    cases.postprocess = request["postprocess"]
    for i, fam in enumerate(families):
        texts = root / f"texts_{i}.jsonl"
        with open(texts, "w", encoding="utf-8") as f:
            for t in fam.texts:
                f.write(json.dumps(t) + "\n")  # ASCII JSON: \\u escapes, surrogate pairs for astral code points
        request["tokenizer"].append({"family": fam.name, "vocab": "vocab.txt", "options": fam.options,
                                     "texts": texts.name, "answers": f"ids_{i}.jsonl"})
    bundles = root / "bundles"
    good = exported["bundle"]
    manifest = json.loads((good / "manifest.json").read_text(encoding="utf-8"))
    golden = json.loads((good / "golden.json").read_text(encoding="utf-8"))
    replay = json.loads(exported["replay"].read_text(encoding="utf-8"))
    first = manifest["artifacts"][0]["file"]

    def add(name: str, src: Path, expect: str, replay_doc: dict | None = None, **info):
        dst = bundles / name
        shutil.copytree(src, dst)
        rp = root / f"replay_{name}.json"
        rp.write_text(json.dumps(replay_doc or replay), encoding="utf-8")
        request["bundles"].append({"name": name, "bundle": f"bundles/{name}", "replay": rp.name})
        cases.bundles[name] = {"path": dst, "expect": expect, **info}
        return dst

    add("good", good, "pass", n_cases=len(golden["cases"]), n_artifacts=len(manifest["artifacts"]))
    if "staticBundle" in exported:  # the static tier: a table, mean-pooled, in the same contract
        static = exported["staticBundle"]
        s_manifest = json.loads((static / "manifest.json").read_text(encoding="utf-8"))
        s_golden = json.loads((static / "golden.json").read_text(encoding="utf-8"))
        add("static_good", static, "pass", replay_doc=json.loads(exported["staticReplay"].read_text(encoding="utf-8")),
            n_cases=len(s_golden["cases"]), n_artifacts=len(s_manifest["artifacts"]))
    add("bad_golden_id", exported["badIdsBundle"], "tokenizer fails on plain")
    add("bad_golden_output", exported["badOutputBundle"], "every artifact fails on plain",
        n_artifacts=len(manifest["artifacts"]))
    altered = json.loads(json.dumps(replay))
    victim = _alter_replay_at_one_bucket(altered, manifest, golden)
    add("output_altered_at_one_bucket", good, "bucket invariance fails", replay_doc=altered, artifact=victim)
    # The thresholds are the manifest's: the same outputs pass with the exported ones and fail with tighter ones.
    max_abs = min(t["max_abs_diff"] for t in manifest["tolerances"].values())
    shifted = json.loads(json.dumps(replay))
    _shift_replay(shifted, manifest, golden, max_abs / 2)  # half the exported max |diff|: passes
    add("output_within_max_abs_diff", good, "pass", replay_doc=shifted, n_cases=len(golden["cases"]),
        n_artifacts=len(manifest["artifacts"]))
    _edit_manifest(add("tighter_max_abs_diff", good, "every artifact fails on plain", replay_doc=shifted,
                       n_artifacts=len(manifest["artifacts"])), _set_tolerances("max_abs_diff", max_abs / 4))
    turned = json.loads(json.dumps(replay))
    victim = _alter_replay_at_one_bucket(turned, manifest, golden, turn=0.01)  # cosine ~0.99995 between buckets
    add("turn_within_invariance_cosine", good, "bucket invariance passes", replay_doc=turned,
        n_artifacts=len(manifest["artifacts"]))
    _edit_manifest(add("tighter_invariance_cosine", good, "bucket invariance fails", replay_doc=turned, artifact=victim),
                   _set_tolerances("min_invariance_cosine", 0.99999))
    (add("missing_manifest", good, "refused", words=["manifest.json"]) / "manifest.json").unlink()
    _edit_manifest(add("newer_schema", good, "refused", words=["2.0"]), lambda m: m.update(schema_version="2.0"))
    (add("missing_artifact", good, "refused", words=[first]) / first).unlink()
    damaged = add("sha256_mismatch", good, "refused", words=[first, "sha256"]) / first
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    request["calls"] = [_calls_case(root, good, cases)]
    (root / "request.json").write_text(json.dumps(request, indent=1), encoding="utf-8")
    return cases


def _calls_case(root: Path, good: Path, cases: Cases) -> dict:
    """A copy of the exported bundle (its ONNX artifacts take a dynamic length) with two static families added
    (copies of its files: the calls case reads the manifest, runs nothing): `onnx/int8` at both buckets and
    `tflite/fp32` at the largest only; texts from empty to longer than the largest bucket."""
    import hashlib

    dst = root / "bundles" / "calls"
    shutil.copytree(good, dst)
    manifest = json.loads((dst / "manifest.json").read_text(encoding="utf-8"))
    extra = []
    for a in manifest["artifacts"]:
        for fmt, quant, buckets in (("onnx", "int8", manifest["seq_lens"]), ("tflite", "fp32", manifest["seq_lens"][-1:])):
            if a["seq_len"] in buckets:
                row = {k: v for k, v in a.items() if k != "min_seq_len"} | {"format": fmt, "quant": quant}
                row["backend"] = {"onnx": "onnxruntime", "tflite": "litert"}[fmt]
                row["file"] = f"static_{fmt}_{quant}_{a['seq_len']}_{a['file']}"
                shutil.copyfile(dst / a["file"], dst / row["file"])
                row["sha256"] = hashlib.sha256((dst / row["file"]).read_bytes()).hexdigest()
                extra.append(row)
                manifest["tolerances"][f"{fmt}/{quant}"] = manifest["tolerances"][f"{a['format']}/{a['quant']}"]
    manifest["artifacts"] += extra
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    words = "the cat sat on a mat while rain fell over distant hills and quiet rivers".split()
    texts = ["", "a", "Hello, world!"] + [" ".join(words[i % len(words)] for i in range(n)) for n in range(5, 160, 3)]
    (root / "calls_texts.jsonl").write_text("".join(json.dumps(t) + "\n" for t in texts), encoding="utf-8")
    cases.calls = {"bundle": dst, "texts": texts}
    return {"bundle": "bundles/calls", "texts": "calls_texts.jsonl", "answers": "calls_answers.jsonl"}


def expected_calls(bundle_dir: Path, texts: list[str]) -> list[list]:
    """What the bench does for each text: [[format, quant, file, input length, ids], ...] per family."""
    from pocketbert.bundle.manifest import load_bundle
    from pocketbert.runtime_bench import lengths

    bundle = load_bundle(bundle_dir)
    ids = lengths.encode(bundle, texts)
    families = list(dict.fromkeys((a["format"], a["quant"]) for a in bundle.artifacts))
    per_family = {(f, q): lengths.calls(bundle, [a for a in bundle.artifacts if (a["format"], a["quant"]) == (f, q)], ids)
                  for f, q in families}
    return [[[f, q, cs[i].artifact["file"], len(cs[i].ids), cs[i].ids[:cs[i].n_tokens]] for (f, q), cs in per_family.items()]
            for i in range(len(texts))]


def judge_calls(cases: Cases, answers: Path, core: str) -> tuple[str, str | None]:
    """(summary line, first mismatch or None): the core's calls against the bench's, text by text."""
    path = answers / "calls_answers.jsonl"
    if not path.is_file():
        return f"{core} calls: no answers", f"{core} wrote no {path.name}"
    got = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = cases.calls["texts"]
    expected = expected_calls(cases.calls["bundle"], texts)
    bad = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    if len(got) != len(expected):
        return f"{core} calls: {len(got)} answers for {len(expected)} texts", f"{core} answered {len(got)} texts"
    dynamic = sum(row[3] not in (32, 128) for e in expected for row in e)
    line = f"{core:6} calls {len(texts):4} texts x {len(expected[0])} families ({dynamic} dynamic lengths), {len(bad)} mismatches"
    if not bad:
        return line, None
    i = bad[0]
    return line, f"text #{i} {json.dumps(texts[i][:120])}:\n  bench: {expected[i]}\n  {core}: {got[i]}"


def postprocess_inputs(seed: int = 0) -> dict:
    """Vectors to rank (an all-zero one included) and logits to turn into label probabilities (huge ones too)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((12, 24)).astype(np.float32)
    vectors[5] = 0.0
    vectors[7] = vectors[3] * 2.5  # same direction: cosine 1 with vector 3
    logits = rng.standard_normal((6, 3)).astype(np.float32) * 4
    logits[4] = [1000.0, 999.0, -1000.0]  # softmax must shift by the maximum
    return {"vectors": vectors.tolist(), "logits": logits.tolist(), "labels": ["negative", "neutral", "positive"]}


# ---------------------------------------------------------------- judging


def judge_tokenizer(cases: Cases, answers: Path, index: int, core: str) -> tuple[str, str | None]:
    """(summary line, first mismatch or None) of one tokenizer family's answers (in the folder `answers`)."""
    fam = cases.families[index]
    path = answers / f"ids_{index}.jsonl"
    if not path.is_file():
        return f"{core} {fam.name}: no answers", f"{core} wrote no {path.name}"
    got = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    mismatches = [i for i, (g, e) in enumerate(zip(got, fam.expected)) if g != e]
    if len(got) != len(fam.expected):
        return (f"{core} {fam.name}: {len(got)} answers for {len(fam.expected)} strings",
                f"{core} answered {len(got)} of {len(fam.expected)} strings")
    line = f"{core:6} {fam.name:26} {len(fam.texts):6} strings, {len(mismatches)} mismatches"
    if not mismatches:
        return line, None
    i = mismatches[0]
    first = (f"first mismatch ({core}, {fam.name}, {fam.options}), string #{i}: {json.dumps(fam.texts[i][:300])}\n"
             f"  HF tokenizers: {fam.expected[i]}\n  {core:13}: {got[i]}")
    return line, first


def judge_bundle(cases: Cases, name: str, answer: dict | None, core: str) -> tuple[str, str | None]:
    """(summary line, problem or None) of one bundle case's answer."""
    spec = cases.bundles[name]
    if answer is None:
        return f"{core} bundle/{name}: no answer", f"{core} gave no answer for {name}"
    checks = answer.get("checks", [])
    failed = [c for c in checks if not c["passed"]]
    err = answer.get("error")
    desc = f"error: {err}" if err else f"{len(checks)} checks, {len(failed)} failed"
    line = f"{core:6} bundle/{name:28} {desc[:150]}"
    expect = spec["expect"]
    problem = None
    show = "; ".join(f"{c['target']} {c['case']}: {c['detail']}" for c in failed[:3])
    if expect == "pass":
        inv = [c for c in checks if "bucket invariance" in c["target"]]
        if err or failed:
            problem = f"expected to pass: {err or show}"
        elif sum(c["target"] == "tokenizer" for c in checks) != spec["n_cases"]:
            problem = f"expected {spec['n_cases']} tokenizer checks"
        elif len(inv) != spec["n_artifacts"]:
            problem = f"expected a bucket-invariance check per artifact ({spec['n_artifacts']}), got {len(inv)}"
    elif expect == "tokenizer fails on plain":
        # The artifacts run the golden ids, so with one id altered they find no recorded output for 'plain'.
        tok = [c for c in failed if c["target"] == "tokenizer"]
        if err or [c["case"] for c in tok] != ["plain"] or any(c["case"] != "plain" for c in failed):
            problem = f"expected the tokenizer check of 'plain' (and only 'plain') to fail, got {err or show or 'no failure'}"
    elif expect == "every artifact fails on plain":
        if err or len(failed) != spec["n_artifacts"] or any(c["case"] != "plain" or c["target"] == "tokenizer"
                                                               for c in failed):
            problem = f"expected each artifact's check of 'plain' to fail, got {err or show or 'no failure'}"
    elif expect == "bucket invariance passes":
        inv = [c for c in checks if "bucket invariance" in c["target"]]
        got = "; ".join(f"{c['target']}: {c['detail']}" for c in inv) or "none"
        if err or len(inv) != spec["n_artifacts"] or not all(c["passed"] for c in inv):
            problem = (f"expected {spec['n_artifacts']} bucket-invariance checks, all within the manifest's threshold, "
                       f"got {err or got}")
        elif any(c["target"] == "tokenizer" for c in failed):
            problem = f"only outputs were altered, but the tokenizer failed: {show}"
    elif expect == "bucket invariance fails":
        inv = [c for c in failed if "bucket invariance" in c["target"]]
        if err or not inv or not any(spec["artifact"].split("_seq")[-1].split(".")[0] in c["target"] for c in inv):
            problem = f"expected the bucket-invariance check to fail, got {err or show or 'no failure'}"
        elif any(c["target"] == "tokenizer" for c in failed):
            problem = f"only outputs were altered, but the tokenizer failed: {show}"
    elif expect == "refused":
        text = err or " ".join(c["detail"] for c in failed)
        if not text or not all(w in text for w in spec["words"]):
            problem = f"expected a refusal naming {spec['words']}, got {text or 'no error'}"
        elif "\n" in text:
            problem = f"the refusal is not one line: {text!r}"
    return line, problem


def judge_postprocess(cases: Cases, answer: dict | None, function: str, core: str) -> tuple[str, str | None]:
    """(summary line, first mismatch or None): `top_k` or `classify` against numpy (cosine as
    pocketbert.bundle.parity.cosine, softmax in float64; 1e-5 absolute on scores)."""
    import numpy as np

    from pocketbert.bundle.parity import cosine

    post = cases.postprocess
    if answer is None or function not in answer:
        return f"{core} postprocess/{function}: no answer", f"{core} gave no postprocess answer"
    if function == "top_k":
        vectors = np.asarray(post["vectors"], dtype=np.float64)
        expected = []
        for q in vectors:
            scores = [cosine(q, v) for v in vectors]
            order = sorted(range(len(vectors)), key=lambda i: (-round(scores[i], 6), i))
            expected.append([(i, scores[i]) for i in order])
    else:
        labels = post["labels"]
        expected = []
        for row in np.asarray(post["logits"], dtype=np.float64):
            e = np.exp(row - row.max())
            p = e / e.sum()
            names = [labels[i] if i < len(labels) else f"LABEL_{i}" for i in range(len(row))]
            expected.append(sorted(zip(names, p), key=lambda t: -t[1]))
    got = answer[function]
    first = None
    bad = 0
    for k, (g, e) in enumerate(zip(got, expected)):
        if not _same_ranking(g, e):
            bad += 1
            first = first or (f"first mismatch ({core}, postprocess/{function}), input #{k}:\n"
                              f"  numpy: {[(a, round(b, 6)) for a, b in e]}\n  {core:5}: {[(a, round(b, 6)) for a, b in g]}")
    if len(got) != len(expected):
        bad += 1
        first = first or f"{core} answered {len(got)} of {len(expected)} inputs"
    return f"{core:6} postprocess/{function:22} {len(expected):6} inputs, {bad} mismatches", first


def _same_ranking(got: list, expected: list, atol: float = 1e-5) -> bool:
    """Same (key, score) pairs in the same order; keys with equal scores (within atol) may swap places."""
    if len(got) != len(expected):
        return False
    score = {k: v for k, v in expected}
    return all(abs(gs - es) <= atol and (gk == ek or abs(score.get(gk, float("inf")) - es) <= atol)
               for (gk, gs), (ek, es) in zip(got, expected))
