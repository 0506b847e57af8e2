from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_openai import FakeOpenAI  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "hf-papers-skills.txt"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test reads the user's cache, database, keys or model choice."""
    monkeypatch.setenv("PAPERTAG_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("PAPERTAG_DB", "PAPERTAG_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "PAPERTAG_CONTEXT_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake_server():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def sample_path() -> Path:
    return SAMPLE


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "test.duckdb"
