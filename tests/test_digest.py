"""`papertag digest`: the papers added since a date, grouped by domain, as Markdown, HTML, an Atom feed or JSON;
the position a digest without --since remembers; --since parsing; safe output; the writer lock."""

from __future__ import annotations

import io
import json
import re
from datetime import date, datetime

import duckdb
import feedparser
import pytest
from markdown_it import MarkdownIt  # comes with rich
from typer.testing import CliRunner

import papertag
import papertag.store as store_module
from papertag.cli import app
from papertag.digest import markdown_text, paper_link, parse_since
from papertag.errors import InputError
from papertag.extract import Extraction
from papertag.prompts import load_prompt
from papertag.schema import PaperTags
from papertag.sources import make_paper
from papertag.store import Store

from old_schema import rewind_schema

HOSTILE = '<script>alert(1)</script> & "quoted" <img src=x onerror=alert(2)> [link](javascript:alert(3)) *bold*'
DAY_1 = datetime(2026, 11, 25, 9, 0)
DAY_2 = datetime(2026, 11, 26, 9, 0)
DAY_3 = datetime(2026, 11, 27, 9, 0)
runner = CliRunner()


def tag(db, at, papers, model="openai:fake"):
    """Store these (id, title, domain, benchmarks) papers as tagged by `model` at time `at`."""
    stored = [make_paper(title, f"{title}: evaluated on " + ", ".join(benchmarks or ["nothing"]), "test", paper_id)
              for paper_id, title, _, benchmarks in papers]
    results = [Extraction(paper, PaperTags(summary=f"{paper.title} improves results on its benchmarks.",
                                           tasks=["testing"], methods=["a method"], benchmarks=benchmarks, domain=domain),
                          "{}", 1, 1, 0.0, False)
               for paper, (_, _, domain, benchmarks) in zip(stored, papers)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store_module, "_now", lambda: at)
        with Store(db) as store:
            store.add_papers(stored)
            store.save(results, model, load_prompt())


FIRST_PAPERS = [
    ("2401.01234", "Scaling Agents", "nlp", ["AgentBench", "MMLU-Pro"]),
    ("2312.00001v2", "Seeing \uffffBetter", "computer-vision", ["ImageNet"]),  # a character XML cannot carry
    ("cs/0101001", "An Old Paper", "nlp", []),
    ("hostile-1", HOSTILE, "robotics", ["MT-Bench"]),
]
SECOND_PAPERS = [("2402.05555", "Later Work", "nlp", ["GSM8K"])]


@pytest.fixture
def db(db_path):
    tag(db_path, DAY_1, FIRST_PAPERS)
    return db_path


