HELP = "measure a bundle's artifacts (size, load, latency, memory) on this host or a phone, beside the teacher and peers"
DESCRIPTION = """Measure every artifact of a bundle the same way: load time, first inference, latency
p50/p90/p99 and the 10-90% trimmed mean, peak RSS increase, file size, per thread count, each row in a
fresh process pinned to cores. With --baseline teacher the teacher runs interleaved (A B A B) as users
run it today (PyTorch eager fp32, ONNX Runtime fp32 and int8) and speedups are computed pair by pair;
--baseline teacher,peers (or --peer MODEL, repeated) adds the public models a user could download instead.
Results follow runtime_bench/results.schema.json and are saved as each group finishes.

  pocketbert bench s3_bundle --threads 1,2 --seq-len 32,128 --baseline teacher --out results.json
  pocketbert bench s3_bundle --threads 1 --baseline teacher,peers --out results.json   # + paraphrase-MiniLM-L3-v2
  pocketbert bench s3_bundle --device adb --out phone.json            # the Android demo's headless benchmark
  pocketbert bench s3_bundle --device adb:SERIAL --binary benchmark_model --out phone.json
  pocketbert bench s3_bundle --device qemu:cortex-a55 --out a55.json    # golden parity on an emulated Arm core
  pocketbert bench new_bundle --compare old=old_bundle --threads 1 --out ab.json   # two exports, one interleaved run

Latency at real lengths: the dev suite's sentences (or --texts FILE...) are tokenized as the apps tokenize,
and each format/quant is timed on a seeded sample of them (--text-sample) the way an app calls it: the
smallest bucket that holds the text, padded, or the text's own length for a dynamic-length artifact.
"""


def _int_list(text: str, flag: str) -> list[int]:
    from pocketbert.errors import PocketBertError

    try:
        values = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise PocketBertError(f"{flag} {text!r}: give comma-separated positive integers, e.g. 1,2") from None
    if not values or any(v < 1 for v in values):
        raise PocketBertError(f"{flag} {text!r}: give comma-separated positive integers, e.g. 1,2")
    return list(dict.fromkeys(values))


def add_arguments(p) -> None:
    from pocketbert.commands import default
    from pocketbert.runtime_bench.bench import BenchOptions

    threads = ",".join(map(str, default(BenchOptions, "threads")))
    runs, warmup = default(BenchOptions, "runs"), default(BenchOptions, "warmup")
    p.add_argument("bundle", help="bundle folder written by `pocketbert export`")
    p.add_argument("--threads", default=threads, help=f"comma-separated thread counts (default {threads})")
    p.add_argument("--seq-len", default=None, help="comma-separated buckets to measure (default: all in the bundle)")
    p.add_argument("--runs", type=int, default=runs, help=f"timed inferences per row (default {runs})")
    p.add_argument("--warmup", type=int, default=warmup, help=f"untimed inferences per row before timing (default {warmup})")
    p.add_argument("--rounds", type=int, default=None, help="interleaving rounds (default: --runs, i.e. one timed run per row per round: A B A B ...)")
    p.add_argument("--formats", default=None, help="only these formats, e.g. onnx,tflite (default: all)")
    p.add_argument("--baseline", choices=["teacher", "peers", "teacher,peers"], default=None,
                   help="also measure the bundle's teacher and/or the public peers pocketbert knows "
                        "(paraphrase-MiniLM-L3-v2) as users run them today (eager fp32, ONNX Runtime fp32/int8)")
    p.add_argument("--peer", action="append", default=[], metavar="MODEL",
                   help="a peer to measure beside the bundle (repeatable): a named peer, a sentence-transformers "
                        "folder, or an .onnx encoder with --peer-tokenizer")
    p.add_argument("--peer-tokenizer", default=None, help="tokenizer folder (or `minilm`) for an .onnx --peer")
    p.add_argument("--teacher", default=None,
                   help="teacher HF folder or `minilm` for --baseline (default: the teacher the bundle's manifest records)")
    p.add_argument("--cache", default=None, help="folder for the teacher's ONNX baseline files (default ~/.cache/pocketbert)")
    p.add_argument("--quality", nargs="+", default=None, metavar="EVAL_JSON",
                   help="`pocketbert eval ... --json` outputs (of this bundle and/or the teacher) to attach STS "
                        "quality to rows, for the report's quality-vs-latency plot")
    p.add_argument("--no-profile", action="store_true", help="skip the per-operator profiles")
    p.add_argument("--compare", action="append", default=[], metavar="[LABEL=]BUNDLE",
                   help="another bundle of the same student (e.g. an older export) whose artifacts run in the same "
                        "interleaved rounds, rows named LABEL:file; each artifact gets its speed-up over the compared "
                        "one of the same format and quantization (repeatable)")
    p.add_argument("--texts", nargs="+", default=None, metavar="FILE",
                   help="text/TSV/CSV files whose sentences give the latency at real lengths, each text called as an "
                        "app calls it (default: the dev suite's sentences in ../shared/data, when found)")
    sample = default(BenchOptions, "text_sample")
    p.add_argument("--text-sample", type=int, default=sample,
                   help=f"texts sampled (seeded) from --texts for the real-length latency; 0 skips it (default {sample})")
    p.add_argument("--device", default=default(BenchOptions, "device"),
                   help="host (default), adb / adb:SERIAL for an Android phone, or qemu[:CORE] for an emulated Arm core "
                        "(cortex-a55 default, cortex-a76, ...; run `pocketbert setup-arm64` first)")
    p.add_argument("--binary", default=None,
                   help="adb only: a benchmark binary to push and run (LiteRT benchmark_model or ExecuTorch "
                        "executor_runner) instead of the demo app")
    package, timeout = default(BenchOptions, "package"), default(BenchOptions, "timeout")
    p.add_argument("--package", default=package, help=f"adb only: the demo app's package (default {package})")
    p.add_argument("--timeout", type=float, default=timeout,
                   help=f"adb only: seconds to wait for the phone's results (default {timeout:g})")
    p.add_argument("--out", required=True, help="results JSON file")


def run(args):
    from pocketbert.build import references
    from pocketbert.console import say
    from pocketbert.errors import PocketBertError
    from pocketbert.pipeline.suite import dev_files
    from pocketbert.runtime_bench.bench import BenchOptions, main

    wanted = set((args.baseline or "").split(","))
    opts = BenchOptions(
        bundle=args.bundle, out=args.out, device=args.device, threads=_int_list(args.threads, "--threads"),
        seq_lens=_int_list(args.seq_len, "--seq-len") if args.seq_len else None, runs=args.runs,
        warmup=args.warmup, rounds=args.rounds,
        formats=[f.strip() for f in args.formats.split(",") if f.strip()] if args.formats else None,
        baseline="teacher" if "teacher" in wanted else None, quality=args.quality or [], profile=not args.no_profile,
        cache=args.cache, binary=args.binary, package=args.package, timeout=args.timeout,
        command=args.command_line, compare=args.compare, texts=args.texts, text_sample=args.text_sample)
    if (args.baseline or args.peer) and opts.device != "host":
        raise PocketBertError(f"--baseline and --peer are measured on this host: drop them with --device {opts.device}")
    # Every option is checked: now the teacher and peers are resolved (a named peer is imported the first time).
    opts.teacher, opts.peers = references(args.teacher, (["default"] if "peers" in wanted else []) + args.peer,
                                          args.peer_tokenizer)
    if opts.texts is None and opts.device == "host" and opts.text_sample:
        opts.texts = [str(p) for p in dev_files()] or None  # the dev suite's sentences, when the data is here
    return main(opts, log=say)
