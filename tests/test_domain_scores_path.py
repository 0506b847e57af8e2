"""The live path asks for logprobs only where the backend says the server gives them, reads the domain's runners-up
from the answer, decides with them, stores them, and re-checks a stored answer with them."""

from __future__ import annotations

import json
import math

from fake_openai import FakeOpenAI, Reply, completion
from papertag.backends import Endpoint
from papertag.extract import Extractor
from papertag.prompts import load_prompt
from papertag.sources import make_paper
from papertag.store import Store

ANSWER = {"summary": "We interview 12 designers about their tools and report what they need.",
          "tasks": ["tool design", "design practice"], "methods": ["semi-structured interviews", "thematic analysis"],
          "benchmarks": [], "domain": "other"}
PAPER = make_paper("p1", "Designers and their tools", "We interview 12 designers about the tools they use.")


def with_logprobs(request: dict) -> Reply:
    body = completion(json.dumps(ANSWER))
    if request.get("logprobs"):
        text = json.dumps(ANSWER)
        head, _, tail = text.rpartition('"other"')
        alternatives = {"other": 0.45, "h": 0.35, "n": 0.2}  # "h" starts only "hci"
        tokens = [{"token": head + '"', "logprob": 0.0, "top_logprobs": []},
                  {"token": "other", "logprob": math.log(0.45),
                   "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in alternatives.items()]},
                  {"token": '"' + tail, "logprob": 0.0, "top_logprobs": []}]
        body["choices"][0]["logprobs"] = {"content": tokens}
    return Reply(body=body)


def endpoint(server: FakeOpenAI, logprobs: bool) -> Endpoint:
    return Endpoint(spec="local", base_url=server.base_url, api_key="k", model="m", context_tokens=4096,
                    concurrency=1, logprobs=logprobs)


def test_the_runner_up_probabilities_decide_and_are_stored(db_path):
    with FakeOpenAI(with_logprobs) as server:
        result = Extractor(endpoint(server, logprobs=True), load_prompt()).extract(PAPER)
        assert server.requests[0]["logprobs"] is True and server.requests[0]["top_logprobs"] == 20
    assert result.domain_scores == {"other": 0.45, "hci": 0.35, "nlp": 0.2}
    assert result.tags.domain == "hci"  # "other" is the model's usual answer; the calibrated choice is hci
    assert "domain: other" in result.dropped

    store = Store(db_path)
    try:
        store.add_papers([PAPER])
        store.save([result], "local", load_prompt())
        answers = store.reusable_answers("local", load_prompt(), [PAPER.content_hash])
    finally:
        store.close()
    raw, scores, _ = answers[PAPER.content_hash]
    assert json.loads(raw)["domain"] == "other" and scores == result.domain_scores


def test_no_logprobs_are_asked_of_a_server_not_known_to_give_them():
    with FakeOpenAI(with_logprobs) as server:
        result = Extractor(endpoint(server, logprobs=False), load_prompt()).extract(PAPER)
        assert "logprobs" not in server.requests[0]
    assert result.domain_scores is None and result.tags.domain == "other"
