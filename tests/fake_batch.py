"""A fake OpenAI Batch API on 127.0.0.1 for tests: files, batches and their results, no network.

Each request line of a batch is answered when the batch first reports a finished status: by default with
fake_openai's rule-based tags, or by a per-paper `replies[custom_id]` function (see `schema_invalid`,
`http_error`, `expired`). `statuses` scripts what successive GET /v1/batches/{id} calls see; the last repeats.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from typing import Callable, Sequence

from fake_openai import LoopbackServer, completion, rule_based_tags, send

Answer = Callable[[dict], dict]  # request body → {"response": ...} or {"error": ...} of one output line
FINISHED = {"completed", "expired", "cancelled"}


def ok(body: dict) -> dict:
    content = json.dumps(rule_based_tags(body))
    return {"response": {"status_code": 200, "request_id": "req-fake", "body": completion(content, body["model"])}}


def schema_invalid(body: dict) -> dict:
    """A well-formed completion whose content breaks the PaperTags schema (an unknown domain)."""
    content = json.dumps({**rule_based_tags(body), "domain": "astrology"})
    return {"response": {"status_code": 200, "request_id": "req-fake", "body": completion(content, body["model"], 90, 15)}}


def not_json(body: dict) -> dict:
    return {"response": {"status_code": 200, "request_id": "req-fake", "body": completion("Sure! Here are the tags:", body["model"])}}


def http_error(status: int, message: str) -> Answer:
    return lambda body: {"response": {"status_code": status, "request_id": "req-fake",
                                      "body": {"error": {"message": message, "type": "invalid_request_error"}}}}


def expired(body: dict) -> dict:
    return {"error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}}


class FakeBatchAPI(LoopbackServer):
    """Use as a context manager; `base_url` is the /v1 URL."""

    def __init__(self, statuses: Sequence[str] = ("completed",), replies: dict[str, Answer] | None = None,
                 failure: dict | None = None):
        self.statuses = list(statuses)
        self.replies = replies or {}
        self.failure = failure or {"code": "invalid_json_line", "message": "This line is not parseable as valid JSON.", "line": 1}
        self.files: dict[str, dict] = {}  # id → {"purpose", "filename", "data"}
        self.batches: dict[str, dict] = {}
        self.created: list[dict] = []  # POST /v1/batches bodies
        self.retrievals: Counter[str] = Counter()
        self.downloads: Counter[str] = Counter()
        self.authorization: list[str | None] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                data = self.rfile.read(int(self.headers.get("content-length", 0)))
                with fake._lock:
                    fake.authorization.append(self.headers.get("authorization"))
                    if self.path == "/v1/files":
                        self._json(fake._upload(self.headers["content-type"], data))
                    elif self.path == "/v1/batches":
                        self._json(fake._create(json.loads(data)))
                    else:
                        self._json({"error": {"message": f"no route {self.path}"}}, 404)

            def do_GET(self):  # noqa: N802
                with fake._lock:
                    fake.authorization.append(self.headers.get("authorization"))
                    batch = re.fullmatch(r"/v1/batches/([\w-]+)", self.path)
                    content = re.fullmatch(r"/v1/files/([\w-]+)/content", self.path)
                    if batch and batch.group(1) in fake.batches:
                        self._json(fake._retrieve(batch.group(1)))
                    elif content and content.group(1) in fake.files:
                        fake.downloads[content.group(1)] += 1
                        self._send(fake.files[content.group(1)]["data"], "application/octet-stream", 200)
                    else:
                        self._json({"error": {"message": f"no such object {self.path}"}}, 404)

            def _json(self, body: dict, status: int = 200) -> None:
                self._send(json.dumps(body).encode(), "application/json", status)

            def _send(self, data: bytes, content_type: str, status: int) -> None:
                send(self, status, data, content_type)

            def log_message(self, *args):
                pass

        self.listen(Handler)

    def uploaded_lines(self) -> list[dict]:
        """Every request line of every uploaded batch input file, in upload order."""
        return [json.loads(line) for file in self.files.values() if file["purpose"] == "batch"
                for line in file["data"].decode().splitlines()]

    def _upload(self, content_type: str, data: bytes) -> dict:
        message = BytesParser(policy=HTTP).parsebytes(f"content-type: {content_type}\r\n\r\n".encode() + data)
        fields = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = {
            "purpose": fields["purpose"].get_content().strip(),
            "filename": fields["file"].get_filename(),
            "data": fields["file"].get_payload(decode=True),
        }
        return self._file_object(file_id)

    def _file_object(self, file_id: str) -> dict:
        file = self.files[file_id]
        return {"id": file_id, "object": "file", "bytes": len(file["data"]), "created_at": 0,
                "filename": file["filename"], "purpose": file["purpose"], "status": "processed"}

    def _create(self, request: dict) -> dict:
        self.created.append(request)
        batch_id = f"batch_{len(self.batches) + 1}"
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": request["endpoint"], "input_file_id": request["input_file_id"],
            "completion_window": request["completion_window"], "status": "validating", "created_at": 0,
            "output_file_id": None, "error_file_id": None, "errors": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
        }
        return self.batches[batch_id]

    def _retrieve(self, batch_id: str) -> dict:
        batch = self.batches[batch_id]
        seen = self.retrievals[batch_id]
        self.retrievals[batch_id] += 1
        status = self.statuses[min(seen, len(self.statuses) - 1)]
        requests = [json.loads(line) for line in self.files[batch["input_file_id"]]["data"].decode().splitlines()]
        batch["status"] = status
        batch["request_counts"]["total"] = len(requests)
        if status == "failed":
            batch["errors"] = {"object": "list", "data": [self.failure]}
        elif status in FINISHED and batch["output_file_id"] is None:
            self._answer(batch, requests)
        return batch

    def _answer(self, batch: dict, requests: list[dict]) -> None:
        """Answer every request line; failures go to the error file, as OpenAI does."""
        output, errors = [], []
        for number, request in enumerate(requests):
            answer = self.replies.get(request["custom_id"], ok)(request["body"])
            line = {"id": f"batch_req_{number}", "custom_id": request["custom_id"],
                    "response": answer.get("response"), "error": answer.get("error")}
            good = line["error"] is None and line["response"]["status_code"] == 200
            (output if good else errors).append(line)
        for name, lines in (("output_file_id", output), ("error_file_id", errors)):
            if lines:
                file_id = f"file-{len(self.files) + 1}"
                data = "".join(json.dumps(line) + "\n" for line in lines).encode()
                self.files[file_id] = {"purpose": "batch_output", "filename": f"{batch['id']}_{name}.jsonl", "data": data}
                batch[name] = file_id
        batch["request_counts"].update(completed=len(output), failed=len(errors))
