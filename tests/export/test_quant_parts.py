"""The parts int4-mixed keeps at int8, and how each backend finds their ops (no export needed)."""

from __future__ import annotations

import re

import pytest

from pocketbert.errors import PocketBertError
from pocketbert.export.quant import part_modules

# Op output tensor names as litert-torch writes them for the 2-layer student (module path per op; the key
# and value projections carry the query's path, an op can carry its neighbour's LayerNorm).
_P = "pocketbert.pipeline.models.encoder."
_L = "pocketbert.export.tflite._Named/pocketbert.export.wrapper.TaskModule_module/" + _P + "Encoder_encoder/"
TFLITE_NAMES = {
    "embedding": _L + _P + "Embeddings_embeddings/torch.nn.modules.sparse.Embedding_word_embeddings;2",
    "query": _L + _P + "Embeddings_embeddings/torch.nn.modules.normalization.LayerNorm_LayerNorm;;" + _L + _P
    + "Layer_0/" + _P + "Attention_attention/" + _P + "SelfAttention_self/torch.nn.modules.linear.Linear_query;1",
    "key": _L + _P + "Layer_0/" + _P + "Attention_attention/" + _P + "SelfAttention_self/torch.nn.modules.linear."
    "Linear_key;;" + _L + _P + "Layer_0/" + _P + "Attention_attention/" + _P + "SelfAttention_self/torch.nn.modules."
    "linear.Linear_query;1",
    "attention_output": _L + _P + "Layer_0/" + _P + "Attention_attention/" + _P + "SelfOutput_output/torch.nn.modules."
    "linear.Linear_dense;3",
    "intermediate": _L + _P + "Layer_0/" + _P + "Intermediate_intermediate/torch.nn.modules.linear.Linear_dense;1",
    "output": _L + _P + "Layer_0/" + _P + "Output_output/torch.nn.modules.linear.Linear_dense;2",
    "next_query": _L + _P + "Layer_0/" + _P + "Output_output/torch.nn.modules.normalization.LayerNorm_LayerNorm;;" + _L
    + _P + "Layer_1/" + _P + "Attention_attention/" + _P + "SelfAttention_self/torch.nn.modules.linear.Linear_query;1",
}


def test_part_modules_names_the_linears_of_each_part():
    assert part_modules("embeddings") == ["encoder.embeddings.word_embeddings"]
    assert part_modules("layer.1.ffn") == ["encoder.encoder.layer.1.intermediate.dense", "encoder.encoder.layer.1.output.dense"]
    assert len(part_modules("layer.0.attention")) == 4
    assert part_modules("layer.0") == part_modules("layer.0.attention") + part_modules("layer.0.ffn")
    for bad in ("layer", "layer.x", "layer.0.mlp", "pooler"):
        with pytest.raises(PocketBertError, match="unknown model part"):
            part_modules(bad)


@pytest.mark.parametrize("part, ops", [
    ("embeddings", {"embedding"}),
    ("layer.0.attention", {"query", "key", "attention_output"}),
    ("layer.0.ffn", {"intermediate", "output"}),
    ("layer.1.attention", {"next_query"}),
    ("layer.1.ffn", set()),
])
def test_tflite_part_regex_finds_exactly_the_parts_ops(part, ops):
    from pocketbert.export.tflite import _part_regex

    regex = _part_regex(part)
    assert {op for op, name in TFLITE_NAMES.items() if re.search(regex, name)} == ops
