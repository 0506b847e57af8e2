"""The domain probabilities read from an answer's token log-probabilities, on token streams shaped like the ones
llama.cpp returned for real answers (the alternatives come before the grammar, so some carry a leading space)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from papertag.domain_logprobs import domain_probabilities


def token(text: str, alternatives: dict[str, float] | None = None):
    alternatives = alternatives or {text: 1.0}
    return SimpleNamespace(token=text, logprob=math.log(alternatives.get(text, 1.0)),
                           top_logprobs=[SimpleNamespace(token=t, logprob=math.log(p)) for t, p in alternatives.items()])


def answer(*value_tokens):
    head = ['{"', "summary", '":', ' "', "X", " does", " Y", '.",', ' "', "benchmarks", '":', " []", ",", ' "', "domain",
            '":', ' "']
    return [token(text) for text in head] + list(value_tokens) + [token('"}')]


def test_runners_up_of_the_first_label_token_become_probabilities():
    tokens = answer(token("software", {"software": 0.4, "n": 0.35, "other": 0.2, " robotics": 0.05}),
                    token("-engine"), token("ering"))
    scores = domain_probabilities(tokens)
    assert scores["software-engineering"] == pytest.approx(0.4)
    assert scores["nlp"] == pytest.approx(0.35)
    assert scores["other"] == pytest.approx(0.2)
    assert scores["robotics"] == pytest.approx(0.05)  # a spaced token the grammar refused still counts


def test_a_token_shared_by_two_labels_is_split_by_the_next_token():
    tokens = answer(token("ml", {"ml": 0.8, "n": 0.2}), token("-s", {"-s": 0.75, "-theory": 0.25}), token("ystems"))
    scores = domain_probabilities(tokens)
    assert scores["ml-systems"] == pytest.approx(0.6)
    assert scores["ml-theory"] == pytest.approx(0.2)
    assert scores["nlp"] == pytest.approx(0.2)


def test_tokens_that_are_no_label_are_left_out_and_the_rest_renormalised():
    tokens = answer(token("robot", {"robot": 0.5, "hardware": 0.3, "bio": 0.2}), token("ics"))
    assert domain_probabilities(tokens) == {"robotics": pytest.approx(0.7143, abs=1e-4),
                                            "bio-medical": pytest.approx(0.2857, abs=1e-4)}


def test_a_quote_merged_into_the_label_token_is_handled():
    head = [token(t) for t in ['{"', "domain", '":']]
    tokens = head + [token(' "n', {' "n': 0.6, ' "ml': 0.4}), token("lp"), token('"}')]
    scores = domain_probabilities(tokens)
    assert scores["nlp"] == pytest.approx(0.6)
    assert scores["ml-systems"] == pytest.approx(0.2)


def test_no_logprobs_or_no_domain_gives_none():
    assert domain_probabilities(None) is None
    assert domain_probabilities([token('{"'), token("summary"), token('":'), token(' "x"}')]) is None
