"""A fault-injecting OpenAI-compatible server on 127.0.0.1, built on fake_openai.FakeOpenAI.

Every request is answered by a named fault (or "ok", a good answer from fake_openai.rule_based_tags).
`decide(title, attempt)` picks it, where `attempt` counts the earlier requests for the same paper title
(instructor's re-asks included), so a script like "503 twice, then answer" holds per paper however the
client's threads interleave.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from typing import Callable, Sequence

from fake_openai import FakeOpenAI, Reply, completion, default_responder, rule_based_tags, user_paper

Decide = Callable[[str, int], "str | None"]
REFUSAL = "I'm sorry, but I can't help with that."


def _error(status: int, message: str) -> Callable:
    return lambda server, request: Reply(status, {"error": {"message": message, "type": "server_error"}})


def _rate_limit_with_retry_after(server, request) -> Reply:
    reply = _error(429, "rate limited, retry later")(server, request)
    reply.headers["retry-after"] = server.retry_after
    return reply


def _tags_with(**changes) -> Callable:
    """A well-formed completion whose JSON content breaks the PaperTags schema."""

    def reply(server, request):
        tags = {**rule_based_tags(request), **changes}
        return Reply(body=completion(json.dumps({k: v for k, v in tags.items() if v is not _MISSING})))

    return reply


_MISSING = object()


def _good_body(request: dict) -> bytes:
    return json.dumps(default_responder(request).body).encode()


def _send_headers(handler, length: int) -> None:
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(length))
    handler.end_headers()


def _reset(server, request) -> Reply:
    def action(handler):
        # SO_LINGER 0: the close sends RST instead of FIN, like a dropped connection or a crashed proxy.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
        handler.close_connection = True

    return Reply(action=action)


def _stall(server, request) -> Reply:
    """Hold the answer past the client's read timeout, then send it to nobody."""

    def action(handler):
        server.stopped.wait(server.hold_s)
        body = _good_body(request)
        try:
            _send_headers(handler, len(body))
            handler.wfile.write(body)
        except OSError:
            pass  # the client has hung up, as intended

    return Reply(action=action)


def _trickle(server, request) -> Reply:
    """A good answer dribbled out in small pieces; each gap is well under the client's read timeout."""

    def action(handler):
        body = _good_body(request)
        _send_headers(handler, len(body))
        step = max(1, len(body) // server.trickle_pieces)
        for start in range(0, len(body), step):
            handler.wfile.write(body[start:start + step])
            handler.wfile.flush()
            server.stopped.wait(server.trickle_gap_s)

    return Reply(action=action)


def _cut_body(server, request) -> Reply:
    """Promise the whole body in content-length, send half of it, hang up."""

    def action(handler):
        body = _good_body(request)
        _send_headers(handler, len(body))
        handler.wfile.write(body[: len(body) // 2])
        handler.close_connection = True

    return Reply(action=action)


def _invalid_json_body(server, request) -> Reply:
    """A complete HTTP response whose body is half a JSON document, as from a broken proxy."""
    return Reply(body=json.dumps(default_responder(request).body)[:60])


def _cut_output(server, request) -> Reply:
    """The model hit max_tokens: its JSON stops midway and finish_reason is 'length'."""
    body = completion(json.dumps(rule_based_tags(request))[:40])
    body["choices"][0]["finish_reason"] = "length"
    return Reply(body=body)


def _empty_choices(server, request) -> Reply:
    body = completion("")
    body["choices"] = []
    return Reply(body=body)


def _refusal_field(server, request) -> Reply:
    body = completion("")
    body["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": REFUSAL}
    return Reply(body=body)


FAULTS: dict[str, Callable[["FaultServer", dict], Reply]] = {
    "ok": lambda server, request: default_responder(request),
    "429 Retry-After": _rate_limit_with_retry_after,
    "429": _error(429, "rate limited"),
    "500": _error(500, "internal error"),
    "502": _error(502, "bad gateway"),
    "503": _error(503, "overloaded"),
    "400": _error(400, "this request is not allowed"),
    "connection reset": _reset,
    "read timeout": _stall,
    "slow trickle": _trickle,
    "truncated body": _cut_body,
    "truncated json": _invalid_json_body,
    "cut-off output": _cut_output,
    "wrong types": _tags_with(tasks="not a list", summary=42),
    "missing fields": _tags_with(methods=_MISSING, domain=_MISSING),
    "unknown domain": _tags_with(domain="astrology"),
    "empty choices": _empty_choices,
    "refusal text": lambda server, request: Reply(body=completion(REFUSAL)),
    "refusal field": _refusal_field,
}


class FaultServer(FakeOpenAI):
    """`log` has one (monotonic time, title, fault) per request; `attempts` counts requests per title."""

    def __init__(self, decide: Decide = lambda title, attempt: None, *, hold_s: float = 3.0,
                 trickle_pieces: int = 8, trickle_gap_s: float = 0.05, retry_after: str = "0"):
        self.decide = decide
        self.hold_s = hold_s  # how long "read timeout" holds an answer: longer than the client's timeout
        self.retry_after = retry_after
        self.trickle_pieces, self.trickle_gap_s = trickle_pieces, trickle_gap_s
        self.attempts: Counter[str] = Counter()
        self.log: list[tuple[float, str, str]] = []
        self.stopped = threading.Event()  # wakes stalled handlers when the test ends
        self._count_lock = threading.Lock()
        super().__init__(self._respond)

    def _respond(self, request: dict) -> Reply:
        title, _ = user_paper(request)
        with self._count_lock:
            attempt = self.attempts[title]
            self.attempts[title] += 1
            fault = self.decide(title, attempt) or "ok"
            self.log.append((time.monotonic(), title, fault))
        return FAULTS[fault](self, request)

    def faults_served(self, title: str) -> list[str]:
        return [fault for _, logged, fault in self.log if logged == title]

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        super().__exit__(*exc)


def always(fault: str) -> Decide:
    return lambda title, attempt: fault


def first(fault: str, times: int = 1) -> Decide:
    """Each paper's first `times` requests get the fault, later ones a good answer."""
    return lambda title, attempt: fault if attempt < times else None


def by_title(scripts: dict[str, Sequence[str]]) -> Decide:
    """Per paper, the faults for its successive requests; a good answer once the script runs out."""
    return lambda title, attempt: scripts[title][attempt] if attempt < len(scripts.get(title, ())) else None


def seeded_choice(seed: int, titles: Sequence[str], menu: Sequence) -> dict[str, object]:
    """Give every title one item of `menu`, chosen at random but the same on every run."""
    rng = random.Random(seed)
    return {title: rng.choice(menu) for title in titles}
