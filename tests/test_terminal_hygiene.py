"""What papertag prints and stores stays clean: hostile ids and file names cannot drive the terminal, a rejected
API key is neither echoed nor retried 200 times, stdin is an input, a failed eval leaves no file behind, and the
ingest summary's time per paper is wall time."""

import json
import os
import re
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAI, Reply, completion, default_responder, rule_based_tags
from papertag.cli import app
from papertag.queries import Reader
from papertag.text import clean_text
from reliability import lost_papers, record, stored_statuses

ABSTRACT = ("We study how research-paper tagging copes with hostile input files and report results on MT-Bench, "
            "showing that every paper is either stored or rejected with a clear message, and nothing else happens.")
# What must never reach a terminal: ESC, BEL and the other C0/C1 controls (tab and newline aside) and bidi marks.
# Written out here rather than imported, so the test does not check the code with itself.
UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def papertag(*args, cwd, input=None, env=None):
    """The CLI as a user runs it: a real process, its exit code and both output streams."""
    result = subprocess.run([sys.executable, "-m", "papertag", *map(str, args)], cwd=cwd, input=input,
                            capture_output=True, text=True, encoding="utf-8", env={**os.environ, **(env or {})})
    assert "Traceback" not in result.stderr, result.stderr
    return result


def assert_printable(result, what):
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        found = UNPRINTABLE.findall(text)
        assert not found, f"{what}: {name} has {found!r}: {text[:500]!r}"


# ---- 1. hostile ids, file names, error bodies and model names ------------------------------------------------------

HOSTILE_IDS = [
    "\u001b[2J\u001b]0;PWNED\u0007evil",  # clear screen, window title, bell
    "x[/bold]y",  # rich markup that crashed ingest
    "bidi\u202egnp.exe\u202c\nnewline",
    "c1\u009b31mred\u0085",
    "\u001b[31m\u0007",  # nothing printable: the content hash names it
]


def hostile_responder(request):
    """Fails one paper with an error body full of escapes and markup; the others are answered."""
    if "Failing paper" in request["messages"][-1]["content"]:
        return Reply(400, {"error": {"message": "bad \x1b]0;OWNED\x07 request [/red] \x1b[5mblink\u202e"}})
    return default_responder(request)


def test_hostile_ids_file_names_and_errors_print_clean(tmp_path):
    records = [{"id": paper_id, "title": f"Hostile id paper {i}", "abstract": f"Paper {i}: {ABSTRACT}"}
               for i, paper_id in enumerate(HOSTILE_IDS)]
    records[1]["abstract"] = "Long paper. " + ABSTRACT * 8  # truncated, so the warning prints its id
    records.append({"id": "fail\x1b[31m[/b]", "title": "Failing paper", "abstract": f"Failing: {ABSTRACT}"})
    path = tmp_path / "evil\x1b]0;TITLE\x07[red]\u202e.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "not json\n")
    db = tmp_path / "hostile.duckdb"
    model = "openai:fake[/b]"  # rich markup, which crashed the progress bar
    env = {"PAPERTAG_CONTEXT_TOKENS": "600"}  # a small context: the long abstract is cut to 1,000 characters
    results = {}
    with FakeOpenAI(hostile_responder) as server:
        for extra in ([], ["--json"]):
            results[f"ingest {extra}"] = papertag("ingest", path, "--db", db, "--model", model, "--base-url",
                                                  server.base_url, "--force", *extra, cwd=tmp_path, env=env)
        results["escape in model name"] = papertag("ingest", path, "--db", tmp_path / "other.duckdb", "--model",
                                                   "openai:fake\x1b]0;X\x07", "--base-url", server.base_url, cwd=tmp_path)
    results["missing file"] = papertag("ingest", tmp_path / "gone\x1b]0;X\x07[b].jsonl", "--db", db, cwd=tmp_path)
    with Reader(db) as reader:
        ids = [paper_id for (paper_id,) in reader.con.execute("SELECT id FROM papers ORDER BY id").fetchall()]
    for command in (["summaries"], ["query", "--domain", "nlp"], ["show", "evil"], ["show", "fail"], ["tags"],
                    ["sql", "SELECT * FROM extractions"], ["export"], ["export", "--format", "csv"]):
        for extra in ([], ["--json"]) if command[0] != "export" else ([],):
            results[" ".join(command + extra)] = papertag(*command, *extra, "--db", db, cwd=tmp_path)

    record("hostile ids, file names, model names and error bodies", "escape sequences, control characters and bidi "
           "marks removed from stored ids and every printed value; rich markup printed literally",
           cases=len(HOSTILE_IDS) + 3, lost=len(lost_papers(db, ids)) + len(records) - len(ids))
    assert not [paper_id for paper_id in ids if ANY_CONTROL.search(paper_id)]
    assert {"evil", "x[/bold]y", "bidi gnp.exe newline", "c1red", "fail[/b]"} <= set(ids) and len(ids) == 6
    assert results["ingest []"].returncode == 1  # one failed paper and one bad line
    assert "abstract truncated" in results["ingest []"].stderr and "x[/bold]y" in results["ingest []"].stderr
    assert "request [/red]" in results["ingest []"].stderr  # the error body, printed as written
    assert results["missing file"].returncode == 2 and "no such file" in results["missing file"].stderr
    assert results["escape in model name"].returncode == 2 and "model spec has control characters" in \
        results["escape in model name"].stderr
    for what, result in results.items():
        assert_printable(result, what)
        assert result.returncode in (0, 1, 2) and "MarkupError" not in result.stderr
    assert "x[/bold]y" in results["query --domain nlp"].stdout  # markup printed as written


