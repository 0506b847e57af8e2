"""A fake OpenAI-compatible chat server on 127.0.0.1 for tests: no network, scriptable per request."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

KNOWN_BENCHMARKS = ("AgentBench", "MT-Bench", "WildBench", "AlpacaEval 2.0", "D4RL", "WebArena", "MMLU-Pro")


@dataclass
class Reply:
    status: int = 200
    body: dict | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Takes over the raw connection instead of sending status/body: fault_server.py uses it for resets,
    # stalls and cut-off bodies.
    action: Callable[[BaseHTTPRequestHandler], None] | None = None


def user_paper(request: dict) -> tuple[str, str]:
    """Title and abstract of the paper being asked about: the last user message that has them (a re-ask
    from instructor appends its own user message after the paper's)."""
    messages = [m for m in request["messages"] if m.get("role") == "user" and isinstance(m.get("content"), str)]
    for message in reversed(messages):
        match = re.search(r"Title: (.*?)\n\nAbstract: (.*)", message["content"], re.S)
        if match:
            return match.group(1), match.group(2)
    return "", messages[-1]["content"] if messages else ""


def rule_based_tags(request: dict) -> dict:
    """A deterministic stand-in for a model: benchmarks are the known names that occur in the abstract."""
    title, abstract = user_paper(request)
    return {
        "summary": f"This paper studies {title.split(':')[0].lower()} and reports results.",
        "tasks": ["test task"],
        "methods": [title.split(":")[0][:40] or "method"],
        "benchmarks": [name for name in KNOWN_BENCHMARKS if name in abstract],
        "domain": "nlp",
    }


def completion(content: str, model: str = "fake", prompt_tokens: int = 100, completion_tokens: int = 20) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def default_responder(request: dict) -> Reply:
    return Reply(body=completion(json.dumps(rule_based_tags(request)), request.get("model", "fake")))


def send(handler: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> None:
    """One complete HTTP response; shared by the fake servers."""
    handler.send_response(status)
    handler.send_header("content-type", content_type)
    handler.send_header("content-length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 and a free port, running while used as a context manager."""

    def listen(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeOpenAI(LoopbackServer):
    """Use as a context manager; `base_url` is the /v1 URL, `requests` records every request body."""

    def __init__(self, responder: Callable[[dict], Reply] = default_responder):
        self.responder = responder
        self.requests: list[dict] = []
        self.authorization: list[str | None] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("content-length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.requests.append(request)
                    fake.authorization.append(self.headers.get("authorization"))
                reply = fake.responder(request)
                if reply.action:
                    reply.action(self)
                    return
                body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body or {})
                send(self, reply.status, body.encode(), headers=reply.headers)

            def log_message(self, *args):
                pass

        self.listen(Handler)

    @property
    def calls(self) -> int:
        return len(self.requests)

