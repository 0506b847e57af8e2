"""SIGKILL in the middle of `papertag ingest`, twice, then a run to the end: every paper is stored exactly once,
the database opens, nothing committed before a kill is lost or redone, and the work a kill throws away is at
most the one write batch that was not committed yet.

DuckDB lets no other process open the file while the writer runs, so the test cannot read the database just
before the kill. Instead the ingest process runs with Store.save wrapped to log each batch's ids after its
COMMIT returns: those papers were durable at that moment, and must still be there after the kill.
"""

import json
import os
import random
import subprocess
import sys
import time

from fault_server import FaultServer
from papertag.ingest import FLUSH_EVERY_N
from papertag.queries import Reader
from reliability import record, stored_statuses

PAPERS = 160
CONCURRENCY = 4
# Each kill comes after this process committed some papers, then a little more: it lands between two commits.
KILLS = ((40, 0.15), (30, 0.25))  # (papers committed by the run, seconds more)

COMMIT_LOGGING_CLI = """
import json, os, sys
from papertag.store import Store
from papertag.cli import main

save = Store.save

def logged_save(self, results, *args, **kwargs):
    save(self, results, *args, **kwargs)
    with open(os.environ["PAPERTAG_COMMIT_LOG"], "a") as log:  # only after COMMIT returned
        log.write(json.dumps([result.paper.id for result in results]) + "\\n")

Store.save = logged_save
main()
"""


def committed_ids(log_path) -> set[str]:
    if not log_path.exists():
        return set()
    return {paper_id for line in log_path.read_text().splitlines() if line.endswith("]") for paper_id in json.loads(line)}


def extraction_rows(db_path) -> dict[str, tuple]:
    with Reader(db_path) as reader:
        rows = reader.con.execute("SELECT paper_id, id, created_at FROM extractions").fetchall()
    return {paper_id: (extraction_id, created_at) for paper_id, extraction_id, created_at in rows}


def test_sigkill_midway_keeps_committed_work_and_redoes_at_most_one_batch(tmp_path):
    db_path, log_path, input_path = tmp_path / "crash.duckdb", tmp_path / "commits.log", tmp_path / "papers.jsonl"
    titles = {f"crash-{i}": f"Crash paper {i}" for i in range(PAPERS)}
    input_path.write_text("".join(
        json.dumps({"id": paper_id, "title": title, "abstract": f"{title} is evaluated on WebArena."}) + "\n"
        for paper_id, title in titles.items()))
    # Some papers meet a retryable fault first (not 429/503: those pause every worker and slow the test down);
    # every answer trickles in over ~40 ms.
    rng = random.Random(7)
    scripts = {title: [rng.choice(["500", "connection reset"])] for title in titles.values() if rng.random() < 0.05}

    def decide(title, attempt):
        return scripts[title][attempt] if attempt < len(scripts.get(title, [])) else "slow trickle"

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    env.update(PAPERTAG_COMMIT_LOG=str(log_path), PAPERTAG_TIMEOUT="5")
    before_kill: dict[str, tuple] = {}
    with FaultServer(decide, trickle_gap_s=0.005) as server:
        command = [sys.executable, "-c", COMMIT_LOGGING_CLI, "ingest", str(input_path), "--db", str(db_path),
                   "--model", "openai:fake", "--base-url", server.base_url, "--concurrency", str(CONCURRENCY), "--json"]
        for kill_after, then in KILLS:
            target = len(committed_ids(log_path)) + kill_after
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            deadline = time.monotonic() + 60
            while len(committed_ids(log_path)) < target and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(then)
            assert process.poll() is None, "ingest finished before it could be killed"
            answered = {title for _, title, fault in server.log if fault == "slow trickle"}
            process.kill()
            process.wait(timeout=30)
            process.stdout.close()
            process.stderr.close()

            committed = committed_ids(log_path)
            statuses = stored_statuses(db_path)  # the database opens after the kill
            stored = {paper_id for paper_id, rows in statuses.items() if rows}
            lost = committed - stored
            redone = {paper_id for paper_id, title in titles.items() if title in answered} - stored
            record("SIGKILL during ingest", "database opens; committed batches survive untouched; the rerun redoes "
                   f"only the uncommitted batch (at most {FLUSH_EVERY_N} papers + {CONCURRENCY} in flight)",
                   cases=1, lost=len(lost))
            assert not lost
            assert all(len(rows) <= 1 for rows in statuses.values())
            assert len(stored - committed) <= FLUSH_EVERY_N  # killed between a COMMIT and its log line
            assert len(redone) <= FLUSH_EVERY_N + CONCURRENCY  # one write batch, plus answers still in flight
            rows = extraction_rows(db_path)
            assert all(rows[paper_id] == row for paper_id, row in before_kill.items())  # earlier work untouched
            before_kill = rows

        asked_before_final = len(server.log)
        final = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        asked_again = {title for _, title, _ in server.log[asked_before_final:]}
    assert final.returncode == 0, final.stderr
    report = json.loads(final.stdout)
    assert (report["cached"], report["extracted"], report["failed"]) == (len(before_kill), PAPERS - len(before_kill), 0)
    assert not asked_again & {titles[paper_id] for paper_id in before_kill}  # nothing stored is asked for again
    assert stored_statuses(db_path) == {paper_id: ["ok"] for paper_id in titles}
    rows = extraction_rows(db_path)
    assert all(rows[paper_id] == row for paper_id, row in before_kill.items())
