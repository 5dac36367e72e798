"""ONNX: `torch.onnx.export(dynamo=True)` to one file, quantized by ONNX Runtime's quantizers.

int8: `quantize_dynamic` (int8 MatMul and Gather weights), the MatMuls whose inputs carry outliers (attention
output projections, a factorized E -> H mapping) as 8-bit MatMulNBits with per-block activation quantization
(`_int8`). int8-static: `quantize_static` in QDQ form with
a `CalibrationDataReader` over corpus text. int4: `MatMulNBitsQuantizer` (MatMulNBits, and the embedding
Gather as GatherBlockQuantized with fp16 scales). int4-mixed: the nodes of the sensitive parts, found by
the module path the exporter writes into each node's `namespace` metadata, get `quantize_dynamic` int8,
then the rest int4.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from pocketbert.errors import PocketBertError

from . import formats
from .quant import QuantRecipe
from .wrapper import INPUT_NAMES, dynamic_shapes

OPSET = 18
# ONNX Runtime plans per run; the dynamic int8 graph cost the same as a static one at equal length
# (2-layer student: 2.80 vs 2.96 ms CPU at 32 tokens, 10.53 vs 10.56 at 128).
DYNAMIC_LENGTH = True

# ONNX Runtime runs on every host pocketbert exports on: parity always runs (formats.Exporter).
unavailable_reason, check_spec = formats.runs_everywhere, formats.no_spec_check

log = logging.getLogger("pocketbert.export.onnx")


def _rename_io(model, output_name: str) -> None:
    """Name the graph output `output_name`; an internal value of that name (the exporter names the
    embedding gather `embedding`) is renamed first so the graph stays valid."""
    g = model.graph
    old = g.output[0].name
    if old == output_name:
        return
    taken = {v for n in g.node for v in n.output} | {i.name for i in g.initializer}
    if output_name in taken:
        fresh = output_name + "_internal"
        for n in g.node:
            n.output[:] = [fresh if v == output_name else v for v in n.output]
            n.input[:] = [fresh if v == output_name else v for v in n.input]
        for vi in g.value_info:
            if vi.name == output_name:
                vi.name = fresh
    for n in g.node:
        n.output[:] = [output_name if v == old else v for v in n.output]
        n.input[:] = [output_name if v == old else v for v in n.input]
    g.output[0].name = output_name


def _is_table(name: str) -> bool:
    """An embedding table: the word rows, and with a dynamic length the position rows too (a Gather by arange(T);
    a static length folds them into a constant), so `embeddings` kept at int8 keeps both."""
    return any(t in name for t in ("word_embeddings", "position_embeddings", "token_type_embeddings"))


def _part_nodes(model, parts: list[str]) -> list[str]:
    """Names of the MatMul / Gather nodes that belong to `parts` (`embeddings`, `layer.{i}.attention`, ...).

    The exporter writes each node's module path into its `namespace` metadata, e.g.
    `.../encoder.encoder.layer.0.attention.self.query: torch.nn.modules.linear.Linear/linear: aten.linear.default`.
    """
    from .quant import EMBEDDING_TABLE, part_modules

    paths = {path for part in parts for path in part_modules(part)}
    names = []
    for node in model.graph.node:
        namespace = next((p.value for p in node.metadata_props if p.key == "namespace"), "")
        if node.op_type == "Gather" and EMBEDDING_TABLE in paths and _is_table(node.input[0]):
            names.append(node.name)
        elif node.op_type == "MatMul" and any(f"/{path}: " in namespace for path in paths):
            names.append(node.name)
    return names


# MatMuls whose input carries a few large outliers that one per-tensor activation scale cannot hold (`_int8`):
# the attention output projections (their input is the heads' context) and a factorized student's E -> H mapping
# (its input is the embedding LayerNorm's output).
OUTLIER_INPUTS = (".attention.output.dense: ", ".embedding_hidden_mapping_in: ")


def _outlier_matmuls(model) -> list[str]:
    """Names of the MatMul nodes of OUTLIER_INPUTS (found by the module path in each node's namespace)."""
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and any(
        p.key == "namespace" and any(m in p.value for m in OUTLIER_INPUTS) for p in n.metadata_props)]


