"""`--base-url` against a vLLM-style OpenAI-compatible server: its request handling and its error shapes.

vLLM answers errors with a top-level object ({"object": "error", "message": ..., "type": ..., "code": ...}),
not OpenAI's {"error": {...}}, and sheds load with 503s; papertag must report the first and retry the second."""

import json

from typer.testing import CliRunner

from fake_openai import FakeOpenAI, Reply, default_responder
from papertag.cli import app

runner = CliRunner()


def vllm_error(status: int, message: str, kind: str) -> Reply:
    return Reply(status, {"object": "error", "message": message, "type": kind, "param": None, "code": status})


def ingest(server, *args):
    result = runner.invoke(app, ["ingest", *map(str, args), "--model", "openai:Qwen/Qwen2.5-7B-Instruct",
                                 "--base-url", server.base_url, "--json"], catch_exceptions=False)
    return result, json.loads(result.stdout) if result.stdout.strip() else None


def write_papers(tmp_path, count=3):
    path = tmp_path / "papers.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "title": f"Paper {i}", "abstract": f"We study thing {i} on MMLU."}) + "\n"
                            for i in range(count)))
    return path


def test_model_name_and_no_key_reach_the_server(tmp_path):
    with FakeOpenAI() as server:
        result, report = ingest(server, write_papers(tmp_path))
    assert result.exit_code == 0 and report["extracted"] == 3
    assert {request["model"] for request in server.requests} == {"Qwen/Qwen2.5-7B-Instruct"}
    # No OPENAI_API_KEY is set: self-hosted servers get a placeholder, never a real key from somewhere else.
    assert set(server.authorization) == {"Bearer unused"}


def test_context_length_error_fails_that_paper_with_vllms_message(tmp_path):
    def responder(request):
        if "Paper 1" in request["messages"][-1]["content"]:
            return vllm_error(400, "This model's maximum context length is 4096 tokens. However, you requested 9000 tokens.",
                              "BadRequestError")
        return default_responder(request)

    with FakeOpenAI(responder) as server:
        result, report = ingest(server, write_papers(tmp_path))
        calls = server.calls
    assert result.exit_code == 1
    assert (report["extracted"], report["failed"]) == (2, 1)
    assert calls == 3  # a 400 is not retried
    (failure,) = report["failures"]
    assert failure["id"] == "p1"
    assert failure["error"].startswith("HTTP 400") and "maximum context length" in failure["error"]
    assert "\n" not in failure["error"]


def test_unknown_model_404_is_one_clear_error_per_paper(tmp_path):
    with FakeOpenAI(lambda request: vllm_error(404, "The model `Qwen/Qwen2.5-7B-Instruct` does not exist.", "NotFoundError")) as server:
        result, report = ingest(server, write_papers(tmp_path, 2))
    assert result.exit_code == 1 and report["failed"] == 2
    assert all("does not exist" in failure["error"] for failure in report["failures"])


def test_overloaded_503_and_429_are_retried(tmp_path, monkeypatch):
    answers = iter([vllm_error(503, "Service Unavailable", "ServiceUnavailableError"),
                    vllm_error(429, "Too many requests", "RateLimitError")])

    def responder(request):
        return next(answers, None) or default_responder(request)

    with FakeOpenAI(responder) as server:
        result, report = ingest(server, write_papers(tmp_path, 2))
        calls = server.calls
    assert result.exit_code == 0 and report["extracted"] == 2
    assert calls == 4


def test_base_url_with_trailing_slash_and_env_var(tmp_path, monkeypatch):
    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/")
        result = runner.invoke(app, ["ingest", str(write_papers(tmp_path, 1)), "--model", "openai:m", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["extracted"] == 1