def test_osc_and_other_escape_sequences_are_removed_whole():
    assert clean_text("\x1b[2J\x1b]0;PWNED\x07evil") == "evil"
    assert clean_text("see \x1b]8;;http://evil.example\x1b\\this link\x1b]8;;\x1b\\ now") == "see this link now"
    assert clean_text("a\x1bPdevice control\x1b\\b") == "ab"
    assert clean_text("keep ]0; this, \x1b unterminated") == "keep ]0; this, unterminated"
    assert clean_text("c1\x9b31mred") == "c1red"  # the one-byte (C1) form of ESC [
    record("terminal escape sequences (CSI, OSC, DCS)", "removed whole from titles, abstracts and ids", cases=4,
           lost=None)


# ---- 2. a rejected API key -----------------------------------------------------------------------------------------

KEY = "planted-key-0123456789abcdef"  # no sk- prefix: only the configured value can find it


def rejecting(request):
    """A gateway that quotes the key it rejected, and other key-shaped strings, in its error body."""
    return Reply(401, {"error": {"message": f"Incorrect API key provided: {KEY}. Sent headers: Bearer {KEY[::-1]} "
                                            "and sk-proj-abc123DEF456ghi789 for key sk-plan****cdef",
                                 "type": "invalid_request_error"}})


def test_rejected_key_is_redacted_and_stops_the_run(tmp_path, sample_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    db = tmp_path / "key.duckdb"
    with FakeOpenAI(rejecting) as server:
        result = papertag("ingest", sample_path, "--db", db, "--model", "openai:fake", "--base-url", server.base_url,
                          "--concurrency", "4", cwd=tmp_path)
        sent = server.calls
    statuses = stored_statuses(db)
    with Reader(db) as reader:
        errors = [error for (error,) in reader.con.execute("SELECT error FROM extractions").fetchall()]
    db_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("key.duckdb*"))
    with FakeOpenAI() as server:  # the key fixed: a re-run does every paper, including the ones never sent
        rerun = papertag("ingest", sample_path, "--db", db, "--model", "openai:fake", "--base-url", server.base_url,
                         "--json", cwd=tmp_path)
    rerun_report = json.loads(rerun.stdout)

    record("API key rejected (HTTP 401 quoting the key)", f"key redacted from stored and printed errors; run stopped "
           f"after {sent} of {len(statuses)} requests with one line, exit 2; the rest stay pending for a re-run",
           cases=len(statuses), lost=len(statuses) - rerun_report["extracted"] - rerun_report["cached"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: the server rejected the API key (401): check OPENAI_API_KEY"
    assert sent <= 4 + 3 and len(errors) <= sent
    assert all(rows in ([], ["failed"]) for rows in statuses.values()) and len(statuses) == 31
    for text in [result.stdout, result.stderr, *errors]:
        assert KEY not in text and KEY[::-1] not in text and "sk-proj-abc123" not in text and "sk-plan****" not in text
    assert KEY.encode() not in db_bytes and KEY[::-1].encode() not in db_bytes
    assert errors and all("Incorrect API key provided: [redacted]" in error for error in errors)
    assert rerun.returncode == 0 and rerun_report["extracted"] == 31


def test_auth_failures_after_a_success_do_not_stop_the_run(tmp_path, sample_path, monkeypatch):
    """A key that worked once is not the problem: a gateway refusing single requests fails only those papers."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    answered = []

    def first_ok_then_403(request):
        answered.append(1)
        if len(answered) == 1:
            return default_responder(request)
        return Reply(403, {"error": {"message": f"forbidden for {KEY}"}})

    with FakeOpenAI(first_ok_then_403) as server:
        result = papertag("ingest", sample_path, "--db", tmp_path / "a.duckdb", "--model", "openai:fake",
                          "--base-url", server.base_url, "--concurrency", "1", "--json", cwd=tmp_path)
    report = json.loads(result.stdout)
    record("HTTP 403 after a success", "each paper fails on its own; the run goes on", cases=31,
           lost=31 - report["extracted"] - report["failed"])
    assert result.returncode == 1 and (report["extracted"], report["failed"]) == (1, 30)
    assert KEY not in result.stdout + result.stderr


# ---- 3. standard input ---------------------------------------------------------------------------------------------

def listing(n):
    return "".join(f"Stdin listing paper {i}\n{ABSTRACT}\n\n" for i in range(n))


def jsonl(n):
    return "".join(json.dumps({"id": f"stdin-{i}", "title": f"Stdin paper {i}", "abstract": ABSTRACT}) + "\n"
                   for i in range(n))


@pytest.mark.parametrize("text, extra", [(jsonl(3), []), (listing(3), []), (jsonl(3), ["--format", "jsonl"]),
                                         ("id,title,abstract\n" + "".join(f"c{i},CSV paper {i},\"{ABSTRACT}\"\n"
                                                                           for i in range(3)), [])],
                         ids=["jsonl", "listing", "jsonl-format-given", "csv"])
def test_ingest_reads_standard_input(tmp_path, fake_server, text, extra):
    db = tmp_path / "stdin.duckdb"
    result = papertag("ingest", "-", *extra, "--db", db, "--model", "openai:fake", "--base-url", fake_server.base_url,
                      "--json", cwd=tmp_path, input=text)
    statuses = stored_statuses(db) if db.exists() else {}
    record("input on standard input ('ingest -')", "read like a file; format sniffed from the content or given "
           "with --format", cases=3, lost=3 - sum(rows == ["ok"] for rows in statuses.values()))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["extracted"] == 3
    with Reader(db) as reader:
        assert {source for (source,) in reader.con.execute("SELECT DISTINCT source FROM papers").fetchall()} == {"<stdin>"}


def test_empty_standard_input_is_a_one_line_error(tmp_path):
    result = papertag("ingest", "-", "--db", tmp_path / "x.duckdb", cwd=tmp_path, input="")
    assert result.returncode == 2 and result.stderr.strip() == "error: <stdin>: file is empty"
    assert not (tmp_path / "x.duckdb").exists()


# ---- 4. eval leaves no file behind on an error ---------------------------------------------------------------------

def gold_file(path):
    labels = {"summary": "s", "tasks": [], "methods": [], "benchmarks": [], "domain": "nlp"}
    path.write_text(json.dumps({"title": "Gold paper", "abstract": ABSTRACT, "split": "test", "gold": labels}) + "\n")
    return path


@pytest.mark.parametrize("args, message", [
    ([], "evals/gold.jsonl: no such file"),
    (["--gold", "broken.jsonl"], "line 1: not valid JSON"),
    (["--compare", "1", "2"], "no eval run 1"),
    (["--gold", "gold.jsonl", "--model", "nobackend:x"], "unknown model spec"),
    (["--gold", "gold.jsonl", "--model", "openai:gpt-4o-mini"], "OPENAI_API_KEY is not set"),
], ids=["no gold file", "broken gold file", "compare without runs", "unknown model", "no API key"])
def test_eval_errors_leave_no_database(tmp_path, args, message):
    (tmp_path / "broken.jsonl").write_text("{oops\n")
    gold_file(tmp_path / "gold.jsonl")
    result = CliRunner().invoke(app, ["eval", *args])
    record("eval run outside the repo or with bad input", "one-line error, exit 2, no evals.duckdb left behind",
           cases=1, lost=None)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert not list(tmp_path.glob("evals.duckdb*"))


def test_eval_history_without_a_database_creates_none(tmp_path):
    result = CliRunner().invoke(app, ["eval", "--history"])
    assert result.exit_code == 0 and "no eval runs yet" in result.stderr
    assert not list(tmp_path.glob("evals.duckdb*"))


# ---- 5. time per paper is wall time --------------------------------------------------------------------------------

def test_seconds_per_paper_is_wall_time_and_latency_is_reported_apart(tmp_path, sample_path):
    def slow(request):
        time.sleep(0.4)
        return Reply(body=completion(json.dumps(rule_based_tags(request))))

    with FakeOpenAI(slow) as server:
        started = time.perf_counter()
        result = papertag("ingest", sample_path, "--db", tmp_path / "t.duckdb", "--model", "openai:fake",
                          "--base-url", server.base_url, "--concurrency", "4", "--json", cwd=tmp_path)
        elapsed = time.perf_counter() - started
        table = papertag("ingest", sample_path, "--db", tmp_path / "t.duckdb", "--model", "openai:fake", "--force",
                         "--base-url", server.base_url, "--concurrency", "4", cwd=tmp_path)
    report = json.loads(result.stdout)
    done = report["extracted"] + report["failed"]
    record("time per paper with 4 requests in flight", f"wall {report['seconds_per_paper']} s per paper, mean request "
           f"latency {report['mean_request_seconds']} s, reported apart", cases=done, lost=31 - done)
    assert result.returncode == 0 and done == 31
    assert report["mean_request_seconds"] >= 0.4
    assert report["seconds_per_paper"] * done <= elapsed  # wall time of the extraction phase, not summed latency
    assert report["seconds_per_paper"] < report["mean_request_seconds"] / 2  # 4 in flight: about a quarter
    assert "seconds per paper (wall)" in table.stdout and "mean request latency" in table.stdout
