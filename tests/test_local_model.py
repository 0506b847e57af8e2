"""The real path: the embedded llama.cpp server with the default model, on two sample abstracts."""

import pytest

from reliability import record

from papertag.ingest import ingest
from papertag.prompts import load_prompt
from papertag.queries import Reader
from papertag.schema import DOMAINS
from papertag.sources import parse_file
from papertag.store import Store

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def real_model_cache(monkeypatch):
    """Reuse the assembled model across runs instead of re-assembling 1.1 GB into a temp dir."""
    monkeypatch.delenv("PAPERTAG_CACHE_DIR", raising=False)


def test_default_local_model_extracts_and_stores(sample_path, db_path):
    papers = parse_file(sample_path).papers
    cycleqd = papers[0]
    assert cycleqd.title.endswith("via CycleQD")
    store = Store(db_path)
    report = ingest(store, [cycleqd, papers[2]], spec="local", prompt=load_prompt())
    store.close()
    assert (report.extracted, report.failed) == (2, 0), report.failures

    reader = Reader(db_path)
    records = {record["id"]: record for record in reader.export()}
    reader.close()
    assert len(records) == 2
    for record in records.values():
        assert record["model"] == "local"
        assert 0 < len(record["summary"].split()) <= 30
        assert record["summary"].casefold() != record["title"].casefold()
        assert 1 <= len(record["tasks"]) <= 3 and 1 <= len(record["methods"]) <= 5
        assert record["domain"] in DOMAINS
    assert "agentbench" in {b.casefold() for b in records[cycleqd.id]["benchmarks"]}


def test_embedded_server_is_loopback_only_and_needs_the_process_key():
    import httpx

    from papertag.backends import open_endpoint

    with open_endpoint("local:fast") as endpoint:
        assert endpoint.base_url.startswith("http://127.0.0.1:")
        request = {"model": endpoint.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        anonymous = httpx.post(endpoint.base_url + "/chat/completions", json=request, timeout=60)
        wrong = httpx.post(endpoint.base_url + "/chat/completions", json=request, timeout=60,
                           headers={"Authorization": "Bearer not-the-key"})
        right = httpx.post(endpoint.base_url + "/chat/completions", json=request, timeout=60,
                           headers={"Authorization": f"Bearer {endpoint.api_key}"})
        assert (anonymous.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
        url = endpoint.base_url
    with pytest.raises(httpx.TransportError):  # the server stops with its context
        httpx.post(url + "/chat/completions", json=request, timeout=5)
    record("embedded llama.cpp server", "binds 127.0.0.1 only; no key or a wrong key gets 401; "
           "stops with the run (nothing left listening)", cases=3, lost=None)
