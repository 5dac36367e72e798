"""Synthetic texts: a training corpus with learnable structure, a tiny STS file, and a data folder in the shared
data's layout for the dev suite."""

from __future__ import annotations

import random
from pathlib import Path

SUBJECTS = {"man": ("plays", "guitar"), "woman": ("plays", "cello"), "child": ("plays", "flute"),
            "dog": ("runs on", "road"), "cat": ("walks on", "table"), "bird": ("sings", "song"),
            "person": ("rides", "horse"), "people": ("ride", "train")}
ADJ = ["red", "blue", "green", "big", "small", "quick", "brown", "lazy", "happy", "sad"]


def synthetic_corpus(path: Path, n: int, seed: int = 0) -> Path:
    """Sentences with learnable structure: each subject has its verb and object, adjectives are random."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        subj = rng.choice(sorted(SUBJECTS))
        verb, obj = SUBJECTS[subj]
        lines.append(f"the {rng.choice(ADJ)} {subj} {verb} the {rng.choice(ADJ)} {obj}")
    path.write_text("\n".join(lines) + "\n")
    return path


def sts_pairs(path: Path) -> Path:
    """An STS file of 8 scored pairs (sentence1 TAB sentence2 TAB score 0-5) over the tiny vocabulary's words."""
    rows = [
        ("the man is playing a guitar", "a man plays a guitar", 4.6),
        ("the dog runs in the street", "a dog is running on the road", 4.0),
        ("a woman is cooking", "the woman cooks", 4.4),
        ("the cat is happy", "a sad bird sings", 0.6),
        ("people dance to the music", "the people are dancing", 4.1),
        ("a child reads a story", "the train is red", 0.2),
        ("two men ride horses", "a man is eating", 0.8),
        ("the movie is very good", "the film is great", 3.9),
    ]
    path.write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in rows), encoding="utf-8")
    return path


STS_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
SICK_HEADER = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"


def make_suite_data(root: Path) -> Path:
    """A tiny data folder in the shared data's layout: 4 STS-B pairs, 4 SICK pairs, 2-class SST-2 and 2-class AG News."""
    for d in ("stsb", "sick", "sst2", "agnews"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "stsb" / "dev.tsv").write_text(STS_HEADER + "".join(
        f"{i}\tg\tf\t2012\t{i}\tn\tn\tsts a{i}\tsts b{i}\t{float(i)}\n" for i in range(1, 5)))
    (root / "sick" / "test.tsv").write_text(SICK_HEADER + "".join(
        f"{i}\tsick a{i}\tsick b{i}\t{float(i)}\tNEUTRAL\n" for i in range(1, 5)))
    (root / "sst2" / "train.tsv").write_text("sentence\tlabel\n" + "".join(
        f"{'good' if i % 2 else 'bad'} train {i}\t{i % 2}\n" for i in range(20)))
    (root / "sst2" / "dev.tsv").write_text("sentence\tlabel\n" + "".join(
        f"{'good' if i % 2 else 'bad'} dev {i}\t{i % 2}\n" for i in range(10)))
    (root / "agnews" / "dev.tsv").write_text("text\tlabel\n" + "".join(
        f"{'sport' if i % 2 else 'world'} news {i}\t{'Sports' if i % 2 else 'World'}\n" for i in range(20)))
    return root
