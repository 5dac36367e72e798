"""The parts int4-mixed keeps at int8, and how each backend finds their ops (no export needed)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pocketbert.errors import PocketBertError
from pocketbert.export.quant import QuantRecipe, part_modules

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


@pytest.fixture(scope="module")
def factorized(tmp_path_factory):
    """A tiny factorized (ALBERT) student, E = 64 -> H = 128: two int4 blocks per row of the mapping, so its
    int8 (one scale per row) and int4 (two) forms differ in every runtime."""
    from pocketbert.export.wrapper import TaskModule
    from pocketbert.pipeline.checkpoint import load_checkpoint

    from helpers.checkpoints import make_hf_checkpoint

    path = make_hf_checkpoint(tmp_path_factory.mktemp("albert") / "ckpt", "albert", embedding_size=64, hidden_size=128,
                              num_hidden_layers=2, intermediate_size=128, num_hidden_groups=2)
    return TaskModule(load_checkpoint(path).model).eval()


@pytest.mark.integration
def test_the_factorized_mapping_is_a_part_each_runtime_keeps_at_int8(factorized, tmp_path):
    """The E -> H mapping is quantized by every int4 recipe, so the plan must see it (eager) and int4-mixed
    must be able to keep it at int8 in ExecuTorch, LiteRT and ONNX Runtime."""
    import copy

    import onnx
    import torch

    from pocketbert.export import executorch, tflite
    from pocketbert.export import onnx as ox
    from pocketbert.export.gate import _quantized, model_parts
    from pocketbert.export.quant import EMBEDDING_MAPPING

    assert part_modules("embedding_mapping") == [EMBEDDING_MAPPING]
    assert model_parts(factorized)[:2] == ["embeddings", "embedding_mapping"]
    with torch.inference_mode():  # as in mixed_plan
        quantized = _quantized(factorized, {"embedding_mapping": 4}, 32)
    changed = {n for n, p in factorized.named_parameters() if not torch.equal(p, quantized.get_parameter(n))}
    assert changed == {EMBEDDING_MAPPING + ".weight"}

    keep = ["embedding_mapping"]
    et = executorch._torchao_int4(copy.deepcopy(factorized), 32, keep)  # XNNPACK's quantized weights
    assert et.get_submodule(EMBEDDING_MAPPING).weight.qdata.max() > 7  # int8
    assert et.get_submodule("encoder.encoder.layer.0.attention.self.query").weight.qdata.max() <= 7  # int4

    example = (torch.ones(1, 16, dtype=torch.int32), torch.ones(1, 16, dtype=torch.int32))
    tflite.export(factorized, example, tmp_path / "m.tflite", QuantRecipe.of("tflite", "int4-mixed", keep))
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tmp_path / "m.tflite"))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    scales = {}  # FULLY_CONNECTED output name -> number of weight scales (int8: one per row; int4: one per 32 inputs)
    for op in interp._get_ops_details():
        if op["op_name"] == "FULLY_CONNECTED":
            scales[tensors[op["outputs"][0]]["name"]] = len(tensors[op["inputs"][1]]["quantization_parameters"]["scales"])
    assert [n for n, s in scales.items() if s == 128] == [n for n in scales if "Linear_embedding_hidden_mapping_in;" in n
                                                          and ";;" not in n]
    assert sum(s == 128 * 128 // 32 for s in scales.values()) == len(scales) - 1  # the layers' linears at int4

    ox.export(factorized, example, tmp_path / "m.onnx", QuantRecipe.of("onnx", "int4-mixed", keep))
    # the kept mapping is 8-bit MatMulNBits (its input carries outliers: onnx.OUTLIER_INPUTS), the layers 4-bit
    nbits = [next(a.i for a in n.attribute if a.name == "bits")
             for n in onnx.load(str(tmp_path / "m.onnx")).graph.node if n.op_type == "MatMulNBits"]
    assert sorted(nbits) == [4] * (2 * 6) + [8]

    from pocketbert.export import coreml

    notes = coreml.export(factorized, example, tmp_path / "m.mlpackage", QuantRecipe.of("coreml", "int4-mixed", keep))
    assert notes["weight_dtypes"]["int8"] == 1 and notes["weight_dtypes"]["int4"] == 1 + 2 * 6  # table + layers


def test_int4_mixed_under_a_size_budget_keeps_the_most_at_int8_that_fits(factorized, tiny_student, tmp_path, capsys):
    """`max_bytes`: every part starts at int8; the least sensitive per weight go to int4 until the estimate
    fits. A budget even all-int4 cannot meet is a one-line error, and so is --max-mb without int4-mixed."""
    import torch

    from pocketbert.cli import main
    from pocketbert.errors import PocketBertError
    from pocketbert.export.gate import estimated_bytes, mixed_plan, model_parts

    parts = model_parts(factorized)
    all8, all4 = estimated_bytes(factorized, [], 32), estimated_bytes(factorized, parts, 32)
    assert all4 < estimated_bytes(factorized, parts[:1], 32) < all8
    ids = torch.randint(5, 200, (1, 12)).numpy()
    probe = [(16, ids, ids * 0 + 1) for _ in range(12)]
    roomy = mixed_plan(factorized, probe, 32, 0.9, max_bytes=all8)
    assert roomy["kept_int8"] == parts and roomy["budget"]["estimated_mb"] <= roomy["budget"]["max_mb"]
    tight = mixed_plan(factorized, probe, 32, 0.9, max_bytes=(all8 + all4) // 2)
    int4 = [p for p in parts if p not in tight["kept_int8"]]
    assert int4 and tight["kept_int8"] and estimated_bytes(factorized, int4, 32) <= (all8 + all4) // 2
    with pytest.raises(PocketBertError, match="even all int4 is about .* MB, over the"):
        mixed_plan(factorized, probe, 32, 0.9, max_bytes=all4 - 1)

    out = tmp_path / "b"
    assert main(["export", str(tiny_student), "--out", str(out), "--quant", "int8", "--max-mb", "6"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "add int4-mixed to --quant" in err and not out.exists()


@pytest.mark.integration
def test_onnx_int4_table_is_on_the_shared_grid(factorized, tmp_path):
    """ONNX Runtime's int4 word table holds the same grid as ExecuTorch and LiteRT (absmax / 7, fp16 scales),
    so a table snapped to it (`table_int4`) survives exactly, where ORT's own quantizer (absmax / 8) re-rounded it."""
    import copy

    import onnx
    import torch
    from onnx import numpy_helper

    from pocketbert.export import onnx as ox
    from pocketbert.export.quant import EMBEDDING_TABLE
    from pocketbert.pipeline.quantize import fake_quant

    module = copy.deepcopy(factorized)
    table = module.get_submodule(EMBEDDING_TABLE).weight
    with torch.no_grad():
        table.copy_(fake_quant(table, 4, 32, fp16_scale=True))
    example = (torch.ones(1, 16, dtype=torch.int32), torch.ones(1, 16, dtype=torch.int32))
    ox.export(module, example, tmp_path / "m.onnx", QuantRecipe.of("onnx", "int4"))
    model = onnx.load(str(tmp_path / "m.onnx"))
    inits = {t.name: t for t in model.graph.initializer}
    node = next(n for n in model.graph.node if n.op_type == "GatherBlockQuantized" and "word_embeddings" in n.input[0])
    q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)  # (V, E) int4 values
    scales = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)  # (V, E/32) fp16
    restored = (q.reshape(q.shape[0], -1, 32) * scales[..., None]).reshape(q.shape)
    assert np.array_equal(restored, table.detach().numpy())
    assert len(inits[node.input[0]].raw_data) == q.size // 2  # packed: half a byte per value
