"""The model's probability for every domain label, read from the token log-probabilities of its own answer.

The answer ends with `"domain": "<label>"`. At the label's first token the server reports the most likely tokens
(`top_logprobs`), so one answer gives the model's whole belief over the domains at no extra cost, where the text
only shows its first choice. llama.cpp reports them before its grammar is applied, so tokens the grammar would
refuse (" robotics", with a space) still count for their label. A token that starts several labels ("ml") is split
by the next token the model chose, or equally when it did not choose it.
"""

from __future__ import annotations

import math
from typing import Iterable, Protocol, Sequence

from .schema import DOMAINS

TOP_LOGPROBS = 20  # the most OpenAI's API gives
_KEY = '"domain"'


class TopToken(Protocol):
    token: str
    logprob: float


class AnswerToken(Protocol):
    token: str
    logprob: float
    top_logprobs: Sequence[TopToken]


def _label_text(text: str) -> str:
    """A token's text as part of a label: up to a closing quote, spaces and case folded."""
    return text.split('"')[0].strip().lower()


def _labels_starting(text: str) -> list[str]:
    """The labels a token's text can begin."""
    text = _label_text(text)
    return [label for label in DOMAINS if text and label.startswith(text)]


def _value_start(tokens: Sequence[AnswerToken]) -> tuple[int, int] | None:
    """(index of the token where the domain label begins, characters of that token before the label), or None."""
    text = "".join(token.token for token in tokens)
    key = text.rfind(_KEY)
    if key < 0:
        return None
    quote = text.find('"', text.find(":", key + len(_KEY)) + 1)
    if quote < 0:
        return None
    offset = 0
    for index, token in enumerate(tokens):
        if offset + len(token.token) > quote + 1:
            return index, quote + 1 - offset
        offset += len(token.token)
    return None


def _mass(alternatives: Iterable[TopToken], prefix_chars: int, prefix: str) -> dict[str, float]:
    """Probability per label from one position's alternatives, each token's share split among the labels it starts."""
    mass = dict.fromkeys(DOMAINS, 0.0)
    for alternative in alternatives:
        if alternative.token[:prefix_chars] != prefix:
            continue  # a token that does not begin the way the chosen one did is not a label
        labels = _labels_starting(alternative.token[prefix_chars:])
        for label in labels:
            mass[label] += math.exp(alternative.logprob) / len(labels)
    return mass


def domain_probabilities(tokens: Sequence[AnswerToken] | None) -> dict[str, float] | None:
    """Label -> probability (summing to 1, labels under 0.001 left out), or None if the answer's tokens do not
    show the domain's alternatives (no logprobs, or no domain in the answer)."""
    if not tokens:
        return None
    start = _value_start(tokens)
    if start is None:
        return None
    index, prefix_chars = start
    chosen = tokens[index]
    prefix = chosen.token[:prefix_chars]
    mass = _mass(chosen.top_logprobs, prefix_chars, prefix)
    shared = _labels_starting(chosen.token[prefix_chars:])
    if len(shared) > 1 and index + 1 < len(tokens):
        # The chosen token starts several labels: the next position says how the model would go on.
        typed = _label_text(chosen.token[prefix_chars:])
        pooled = sum(mass[label] for label in shared)
        following = {label: 0.0 for label in shared}
        for alternative in tokens[index + 1].top_logprobs:
            rest = alternative.token.split('"')[0].lower()
            for label in shared:
                if rest and label[len(typed):].startswith(rest):
                    following[label] += math.exp(alternative.logprob)
        total = sum(following.values())
        if total > 0:
            for label in shared:
                mass[label] = pooled * following[label] / total
    total = sum(mass.values())
    if total <= 0:
        return None
    return {label: round(value / total, 4) for label, value in mass.items() if value / total >= 0.001}