def digest(db, *args):
    result = runner.invoke(app, ["digest", "--db", str(db), *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_paper_links_only_for_arxiv_ids():
    for paper_id in ("2401.01234", "2401.01234v2", "0704.0001", "cs/0101001", "math.GT/0309136", "hep-th/9901001v3"):
        assert paper_link({"id": paper_id}) == f"https://arxiv.org/abs/{paper_id}"
    for paper_id in ("hostile-1", "3f2a9c0d1e", "2401.01234/../x", "javascript:alert(1)", "cs/0101001 x", "12345.67890"):
        assert paper_link({"id": paper_id}) is None


def test_paper_links_prefer_stored_metadata():
    """A stored http(s) URL comes first, then a stored arXiv id; a URL of any other scheme is never a link."""
    assert paper_link({"id": "doi-1", "url": "https://aclanthology.org/2024.acl-1.1"}) == "https://aclanthology.org/2024.acl-1.1"
    assert paper_link({"id": "my-id", "url": None, "arxiv_id": "2401.01234"}) == "https://arxiv.org/abs/2401.01234"
    assert paper_link({"id": "my-id", "url": "javascript:alert(1)", "arxiv_id": None}) is None
    assert paper_link({"id": "my-id", "url": "javascript:alert(1)", "arxiv_id": "2401.01234"}) == \
        "https://arxiv.org/abs/2401.01234"


def test_markdown_groups_by_domain_with_summary_benchmarks_and_links(db):
    result = digest(db, "--since", "2026-11-01")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("# Papers added since 2026-11-01 00:00 UTC\n")
    domains = re.findall(r"^## (.+)$", text, re.M)
    assert domains == ["nlp (2)", "computer-vision (1)", "robotics (1)"]  # the schema's order of domains
    nlp = text.split("## nlp (2)")[1].split("## computer-vision")[0]
    assert "### [An Old Paper](https://arxiv.org/abs/cs/0101001)" in nlp
    assert "### [Scaling Agents](https://arxiv.org/abs/2401.01234)" in nlp
    assert "Scaling Agents improves results on its benchmarks." in nlp
    assert "Benchmarks: AgentBench, MMLU\\-Pro" not in nlp and "Benchmarks: AgentBench, MMLU-Pro" in nlp
    assert "Benchmarks: none named" in nlp
    assert "### [Seeing Better](https://arxiv.org/abs/2312.00001v2)" in text


def test_markdown_keeps_hostile_text_literal(db):
    text = digest(db, "--since", "2026-11-01").stdout
    robotics = text.split("## robotics (1)")[1]
    heading = robotics.strip().splitlines()[0]
    # Not an arXiv id, so no link; and the title's own brackets, tags and stars are text.
    assert heading == (r'### \<script\>alert(1)\</script\> \& "quoted" \<img src=x onerror=alert(2)\> '
                       r'\[link\](javascript:alert(3)) \*bold\*')
    assert not re.search(r"(?<!\\)[<>\[\]*&]", robotics)  # nor anything in its summary
    # Rendered by a CommonMark renderer that passes raw HTML through: the only markup is the digest's own.
    html = MarkdownIt("commonmark").render(text)
    assert "<script" not in html and "<img" not in html and "<em>" not in html and "<strong>" not in html
    assert set(re.findall(r'<a href="([^"]*)"', html)) == {f"https://arxiv.org/abs/{paper_id}" for paper_id, *_ in FIRST_PAPERS[:3]}
    assert [html.count(f"<h{level}>") for level in (1, 2, 3)] == [1, 3, 4]


def test_html_escapes_hostile_titles(db, tmp_path):
    page = tmp_path / "digest.html"
    result = digest(db, "--since", "2026-11-01", "--format", "html", "-o", page)
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quoted&#34;" in html
    assert '<a href="https://arxiv.org/abs/2401.01234">Scaling Agents</a>' in html
    assert html.index("<h2>nlp (2)</h2>") < html.index("<h2>computer-vision (1)</h2>") < html.index("<h2>robotics (1)</h2>")
    assert "wrote 4 papers added since 2026-11-01 00:00 UTC to" in result.stderr


def test_atom_is_a_valid_feed(db, tmp_path):
    path = tmp_path / "digest.atom"
    assert digest(db, "--format", "atom", "-o", path).exit_code == 0
    feed = feedparser.parse(path.read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.id.startswith("urn:uuid:") and feed.feed.title == "papertag: papers added to test.duckdb"
    assert feed.feed.updated_parsed
    assert len(feed.entries) == 4
    for entry in feed.entries:
        assert entry.title and entry.id.startswith("urn:uuid:") and entry.updated_parsed[:3] == (2026, 11, 25)
        assert entry.summary.endswith("improves results on its benchmarks.")
    by_title = {entry.title: entry for entry in feed.entries}
    assert by_title["Scaling Agents"].link == "https://arxiv.org/abs/2401.01234"
    assert by_title["Scaling Agents"].tags[0].term == "nlp"
    assert HOSTILE in by_title  # escaped in the XML, read back as written
    assert "links" not in by_title[HOSTILE] or not by_title[HOSTILE].links

    # The next digest is another file with the same feed id and, for a paper seen again, the same entry id.
    tag(db, DAY_2, SECOND_PAPERS)
    again = feedparser.parse(digest(db, "--format", "atom", "--since", "2026-11-01").stdout)
    assert not again.bozo and (again.feed.id, again.feed.title) == (feed.feed.id, feed.feed.title)
    assert {entry.id for entry in feed.entries} < {entry.id for entry in again.entries}


def test_empty_atom_feed_is_still_valid(db):
    result = digest(db, "--format", "atom", "--since", "2030-01-01")
    feed = feedparser.parse(result.stdout)
    assert result.exit_code == 0 and not feed.bozo and feed.entries == [] and feed.feed.id
    assert "no papers added since 2030-01-01 00:00 UTC" in result.stderr


def test_remembered_position_across_runs(db):
    first = digest(db, "--json")
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["papers"] == 4 and data["since"] is None and data["remembered"] is True
    assert data["covered_until"] == DAY_1.isoformat()

    tag(db, DAY_2, SECOND_PAPERS)
    tag(db, DAY_3, FIRST_PAPERS[:1], model="openai:another")  # a re-tag by another model adds nothing
    # A re-tag by the same model and prompt (ingest --force) replaces the stored extraction: added again.
    tag(db, DAY_3, FIRST_PAPERS[1:2])
    second = json.loads(digest(db, "--json").stdout)
    assert second["since"] == DAY_1.isoformat() and second["papers"] == 2
    assert [paper["id"] for group in second["domains"] for paper in group["papers"]] == ["2402.05555", "2312.00001v2"]

    third = digest(db)
    assert third.exit_code == 0
    assert "no papers added since the last digest (papers tagged after 2026-11-27 09:00 UTC)" in third.stderr
    assert "No papers were added since the last digest" in third.stdout
    with papertag.open(db) as library:
        assert library.digest().papers == []  # the API remembers the same position


def test_explicit_since_leaves_the_position(db):
    assert json.loads(digest(db, "--json", "--since", "2026-11-25").stdout)["papers"] == 4  # inclusive
    assert json.loads(digest(db, "--json", "--since", "2026-11-25T09:00:01").stdout)["papers"] == 0
    assert json.loads(digest(db, "--json", "--since", "2026-11-25T10:00+01:00").stdout)["papers"] == 4
    assert json.loads(digest(db, "--json").stdout)["papers"] == 4  # --since moved nothing


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "27/11/2026", ""])
def test_bad_since_is_one_line(db, bad):
    result = digest(db, "--since", bad)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "is not a date; use YYYY-MM-DD" in result.stderr
    with pytest.raises(InputError):
        parse_since(bad)


def test_output_is_written_safely_and_a_failed_write_moves_nothing(db, tmp_path):
    refused = digest(db, "-o", db)
    assert refused.exit_code == 2 and "is the database" in refused.stderr
    missing_folder = digest(db, "-o", tmp_path / "no" / "such" / "digest.md")
    assert missing_folder.exit_code == 2 and missing_folder.stderr.startswith("error: cannot write")
    assert json.loads(digest(db, "--json").stdout)["papers"] == 4  # neither failure remembered a position
    assert list(tmp_path.glob(".*.tmp")) == []


def test_remembering_needs_the_writer_lock_reading_does_not(db):
    with Store(db) as ingest:  # an ingest holds the writer lock for its whole run, the file only for its commits
        ingest.release()
        busy = digest(db)
        assert busy.exit_code == 2 and "is writing to" in busy.stderr and busy.stdout == ""
        assert digest(db, "--since", "2026-11-01").exit_code == 0
    assert json.loads(digest(db, "--json").stdout)["papers"] == 4


def test_no_database_is_one_line_and_creates_nothing(tmp_path):
    missing = tmp_path / "missing.duckdb"
    for args in ([], ["--since", "2026-11-01"]):
        result = digest(missing, *args)
        assert result.exit_code == 2 and "no database at" in result.stderr
    assert not missing.exists()


def test_unknown_format_from_python(db):
    with pytest.raises(InputError, match="unknown digest format"):
        papertag.open(db).digest(output_format="rss")


def test_help_explains_added_and_the_position():
    text = " ".join(runner.invoke(app, ["digest", "--help"], env={"COLUMNS": "200"}).stdout.split())
    for phrase in ("first good extraction is stored", "does not add it again", "remembered in the database",
                   "--since", "the remembered position stays where it was", "writer lock", "atom", "never the database"):
        assert phrase in text, phrase


def test_markdown_text_cannot_start_a_block():
    assert markdown_text("# Not a heading") == r"\# Not a heading"
    assert markdown_text("2024. Not a list") == r"2024\. Not a list"
    assert markdown_text("GPT-4 (and more) on A+B") == "GPT-4 (and more) on A+B"  # plain text stays readable


def test_database_from_before_the_digest(db):
    """A database last written before migration 6: --since only reads it; the first remembered digest migrates it."""
    with duckdb.connect(str(db)) as con:  # back to schema 5: no digests table, no paper metadata
        rewind_schema(con, 5)
    assert json.loads(digest(db, "--json", "--since", "2026-11-01").stdout)["papers"] == 4
    assert json.loads(digest(db, "--json").stdout)["papers"] == 4
    assert json.loads(digest(db, "--json").stdout)["papers"] == 0


def test_library_digest_returns_the_papers_and_writes_streams(db):
    stream = io.StringIO()
    made = papertag.open(db).digest(date(2026, 11, 25), output_format="html", output=stream)
    assert stream.getvalue().startswith("<!doctype html>") and made.remembered is False
    assert [paper["domain"] for domain, papers in made.by_domain() for paper in papers] == [
        "nlp", "nlp", "computer-vision", "robotics"]
    scaling = next(paper for paper in made.papers if paper["id"] == "2401.01234")
    assert scaling == {"id": "2401.01234", "title": "Scaling Agents", "domain": "nlp",
                       "summary": "Scaling Agents improves results on its benchmarks.",
                       "benchmarks": ["AgentBench", "MMLU-Pro"], "tagged_at": DAY_1,
                       "link": "https://arxiv.org/abs/2401.01234"}
