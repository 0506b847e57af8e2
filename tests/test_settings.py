"""Settings are read from the environment once per command, and a bad value is one line naming the variable."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from papertag.cli import app
from papertag.errors import ConfigurationError
from papertag.settings import DEFAULT_CONTEXT_TOKENS, DEFAULT_TIMEOUT_S, Settings


def test_defaults_without_variables():
    settings = Settings.from_env({})
    assert (settings.context_tokens, settings.timeout_s, settings.local_slots, settings.local_threads) == \
        (DEFAULT_CONTEXT_TOKENS, DEFAULT_TIMEOUT_S, None, None)
    assert settings.openai_api_key is None and settings.models_dir == Path.home() / ".cache" / "papertag" / "models"
    assert settings.arxiv_url == "https://export.arxiv.org/api/query"


def test_values_are_parsed_and_the_key_is_not_shown():
    settings = Settings.from_env({"PAPERTAG_CONTEXT_TOKENS": "2048", "PAPERTAG_TIMEOUT": "2.5", "PAPERTAG_LOCAL_SLOTS": "2",
                                  "PAPERTAG_LOCAL_THREADS": "", "OPENAI_API_KEY": "sk-secret", "PAPERTAG_CACHE_DIR": "/c"})
    assert (settings.context_tokens, settings.timeout_s, settings.local_slots, settings.local_threads) == (2048, 2.5, 2, None)
    assert settings.models_dir == Path("/c/models") and "sk-secret" not in repr(settings)


@pytest.mark.parametrize("name, value", [
    ("PAPERTAG_CONTEXT_TOKENS", "32k"), ("PAPERTAG_CONTEXT_TOKENS", "0"), ("PAPERTAG_TIMEOUT", "-1"),
    ("PAPERTAG_TIMEOUT", "nan"), ("PAPERTAG_TIMEOUT", "soon"), ("PAPERTAG_LOCAL_SLOTS", "0"), ("PAPERTAG_LOCAL_THREADS", "two"),
    ("PAPERTAG_ARXIV_URL", "export.arxiv.org/api/query"), ("PAPERTAG_ARXIV_URL", "https://"),
])
def test_bad_value_names_the_variable(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize("command", [["ingest", "{sample}", "--model", "openai:fake", "--base-url", "http://127.0.0.1:9/v1"],
                                     ["batch", "status"], ["eval", "--model", "openai:fake"],
                                     ["arxiv", "cat:cs.CL", "--model", "openai:fake", "--arxiv-url", "http://127.0.0.1:9/"]])
def test_cli_bad_variable_is_one_line_exit_2_and_writes_nothing(command, sample_path, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERTAG_CONTEXT_TOKENS", "32k")
    result = CliRunner().invoke(app, [part.format(sample=sample_path) for part in command])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == ["error: PAPERTAG_CONTEXT_TOKENS must be a whole number, not '32k'"]
    assert not list(tmp_path.glob("*.duckdb"))


def test_settings_are_read_when_the_command_runs_not_at_import(fake_server, sample_path, monkeypatch):
    monkeypatch.setenv("PAPERTAG_CONTEXT_TOKENS", "2048")  # after papertag was imported
    result = CliRunner().invoke(app, ["ingest", str(sample_path), "--model", "openai:fake", "--base-url",
                                      fake_server.base_url, "--json"])
    assert result.exit_code == 0, result.output
    assert '"truncated": 0' not in result.stdout  # a 2,048-token context cuts the sample's longer abstracts