def _int8(src: Path, dst: Path, model, nodes: list[str] | None = None) -> None:
    """Dynamic int8 of `nodes` of `model` (the graph in `src`; None: every MatMul and Gather) into `dst`.

    `quantize_dynamic` (MatMulInteger / DynamicQuantizeMatMul, per-channel int8 weights), except OUTLIER_INPUTS:
    ONNX Runtime quantizes each activation with one uint8 scale per tensor, and the inputs of those MatMuls carry
    a few large outliers. On the default student (60 steps) the golden cases' minimum cosine to PyTorch was 0.970
    (parity needs 0.99); with only the two attention output projections left fp32, 0.9968. On the factorized
    build-sts student 0.957; the attention outputs alone 0.977, the E -> H mapping alone 0.974, both 0.9985.
    They become MatMulNBits instead, 8-bit weights in blocks of 32 with int8 compute on activations quantized
    per block (accuracy_level 4): minimum cosine 0.9966 (default student), int8's size, 12% more CPU time at
    seq 128 (8.41 -> 9.46 ms, interleaved; fp32 there: 9.17 ms and 0.9 MB more). ExecuTorch and LiteRT quantize
    activations per token and do not have the problem (0.9996 and 0.9993).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    from .quant import INT4_GROUP

    wanted = set(nodes) if nodes is not None else {n.name for n in model.graph.node if n.op_type in ("MatMul", "Gather")}
    blockwise = [n for n in _outlier_matmuls(model) if n in wanted]
    per_tensor = [n.name for n in model.graph.node if n.name in wanted and n.name not in blockwise]
    mid = dst.with_name(dst.stem + ".int8.onnx")
    if per_tensor:  # (an empty nodes_to_quantize would mean every node)
        quantize_dynamic(str(src), str(mid if blockwise else dst), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_quantize=per_tensor, op_types_to_quantize=["MatMul", "Gather"])
    else:
        shutil.copyfile(src, mid if blockwise else dst)
    if blockwise:
        cfg = DefaultWeightOnlyQuantConfig(block_size=INT4_GROUP, is_symmetric=True, accuracy_level=4, bits=8,
                                           op_types_to_quantize=("MatMul",), quant_axes=(("MatMul", 0),))
        graph = onnx.load(str(mid))
        # nodes_to_include adds to op_types_to_quantize, it does not restrict it (ORT 1.32): every other MatMul
        # is excluded by name, or int4-mixed's layers would be quantized here at 8 bits before `_int4` sees them
        others = [n.name for n in graph.graph.node if n.op_type == "MatMul" and n.name not in blockwise]
        q = MatMulNBitsQuantizer(graph, nodes_to_exclude=others, algo_config=cfg)
        q.process()
        onnx.save(q.model.model, str(dst))
        mid.unlink()


class _Calibration:
    """onnxruntime CalibrationDataReader over (input_ids, attention_mask) pairs."""

    def __init__(self, pairs: list):
        self._it = iter([{"input_ids": np.asarray(i, np.int32), "attention_mask": np.asarray(m, np.int32)} for i, m in pairs])

    def get_next(self):
        return next(self._it, None)


def _int4(src: Path, dst: Path, exclude: list[str]) -> None:
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    from .quant import INT4_GROUP

    cfg = DefaultWeightOnlyQuantConfig(block_size=INT4_GROUP, is_symmetric=True, op_types_to_quantize=("MatMul", "Gather"),
                                       quant_axes=(("MatMul", 0), ("Gather", 1)))
    model = onnx.load(str(src))
    tables = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if "word_embeddings" in t.name}
    q = MatMulNBitsQuantizer(model, nodes_to_exclude=exclude, algo_config=cfg)
    q.process()
    model = q.model.model
    _symmetric_tables(model, tables)
    _fp16_gather_scales(model)
    onnx.save(model, str(dst))


def _symmetric_tables(model, tables: dict) -> None:
    """Re-quantize each word table's GatherBlockQuantized (int4, no zero points) on the grid the other runtimes
    use (`pipeline.quantize.symmetric_blocks`: absmax / 7, fp16 scales), in place.

    ORT's blockwise quantizer divides by 8, so a table snapped to the /7 grid (`table_int4`) came out
    re-quantized: on the build-sts student the int4-mixed gate measured 0.871 (fail) where ExecuTorch and
    LiteRT, which recover the grid, measured 0.913 and 0.904. On the grid, ONNX Runtime's table is theirs.
    """
    from onnx import TensorProto, helper, numpy_helper

    from pocketbert.pipeline.quantize import pack_int4, symmetric_blocks

    from .quant import INT4_GROUP

    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        name = node.input[0].removesuffix("_Q4")
        if node.op_type != "GatherBlockQuantized" or name not in tables or len(node.input) > 3:
            continue
        table = torch.from_numpy(np.array(tables[name], dtype=np.float32))  # a writable copy
        q, scale = symmetric_blocks(table, 4, INT4_GROUP, fp16_scale=True)  # (V, E/32, 32), (V, E/32, 1)
        data, scales = inits[node.input[0]], inits[node.input[2]]
        # packed raw bytes, two's complement nibbles (ONNX's INT4) over the flattened table (a value list would be
        # stored as varints, 1.4x the size)
        packed = pack_int4(q.reshape(-1)).numpy().tobytes()
        data.CopyFrom(helper.make_tensor(data.name, TensorProto.INT4, list(table.shape), packed, raw=True))
        scales.CopyFrom(numpy_helper.from_array(scale.squeeze(-1).numpy().astype(np.float32), scales.name))


def _fp16_gather_scales(model) -> None:
    """Store each GatherBlockQuantized's scales as fp16 and cast its output back to fp32, in place.

    The quantizer writes one fp32 scale per block of 32 values: for the word embedding (V, 384) that is
    V x 12 x 4 bytes, a quarter of the size of the int4 data itself (2-layer student, V = 18275: 0.88 MB
    of 6.89 MB). GatherBlockQuantized takes fp16 scales (its output is then fp16); the fp16 rounding
    (relative 5e-4) is far below the int4 step, and moved the output of a 128-token input by at most
    5e-5 (cosine 1.0000). MatMulNBits keeps fp32 scales: its scales share the activations' type.
    """
    from onnx import TensorProto, helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        nodes.append(node)
        if node.op_type != "GatherBlockQuantized":
            continue
        scales = inits[node.input[2]]
        scales.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scales).astype(np.float16), scales.name))
        out = node.output[0]
        node.output[0] = out + "_fp16"
        nodes.append(helper.make_node("Cast", [node.output[0]], [out], to=TensorProto.FLOAT, name=f"{node.name}_to_fp32"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _to_onnx(module: torch.nn.Module, example_inputs: tuple, dst: Path, output_name: str, dynamic: bool):
    """The fp32 graph: `torch.onnx.export(dynamo=True)` into `dst`; returns it loaded, its output named
    `output_name` and checked (`dst` keeps the exporter's names)."""
    import onnx

    torch.onnx.export(module, example_inputs, str(dst), dynamo=True, external_data=False, optimize=True,
                      opset_version=OPSET, input_names=list(INPUT_NAMES), verbose=False,
                      dynamic_shapes=dynamic_shapes(example_inputs[0].shape[1]) if dynamic else None)
    model = onnx.load(str(dst))
    _rename_io(model, output_name)
    onnx.checker.check_model(model)
    return model


def _int8_static(src: Path, dst: Path, calibration: list) -> None:
    """`quantize_static` in QDQ form, its activation ranges calibrated on `calibration` ((ids, mask) pairs).

    uint8 asymmetric activations (ORT's U8S8): symmetric int8 ones wasted half the range on BERT's skewed
    post-LayerNorm/GELU activations (2-layer MiniLM student: mean cosine to fp32 0.92 symmetric, 0.97 asymmetric,
    on 60 STS-B train sentences).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(str(src), str(dst), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul", "Gather"], calibrate_method=CalibrationMethod.MinMax)


def _quantize(model, fp32: Path, dst: Path, recipe: QuantRecipe, calibration: list | None) -> None:
    """Quantize the fp32 graph `model` into `dst` as `recipe` says (the module docstring). `fp32` is a scratch
    path in a temporary folder (ONNX Runtime's quantizers read and write files); its folder takes their
    intermediate files too."""
    import onnx

    # The exporter's value_info can disagree with ONNX Runtime's rewritten graph (a classifier
    # Gemm failed shape inference: (32) vs (3)); the quantizer re-infers shapes without it.
    del model.graph.value_info[:]
    onnx.save(model, str(fp32))
    if recipe.calibrated:
        if not calibration:
            raise PocketBertError("onnx int8-static needs calibration inputs")
        _int8_static(fp32, dst, calibration)
    elif recipe.weight_bits == 8:
        _int8(fp32, dst, model)
    elif not (keep := _part_nodes(model, list(recipe.keep_int8))):  # int4 (int4-mixed keeps parts at int8)
        _int4(fp32, dst, [])
    else:
        # int4-mixed, int8 first: quantize_dynamic's shape inference fails on the opset-21 graph that
        # MatMulNBitsQuantizer writes (2-layer student); MatMulNBits then takes the fp32 rest.
        # The kept nodes stay excluded: an int8 Gather keeps its name and op type, and would be
        # quantized again (an invalid GatherBlockQuantized).
        int8 = fp32.with_name("int8.onnx")
        _int8(fp32, int8, model, keep)
        _int4(int8, dst, keep)


def export(module: torch.nn.Module, example_inputs: tuple, path: Path, recipe: QuantRecipe, output_name: str = "embedding",
           calibration: list | None = None, dynamic: bool = False) -> dict:
    """Write `path` (.onnx, weights inside the file) as `recipe` says (formats.Exporter). Returns notes: opset, ops.

    calibration: (input_ids, attention_mask) int32 (1, N) pairs (int8-static only).
    dynamic: the graph's sequence axis is symbolic (`seq_len`, any length from wrapper.MIN_SEQ_LEN to the example's N;
        ONNX Runtime plans per run), otherwise exactly N.
    """
    import onnx

    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        model = _to_onnx(module, example_inputs, fp32, output_name, dynamic)
        if recipe.weight_bits == 32:
            onnx.save(model, str(path))
        else:
            _quantize(model, fp32, path, recipe, calibration)
    final = onnx.load(str(path))
    opset = next(o.version for o in final.opset_import if o.domain in ("", "ai.onnx"))
    if opset != OPSET:
        # ORT's MatMulNBitsQuantizer raises the opset to 21 (its 4- and 8-bit blocks need it) and warns that the
        # result "may not be a valid model": the checker below validates it, and parity against PyTorch follows
        onnx.checker.check_model(final)
        log.debug("onnx %s: opset %d -> %d by ORT's MatMulNBitsQuantizer; onnx.checker passed", recipe.name, OPSET, opset)
    return {"opset": opset, "ops": sorted({n.op_type for n in final.graph.node})}


class Runner:
    """One ONNX Runtime session; call with int32 (1, N) arrays."""

    def __init__(self, path: Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": np.asarray(input_ids, dtype=np.int32), "attention_mask": np.asarray(attention_mask, dtype=np.int32)}
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)


def load(path: Path, threads: int = 1) -> Runner:
    return Runner(path, threads=threads)
