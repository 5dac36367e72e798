"""Student builder: layer selection copies teacher layer k into student layer i; vocabulary trimming."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from pocketbert.cli import main
from pocketbert.errors import PocketBertError
from pocketbert.pipeline.checkpoint import load_checkpoint
from pocketbert.pipeline.evaluate import embed_texts
from pocketbert.pipeline.student import is_single_char_piece, parse_layers, select_layers
from pocketbert.pipeline.tokenizer import Tokenizer


@pytest.mark.parametrize(("spec", "n", "expected"), [
    ("0,2,5", 6, [0, 2, 5]),
    ("5,0", 6, [5, 0]),
    ("every-other", 6, [0, 2, 4]),
    ("all", 3, [0, 1, 2]),
    ("first:2", 6, [0, 1]),
    ("last:2", 6, [4, 5]),
    ("uniform:2", 6, [0, 5]),
    ("uniform:3", 6, [0, 2, 5]),
    ("uniform:4", 12, [0, 4, 7, 11]),
])
def test_parse_layers(spec, n, expected):
    assert parse_layers(spec, n) == expected


@pytest.mark.parametrize("spec", ["0,6", "-1", "1,1", "", "a,b", "first", "uniform:9", "uniform:0"])
def test_parse_layers_rejects(spec):
    with pytest.raises(PocketBertError):
        parse_layers(spec, 6)


def test_layer_selection_copies_teacher_layer_k_into_student_layer_i(tiny_bert):
    teacher = load_checkpoint(tiny_bert).model
    layers = [2, 0]
    student = select_layers(teacher, layers)
    assert student.config.num_hidden_layers == 2
    ts, ss = teacher.state_dict(), student.state_dict()
    for i, k in enumerate(layers):
        keys = [key for key in ss if key.startswith(f"encoder.layer.{i}.")]
        assert len(keys) == 16
        for key in keys:
            torch.testing.assert_close(ss[key], ts[key.replace(f"encoder.layer.{i}.", f"encoder.layer.{k}.", 1)],
                                       rtol=0, atol=0)
    for key in ss:
        if not key.startswith("encoder.layer."):
            torch.testing.assert_close(ss[key], ts[key], rtol=0, atol=0)
    # and the student really computes teacher layer 2 then teacher layer 0
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        x = teacher.embeddings(ids, None)
        m = teacher.additive_mask(mask)
        for k in layers:
            x, _ = teacher.encoder.layer[k](x, m)
        assert_close(student(ids, mask).last_hidden_state, x, atol=1e-6, rtol=0)


def test_student_cli_writes_record(tiny_student, tiny_bert):
    rec = json.loads((tiny_student / "pocketbert.json").read_text())
    assert rec["layer_map"] == [0, 2] and rec["stage"] == "student"
    assert rec["parent"]["path"] == str(tiny_bert.resolve())
    assert "pocketbert student" in rec["provenance"]["command"]
    assert load_checkpoint(tiny_student).model.config.num_hidden_layers == 2


def test_trim_vocab_keeps_tokenization_and_outputs(tmp_path, tiny_bert, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the man is playing a guitar\na dog runs\n\nthe cat is happy\n", encoding="utf-8")
    out = tmp_path / "trimmed"
    assert main(["student", "--teacher", str(tiny_bert), "--layers", "0,2", "--trim-vocab", str(corpus),
                 "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    old, new = Tokenizer(tiny_bert), Tokenizer(out)
    assert result["vocab_size"] == len(new) < len(old)
    # every single-character piece and every special survives
    assert {t for t in old.vocab if is_single_char_piece(t)} <= set(new.vocab)
    assert new.special_ids.keys() == old.special_ids.keys()
    # same token strings on the corpus and on unseen text (nothing new becomes [UNK])
    texts = ["the man is playing a guitar", "zebras quickly jumped!", "Café déjà vu 123", "xylophone"]
    for t in texts:
        a = [old.vocab[i] for i in old.encode_ids([t])[0]]
        b = [new.vocab[i] for i in new.encode_ids([t])[0]]
        if t.startswith("the man"):
            assert a == b
        assert a.count("[UNK]") == b.count("[UNK]"), (t, a, b)
    # the corpus sentences embed exactly as before
    full = load_checkpoint(tiny_bert).model
    full = select_layers(full, [0, 2])
    before = embed_texts(full, old, texts[:1])
    after = embed_texts(load_checkpoint(out).model, new, texts[:1])
    np.testing.assert_allclose(before, after, atol=1e-6)
    rec = json.loads((out / "pocketbert.json").read_text())
    assert rec["vocab_trim"]["before"] == len(old) and rec["vocab_trim"]["after"] == len(new)


# -- wordfreq:LANG:N, a trimming vocabulary not tied to one corpus ------------------------------------------
# wordfreq 3.1.1's ten most frequent English words: the, to, and, of, a, in, i, is, for, that.
TOP10_WORDS_IN_TINY_VOCAB = {"the", "to", "and", "of", "in", "is", "for", "that"}  # `a` and `i`: single chars


def _multi_char_words(vocab: list[str]) -> set[str]:
    return {t for t in vocab if not is_single_char_piece(t) and not t.startswith(("##", "["))}


def test_wordfreq_source_keeps_the_pieces_of_the_top_words(tmp_path, tiny_bert, capsys):
    import hashlib

    import wordfreq

    out = tmp_path / "wf"
    assert main(["student", "--teacher", str(tiny_bert), "--layers", "0,2", "--trim-vocab", "wordfreq:en:10",
                 "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["vocab_size"] == len(Tokenizer(out))
    old, new = Tokenizer(tiny_bert).vocab, Tokenizer(out).vocab
    assert _multi_char_words(new) == TOP10_WORDS_IN_TINY_VOCAB  # `guitar`, `movie`, ... are gone
    # nothing else goes: specials and every single-character piece stay, in the old order
    assert [t for t in old if is_single_char_piece(t) or t.startswith("[")] == \
        [t for t in new if is_single_char_piece(t) or t.startswith("[")]
    assert "##ing" not in new  # a multi-character suffix none of the ten words uses
    rec = json.loads((out / "pocketbert.json").read_text())["vocab_trim"]
    assert rec["corpus"] == [] and rec["after"] == len(new) and rec["before"] == len(old) and rec["numbers"]
    words = wordfreq.top_n_list("en", 10, wordlist="best")
    assert rec["wordfreq"] == [{
        "spec": "wordfreq:en:10", "lang": "en", "n": 10, "wordlist": "best", "wordfreq_version": "3.1.1",
        "licence": "CC-BY-SA-4.0 (wordfreq data)",
        "words_sha256": hashlib.sha256("\n".join(words).encode()).hexdigest()}]


def test_wordfreq_and_a_corpus_file_keep_the_union(tmp_path, tiny_bert):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a man is playing a guitar\n", encoding="utf-8")
    out = tmp_path / "both"
    assert main(["student", "--teacher", str(tiny_bert), "--layers", "0", "--trim-vocab", str(corpus),
                 "wordfreq:en:10", "--out", str(out)]) == 0
    assert _multi_char_words(Tokenizer(out).vocab) == TOP10_WORDS_IN_TINY_VOCAB | {"man", "playing", "guitar"}
    rec = json.loads((out / "pocketbert.json").read_text())["vocab_trim"]
    assert rec["corpus"] == [str(corpus.resolve())] and [w["spec"] for w in rec["wordfreq"]] == ["wordfreq:en:10"]


@pytest.mark.parametrize(("spec", "needle"), [
    ("wordfreq:en", "write wordfreq:LANG:N"),
    ("wordfreq:en:0", "write wordfreq:LANG:N"),
    ("wordfreq:en:ten", "write wordfreq:LANG:N"),
    ("wordfreq::100", "write wordfreq:LANG:N"),
    ("wordfreq:en:10:x", "write wordfreq:LANG:N"),
    ("wordfreq:xx:100", "wordfreq has no list for 'xx'"),
    ("wordfreq:en:100000000", "use N <= "),
])
def test_a_bad_wordfreq_spec_is_a_one_line_error(tmp_path, tiny_bert, capsys, spec, needle):
    out = tmp_path / "bad"
    assert main(["student", "--teacher", str(tiny_bert), "--layers", "0", "--trim-vocab", spec,
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err and spec in err, err
    assert not out.exists()


def _teacher_with(tmp_path, tiny_bert, replace: dict[str, str]):
    """A copy of the tiny teacher whose vocabulary has some words replaced (same size: the table still fits)."""
    import shutil

    teacher = tmp_path / "teacher_copy"
    shutil.copytree(tiny_bert, teacher)
    vocab = (teacher / "vocab.txt").read_text(encoding="utf-8").splitlines()
    for old, new in replace.items():
        vocab[vocab.index(old)] = new
    (teacher / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return teacher


def test_wordfreq_trim_keeps_every_number_piece(tmp_path, tiny_bert):
    """wordfreq counts `2013` as `0000`, so a wordfreq trim keeps digit-only pieces; a file-only trim does not."""
    teacher = _teacher_with(tmp_path, tiny_bert, {"cello": "2013", "flute": "##00"})
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the man\n", encoding="utf-8")
    for trim, kept in [(["wordfreq:en:10"], True), ([str(corpus)], False)]:
        out = tmp_path / f"trimmed_{kept}"
        assert main(["student", "--teacher", str(teacher), "--layers", "0", "--trim-vocab", *trim,
                     "--out", str(out)]) == 0
        vocab = Tokenizer(out).vocab
        assert ("2013" in vocab, "##00" in vocab) == (kept, kept)
        assert json.loads((out / "pocketbert.json").read_text())["vocab_trim"]["numbers"] is kept


def test_trim_drops_placeholders_no_text_reaches(tmp_path, tiny_bert):
    """BERT's [unusedN] rows: no text tokenizes to them, so a trim drops them and tokenizes as before."""
    teacher = _teacher_with(tmp_path, tiny_bert, {"cello": "[unused0]"})
    out = tmp_path / "trimmed"
    corpus = tmp_path / "corpus.txt"  # it even names the placeholder
    corpus.write_text("[unused0] the [UNK] of [MASK]\n", encoding="utf-8")
    assert main(["student", "--teacher", str(teacher), "--layers", "0", "--trim-vocab", str(corpus),
                 "--out", str(out)]) == 0
    old, new = Tokenizer(teacher), Tokenizer(out)
    assert "[unused0]" in old.vocab and "[unused0]" not in new.vocab
    for text in ["[unused0] the [UNK] of [MASK]", "the [unused0]"]:
        assert [old.vocab[i] for i in old.encode_ids([text])[0]] == [new.vocab[i] for i in new.encode_ids([text])[0]]


