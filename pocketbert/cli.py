"""`pocketbert` command line: one subcommand per module in `pocketbert/commands/`.

Each command module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> (result, text)`:
`result` is what `--json` prints, `text` what a person reads. Bad input raises `PocketBertError`
(or `ValueError` / `FileNotFoundError` from validation), printed here as one line with exit code 2;
set POCKETBERT_DEBUG=1 for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shlex
import sys

# name -> module under pocketbert.commands; the order is the order of `pocketbert --help`.
# A name whose module is not there (yet) is left out of the parser.
COMMANDS = [
    "build", "student", "distill", "pretrain", "finetune", "encode", "export", "verify", "eval", "embed",
    "bench", "report", "setup-arm64", "setup-swift",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pocketbert",
        description="Distil, quantize and export compact BERT-family encoders into verified mobile bundles.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module_name = f"pocketbert.commands.{name.replace('-', '_')}"
        if importlib.util.find_spec(module_name) is None:
            continue
        mod = importlib.import_module(module_name)
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.add_argument("--json", action="store_true", help="print a machine-readable JSON result on stdout")
        p.add_argument("-v", "--verbose", action="store_true",
                       help="show every library's output on the terminal (by default a build sends it to its log)")
        p.set_defaults(_module=mod)
    return parser


def run_command(argv: list[str]) -> dict:
    """Run one `pocketbert` command line in-process and return its result dict (errors propagate).

    Used by `pocketbert build` to chain stages without re-importing torch per stage.
    """
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["pocketbert", *argv])  # provenance: handed to the library call
    result, text = args._module.run(args)
    if text:
        from pocketbert.console import say

        say(text)
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pocketbert import console
    from pocketbert.errors import PocketBertError

    args.command_line = shlex.join(["pocketbert", *(sys.argv[1:] if argv is None else argv)])
    log_file = getattr(args._module, "log_file", lambda a: None)(args)
    with console.session(verbose=args.verbose, log_file=log_file):
        try:
            result, text = args._module.run(args)
        except KeyboardInterrupt:
            print("pocketbert: interrupted; nothing half-written was left behind", file=console.stream())
            return 130
        except (PocketBertError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                PermissionError) as e:
            if os.environ.get("POCKETBERT_DEBUG"):
                raise
            msg = " ".join(str(e).split()) or type(e).__name__
            print(f"pocketbert {args.command}: error: {msg}", file=console.stream())
            console.discard_log()
            return 2
        if args.json:
            print(json.dumps(result, indent=2, ensure_ascii=False), file=console.out(), flush=True)
        elif text:
            print(text, file=console.out(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
