"""Build a student from a teacher: keep a subset of its layers (DistilBERT init), optionally trim the vocabulary.

Layer selection copies teacher layer `layers[i]` into student layer `i`, with the embeddings, pooler and
heads copied unchanged, so an untrained student is already a usable encoder (all-MiniLM-L6-v2 layers
{0, 5}: STS-B 72.4 against the teacher's 81.0).

Vocabulary trimming keeps only the WordPiece tokens a corpus uses, plus the specials and every
single-character piece (plain and `##`), so any word the old vocabulary could spell is still spelled
and nothing new becomes [UNK]. The word-embedding table is about half of a small BERT, so this is
the largest size lever after quantization. The corpus is files, or `wordfreq:LANG:N`: the N most
frequent words of a language (the `wordfreq` package), a vocabulary that generalises beyond one
data set's text.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pocketbert.errors import PocketBertError
from pocketbert.files import check_output_dir, dist_versions
from pocketbert.pipeline import names
from pocketbert.pipeline.checkpoint import MARKER, parent_record, save_checkpoint
from pocketbert.pipeline.data import collate
from pocketbert.pipeline.models.encoder import Encoder
from pocketbert.pipeline.quantize import fake_quant
from pocketbert.pipeline.tokenizer import SPECIAL_TOKENS, Tokenizer, tokenizer_options

STRATEGIES = ("all", "every-other", "first", "last", "uniform")


def parse_layers(spec: str, num_teacher_layers: int) -> list[int]:
    """`0,2,5` or a named strategy -> teacher layer indices, checked against the teacher's depth.

    Strategies: `all` (every layer: a copy, e.g. to trim a distilled student's vocabulary), `every-other` (0, 2, 4, ...), `first` / `last` (the first or last N layers),
    `uniform` (N layers spread from the first to the last, e.g. 0 and 5 for N=2 of 6). `first`,
    `last` and `uniform` need a count: `uniform:3`.
    """
    spec = spec.strip()
    name, _, count = spec.partition(":")
    if name in STRATEGIES:
        n = None
        if count:
            if not count.isdigit() or int(count) < 1:
                raise PocketBertError(f"--layers {spec!r}: the count after ':' must be a positive integer")
            n = int(count)
        if name == "all":
            return list(range(num_teacher_layers))
        if name == "every-other":
            layers = list(range(0, num_teacher_layers, 2))
            return layers[:n] if n else layers
        if not n:
            raise PocketBertError(f"--layers {name} needs a count, for example {name}:3")
        if n > num_teacher_layers:
            raise PocketBertError(f"--layers {spec}: the teacher has only {num_teacher_layers} layers")
        if name == "first":
            return list(range(n))
        if name == "last":
            return list(range(num_teacher_layers - n, num_teacher_layers))
        if n == 1:
            return [num_teacher_layers - 1]
        return sorted({round(i * (num_teacher_layers - 1) / (n - 1)) for i in range(n)})
    try:
        layers = [int(x) for x in spec.split(",") if x.strip() != ""]
    except ValueError:
        raise PocketBertError(
            f"--layers {spec!r}: give comma-separated teacher layer indices (e.g. 0,2,5) or one of {', '.join(STRATEGIES)}"
        ) from None
    if not layers:
        raise PocketBertError("--layers is empty; give teacher layer indices such as 0,2,5")
    bad = [i for i in layers if not 0 <= i < num_teacher_layers]
    if bad:
        raise PocketBertError(
            f"--layers: index {bad[0]} is out of range; the teacher has layers 0..{num_teacher_layers - 1}"
        )
    seen = set()
    for i in layers:
        if i in seen:
            raise PocketBertError(f"--layers: layer {i} is repeated; each teacher layer can be kept once")
        seen.add(i)
    return layers


def select_layers(teacher: Encoder, layers: list[int]) -> Encoder:
    """A student whose layer i is a copy of teacher layer `layers[i]`; everything else copied as is."""
    tcfg = teacher.config
    if tcfg.sharing != "none":
        raise PocketBertError("layer selection needs a teacher without cross-layer sharing")
    cfg = tcfg.replace(num_hidden_layers=len(layers))
    student = Encoder(cfg, with_mlm_head=teacher.cls is not None)
    state = {}
    for key, value in teacher.state_dict().items():
        if key.startswith("encoder.layer."):
            idx, rest = key[len("encoder.layer."):].split(".", 1)
            for i, k in enumerate(layers):
                if int(idx) == k:
                    state[f"encoder.layer.{i}.{rest}"] = value.clone()
        else:
            state[key] = value.clone()
    student.load_state_dict(state, strict=True)
    return student.eval()


# ---------------------------------------------------------------------------------------------
# Factorized embedding


def factorize_embeddings(model: Encoder, embedding_size: int, token_ids: list[list[int]], steps: int = 800,
                         batch_size: int = 64, lr: float = 3e-3, seed: int = 0) -> tuple[Encoder, dict]:
    """A copy of `model` with an ALBERT-factorized embedding, fitted to reproduce the old one's output.

    The word table is most of a 2-layer student (30522 x 384 = 11.7M of 15.4M parameters). ALBERT's layout
    keeps words, positions and token types E wide, normalises in E and maps E -> H with
    `encoder.embedding_hidden_mapping_in`, so the student stays an HF `AlbertModel` checkpoint and E = 128
    cuts the table 3x (30522 x 128 int8 = 3.9 MB; int4 2.0 MB).

    The LayerNorm sits before the mapping, so no matrix factorization is exact. Init: the top-E right
    singular vectors P (H, E) of the centred word table project words, positions and types (the mean word
    is folded into the positions: x P = (w - mu) P + (p + mu) P) and P maps back. Then Adam fits the new
    embedding module + mapping to the old embedding output (B, T, H), MSE over real tokens, for `steps`:
    half of each batch is `token_ids` (the training corpus: frequent pieces weigh as they occur; 77.3 vs
    75.1 STS-B dev before training for L3{0,2} at E = 128 when fitted to uniform tokens only), half uniform
    random tokens at every position up to 128 (every row and position gets a gradient). The transformer
    layers are copied unchanged. Returns the model and a record of the fit (start and end MSE).
    """
    cfg = model.config
    if cfg.factorized or cfg.sharing != "none":
        raise PocketBertError("student.embedding_size factorizes a BERT-layout student; this one is already "
                              "factorized or shares layers")
    if not 1 <= embedding_size < cfg.hidden_size:
        raise PocketBertError(f"student.embedding_size must be between 1 and the hidden size - 1 "
                              f"({cfg.hidden_size - 1}), got {embedding_size}")
    if model.cls is not None:
        raise PocketBertError("student.embedding_size is for sentence-embedding students (no MLM head); "
                              "use objective ensemble or embedding")
    if not token_ids:
        raise PocketBertError("factorizing the embedding needs training text; the corpus is empty")
    new = Encoder(cfg.replace(embedding_size=embedding_size), with_mlm_head=False)
    state = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("embeddings.")}
    missing, unexpected = new.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(("embeddings.", "encoder.embedding_hidden_mapping_in")) for k in missing)
    old, emb, mapping = model.embeddings, new.embeddings, new.encoder.embedding_hidden_mapping_in
    with torch.no_grad():
        w = old.word_embeddings.weight  # (V, H)
        mu = w.mean(0)
        proj = torch.linalg.svd(w - mu, full_matrices=False)[2][:embedding_size].T  # (H, E)
        emb.word_embeddings.weight.copy_((w - mu) @ proj)
        emb.position_embeddings.weight.copy_((old.position_embeddings.weight + mu) @ proj)
        if emb.token_type_embeddings is not None:
            emb.token_type_embeddings.weight.copy_(old.token_type_embeddings.weight @ proj)
        mapping.weight.copy_(proj)
        mapping.bias.zero_()
    params = [*emb.parameters(), *mapping.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - i / steps)
    gen = torch.Generator().manual_seed(seed)
    rand_len = min(128, cfg.max_position_embeddings)
    old.eval()
    emb.train()
    first = last = None
    for _ in range(steps):
        pick = torch.randint(len(token_ids), (batch_size,), generator=gen).tolist()
        rand = torch.randint(cfg.vocab_size, (batch_size, rand_len), generator=gen).tolist()
        ids, mask = collate([token_ids[i] for i in pick] + rand, cfg.pad_token_id)  # (2B, T)
        mask = mask.float()
        with torch.no_grad():
            target = old(ids, None)  # (2B, T, H)
        out = mapping(emb(ids, None))
        err = ((out - target) ** 2).mean(-1)  # (2B, T)
        loss = (err * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        last = loss.item()
        first = last if first is None else first
    new.eval()
    record = {"embedding_size": embedding_size, "fit_steps": steps,
              "fit_mse_start": None if first is None else round(first, 6),
              "fit_mse_end": None if last is None else round(last, 6)}
    return new, record


def prune_ffn(model: Encoder, intermediate_size: int, token_ids: list[list[int]], batches: int = 16,
              batch_size: int = 32, seed: int = 0) -> tuple[Encoder, dict]:
    """A copy of `model` whose feed-forward blocks keep the `intermediate_size` most important neurons.

    The FFN is 2/3 of a layer's multiply-adds at H = 384, FFN 1536 (per token: 2 x 384 x 1536 against
    4 x 384 x 384 for the attention projections), so 1536 -> 1152 makes a layer about 16% cheaper.
    Importance of neuron j in a layer: mean |GELU(x W_in + b)_j| over the real tokens of `batches` x
    `batch_size` training sentences, times ||W_out[:, j]||: roughly what removing it changes in the output.
    Kept neurons stay in their old order; weights are copied, nothing is retrained here.
    """
    cfg = model.config
    if cfg.sharing != "none":
        raise PocketBertError("student.intermediate_size prunes a student without cross-layer sharing")
    if not 1 <= intermediate_size < cfg.intermediate_size:
        raise PocketBertError(f"student.intermediate_size must be between 1 and the current size - 1 "
                              f"({cfg.intermediate_size - 1}), got {intermediate_size}")
    if not token_ids:
        raise PocketBertError("pruning the feed-forward blocks needs training text; the corpus is empty")
    gen = torch.Generator().manual_seed(seed)
    layers = [model.encoder.layer_at(i) for i in range(cfg.num_hidden_layers)]
    score = [torch.zeros(cfg.intermediate_size) for _ in layers]
    count = 0.0
    acts: dict[int, torch.Tensor] = {}
    hooks = [layer.intermediate.register_forward_hook(lambda m, i, o, k=k: acts.__setitem__(k, o))
             for k, layer in enumerate(layers)]
    model.eval()
    try:
        with torch.no_grad():
            for _ in range(batches):
                pick = torch.randint(len(token_ids), (batch_size,), generator=gen).tolist()
                ids, mask = collate([token_ids[i] for i in pick], cfg.pad_token_id)
                model(ids, mask)
                m = mask.unsqueeze(-1).float()  # (B, T, 1)
                for k in range(len(layers)):
                    score[k] += (acts[k].abs() * m).sum((0, 1))  # (I,)
                count += float(m.sum())
    finally:
        for h in hooks:
            h.remove()
    new = Encoder(cfg.replace(intermediate_size=intermediate_size), with_mlm_head=model.cls is not None)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    kept = []
    for k, layer in enumerate(layers):
        importance = score[k] / count * layer.output.dense.weight.detach().norm(dim=0)  # (I,)
        keep = importance.topk(intermediate_size).indices.sort().values
        kept.append(float(importance[keep].sum() / importance.sum()))
        pre = f"encoder.layer.{k}."
        state[pre + "intermediate.dense.weight"] = state[pre + "intermediate.dense.weight"][keep].clone()
        state[pre + "intermediate.dense.bias"] = state[pre + "intermediate.dense.bias"][keep].clone()
        state[pre + "output.dense.weight"] = state[pre + "output.dense.weight"][:, keep].clone()
    new.load_state_dict(state, strict=True)
    return new.eval(), {"intermediate_size": intermediate_size, "from": cfg.intermediate_size,
                        "importance_kept": [round(x, 4) for x in kept]}


TABLE_INT4_GROUP = 32  # = export.quant.INT4_GROUP: the block of the int4 embedding rung


def snap_table_int4(model: Encoder, group: int = TABLE_INT4_GROUP) -> tuple[Encoder, dict]:
    """A copy of `model` whose word table lies on the int4 grid that the int4 embedding rungs use, so that
    quantizing the table to int4 at export loses nothing more.

    Grid: per block of `group` values of a row, scale s = absmax / 7 rounded to fp16, values round(w / s) x s
    clamped to [-8, 7] (symmetric). ExecuTorch's int4 embedding (export/executorch.py, fp16 scales) and
    ai-edge-quantizer's int4 (LiteRT; absmax / qmax) recover these values exactly (the block's largest value is
    7 s, so their scale is s again). ONNX Runtime's blockwise quantizer divides by 8, so its int4 table
    re-quantizes this grid (as close as it quantizes any table). Snapping is the whole int4 cost of the table,
    now paid and measured in the checkpoint itself: STS-B dev 81.54 -> 81.46 on the factorized build-sts
    student (E = 128); the geometry gate then compares int4 artifacts with a reference that already has it.
    """
    new = Encoder(model.config, with_mlm_head=model.cls is not None)
    new.load_state_dict(model.state_dict())

    w = new.embeddings.word_embeddings.weight
    g = group if w.shape[1] % group == 0 else w.shape[1]
    with torch.no_grad():
        # a block whose scale underflows fp16 (e.g. the zero padding row) dequantizes to 0 in the runtimes
        snapped = fake_quant(w, 4, g, fp16_scale=True)  # (V, E)
        err = float((snapped - w).abs().max())
        w.copy_(snapped)
    return new.eval(), {"bits": 4, "group": g, "scale": "absmax/7, fp16", "max_abs_change": round(err, 6)}


# ---------------------------------------------------------------------------------------------
# Vocabulary trimming


def is_single_char_piece(token: str) -> bool:
    return len(token) == 1 or (token.startswith("##") and len(token) == 3)


def corpus_token_ids(tokenizer: Tokenizer, texts, batch: int = 4096) -> set[int]:
    """Every id the tokenizer produces on the texts (streamed in batches)."""
    used: set[int] = set()
    chunk: list[str] = []
    for t in texts:
        chunk.append(t)
        if len(chunk) >= batch:
            for ids in tokenizer.encode_ids(chunk, add_special_tokens=False):
                used.update(ids)
            chunk = []
    if chunk:
        for ids in tokenizer.encode_ids(chunk, add_special_tokens=False):
            used.update(ids)
    return used


def is_number_piece(token: str) -> bool:
    """`2013`, `##00`: a piece of digits only."""
    return token.removeprefix("##").isdigit()


def trimmed_vocab(tokenizer: Tokenizer, texts, keep_numbers: bool = False) -> list[int]:
    """Old ids to keep, in old order: specials, every single-character piece, and what the corpus uses;
    with `keep_numbers`, every digit-only piece too (a word-frequency list smashes numbers, see below).

    Old order keeps [PAD]=0-style positions of the specials and makes the map monotone. Placeholders such
    as BERT's 994 `[unusedN]` go: no text tokenizes to them (the pre-tokenizer splits `[` off as
    punctuation, and the trimmed tokenizer registers only SPECIAL_TOKENS), so they are dead rows
    (994 x 384 = 0.38 MB at int8).
    """
    used = corpus_token_ids(tokenizer, texts)
    if not used:
        raise PocketBertError("the trimming corpus is empty; pass text files with at least one non-empty line")
    keep = set(used)
    keep.update(tokenizer.special_ids.values())
    for i, tok in enumerate(tokenizer.vocab):
        if is_single_char_piece(tok) or tok in SPECIAL_TOKENS or (keep_numbers and is_number_piece(tok)):
            keep.add(i)
    return sorted(keep)


def apply_vocab(model: Encoder, keep: list[int]) -> Encoder:
    """A copy of `model` whose vocabulary is the rows `keep` of the old one, in that order."""
    new = copy.deepcopy(model)
    idx = torch.tensor(keep, dtype=torch.long)
    old = model.embeddings.word_embeddings
    pad_old = model.config.pad_token_id
    if pad_old not in keep:
        raise PocketBertError("vocabulary trimming must keep the padding token")
    cfg = model.config.replace(vocab_size=len(keep), pad_token_id=keep.index(pad_old))
    new.config = cfg
    emb = torch.nn.Embedding(len(keep), old.embedding_dim, padding_idx=cfg.pad_token_id)
    emb.weight.data.copy_(old.weight.data[idx])
    new.embeddings.word_embeddings = emb
    if new.cls is not None:
        new.cls.predictions.bias = torch.nn.Parameter(model.cls.predictions.bias.data[idx].clone())
        new.cls.predictions._word_embeddings[0] = emb
    return new


WORDFREQ_PREFIX = "wordfreq:"
WORDFREQ_LIST = "best"  # wordfreq's largest list per language: for English its `large` list (about 320k words)


@dataclass(frozen=True)
class WordFreqSource:
    """The `n` most frequent words of `lang` by the `wordfreq` package, as a trimming corpus of one word
    per line. Word frequencies come from many genres (Wikipedia, subtitles, news, books, web, Reddit,
    Twitter), so the pieces they keep are not tied to one data set. Deterministic for a wordfreq version;
    the record names the version and the sha256 of the word list. wordfreq smashes multi-digit numbers
    to 0s (`2013` is counted as `0000`), so its words never keep `10` or `2002`; a trim with a wordfreq
    source therefore keeps every digit-only piece as well (977 in BERT's vocabulary, 0.38 MB at int8 x 384;
    numbers were 614 of the 812 dropped-piece occurrences on STS-B dev with wordfreq:en:30000 alone).

    Data licence: wordfreq's code is Apache-2.0, its word lists CC-BY-SA 4.0 (attribution: wordfreq by
    Robyn Speer, https://github.com/rspeer/wordfreq). Only the derived set of kept WordPiece pieces ends up
    in a checkpoint, never the list itself.
    """

    lang: str
    n: int

    @classmethod
    def parse(cls, spec: str) -> WordFreqSource:
        """`wordfreq:en:20000` -> WordFreqSource("en", 20000).

        Raises:
            PocketBertError: a spec not of the form wordfreq:LANG:N with N a positive integer.
        """
        parts = spec[len(WORDFREQ_PREFIX):].split(":") if spec.startswith(WORDFREQ_PREFIX) else []
        if len(parts) != 2 or not parts[0] or not parts[1].isdigit() or int(parts[1]) < 1:
            raise PocketBertError(f"trim vocabulary source {spec!r}: write wordfreq:LANG:N with N a positive "
                                  "integer, e.g. wordfreq:en:20000")
        return cls(parts[0], int(parts[1]))

    @property
    def spec(self) -> str:
        return f"{WORDFREQ_PREFIX}{self.lang}:{self.n}"

    def words(self) -> list[str]:
        """The `n` most frequent words, most frequent first.

        Raises:
            PocketBertError: wordfreq missing, a language it lacks, or fewer than `n` words in its list.
        """
        try:
            import wordfreq
        except ImportError:
            raise PocketBertError(f"{self.spec} needs the wordfreq package: pip install wordfreq==3.1.1") from None
        langs = wordfreq.available_languages(WORDFREQ_LIST)
        if self.lang not in langs:
            raise PocketBertError(f"{self.spec}: wordfreq has no list for {self.lang!r}; "
                                  f"it has {', '.join(sorted(langs))}")
        words = wordfreq.top_n_list(self.lang, self.n, wordlist=WORDFREQ_LIST)
        if len(words) < self.n:
            raise PocketBertError(f"{self.spec}: wordfreq's {self.lang!r} list has only {len(words)} words; "
                                  f"use N <= {len(words)}")
        return words

    def record(self, words: list[str]) -> dict:
        """What pocketbert.json keeps of this source: enough to reproduce and check it."""

        return {"spec": self.spec, "lang": self.lang, "n": self.n, "wordlist": WORDFREQ_LIST,
                "wordfreq_version": dist_versions("wordfreq")["wordfreq"], "licence": "CC-BY-SA-4.0 (wordfreq data)",
                "words_sha256": hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()}


def is_wordfreq_spec(item: str) -> bool:
    return item.startswith(WORDFREQ_PREFIX)


def parse_trim_sources(items: list[str]) -> tuple[list[Path], list[WordFreqSource]]:
    """Trimming corpus items -> (files, wordfreq sources), each checked: files exist, specs parse.

    Raises:
        PocketBertError: a missing file or a malformed wordfreq spec (one line each).
    """
    files, lists = [], []
    for item in items:
        if is_wordfreq_spec(item):
            lists.append(WordFreqSource.parse(item))
        elif not Path(item).is_file():
            raise PocketBertError(f"--trim-vocab: corpus file {item} does not exist (or write wordfreq:LANG:N)")
        else:
            files.append(Path(item))
    return files, lists


def read_corpus_lines(paths: list[Path]):
    """Lines of text from files: plain text (one sentence per line) or TSV, where every text column counts.

    STS-B TSVs contribute sentence1 and sentence2; SST-2 TSVs their `sentence` column.
    """
    for path in paths:
        if not path.is_file():
            raise PocketBertError(f"corpus file {path} does not exist")
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except UnicodeDecodeError:
            raise PocketBertError(f"corpus file {path} is not UTF-8 text; convert it to UTF-8") from None
        if path.suffix == ".tsv" and lines:
            rows = [line.split("\t") for line in lines]
            header = rows[0]
            if "sentence" in header:
                cols = [header.index("sentence")]
                rows = rows[1:]
            elif len(header) >= 10:  # STS-B: ..., sentence1, sentence2, score
                cols = [7, 8]
                if header[7] == "sentence1":
                    rows = rows[1:]
            else:
                cols = list(range(len(header)))
            for r in rows:
                for c in cols:
                    if c < len(r) and r[c].strip():
                        yield r[c]
        else:
            for line in lines:
                if line.strip():
                    yield line


@dataclass
class StudentConfig:
    """What `pocketbert student` makes: `layers` of `teacher` (see parse_layers), optionally with the
    vocabulary trimmed to the `trim_vocab` corpus (files and/or `wordfreq:LANG:N` word lists; the kept
    pieces are the union), written to the checkpoint folder `out`."""

    teacher: str
    layers: str
    out: str
    trim_vocab: list[str] = field(default_factory=list)
    table_int4: bool = False  # store the word table on the int4 grid of the int4 embedding rungs (snap_table_int4)
    tokenizer: str | None = None  # tokenizer folder (or `minilm`) of an .onnx teacher
    command: str | None = None  # the `pocketbert ...` line recorded in the provenance


def main(cfg: StudentConfig) -> dict:
    """Write the student checkpoint; returns a summary. Every input is checked before any work.

    Raises:
        PocketBertError: an output folder that is not ours, a missing corpus file, a bad teacher or layer spec.
    """

    out = Path(cfg.out)
    check_output_dir(out, MARKER)
    corpus, word_lists = parse_trim_sources(cfg.trim_vocab)
    words = {src: src.words() for src in word_lists}  # before any work: a bad language or N fails here
    teacher = names.load(cfg.teacher, tokenizer=cfg.tokenizer)
    layers = parse_layers(cfg.layers, teacher.model.config.num_hidden_layers)
    student = select_layers(teacher.model, layers)
    record = {
        "parent": parent_record(teacher),
        "layer_map": layers,
        "stage": "student",
    }
    tokens = None
    vocab_before = student.config.vocab_size
    if cfg.trim_vocab:
        tok = Tokenizer(teacher.path)
        # Each word alone tokenizes as it does in a sentence: WordPiece works within one pre-token.
        lines = itertools.chain(read_corpus_lines(corpus), *words.values())
        keep = trimmed_vocab(tok, lines, keep_numbers=bool(word_lists))
        student = apply_vocab(student, keep)
        tokens = [tok.vocab[i] for i in keep]
        record["vocab_trim"] = {"corpus": [str(p.resolve()) for p in corpus],
                                "wordfreq": [src.record(w) for src, w in words.items()],
                                "numbers": bool(word_lists),  # every digit-only piece kept
                                "before": vocab_before, "after": len(keep)}
    if cfg.table_int4:
        student, record["table_int4"] = snap_table_int4(student)
    save_checkpoint(student, out, tokenizer_src=teacher.path, tokens=tokens,
                    tokenizer_opts=tokenizer_options(teacher.path), record=record, command=cfg.command)
    return {"out": str(out), "teacher": teacher.path.name, "layers": layers, "num_hidden_layers": len(layers),
            "vocab_size": student.config.vocab_size,
            "num_parameters": sum(p.numel() for p in student.parameters()),
            "weights_bytes": (out / "model.safetensors").stat().st_size}
