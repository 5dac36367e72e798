"""The tiny chain, end to end through the real CLI: pretrain a tiny teacher, distil a 2-layer student with
the triple loss, and check DistilBERT's ablation direction: on held-out text the student initialised from
teacher layers beats the same student trained for the same steps from random initialisation."""

from __future__ import annotations

import json

import pytest
import torch

from pocketbert.cli import main
from pocketbert.pipeline.checkpoint import load_checkpoint
from pocketbert.pipeline.data import read_texts, tokenize
from pocketbert.pipeline.evaluate import mlm_accuracy
from pocketbert.pipeline.tokenizer import Tokenizer

from helpers.checkpoints import write_tiny_tokenizer
from helpers.texts import synthetic_corpus

pytestmark = pytest.mark.integration

STEPS = 150


def _heldout_accuracy(ckpt, texts) -> float:
    loaded = load_checkpoint(ckpt)
    tok = Tokenizer(loaded.path)
    ids = tokenize(tok, texts, 32)
    return mlm_accuracy(loaded.model, ids, tok.pad_id, sorted(tok.special_ids.values()), tok.mask_id,
                        loaded.model.config.vocab_size, seed=7)


def test_tiny_chain_pretrain_then_distil_beats_random_init(tmp_path, capsys):
    torch.set_num_threads(1)
    tok = tmp_path / "tok"
    write_tiny_tokenizer(tok)
    corpus = synthetic_corpus(tmp_path / "corpus.txt", 3000, seed=0)
    heldout = read_texts([str(synthetic_corpus(tmp_path / "heldout.txt", 300, seed=1))]).texts
    teacher = tmp_path / "teacher"
    assert main(["pretrain", "pretrain-tiny", f"model.tokenizer={tok}", f"data.train=[{corpus}]", f"out={teacher}",
                 "train.max_steps=1000", "train.threads=1", "train.eval_every=500", "--json"]) == 0
    teacher_acc = _heldout_accuracy(teacher, heldout)
    assert teacher_acc > 40.0, teacher_acc  # the structure (subject -> verb -> object) is learnt

    common = ["distill", "distill-triple-tiny", f"teachers=[{teacher}]", f"data.train=[{corpus}]", "student.layers=0,3",
              f"train.max_steps={STEPS}", "train.threads=1", "train.eval_every=50"]
    distilled, scratch = tmp_path / "distilled", tmp_path / "scratch"
    assert main([*common, f"out={distilled}", "--json"]) == 0
    assert main([*common, f"out={scratch}", "student.init=random", "--json"]) == 0
    capsys.readouterr()

    acc_distilled = _heldout_accuracy(distilled, heldout)
    acc_scratch = _heldout_accuracy(scratch, heldout)
    print(f"held-out MLM accuracy: teacher {teacher_acc:.1f}, distilled {acc_distilled:.1f}, "
          f"random init {acc_scratch:.1f}")
    assert acc_distilled > acc_scratch + 10.0, (acc_distilled, acc_scratch)
    rec = json.loads((distilled / "pocketbert.json").read_text())
    assert rec["objective"] == "triple" and rec["layer_map"] == [0, 3]
    assert rec["recipe"]["loss"]["alpha_ce"] == 5.0 and rec["recipe"]["loss"]["temperature"] == 2.0
    assert rec["parent"]["path"] == str(teacher.resolve())
    assert load_checkpoint(distilled).model.config.num_hidden_layers == 2
