"""Text normalisation shared by paper identity, tag keys and grounding."""

from __future__ import annotations

import hashlib
import re

_NON_WORD = re.compile(r"[\W_]+")
# Terminal escape sequences, C0/C1 control characters and the bidi marks that reorder what a terminal shows.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def squash_whitespace(text: str) -> str:
    return " ".join(text.split())


def clean_text(text: str) -> str:
    """One line of plain text: hostile input or a model obeying it cannot smuggle escapes, NULs or
    right-to-left overrides into the database or a terminal."""
    return squash_whitespace(_CONTROL.sub(" ", _ANSI_ESCAPE.sub("", text)))


def tag_key(value: str) -> str:
    """Fold case, punctuation and spacing, so "MMLU-Pro", "MMLU Pro" and "mmlu-pro" share one key."""
    return _NON_WORD.sub("", value.casefold())


def content_hash(title: str, abstract: str) -> str:
    """Stable over whitespace and case changes, so a re-saved page still names the same paper."""
    normalised = squash_whitespace(title).casefold() + "\n" + squash_whitespace(abstract).casefold()
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()
