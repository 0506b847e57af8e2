"""A planted API key never reaches the database, exports, output or error messages."""

import json

from typer.testing import CliRunner

from fake_openai import FakeOpenAI, Reply, default_responder
from reliability import record
from papertag.cli import app

PLANTED = "sk-planted-secret-0123456789abcdef"


def test_planted_key_appears_nowhere(tmp_path, sample_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED)
    seen_keys = []

    def responder(request):
        title = request["messages"][-1]["content"]
        if "SLIM" in title:  # one failure, so an error message is stored and printed too
            return Reply(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
        return default_responder(request)

    runner = CliRunner()
    outputs = []
    with FakeOpenAI(responder) as server:
        for extra in ([], ["--json"]):
            result = runner.invoke(app, ["ingest", str(sample_path), "--model", "openai:fake",
                                         "--base-url", server.base_url, "--force", *extra])
            outputs += [result.stdout, result.stderr]
        seen_keys = server.authorization
    assert f"Bearer {PLANTED}" in seen_keys  # the key was really used
    for command in (["summaries", "--json"], ["tags", "--json"], ["export"], ["export", "--format", "csv"],
                    ["sql", "SELECT * FROM extractions", "--json"], ["show", "4a7aeb1c", "--json"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
        outputs += [result.stdout, result.stderr]
    runner.invoke(app, ["export", "--format", "parquet", "-o", str(tmp_path / "out.parquet")])

    assert not any(PLANTED in text for text in outputs)
    for path in [tmp_path / "papertag.duckdb", tmp_path / "out.parquet"]:
        assert PLANTED.encode() not in path.read_bytes()
    failure = json.loads(runner.invoke(app, ["show", "4a7aeb1c", "--json"]).stdout)["extractions"][0]
    assert failure["status"] == "failed" and "401" in failure["error"]
    record("planted API key", "sent only in the Authorization header; absent from the database, Parquet/JSONL/CSV "
           "exports, stdout, stderr and stored error messages", cases=len(outputs) + 2, lost=None)
