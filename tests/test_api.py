"""The library API, papertag.open(db): the README's example runs as written, and each method behaves like its command."""

import io
import json
import re
from contextlib import redirect_stdout

import pytest

import papertag
from conftest import REPO
from papertag.errors import InputError, NotFound, PapertagError
from papertag.queries import Reader

README_URL = "http://localhost:8000/v1"
AGENTBENCH_PAPER = "Agent Skill Acquisition for Large Language Models via CycleQD"


def readme_example() -> str:
    """The code between the python-example markers in README.md, exactly as users read it."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- python-example:.*?-->\n```python\n(.*?)```\n<!-- /python-example -->", readme, re.S)
    assert block, "README.md has no python-example block"
    return block.group(1)


def test_readme_example_runs(fake_server, tmp_path):
    code = readme_example()
    assert code.count(README_URL) == 1  # the one thing pointed at the fake server instead
    (tmp_path / "data").symlink_to(REPO / "data")  # the example's relative path, from the test's working folder
    printed = io.StringIO()
    with redirect_stdout(printed):
        exec(compile(code.replace(README_URL, fake_server.base_url), "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert lines[0] == "31 tagged, 0 failed, 120.0 tokens per paper"  # the fake server counts 100 + 20 tokens
    assert lines[1].startswith(AGENTBENCH_PAPER + " — ") and lines[2] == "['AgentBench']"
    assert lines[-1] == "31 papers in papers.duckdb" and fake_server.calls == 31


@pytest.fixture
def library(fake_server, db_path, sample_path):
    with papertag.open(db_path, model="openai:fake", base_url=fake_server.base_url) as library:
        library.ingest(sample_path)
        yield library


def test_ingest_takes_papers_and_reports_skipped_records(fake_server, db_path, tmp_path):
    lines = tmp_path / "papers.jsonl"
    lines.write_text('{"title": "One", "abstract": "We evaluate on AgentBench."}\n{"title": "no abstract"}\n')
    paper = papertag.make_paper("Two", "We evaluate on MT-Bench.", "python", "two")
    with papertag.open(db_path, model="openai:fake", base_url=fake_server.base_url) as library:
        report = library.ingest([lines, paper])
        assert (report.extracted, report.input_problems, report.succeeded) == \
            (2, [f"{lines}: line 2: missing 'abstract'"], False)
        assert report.as_dict()["skipped_input_lines"] == 1
        assert library.show("two")["benchmarks"] == ["MT-Bench"]


def test_reads_are_the_commands(library):
    assert len(library.summaries()) == 31
    assert [row["title"] for row in library.query(benchmark="agentbench")] == [AGENTBENCH_PAPER]
    assert library.tags("benchmark")[0]["papers"] >= 1
    paper_id = library.query(benchmark="AgentBench")[0]["id"]
    assert library.show(paper_id[:8])["id"] == paper_id
    assert library.search("CycleQD skill acquisition")[0]["title"] == AGENTBENCH_PAPER  # the index ingest built
    assert library.search("agents", benchmark="AgentBench", domain="nlp", limit=5)[0]["id"] == paper_id


@pytest.mark.parametrize("call, error, message", [
    (lambda library: library.query(), InputError, "give at least one of"),
    (lambda library: library.query(domain="astrology"), InputError, "unknown domain"),
    (lambda library: library.tags("dataset"), InputError, "unknown tag kind"),
    (lambda library: library.show("no-such-paper"), NotFound, "no paper with id"),
    (lambda library: library.export("xml", "out.xml"), InputError, "unknown export format"),
    (lambda library: library.export("parquet", io.StringIO()), InputError, "parquet needs"),
    (lambda library: library.compare_evals(1, 2), NotFound, "no eval run 1"),
    (lambda library: library.search("  "), InputError, "give some words to search for"),
    (lambda library: library.search("agents", domain="astrology"), InputError, "unknown domain"),
])
def test_problems_are_named_errors(library, call, error, message):
    with pytest.raises(error, match=message):
        call(library)


def test_export_to_a_stream_or_a_file(library, tmp_path):
    stream = io.StringIO()
    library.export("jsonl", stream)
    assert len([json.loads(line) for line in stream.getvalue().splitlines()]) == 31
    library.export("csv", tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().startswith("id,title,summary")


def test_search_and_similar_need_a_reader_that_has_them(library, monkeypatch):
    for method in ("search", "similar"):
        monkeypatch.delattr(Reader, method, raising=False)
    with pytest.raises(PapertagError, match="no search"):
        library.search("agents")
    with pytest.raises(PapertagError, match="no similar"):
        library.similar("x")


def test_search_and_similar_delegate_to_the_reader(library, monkeypatch):
    calls = []
    monkeypatch.setattr(Reader, "search", lambda self, text, **filters: calls.append((text, filters)) or [], raising=False)
    monkeypatch.setattr(Reader, "similar", lambda self, paper_id, **options: calls.append((paper_id, options)) or [], raising=False)
    assert library.search("agents", domain="nlp") == [] and library.similar("abc", limit=3) == []
    assert calls == [("agents", {"limit": 20, "domain": "nlp", "benchmark": None, "task": None, "method": None}),
                     ("abc", {"limit": 3})]


def test_importing_papertag_loads_no_llm_stack():
    import subprocess
    import sys

    code = "import sys, papertag; print(sorted(m for m in ('openai', 'instructor') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
