"""Every format's module is an Exporter, and each receives its quantization as a QuantRecipe checked once."""

from __future__ import annotations

import dataclasses

import pytest

from pocketbert.bundle.naming import FORMATS
from pocketbert.errors import PocketBertError
from pocketbert.export import formats
from pocketbert.export.quant import INT4_GROUP, RECIPES, QuantRecipe


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_module_is_an_exporter(fmt):
    mod = formats.module(fmt)
    assert isinstance(mod, formats.Exporter)
    assert isinstance(mod.DYNAMIC_LENGTH, bool)
    assert mod.unavailable_reason() is None or fmt == "coreml"  # Core ML predicts only on macOS


def test_a_quant_recipe_is_checked_when_built():
    mixed = QuantRecipe.of("onnx", "int4-mixed", ["embeddings", "layer.0.ffn"])
    assert (mixed.weight_bits, mixed.group, mixed.activations) == (4, INT4_GROUP, "dynamic")
    assert mixed.keep_int8 == ("embeddings", "layer.0.ffn") and mixed.embedding_bits == 8
    assert mixed.description == RECIPES[("onnx", "int4-mixed")] and not mixed.calibrated
    assert mixed.keeping(["layer.1"]).keep_int8 == ("layer.1",)
    assert QuantRecipe.of("executorch", "int4").embedding_bits == 4
    assert QuantRecipe.of("executorch", "int8").embedding_bits == 8
    assert QuantRecipe.of("tflite", "int8-static").calibrated
    assert (QuantRecipe.of("coreml", "fp16").weight_bits, QuantRecipe.of("coreml", "fp16").activations) == (16, "float")
    with pytest.raises(dataclasses.FrozenInstanceError):
        mixed.name = "int4"  # type: ignore[misc]
    for args, needle in [(("executorch", "fp16"), "executorch has no fp16 mode"),
                         (("coreml", "int8-static"), "coreml cannot do int8-static"),
                         (("onnx", "int3"), "unknown quantization 'int3'"),
                         (("onnx", "int4", ["embeddings"]), "only int4-mixed does"),
                         (("onnx", "int4-mixed", ["pooler"]), "unknown model part 'pooler'")]:
        with pytest.raises(PocketBertError, match=needle):
            QuantRecipe.of(*args)


def test_export_config_builds_each_formats_recipes_once():
    from pocketbert.export.bundle import ExportConfig, _header

    cfg = ExportConfig(checkpoint="ckpt", out="out/bundle", formats=["onnx", "tflite"], quants=["int8", "fp32"])
    assert cfg.rungs("onnx") == [QuantRecipe.of("onnx", "int8"), QuantRecipe.of("onnx", "fp32")]
    assert _header(cfg) == "export: 2 formats x 2 quants x 1 length -> bundle"
    with pytest.raises(PocketBertError, match="coreml cannot do int8-static"):
        ExportConfig(checkpoint="ckpt", out="out", formats=["coreml"], quants=["int8-static"], corpus=["a"])
