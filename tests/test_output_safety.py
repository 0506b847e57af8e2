"""Output safety: what papertag writes never costs the user a file, a valid JSON document, a quiet pipe, a private
path or the machine's memory. Exports cannot overwrite the database and replace their output file only on success;
`sql --json` prints valid JSON for every DuckDB type; a closed pipe ends a command quietly with exit code 0; `sql`
errors name no local file; `sql` output is bounded in rows and time."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAI
from papertag.cli import app
from papertag.extract import Extraction
from papertag.prompts import load_prompt
from papertag.queries import Reader, run_read_only_sql
from papertag.schema import PaperTags
from papertag.sources import make_paper, parse_file
from papertag.store import Store
from reliability import record
from test_ingest import run

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "hf-papers-skills.txt"
SRC = Path(__file__).resolve().parents[1] / "src"
SAMPLE_PAPERS = 31
PIPE_PAPERS = 5000  # ~1 MB of JSONL, ~250 KB of summaries: far more than a 64 KiB pipe buffer holds
# Absolute paths as they appear in messages: /a/b, ~/a, C:\a (not URLs such as s3://bucket/x).
ABSOLUTE_PATH = re.compile(r"""(?<![\w.:/\\])(?:~|[A-Za-z]:)?[/\\][\w.-]+(?:[/\\][\w.@+-]*)*""")


def cli(*args):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def papertag_process(*args, **popen_options) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen([sys.executable, "-m", "papertag", *map(str, args)], env=env, **popen_options)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def paper_count(db: Path) -> int:
    with Reader(db) as reader:
        return reader.con.execute("SELECT count(*) FROM papers").fetchone()[0]


@pytest.fixture(scope="module")
def sample_db_once(tmp_path_factory) -> Path:
    """The sample file, tagged by the fake OpenAI server once per module; tests work on a copy."""
    db = tmp_path_factory.mktemp("sample") / "papers.duckdb"
    with pytest.MonkeyPatch.context() as env, FakeOpenAI() as server:
        env.delenv("OPENAI_API_KEY", raising=False)
        run(db, parse_file(SAMPLE).papers, server)
    return db


@pytest.fixture
def sample_db(sample_db_once, tmp_path) -> Path:
    db = tmp_path / "papers.duckdb"
    shutil.copyfile(sample_db_once, db)
    return db


@pytest.fixture(scope="module")
def many_papers_db(tmp_path_factory) -> Path:
    """Thousands of tagged papers in a second or two: stored straight through Store, no model server."""
    db = tmp_path_factory.mktemp("many") / "papers.duckdb"
    papers = [make_paper(f"Paper {i} on skill discovery", f"Abstract {i}: MMLU with LoRA adapters.", "x", f"p{i}")
              for i in range(PIPE_PAPERS)]
    tags = PaperTags(summary="A summary of this paper and its result.", tasks=["skill discovery"],
                     methods=["LoRA adapters"], benchmarks=["MMLU"], domain="nlp")
    store = Store(db)
    try:
        store.add_papers(papers)
        store.save([Extraction(paper, tags, "{}", 1, 1, 0.0, False) for paper in papers], "openai:fake", load_prompt())
    finally:
        store.close()
    return db


# 1. export -o never overwrites the database, and replaces its output only when the export succeeded.

def database_spellings(db: Path) -> dict[str, Path]:
    (db.parent / "sub").mkdir(exist_ok=True)
    link = db.parent / "link.duckdb"
    link.symlink_to(db)
    return {
        "same path": db,
        "dot-dot": db.parent / "sub" / ".." / db.name,
        "symlink": link,
        "write-ahead log": db.parent / (db.name + ".wal"),
    }


@pytest.mark.parametrize("export_format", ["jsonl", "csv", "parquet"])
def test_export_onto_the_database_is_refused(sample_db, export_format):
    before = digest(sample_db)
    spellings = database_spellings(sample_db)
    for name, output in spellings.items():
        result = cli("export", "--format", export_format, "-o", output, "--db", sample_db)
        assert result.exit_code == 2, (name, result.output)
        assert "database" in result.stderr and len(result.stderr.strip().splitlines()) == 1, (name, result.stderr)
        assert "Traceback" not in result.output
    assert digest(sample_db) == before
    assert not (sample_db.parent / (sample_db.name + ".wal")).exists()
    lost = SAMPLE_PAPERS - paper_count(sample_db)
    record("export -o onto its own database", "refused with a one-line error, exit 2; database byte-identical",
           cases=len(spellings), lost=lost)
    assert lost == 0


def test_export_onto_the_database_in_a_real_process(sample_db):
    before = digest(sample_db)
    done = subprocess.run([sys.executable, "-m", "papertag", "export", "-o", sample_db.name, "--db", sample_db.name],
                          cwd=sample_db.parent, env={**os.environ, "PYTHONPATH": str(SRC)}, capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (2, "")
    assert "database" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert digest(sample_db) == before and paper_count(sample_db) == SAMPLE_PAPERS


def failing_records(reader):
    """Reader.export that fails after the first record, as a full disk would."""
    def records():
        yield from reader_export(reader)[:1]
        raise OSError(errno.ENOSPC, "No space left on device")
    return records()


reader_export = Reader.export


class HalfWrittenParquet:
    def __init__(self, relation):
        self.relation = relation

    def write_parquet(self, path, **options):
        Path(path).write_bytes(b"PAR1 half a file")
        raise duckdb.IOException("IO Error: No space left on device")


@pytest.mark.parametrize("export_format", ["jsonl", "csv", "parquet"])
def test_failed_export_leaves_the_previous_output_untouched(sample_db, monkeypatch, export_format):
    output = sample_db.parent / f"papers.{export_format}"
    assert cli("export", "--format", export_format, "-o", output, "--db", sample_db).exit_code == 0
    good, folder = digest(output), sorted(os.listdir(sample_db.parent))
    monkeypatch.setattr(Reader, "export", failing_records)
    export_relation = Reader.export_relation
    monkeypatch.setattr(Reader, "export_relation", lambda reader: HalfWrittenParquet(export_relation(reader)))
    result = cli("export", "--format", export_format, "-o", output, "--db", sample_db)
    assert result.exit_code == 2 and "No space left" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(sample_db.parent)) == folder  # no temporary file left behind
    record("export that fails midway", "previous output file byte-identical, no temporary file left; exit 2",
           cases=1, lost=None)
    assert digest(output) == good


def test_successful_export_replaces_the_file_and_keeps_its_permissions(sample_db):
    output = sample_db.parent / "papers.jsonl"
    output.write_text("old\n")
    output.chmod(0o600)
    assert cli("export", "-o", output, "--db", sample_db).exit_code == 0
    assert len(output.read_text().splitlines()) == SAMPLE_PAPERS
    assert output.stat().st_mode & 0o777 == 0o600


def test_export_through_a_symlink_writes_the_target(sample_db):
    target = sample_db.parent / "real.jsonl"
    target.write_text("old\n")
    link = sample_db.parent / "link.jsonl"
    link.symlink_to(target)
    assert cli("export", "-o", link, "--db", sample_db).exit_code == 0
    assert link.is_symlink() and len(target.read_text().splitlines()) == SAMPLE_PAPERS


def test_export_to_a_fifo_writes_through_it(sample_db):
    """Devices and pipes (-o /dev/stdout, a FIFO) are written in place, never replaced by a regular file."""
    fifo = sample_db.parent / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = cli("export", "-o", fifo, "--db", sample_db)
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert fifo.is_fifo() and len(received[0].splitlines()) == SAMPLE_PAPERS


# 2. sql --json: every DuckDB type comes out as valid JSON.

TYPED_VALUES = [
    ("1.5", 1.5),
    ("12345678901234567890::DECIMAL(38,0)", 12345678901234567890),
    ("170141183460469231731687303715884105727::HUGEINT", 170141183460469231731687303715884105727),
    ("DATE '2024-01-02'", "2024-01-02"),
    ("'infinity'::DATE", "9999-12-31"),
    ("TIME '10:11:12'", "10:11:12"),
    ("TIMETZ '10:11:12+02'", "10:11:12+02:00"),
    ("TIMESTAMP '2024-01-02 10:11:12.5'", "2024-01-02T10:11:12.500000"),
    ("TIMESTAMPTZ '2024-01-02 10:11:12+00'", "2024-01-02 10:11:12+00"),
    ("'00000000-0000-0000-0000-000000000001'::UUID", "00000000-0000-0000-0000-000000000001"),
    (r"'\xFF\x00a'::BLOB", base64.b64encode(b"\xff\x00a").decode()),
    ("INTERVAL 14 MONTH + INTERVAL 3 DAY", "1 year 2 months 3 days"),
    ("'nan'::DOUBLE", None),
    ("'inf'::DOUBLE", None),
    ("'-inf'::FLOAT", None),
    ("[1.5, 'nan'::DOUBLE]", [1.5, None]),
    ("[1, 2]::INTEGER[2]", [1, 2]),
    ("{'a': 1.5, 'd': DATE '2024-01-02', 'b': 'x'::BLOB}", {"a": 1.5, "d": "2024-01-02", "b": "eA=="}),
    ("MAP([DATE '2024-01-02'], [1.5])", {"2024-01-02": 1.5}),
    ("[INTERVAL 1 DAY]", ["1 day"]),
    ("{'t': TIMESTAMPTZ '2024-01-02 10:11:12+00'}", {"t": "2024-01-02 10:11:12+00"}),
    ("'101'::BIT", "101"),
    ("union_value(k := 1)", 1),
    ("'{\"a\": 1}'::JSON", '{"a": 1}'),
    ("NULL", None),
]


@pytest.mark.parametrize("expression, expected", TYPED_VALUES, ids=[expression for expression, _ in TYPED_VALUES])
def test_sql_json_is_valid_for_every_type(sample_db, expression, expected):
    result = cli("sql", "--json", f"SELECT {expression} AS x", "--db", sample_db)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)  # strict: NaN and Infinity would fail here
    assert rows == [{"x": expected}]
    table = cli("sql", f"SELECT {expression} AS x", "--db", sample_db)
    assert table.exit_code == 0 and "Traceback" not in table.output, table.output
    record("sql --json on every DuckDB type", "valid JSON (decimals as numbers, ISO dates, base64 BLOBs, NaN as null); "
           "table output too", cases=1, lost=None)


# 3. A reader that closes the pipe early ends the command quietly, as it ends `cat`.

PIPED_COMMANDS = [
    ["export"],
    ["export", "--format", "csv"],
    ["summaries"],
    ["summaries", "--json"],
    ["query", "--benchmark", "MMLU"],
    ["tags", "--json"],
    ["sql", "SELECT id, title FROM papers"],
    ["sql", "--json", "SELECT * FROM papers"],
]


@pytest.mark.parametrize("args", PIPED_COMMANDS, ids=" ".join)
def test_closed_pipe_exits_quietly(many_papers_db, args):
    process = papertag_process(*args, "--db", many_papers_db, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first_line = process.stdout.readline()
    process.stdout.close()  # as `head -1` does
    stderr = process.stderr.read().decode()
    exit_code = process.wait(timeout=120)
    assert first_line
    record("reader closes the pipe early (papertag ... | head -1)", "exit 0, nothing on stderr", cases=1, lost=None)
    assert (exit_code, stderr) == (0, "")


def test_closed_pipe_in_a_shell_pipeline(many_papers_db):
    done = subprocess.run(f"'{sys.executable}' -m papertag export --db '{many_papers_db}' | head -1; "
                          "echo \"exit=${PIPESTATUS[0]}\"", shell=True, executable="/bin/bash", capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    lines = done.stdout.splitlines()
    assert json.loads(lines[0])["id"] and lines[1] == "exit=0" and done.stderr == ""


# 4. sql errors name no local file other than the user's own database.

@pytest.mark.parametrize("statement", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM '{secrets}/key.csv'",
    "SELECT * FROM read_text('~/.ssh/id_rsa')",
    "SELECT * FROM glob('/tmp/*')",
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM duckdb_extensions()",
    "SELECT * FROM which_secret('s3://bucket/x', 's3')",
    "SELECT * FROM no_such_table",
    "SELECT error('{secrets}/key.csv')",
    "SELECT 1 +",
])
def test_sql_errors_name_no_local_path(sample_db, statement):
    secrets = sample_db.parent / "secrets"
    secrets.mkdir()
    (secrets / "key.csv").write_text("key\nhunter2\n")
    statement = statement.format(secrets=secrets)
    result = cli("sql", statement, "--db", sample_db)
    assert result.exit_code == 2 and result.stdout == ""
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    leaked = [path for path in ABSOLUTE_PATH.findall(message) if not path.startswith(str(sample_db))]
    record("sql error messages", "first line only; no local path except the --db file", cases=1, lost=None)
    assert leaked == [], message
    assert "secrets" not in message and "/etc" not in message and "~/" not in message, message


# 5. sql output is bounded: a row limit (fetched lazily) and a time limit.

def run_measured(*args) -> tuple[int, str, str, float, float]:
    """Exit code, stdout, stderr, wall seconds and peak RSS in MB of one papertag process."""
    started = time.perf_counter()
    process = papertag_process(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    output: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda name=name: output.update({name: getattr(process, name).read()}))
               for name in ("stdout", "stderr")]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS, not the largest of all children
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    return process.returncode, output["stdout"].decode(), output["stderr"].decode(), seconds, usage.ru_maxrss / 1024


def test_sql_row_limit_stops_an_endless_query(sample_db):
    exit_code, stdout, stderr, seconds, peak_mb = run_measured(
        "sql", "--json", "SELECT * FROM range(10000000000)", "--db", sample_db)
    rows = json.loads(stdout)
    print(f"sql range(1e10): {len(rows):,} rows in {seconds:.1f} s, peak RSS {peak_mb:.0f} MB")
    assert exit_code == 0 and len(rows) == 10_000
    assert len(stderr.strip().splitlines()) == 1 and "10,000" in stderr and "--max-rows" in stderr, stderr
    record("sql on an endless result (range(1e10))", "stops at the 10,000-row default with a one-line note; "
           "--max-rows N lifts it", cases=len(rows), lost=None)
    assert seconds < 60


def test_sql_max_rows_option(sample_db):
    limited = cli("sql", "--json", "--max-rows", "3", "SELECT * FROM range(10)", "--db", sample_db)
    assert limited.exit_code == 0 and len(json.loads(limited.stdout)) == 3
    assert "3 rows" in limited.stderr and len(limited.stderr.strip().splitlines()) == 1
    exact = cli("sql", "--json", "--max-rows", "10", "SELECT * FROM range(10)", "--db", sample_db)
    assert len(json.loads(exact.stdout)) == 10 and exact.stderr == ""  # exactly the limit is not cut
    unlimited = cli("sql", "--json", "--max-rows", "0", "SELECT * FROM range(20000)", "--db", sample_db)
    assert len(json.loads(unlimited.stdout)) == 20000 and unlimited.stderr == ""
    table = cli("sql", "--max-rows", "2", "SELECT * FROM range(10)", "--db", sample_db)
    assert table.exit_code == 0 and "2 rows" in table.stderr


def test_sql_time_limit(sample_db):
    started = time.perf_counter()
    result = cli("sql", "--timeout", "0.5", "SELECT count(*) FROM range(1000000000000)", "--db", sample_db)
    seconds = time.perf_counter() - started
    print(f"sql --timeout 0.5 on a long count: stopped after {seconds:.2f} s")
    assert result.exit_code == 2 and "--timeout" in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    record("sql running past --timeout", "interrupted, one-line error, exit 2", cases=1, lost=None)
    assert seconds < 10
    quick = cli("sql", "--json", "--timeout", "0.5", "SELECT 1 AS x", "--db", sample_db)
    assert json.loads(quick.stdout) == [{"x": 1}]


def test_sql_limits_in_the_library(sample_db):
    result = run_read_only_sql(sample_db, "SELECT * FROM range(100)", max_rows=7)
    assert len(result.rows) == 7 and result.cut
    assert not run_read_only_sql(sample_db, "SELECT * FROM range(7)", max_rows=7).cut


# 6. --format csv on a file that is not CSV: a short, useful message.

def test_csv_format_on_jsonl_names_few_columns_and_suggests_jsonl(tmp_path):
    path = tmp_path / "papers.txt"
    long_abstract = "We study " + "very " * 200 + "long abstracts."
    path.write_text(json.dumps({"id": "a1", "title": "A title", "abstract": long_abstract, "year": 2024,
                                "authors": ["x", "y"], "venue": "v"}) + "\n")
    result = cli("ingest", path, "--format", "csv", "--model", "openai:fake", "--base-url", "http://127.0.0.1:9")
    message = result.stderr.strip()
    assert result.exit_code == 2 and len(message.splitlines()) == 1, message
    assert "--format jsonl" in message and "missing column" in message
    assert "very very very very very very very" not in message and len(message) < 400, message
    record("--format csv on a JSONL file", "one short line naming a few columns and suggesting --format jsonl",
           cases=1, lost=None)


def test_csv_with_many_wrong_columns_is_summarised(tmp_path):
    path = tmp_path / "papers.csv"
    header = [f"column_with_a_rather_long_name_number_{i}_{'x' * 30}" for i in range(30)]
    path.write_text(",".join(header) + "\n" + ",".join("v" for _ in header) + "\n")
    result = cli("ingest", path, "--model", "openai:fake", "--base-url", "http://127.0.0.1:9")
    message = result.stderr.strip()
    assert result.exit_code == 2 and "missing column" in message and len(message) < 400, message
    assert "30 columns" in message and "--format jsonl" not in message
