"""A fake arXiv API (export.arxiv.org/api/query) on 127.0.0.1 for tests: no network.

It answers with the pages recorded in tests/data/arxiv_api/ (the query "cat:cs.CL AND abs:benchmark", three
results a page, seven in all), picked by `start` and cut to `max_results` as the API does; a start past the
recorded pages gets an empty page, and so do the starts in `empty` (the API does that now and then). `script`
makes a start's first requests fail: {3: [(503, {"retry-after": "5"})]}; the starts in `hold` are never answered
(a client stuck there is interrupted by the test).
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from fake_openai import LoopbackServer, send

PAGES = Path(__file__).parent / "data" / "arxiv_api"
ERROR_PAGE = (PAGES / "error-malformed-query.xml").read_text()
ENTRY = re.compile(r"  <entry>.*?</entry>\n", re.S)
TOTAL_RESULTS = 7
ALL_IDS = ["2411.18210", "2411.18099", "2411.17950", "2411.17731", "2411.17604", "2411.17420", "2411.17377"]


def recorded_page(start: int, max_results: int, empty: bool = False) -> str:
    path = PAGES / f"cs.CL-benchmark-start{start}.xml"
    if empty or not path.exists():
        # What the API sends past the end (or when it stumbles): the feed with no entries.
        text = ENTRY.sub("", (PAGES / "cs.CL-benchmark-start0.xml").read_text())
        return text.replace("<opensearch:startIndex xmlns:opensearch=\"http://a9.com/-/spec/opensearch/1.1/\">0<",
                            f"<opensearch:startIndex xmlns:opensearch=\"http://a9.com/-/spec/opensearch/1.1/\">{start}<")
    text = path.read_text()
    entries = ENTRY.findall(text)
    for extra in entries[max_results:]:
        text = text.replace(extra, "")
    return text


class FakeArxiv(LoopbackServer):
    """Use as a context manager; `url` is the query URL, `requests` the query parameters of every request."""

    def __init__(self, script: dict[int, list[tuple[int, dict[str, str]]]] | None = None, empty: set[int] = frozenset(),
                 hold: set[int] = frozenset()):
        self.empty = empty
        self.hold = hold
        self.stopped = threading.Event()
        self.script = {start: list(failures) for start, failures in (script or {}).items()}
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                params = {key: values[0] for key, values in parse_qs(urlparse(self.path).query).items()}
                start, size = int(params.get("start", 0)), int(params.get("max_results", 10))
                with fake._lock:
                    fake.requests.append(params)
                    failures = fake.script.get(start) or []
                    failure = failures.pop(0) if failures else None
                if start in fake.hold:
                    fake.stopped.wait(30)
                    return
                if failure:
                    status, headers = failure
                    body = ERROR_PAGE if status == 400 else f"<html><body>{status} error</body></html>"
                    send(self, status, body.encode(), "application/atom+xml", headers)
                    return
                send(self, 200, recorded_page(start, size, start in fake.empty).encode(), "application/atom+xml; charset=utf-8")

            def log_message(self, *args):
                pass

        self.listen(Handler)
        self.url = self.base_url.removesuffix("/v1") + "/api/query"

    def __exit__(self, *exc) -> None:
        self.stopped.set()  # held requests end, so the server can shut down
        super().__exit__(*exc)

    @property
    def starts(self) -> list[int]:
        return [int(params["start"]) for params in self.requests]
