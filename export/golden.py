"""golden.json: fixed texts, their exact token ids, and the eager PyTorch fp32 outputs (BUNDLE.md)."""

from __future__ import annotations

import torch

from pocketbert.bundle.manifest import SCHEMA_VERSION, bucket_for
from pocketbert.bundle.parity import case_inputs
from pocketbert.pipeline.tokenizer import Tokenizer

from .wrapper import output_name

# (name, text): varied on purpose; every runtime's tokenizer must produce the same ids for each.
CASES: list[tuple[str, str]] = [
    ("plain", "A man is playing a guitar."),
    ("question", "How do I reset my password?"),
    ("punctuation", "Wait... what?! (Really) -- yes; no: maybe, \"quoted\" & 'single' [brackets] {braces}."),
    ("accents", "Café déjà vu, naïve façade, Ångström über São Paulo."),
    ("cjk", "我喜欢自然语言处理。東京は日本の首都です。한국어 문장"),
    ("emoji", "I love it 😀👍🏽 so much 🎉!"),
    ("mixed_case", "ThE QuIcK BrOwN FoX JuMpS oVeR tHe LaZy DoG"),
    ("numbers", "In 2024, 3.14159 of 1,000,000 people paid $42.50 (approx. 7%)."),
    ("url_email", "Visit https://example.com/path?q=1&x=y or mail someone@example.org today"),
    ("empty", ""),
    ("whitespace", "   \t \n  "),
    ("control_chars", "tab\there\x00null\x07bell\u200bzero-width\ufeffbom"),
    ("long_word", "x" * 120 + " after a very long word"),
    ("single_char", "a"),
    ("repeated", "very " * 12 + "good"),
    ("contractions", "Don't you think it's the dog's toy? I'd've known."),
    ("hyphens", "state-of-the-art, well-known, e-mail, co-operate"),
    ("greek_cyrillic", "Αθήνα and Москва are capitals."),
    ("arabic", "مرحبا بالعالم"),
    ("sentence_pair_like", "A woman is slicing an onion. A woman is cutting an onion."),
    ("code", "def f(x): return x**2 + 1  # square"),
    ("very_long", " ".join(["The quick brown fox jumps over the lazy dog while a cat watches."] * 40)),
]


@torch.inference_mode()
def build_golden(module: torch.nn.Module, tokenizer: Tokenizer, seq_lens: list[int], task: str) -> dict:
    """The golden.json dict. `module` is the TaskModule (int32 (1, N) inputs) in eager fp32."""
    buckets = sorted(seq_lens)
    largest = buckets[-1]
    cases = []
    for (name, text), ids in zip(CASES, tokenizer.encode_ids([t for _, t in CASES])):
        if len(ids) > largest:
            ids = ids[: largest - 1] + [ids[-1]]  # keep [SEP] last, as the Tokenizer truncates
        n = bucket_for(buckets, len(ids))
        input_ids = ids + [tokenizer.pad_id] * (n - len(ids))
        mask = [1] * len(ids) + [0] * (n - len(ids))
        case = {"name": name, "text": text, "ids": ids, "seq_len": n, "input_ids": input_ids, "attention_mask": mask}
        # The case at every bucket it fits (padded further for the larger ones): a reader checks each
        # artifact against the eager output at its own bucket, and the outputs across buckets agree.
        per_bucket = []
        for b in (b for b in buckets if b >= n):
            b_ids, b_mask = case_inputs(case, b, tokenizer.pad_id)
            out = module(torch.from_numpy(b_ids), torch.from_numpy(b_mask))
            if task == "mlm":
                per_bucket.append({"seq_len": b, "expected_argmax": out[0].argmax(-1).tolist()})  # (b,)
            else:
                per_bucket.append({"seq_len": b, "expected": [float(v) for v in out.reshape(-1).numpy()]})
        case.update({k: v for k, v in per_bucket[0].items() if k != "seq_len"})  # the smallest bucket, as 1.0
        case["buckets"] = per_bucket
        cases.append(case)
    return {"schema_version": SCHEMA_VERSION, "output_name": output_name(task), "task": task,
            "seq_lens": buckets, "cases": cases}
