"""pocketbert: compact BERT-family encoders, distilled, quantized and exported into verified mobile bundles.

The root package holds only what every stage shares (errors, atomic output folders, provenance);
the stages live in `pocketbert.pipeline`, `pocketbert.export` and `pocketbert.runtime_bench`.
"""

__version__ = "0.1.0"