def test_factorized_embedding_is_fitted_to_the_old_one(tiny_bert):
    """ALBERT layout (E-wide table, LayerNorm in E, E -> H mapping): the SVD start is refined by the fit, the
    transformer layers are copied unchanged, and the student's sentence embeddings stay close to the old ones."""
    from pocketbert.pipeline.student import factorize_embeddings

    model = load_checkpoint(tiny_bert).model.eval()
    gen = torch.Generator().manual_seed(0)
    corpus = [torch.randint(5, 100, (int(n),), generator=gen).tolist() for n in torch.randint(4, 20, (50,), generator=gen)]
    new, record = factorize_embeddings(model, 16, corpus, steps=300)
    assert new.config.factorized and new.config.embedding_size == 16
    assert new.embeddings.word_embeddings.weight.shape == (model.config.vocab_size, 16)
    assert record["fit_mse_end"] < 0.5 * record["fit_mse_start"], record
    old_state = model.state_dict()
    for key, value in new.state_dict().items():
        if key.startswith("encoder.layer."):
            assert torch.equal(value, old_state[key]), key
    ids = torch.tensor([corpus[0][:10], corpus[1][:10]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        a = model.pool(model(ids, mask).last_hidden_state, mask, normalize=True)
        b = new.pool(new(ids, mask).last_hidden_state, mask, normalize=True)
    assert float((a * b).sum(-1).min()) > 0.9


@pytest.mark.parametrize(("size", "needle"), [(32, "between 1 and the hidden size"), (0, "between 1 and the hidden size")])
def test_factorizing_to_a_bad_size_is_an_error(tiny_bert, size, needle):
    from pocketbert.pipeline.student import factorize_embeddings

    with pytest.raises(PocketBertError, match=needle):
        factorize_embeddings(load_checkpoint(tiny_bert).model, size, [[5, 6, 7]], steps=1)


def test_ffn_pruning_drops_the_neurons_that_do_not_reach_the_output(tiny_bert):
    """Half of each layer's FFN neurons get zero output weights: pruning to the other half keeps every output,
    and the kept neurons are copied in order."""
    from pocketbert.pipeline.student import prune_ffn

    model = load_checkpoint(tiny_bert).model.eval()
    size = model.config.intermediate_size
    dead = torch.arange(0, size, 2)  # even neurons
    with torch.no_grad():
        for i in range(model.config.num_hidden_layers):
            model.encoder.layer[i].output.dense.weight[:, dead] = 0.0
    gen = torch.Generator().manual_seed(0)
    corpus = [torch.randint(5, 100, (12,), generator=gen).tolist() for _ in range(20)]
    new, record = prune_ffn(model, size // 2, corpus, batches=2, batch_size=8)
    assert new.config.intermediate_size == size // 2 and record["from"] == size
    alive = torch.arange(1, size, 2)
    assert torch.equal(new.encoder.layer[0].intermediate.dense.weight, model.encoder.layer[0].intermediate.dense.weight[alive])
    ids = torch.tensor(corpus[:3])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        assert_close(new(ids, mask).last_hidden_state, model(ids, mask).last_hidden_state, atol=1e-5, rtol=1e-5)
    with pytest.raises(PocketBertError, match="intermediate_size must be between"):
        prune_ffn(model, size, corpus)


def test_table_int4_puts_the_word_table_on_the_int4_export_grid(tmp_path, tiny_bert):
    """After --table-int4, quantizing the table as the int4 embedding rung does (ExecuTorch's Int4RowEmbedding,
    the same absmax/7 rule as LiteRT's) gives back the table itself."""
    from pocketbert.export.executorch import Int4RowEmbedding

    out = tmp_path / "q"
    assert main(["student", "--teacher", str(tiny_bert), "--layers", "all", "--table-int4", "--out", str(out)]) == 0
    rec = json.loads((out / "pocketbert.json").read_text())
    assert rec["table_int4"]["bits"] == 4 and rec["table_int4"]["max_abs_change"] > 0
    snapped = load_checkpoint(out).model.embeddings.word_embeddings.weight.detach()
    before = load_checkpoint(tiny_bert).model.embeddings.word_embeddings.weight.detach()
    assert not torch.equal(snapped, before)
    emb = Int4RowEmbedding(snapped, 32)
    ids = torch.arange(snapped.shape[0])[None]
    assert torch.equal(emb(ids)[0], snapped)
    # and a second snap changes nothing
    again = Int4RowEmbedding(emb(ids)[0], 32)
    assert torch.equal(again(ids)[0], snapped)
