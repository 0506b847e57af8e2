"""Several processes on one database, stops by signal, and other people's DuckDB files, all through real
`papertag` processes against the fake server on 127.0.0.1:

- every reading command works while an ingest runs, and sees the papers committed so far;
- a reader holding the file never makes the ingest fail or lose a result;
- a second ingest into the same file stops with a clear line before doing any work;
- Ctrl-C or SIGTERM against a hung server exits within 2 s and keeps every finished paper;
- a DuckDB file that is not papertag's is refused by every command and left byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from fake_openai import FakeOpenAI, default_responder
from papertag.queries import Reader
from papertag.store import SCHEMA_VERSION, Store
from old_schema import rewind_schema
from reliability import lost_papers, record

READERS = [
    ["summaries", "--json"],
    ["query", "--benchmark", "MMLU", "--json"],
    ["tags", "--json"],
    ["export"],
    ["sql", "--json", "select count(*) as n from papers"],
]


def papertag(*args: str) -> list[str]:
    return [sys.executable, "-m", "papertag", *args]


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}


def start(command: list[str]) -> subprocess.Popen:
    # Background jobs of a shell start with SIGINT ignored, and Python keeps it so; give the child the default.
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def write_papers(path: Path, count: int) -> list[str]:
    ids = [f"paper-{i:03d}" for i in range(count)]
    with path.open("w", encoding="utf-8") as out:
        for paper_id in ids:
            out.write(json.dumps({"id": paper_id, "title": f"Study {paper_id}: tagging under load",
                                  "abstract": f"We evaluate method {paper_id} on MMLU and report accuracy."}) + "\n")
    return ids


def slow_responder(seconds: float):
    def respond(request):
        time.sleep(seconds)
        return default_responder(request)
    return respond


def committed(db: Path) -> int:
    with Reader(db) as reader:
        return reader.con.execute("SELECT count(*) FROM current_extractions").fetchone()[0]


def test_readers_work_while_an_ingest_runs(tmp_path):
    db, papers = tmp_path / "live.duckdb", tmp_path / "papers.jsonl"
    ids = write_papers(papers, 80)
    with FakeOpenAI(slow_responder(0.1)) as server:
        ingest = start(papertag("ingest", str(papers), "--db", str(db), "--model", "openai:fake",
                                "--base-url", server.base_url, "--concurrency", "2", "--json"))
        while server.calls < 4 and ingest.poll() is None:
            time.sleep(0.02)
        # In-process readers measure the wait for the file; CLI readers check each command end to end.
        waits, seen, failures, cli_runs = [], [], 0, 0
        while ingest.poll() is None:
            started = time.perf_counter()
            try:
                seen.append(committed(db))
            except Exception:
                failures += 1
            waits.append(time.perf_counter() - started)
            command = READERS[cli_runs % len(READERS)]
            result = subprocess.run(papertag(*command, "--db", str(db)), capture_output=True, text=True,
                                    env=child_env(), timeout=60)
            cli_runs += 1
            failures += result.returncode != 0
            assert result.returncode == 0, (command, result.stderr)
        stdout, stderr = ingest.communicate(timeout=60)
    assert ingest.returncode == 0, stderr
    report = json.loads(stdout)
    lost = lost_papers(db, ids)
    p50, worst = statistics.median(waits), max(waits)
    record("reader during ingest", f"0 failures in {len(waits)} in-process and {cli_runs} CLI reads; wait for the "
           f"file p50 {1000 * p50:.0f} ms, max {1000 * worst:.0f} ms; the ingest stored all {len(ids)} papers",
           cases=len(waits) + cli_runs, lost=len(lost))
    assert failures == 0 and not lost and report["extracted"] == len(ids)
    assert worst < 2.0
    assert len(waits) >= 3 and seen == sorted(seen) and seen[-1] > 0  # progress is visible while it runs


def test_a_long_reader_never_fails_the_ingest(tmp_path):
    db, papers = tmp_path / "held.duckdb", tmp_path / "papers.jsonl"
    ids = write_papers(papers, 30)
    with FakeOpenAI(slow_responder(0.05)) as server:
        command = papertag("ingest", str(papers), "--db", str(db), "--model", "openai:fake", "--base-url",
                           server.base_url, "--concurrency", "2", "--json")
        ingest = start(command)
        while server.calls < 2 and ingest.poll() is None:
            time.sleep(0.01)
        while not db.exists() or committed_or_none(db) is None:
            time.sleep(0.01)
        with Reader(db):  # holds a shared lock on the file for longer than the whole run needs
            time.sleep(4)
            assert server.calls == len(ids)  # every paper was asked while the file was held
        stdout, stderr = ingest.communicate(timeout=60)
    lost = lost_papers(db, ids)
    record("long reader during ingest", "results wait in memory while a reader holds the file, stored when it "
           "lets go; the ingest does not fail", cases=len(ids), lost=len(lost))
    assert ingest.returncode == 0, stderr
    assert json.loads(stdout)["extracted"] == len(ids) and not lost


def committed_or_none(db: Path) -> int | None:
    try:
        return committed(db)
    except Exception:
        return None


def test_a_second_ingest_stops_before_any_work(tmp_path):
    db, papers = tmp_path / "two.duckdb", tmp_path / "papers.jsonl"
    write_papers(papers, 30)
    with FakeOpenAI(slow_responder(0.1)) as server:
        args = ("ingest", str(papers), "--db", str(db), "--model", "openai:fake", "--base-url", server.base_url,
                "--concurrency", "1")
        first = start(papertag(*args))
        while server.calls < 2:
            time.sleep(0.02)
        second = subprocess.run(papertag(*args), capture_output=True, text=True, env=child_env(), timeout=60)
        first_pid = first.pid
        first.communicate(timeout=60)
    record("two ingests into one database", "the second exits 2 at once: another papertag process (PID) is writing",
           cases=1, lost=None)
    assert second.returncode == 2
    assert f"another papertag process (PID {first_pid}) is writing" in second.stderr
    assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
    assert first.returncode == 0
    assert server.calls == 30  # the second sent nothing


class Hang:
    """Answers the first `answered` requests after `delay` seconds, then holds every later one until released."""

    def __init__(self, answered: int, delay: float = 0.0):
        self.answered = answered
        self.delay = delay
        self.count = 0
        self.lock = threading.Lock()
        self.release = threading.Event()

    def __call__(self, request):
        with self.lock:
            self.count += 1
            mine = self.count
        if mine > self.answered:
            self.release.wait(120)
        time.sleep(self.delay)
        return default_responder(request)


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"),
                                               (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_a_signal_stops_a_hung_ingest_within_2_s(tmp_path, signum, code, word):
    db, papers = tmp_path / "hung.duckdb", tmp_path / "papers.jsonl"
    ids = write_papers(papers, 20)
    hang = Hang(answered=6)
    with FakeOpenAI(hang) as server:
        ingest = start(papertag("ingest", str(papers), "--db", str(db), "--model", "openai:fake",
                                "--base-url", server.base_url, "--concurrency", "4", "--json"))
        while server.calls < 6 + 4 and ingest.poll() is None:  # six answered, four workers stuck
            time.sleep(0.02)
        time.sleep(1.2)  # past one flush interval, as a user would be
        sent = time.monotonic()
        ingest.send_signal(signum)
        stdout, stderr = ingest.communicate(timeout=60)
        seconds = time.monotonic() - sent
        hang.release.set()
    kept = committed(db)
    record(f"{signal.Signals(signum).name} on a hung server", f"exit {code} in {seconds:.2f} s, finished papers kept, "
           "summary printed", cases=1, lost=6 - kept)
    assert ingest.returncode == code, stderr
    assert seconds < 2.0
    assert kept == 6 and json.loads(stdout)["extracted"] == 6
    assert f"{word}: 6 finished papers are saved" in stderr and "Traceback" not in stderr
    assert len(lost_papers(db, ids)) == 14  # the rest are pending, not recorded as failed


def test_a_second_ctrl_c_exits_at_once_and_quietly(tmp_path):
    db, papers = tmp_path / "twice.duckdb", tmp_path / "papers.jsonl"
    write_papers(papers, 10)
    hang = Hang(answered=2, delay=0.5)
    with FakeOpenAI(hang) as server:
        ingest = start(papertag("ingest", str(papers), "--db", str(db), "--model", "openai:fake",
                                "--base-url", server.base_url, "--concurrency", "2"))
        while server.calls < 1:
            time.sleep(0.01)
        # Two papers finish while this reader holds the file, so the flush after the first Ctrl-C has to wait
        # for it; the second Ctrl-C must not.
        with Reader(db):
            while server.calls < 4:
                time.sleep(0.02)
            ingest.send_signal(signal.SIGINT)
            time.sleep(0.3)
            sent = time.monotonic()
            ingest.send_signal(signal.SIGINT)
            stdout, stderr = ingest.communicate(timeout=30)
            seconds = time.monotonic() - sent
        hang.release.set()
    record("second Ctrl-C", f"exit 130 in {seconds:.2f} s, no traceback", cases=1, lost=None)
    assert ingest.returncode == 130 and seconds < 1.0
    assert "Traceback" not in stderr and "Exception" not in stderr


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def foreign_database(path: Path, table: str) -> None:
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE {table} (id VARCHAR, title VARCHAR); INSERT INTO {table} VALUES ('x', 'theirs')")
    con.close()


@pytest.mark.parametrize("table", ["papers", "measurements"])
def test_someone_elses_duckdb_file_is_refused_untouched(tmp_path, fake_server, sample_path, table):
    db = tmp_path / "their.duckdb"
    foreign_database(db, table)
    before = sha256(db)
    commands = [[*command, "--db", str(db)] for command in READERS] + [
        ["show", "x", "--db", str(db)],
        ["ingest", str(sample_path), "--db", str(db), "--model", "openai:fake", "--base-url", fake_server.base_url],
    ]
    for command in commands:
        result = subprocess.run(papertag(*command), capture_output=True, text=True, env=child_env(), timeout=60)
        assert result.returncode == 2, (command, result.stderr)
        assert "is not a papertag database" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    record("someone else's DuckDB file", "every command: one line, exit 2, file byte-identical",
           cases=len(commands), lost=None)
    assert sha256(db) == before and sorted(p.name for p in tmp_path.glob("their.duckdb*")) == ["their.duckdb"]
    assert fake_server.calls == 0


def test_a_newer_papertag_database_is_refused_by_readers_and_writers(tmp_path, fake_server, sample_path):
    db = tmp_path / "newer.duckdb"
    with Store(db) as store:
        store.con.execute("INSERT INTO schema_migrations VALUES (?, now())", [SCHEMA_VERSION + 1])
    before = sha256(db)
    commands = [[*command, "--db", str(db)] for command in READERS] + [
        ["ingest", str(sample_path), "--db", str(db), "--model", "openai:fake", "--base-url", fake_server.base_url],
    ]
    for command in commands:
        result = subprocess.run(papertag(*command), capture_output=True, text=True, env=child_env(), timeout=60)
        assert result.returncode == 2, (command, result.stderr)
        assert "written by a newer papertag" in result.stderr and "Traceback" not in result.stderr
    record("database from a newer papertag", "readers and writers: one line, exit 2, file untouched",
           cases=len(commands), lost=None)
    assert sha256(db) == before


def test_papertag_databases_from_before_the_mark_still_open(tmp_path, fake_server, sample_path):
    """A database written before the mark existed (schema 3) is recognised by its tables and upgraded."""
    db = tmp_path / "old.duckdb"
    with Store(db) as store:
        rewind_schema(store.con, 3)  # as schema 3 left it
    result = subprocess.run(papertag("ingest", str(sample_path), "--db", str(db), "--model", "openai:fake",
                                     "--base-url", fake_server.base_url), capture_output=True, text=True,
                            env=child_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    with Reader(db) as reader:
        assert reader.con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == SCHEMA_VERSION
