"""The real path: the embedded llama.cpp server with the default model, on two sample abstracts."""

import re

import duckdb
import pytest

from reliability import record

from papertag.ingest import ingest
from papertag.machine import cpu_name
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
    con = duckdb.connect(str(db_path), read_only=True)
    machines = con.execute("SELECT DISTINCT answered_on FROM extractions").fetchall()
    con.close()
    assert len(machines) == 1 and re.fullmatch(re.escape(cpu_name()) + r", \d+ threads", machines[0][0]), machines


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



def listening_port(pid: int) -> int | None:
    """The port of the process's listening TCP socket (the embedded server), if it has one yet."""
    import os

    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    with open(f"/proc/{pid}/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    ports = [int(row[1].split(":")[1], 16) for row in rows if row[3] == "0A" and row[9] in inodes]
    return ports[0] if ports else None


def start_local_ingest(sample_path, db):
    import os
    import signal
    import subprocess
    import sys

    command = [sys.executable, "-m", "papertag", "ingest", str(sample_path), "--db", str(db), "--model", "local:fast"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")} | {"PAPERTAG_LOCAL_SLOTS": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.parametrize("when", ["loading", "generating"])
def test_ctrl_c_with_the_local_model_exits(sample_path, tmp_path, when):
    """Ctrl-C while llama.cpp loads the model once hung for good, and stopping it while a slot generates waited
    for the answer (still waiting after 300 s). Loading is let finish (seconds); generating is not waited for."""
    import signal
    import time

    import httpx

    process = start_local_ingest(sample_path, tmp_path / "local.duckdb")
    deadline = time.monotonic() + 300
    port = None
    while port is None and process.poll() is None and time.monotonic() < deadline:
        port = listening_port(process.pid)
        time.sleep(0.1)
    if when == "generating":
        while httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code != 200:
            time.sleep(0.2)
        time.sleep(2)  # the first paper is being generated
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    seconds = time.monotonic() - sent
    record(f"Ctrl-C while the local model is {when}", f"exit 130 in {seconds:.1f} s"
           + (" (the load finishes first)" if when == "loading" else "; the embedded server is not waited for"),
           cases=1, lost=None)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert seconds < (60 if when == "loading" else 2.0)
