"""Property-based tests: no input text makes a parser crash; each either yields papers or gives a PapertagError."""

import json
from pathlib import Path
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from papertag.errors import PapertagError
from papertag.sources import FORMATS, parse_file
from papertag.text import clean_text
from reliability import record

# Derandomized, so CI runs the same cases every time; raise max_examples locally to search harder.
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def parse_or_error(path, content: bytes, fmt=None):
    path.write_bytes(content)
    try:
        parsed = parse_file(path, fmt)
    except PapertagError as error:
        assert "\n" not in str(error)  # one line, for the CLI
        return None
    for paper in parsed.papers:
        assert paper.title and paper.abstract and paper.id
    return parsed


@SETTINGS
@given(content=st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_any_parser(tmp_path, content):
    for fmt in FORMATS:
        parse_or_error(tmp_path / "input", content, fmt)


@SETTINGS
@given(text=st.text(max_size=3000))
def test_arbitrary_text_never_crashes_any_parser(tmp_path, text):
    for fmt in (*FORMATS, None):
        parse_or_error(tmp_path / "input.txt", text.encode("utf-8", "surrogatepass"), fmt)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
records = st.dictionaries(
    st.sampled_from(["id", "title", "abstract", "gold", "x"]), json_values, max_size=5
) | json_values


@SETTINGS
@given(lines=st.lists(records, max_size=8))
def test_arbitrary_jsonl_records_yield_papers_or_line_numbered_problems(tmp_path, lines):
    content = "\n".join(json.dumps(line) for line in lines).encode()
    parsed = parse_or_error(tmp_path / "input.jsonl", content)
    good = [r for r in lines if isinstance(r, dict) and isinstance(r.get("title"), str) and clean_text(r["title"])
            and isinstance(r.get("abstract"), str) and clean_text(r["abstract"])]  # printable text in both
    record("arbitrary JSONL records (hypothesis)", "papers, or problems naming their line; never a crash",
           cases=1, lost=len(good) - (len(parsed.papers) if parsed else 0))
    if parsed is not None:
        assert all(problem.startswith("line ") for problem in parsed.problems)
        assert len(parsed.papers) == len(good)


@SETTINGS
@given(rows=st.lists(st.lists(st.text(max_size=40), min_size=0, max_size=4), max_size=8))
def test_arbitrary_csv_rows_never_crash(tmp_path, rows):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["title", "abstract", "id"])
    writer.writerows(rows)
    parse_or_error(tmp_path / "input.csv", buffer.getvalue().encode("utf-8", "surrogatepass"))


FIXTURES = Path(__file__).parent / "data" / "sources"


@SETTINGS
@given(title=st.text(max_size=200), abstract=st.text(max_size=400))
def test_arbitrary_text_inside_real_documents_never_crashes(tmp_path, title, abstract):
    """Any title and abstract put into an arXiv API response, a BibTeX entry or a Semantic Scholar object: papers,
    or problems naming their position, never a crash."""
    atom = (FIXTURES / "arxiv_api.xml").read_text()
    documents = {
        "feed.xml": atom.replace("Grounded Visual Question Answering with Region Tokens", escape(title))
                        .replace("Visual question answering models often", escape(abstract)),
        "refs.bib": "@article{key, title = {" + title + "}, abstract = {" + abstract + "}}\n",
        "s2.json": json.dumps({"paperId": "x", "title": title, "abstract": abstract, "authors": [{"name": title}]}),
    }
    for name, content in documents.items():
        parse_or_error(tmp_path / name, content.encode("utf-8", "surrogatepass"))
