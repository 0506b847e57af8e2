"""Text normalisation shared by paper identity, tag keys and grounding."""

from __future__ import annotations

import hashlib
import re

_NON_WORD = re.compile(r"[\W_]+")
# Terminal escape sequences, C0/C1 control characters and the bidi marks that reorder what a terminal shows.
# Sequences go whole, so their arguments (a window title, a link target) do not stay behind as text:
# CSI (ESC [ or its one-byte form U+009B), then OSC, DCS, SOS, PM and APC strings up to BEL or ESC \.
# An unterminated string loses only its ESC, below: a terminal would swallow the rest, but the text is kept.
_ANSI_ESCAPE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b[]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)")
_BIDI_MARKS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_MARKS}]")
# Of those, what json.dumps(ensure_ascii=False) writes as they are: C1 controls and bidi marks.
C1_AND_BIDI = re.compile(f"[\x7f-\x9f{_BIDI_MARKS}]")


def squash_whitespace(text: str) -> str:
    return " ".join(text.split())


def clean_text(text: str) -> str:
    """One line of plain text: hostile input or a model obeying it cannot smuggle escapes, NULs or
    right-to-left overrides into the database or a terminal."""
    return squash_whitespace(_CONTROL.sub(" ", _ANSI_ESCAPE.sub("", text)))


def has_control_characters(text: str) -> bool:
    return bool(_CONTROL.search(text))


def tag_key(value: str) -> str:
    """Fold case, punctuation and spacing, so "MMLU-Pro", "MMLU Pro" and "mmlu-pro" share one key."""
    return _NON_WORD.sub("", value.casefold())


def content_hash(title: str, abstract: str) -> str:
    """Stable over whitespace and case changes, so a re-saved page still names the same paper."""
    normalised = squash_whitespace(title).casefold() + "\n" + squash_whitespace(abstract).casefold()
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()
