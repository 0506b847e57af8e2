"""Text normalisation shared by paper identity, tag keys and grounding."""

from __future__ import annotations

import hashlib
import re

_NON_WORD = re.compile(r"[\W_]+")


def squash_whitespace(text: str) -> str:
    return " ".join(text.split())


def tag_key(value: str) -> str:
    """Fold case, punctuation and spacing, so "MMLU-Pro", "MMLU Pro" and "mmlu-pro" share one key."""
    return _NON_WORD.sub("", value.casefold())


def content_hash(title: str, abstract: str) -> str:
    """Stable over whitespace and case changes, so a re-saved page still names the same paper."""
    normalised = squash_whitespace(title).casefold() + "\n" + squash_whitespace(abstract).casefold()
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()
