"""pocketbert: compact BERT-family encoders, distilled, quantized and exported into verified mobile bundles.

The stages live in `pocketbert.pipeline` (students, distillation, evaluation), `pocketbert.export` (artifacts,
verify, the geometry gate) and `pocketbert.runtime_bench` (measurements, reports); each is its own folder
mapped under this one import root. The root package holds what they share and what drives them:

- `errors` (the one bad-input exception) and `files` (atomic output folders, JSON, content hashes, provenance);
- `bundle/`, the bundle contract, torch-free: the typed manifest, artifact names, golden inputs, tolerances and
  parity checks that export writes and every reader applies (export/BUNDLE.md);
- `cli` and `commands/` (one thin module per `pocketbert` subcommand), `build` (the typed build recipe and its
  plan of stages), `stages` (stages that talk through files and are skipped when nothing changed) and
  `recipes/` (the shipped build recipes; `build-default.yaml` is what `make build` runs).
"""

__version__ = "0.1.0"
