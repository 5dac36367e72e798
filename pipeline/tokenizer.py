"""WordPiece tokenization with HF `tokenizers`, giving the same ids as `transformers.AutoTokenizer`.

A checkpoint's `tokenizer.json` is used as is when present; otherwise the BERT pipeline is built from
`vocab.txt` and `tokenizer_config.json` exactly as transformers' converter builds it
(BertNormalizer -> BertPreTokenizer -> WordPiece -> [CLS] $A [SEP]).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer as _HFTokenizer
from tokenizers import decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from pocketbert.errors import PocketBertError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_INPUT_CHARS_PER_WORD = 100  # BertTokenizer's default: longer words become [UNK]


def read_vocab(path: str | Path) -> list[str]:
    """vocab.txt -> tokens in id order (one per line; the line number is the id)."""
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def write_vocab(path: str | Path, tokens: list[str]) -> None:
    Path(path).write_text("".join(t + "\n" for t in tokens), encoding="utf-8")


def tokenizer_options(ckpt: Path) -> dict:
    """Lower-casing and accent stripping as `tokenizer_config.json` states them (BERT defaults otherwise)."""
    cfg = {}
    path = ckpt / "tokenizer_config.json"
    if path.is_file():
        cfg = json.loads(path.read_text(encoding="utf-8"))
    lower = bool(cfg.get("do_lower_case", True))
    strip = cfg.get("strip_accents")
    return {
        "lowercase": lower,
        # BertTokenizer: strip_accents=None means "strip when lower-casing".
        "strip_accents": lower if strip is None else bool(strip),
        "tokenize_chinese_chars": bool(cfg.get("tokenize_chinese_chars", True)),
        "model_max_length": int(cfg.get("model_max_length", 512)),
    }


def build_wordpiece(tokens: list[str], lowercase: bool = True, strip_accents: bool | None = None,
                    tokenize_chinese_chars: bool = True) -> _HFTokenizer:
    """The BERT tokenizer pipeline over a vocabulary, as transformers' `BertConverter` builds it."""
    missing = [t for t in SPECIAL_TOKENS if t not in tokens]
    if missing:
        raise PocketBertError(f"vocabulary lacks the special tokens {', '.join(missing)}; use a BERT WordPiece vocab.txt")
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = _HFTokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=tokenize_chinese_chars, strip_accents=strip_accents, lowercase=lowercase
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok


class Tokenizer:
    """Text -> fixed-length int ids and attention mask, as the deployed model sees them."""

    def __init__(self, ckpt: str | Path):
        ckpt = Path(ckpt)
        vocab_path = ckpt / "vocab.txt"
        if not vocab_path.is_file():
            raise PocketBertError(f"{ckpt} has no vocab.txt; a checkpoint needs its WordPiece vocabulary")
        self.options = tokenizer_options(ckpt)
        self.vocab = read_vocab(vocab_path)
        tj = ckpt / "tokenizer.json"
        if tj.is_file():
            try:
                self._tok = _HFTokenizer.from_file(str(tj))
            except Exception as e:  # noqa: BLE001 - the tokenizers error type is not public
                raise PocketBertError(f"{tj} is not a valid tokenizer.json ({e}); delete it to rebuild from vocab.txt") from None
        else:
            self._tok = build_wordpiece(self.vocab, self.options["lowercase"], self.options["strip_accents"],
                                        self.options["tokenize_chinese_chars"])
        self._tok.no_truncation()
        self._tok.no_padding()
        ids = {t: self._tok.token_to_id(t) for t in SPECIAL_TOKENS}
        missing = [t for t, i in ids.items() if i is None]
        if missing:
            raise PocketBertError(f"{ckpt}: tokenizer lacks special tokens {', '.join(missing)}")
        self.special_ids = ids
        self.pad_id = ids["[PAD]"]
        self.mask_id = ids["[MASK]"]

    def __len__(self) -> int:
        return len(self.vocab)

    def encode_ids(self, texts: list[str], add_special_tokens: bool = True) -> list[list[int]]:
        """Untruncated ids per text."""
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)]

    def __call__(self, texts: list[str], max_length: int = 128, pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Encode, truncate to `max_length` (keeping the final [SEP]) and pad.

        Args:
            texts: the sentences.
            max_length: longest sequence kept, special tokens included.
            pad_to: pad every row to this length (a static-shape bucket); None pads to the longest row.
        Returns:
            (input_ids, attention_mask), int64 arrays of shape (B, T).
        """
        if pad_to is not None and pad_to < max_length:
            max_length = pad_to
        rows = []
        for ids in self.encode_ids(texts):
            if len(ids) > max_length:
                ids = ids[: max_length - 1] + [ids[-1]]  # as HF truncation: keep [SEP] last
            rows.append(ids)
        width = pad_to if pad_to is not None else max((len(r) for r in rows), default=2)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return input_ids, mask
