"""Checks that recipe sections share: each raises PocketBertError naming the dotted key and what is valid."""

from __future__ import annotations

from dataclasses import fields

from pocketbert.errors import PocketBertError


def check_positive(value, name: str, minimum: int = 1) -> None:
    if value < minimum:
        raise PocketBertError(f"{name} must be >= {minimum}, got {value}")


def check_choice(value, allowed, name: str) -> None:
    if value not in allowed:
        raise PocketBertError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def check_nonnegative(section, prefix: str) -> None:
    """Every `alpha_*` weight of a loss section is >= 0."""
    for f in fields(section):
        if f.name.startswith("alpha_") and getattr(section, f.name) < 0:
            raise PocketBertError(f"{prefix}.{f.name} must be >= 0, got {getattr(section, f.name)}")


def check_masking(p: float, mask_ratio: float, random_ratio: float, prefix: str) -> None:
    """MLM masking: a share p in (0, 1) of tokens, of which mask_ratio -> [MASK] and random_ratio -> random."""
    dot = f"{prefix}." if prefix else ""
    if not 0 < p < 1:
        raise PocketBertError(f"{dot}mlm_probability must be in (0, 1), got {p}")
    if mask_ratio < 0 or random_ratio < 0 or mask_ratio + random_ratio > 1:
        raise PocketBertError(f"{dot}mask_ratio + {dot}random_ratio must be within [0, 1], got {mask_ratio} + {random_ratio}")
