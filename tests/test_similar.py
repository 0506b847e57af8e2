"""'papertag similar': embeddings computed at ingest (once per text), nearest papers from a real DuckDB file."""

import json
import socket
import subprocess
import sys

import duckdb
import pytest
from typer.testing import CliRunner

from papertag.cli import app
from papertag.embed import MODEL_NAME, ONNX_MODEL, Embedder, PackagedFile
from papertag.errors import DatabaseError, NotFound, PapertagError
from papertag.queries import Reader

from old_schema import rewind_schema

runner = CliRunner()

PAPERS = [
    {"id": "protein-a", "title": "Protein structure prediction with attention",
     "abstract": "We predict the three-dimensional structure of proteins from their amino acid sequences with a "
                 "transformer that attends over residue pairs, and reach state-of-the-art accuracy on CASP14."},
    {"id": "grasp", "title": "Learning to grasp unseen objects",
     "abstract": "A robot arm learns grasping policies from depth images in simulation and transfers them to a "
                 "real gripper, picking up household objects it has never seen."},
    {"id": "protein-b", "title": "Folding proteins with deep learning",
     "abstract": "A deep neural network folds protein sequences into accurate 3D structures, evaluated on the "
                 "CASP benchmark of protein structure prediction."},
    {"id": "sql", "title": "A cost model for join ordering",
     "abstract": "We learn a cost model that lets a relational database query optimizer choose better join "
                 "orders, cutting the latency of analytical SQL queries."},
]


def cli(*args):
    return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def write_papers(path, papers):
    path.write_text("".join(json.dumps(paper) + "\n" for paper in papers))
    return path


def ingest(server, path):
    result = cli("ingest", path, "--model", "openai:fake", "--base-url", server.base_url, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def vector_rows(db_path):
    with duckdb.connect(str(db_path), read_only=True) as con:
        return con.execute("SELECT content_hash, model, len(vector) FROM paper_vectors ORDER BY ALL").fetchall()


def test_closely_related_paper_comes_first(fake_server, tmp_path):
    ingest(fake_server, write_papers(tmp_path / "papers.jsonl", PAPERS))
    found = json.loads(cli("similar", "protein-a", "--json").stdout)
    assert [row["id"] for row in found][0] == "protein-b"
    assert "protein-a" not in [row["id"] for row in found] and len(found) == 3
    assert set(found[0]) >= {"id", "title", "summary", "domain", "score"}
    assert found[0]["domain"] == "nlp" and found[0]["summary"]  # the fake server's tags
    scores = [row["score"] for row in found]
    assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] < scores[0] <= 1
    assert scores[0] > scores[1] + 0.2  # clearly nearer than the robot and database papers


def test_library_call_takes_a_prefix_and_a_limit(fake_server, tmp_path):
    ingest(fake_server, write_papers(tmp_path / "papers.jsonl", PAPERS))
    with Reader(tmp_path / "papertag.duckdb") as reader:
        nearest = reader.similar("gra", limit=1)
        assert len(nearest) == 1 and nearest[0]["id"] != "grasp"
        assert reader.similar("protein-b", limit=10)[0]["id"] == "protein-a"
        with pytest.raises(PapertagError, match="more than one paper"):
            reader.similar("protein")


def test_table_output_and_limit(fake_server, tmp_path):
    ingest(fake_server, write_papers(tmp_path / "papers.jsonl", PAPERS))
    result = cli("similar", "protein-a", "--limit", "2")
    assert result.exit_code == 0
    assert "Folding proteins with deep learning" in result.stdout and result.stdout.count("0.") == 2


def test_vectors_are_computed_once_per_text(fake_server, tmp_path):
    path = write_papers(tmp_path / "papers.jsonl", PAPERS)
    first = cli("ingest", path, "--model", "openai:fake", "--base-url", fake_server.base_url)
    assert "embedding 4 papers for 'papertag similar'" in first.stderr and "embedded" in first.stdout
    rows = vector_rows(tmp_path / "papertag.duckdb")
    assert len(rows) == 4 and {(model, size) for _, model, size in rows} == {(MODEL_NAME, 384)}

    assert ingest(fake_server, path)["embedded"] == 0  # a re-run embeds nothing
    same_text = dict(PAPERS[0], id="protein-a-copy")
    changed = dict(PAPERS[1], abstract=PAPERS[1]["abstract"] + " Code is released.")
    report = ingest(fake_server, write_papers(tmp_path / "more.jsonl", [same_text, changed]))
    assert report["embedded"] == 1  # only the changed text; the copy shares its text's vector
    assert len(vector_rows(tmp_path / "papertag.duckdb")) == 5

    found = json.loads(cli("similar", "protein-a", "--json").stdout)
    assert found[0]["id"] == "protein-a-copy" and found[0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_unknown_id_is_a_one_line_error(fake_server, tmp_path):
    ingest(fake_server, write_papers(tmp_path / "papers.jsonl", PAPERS))
    result = cli("similar", "no-such-paper")
    assert result.exit_code == 2
    assert "no paper with id" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert cli("similar", "x", "--db", tmp_path / "missing.duckdb").exit_code == 2


def test_papers_from_before_vectors_are_filled_by_embed(fake_server, tmp_path):
    ingest(fake_server, write_papers(tmp_path / "papers.jsonl", PAPERS))
    db = tmp_path / "papertag.duckdb"
    with duckdb.connect(str(db)) as con:  # as a database written before 'similar' existed
        con.execute("DELETE FROM paper_vectors WHERE content_hash IN (SELECT content_hash FROM papers WHERE id <> 'grasp')")
    result = cli("similar", "protein-a")
    assert result.exit_code == 2 and "papertag embed" in result.stderr
    result = cli("similar", "grasp")
    assert result.exit_code == 0 and "3 papers have no embedding yet" in result.stderr

    assert json.loads(cli("embed", "--json").stdout)["embedded"] == 3
    assert json.loads(cli("embed", "--json").stdout)["embedded"] == 0
    assert json.loads(cli("similar", "protein-a", "--json").stdout)[0]["id"] == "protein-b"


def test_commands_have_help():
    for command in ("similar", "embed"):
        result = cli(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout


def test_embedder_loads_from_installed_packages_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the embedder tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    vectors = Embedder().embed(["graph neural networks for molecules", "molecular property prediction with GNNs",
                                "a survey of reinforcement learning for games"])
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_a_file_that_does_not_match_its_pin_is_refused():
    tampered = PackagedFile(ONNX_MODEL.package, ONNX_MODEL.distribution, ONNX_MODEL.path, "0" * 64)
    with pytest.raises(PapertagError, match="pinned SHA-256"):
        tampered.verified_path()
    missing = PackagedFile("no_such_package_here", "no-such-package", "model.onnx", "0" * 64)
    with pytest.raises(PapertagError, match="not installed"):
        missing.verified_path()


def test_vectors_of_changed_texts_leave_no_gap(fake_server, tmp_path):
    ingest(fake_server, write_papers(tmp_path / "papers.jsonl", PAPERS))
    changed = [dict(paper, abstract=paper["abstract"] + " We release code.") for paper in PAPERS if paper["id"] != "grasp"]
    assert ingest(fake_server, write_papers(tmp_path / "changed.jsonl", changed))["embedded"] == 3
    assert len(vector_rows(tmp_path / "papertag.duckdb")) == 7  # the old texts' vectors stay, like old extractions
    found = json.loads(cli("similar", "grasp", "--limit", "3", "--json").stdout)
    assert sorted(row["id"] for row in found) == ["protein-a", "protein-b", "sql"]


def test_database_from_before_similar_is_upgraded_by_embed(fake_server, tmp_path):
    ingest(fake_server, write_papers(tmp_path / "papers.jsonl", PAPERS))
    db = tmp_path / "papertag.duckdb"
    with duckdb.connect(str(db)) as con:  # schema 4: no vector table yet
        rewind_schema(con, 4)
    result = cli("similar", "protein-a")
    assert result.exit_code == 2 and "papertag embed" in result.stderr and "Traceback" not in result.output
    assert json.loads(cli("embed", "--json").stdout)["embedded"] == 4
    result = cli("similar", "protein-a", "--json")
    assert json.loads(result.stdout)[0]["id"] == "protein-b" and "note" not in result.stderr


def test_reading_similar_papers_loads_no_model_runtime(fake_server, tmp_path):
    ingest(fake_server, write_papers(tmp_path / "papers.jsonl", PAPERS))
    code = ("import sys; from pathlib import Path; from papertag.queries import Reader; "
            f"found = Reader(Path({str(tmp_path / 'papertag.duckdb')!r})).similar('protein-a'); "
            "assert found[0]['id'] == 'protein-b'; "
            "print(sorted(m for m in ('onnxruntime', 'tokenizers', 'openai', 'instructor') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_library_similar_embed_and_missing_count(fake_server, tmp_path):
    import papertag

    ingest(fake_server, write_papers(tmp_path / "papers.jsonl", PAPERS))
    library = papertag.open(tmp_path / "papertag.duckdb")
    assert library.similar("protein-a", limit=1)[0]["id"] == "protein-b"
    assert library.papers_without_vectors() == 0 and library.embed() == 0
    with pytest.raises(NotFound):
        library.similar("nope")
    with pytest.raises(DatabaseError, match="no database"):
        papertag.open(tmp_path / "missing.duckdb").embed()


def test_limit_zero_or_negative_gives_nothing(fake_server, tmp_path):
    ingest(fake_server, write_papers(tmp_path / "papers.jsonl", PAPERS))
    with Reader(tmp_path / "papertag.duckdb") as reader:
        assert reader.similar("protein-a", limit=0) == [] and reader.similar("protein-a", limit=-3) == []
        with pytest.raises(NotFound):
            reader.similar("nope", limit=0)
    assert cli("similar", "protein-a", "--limit", "0").exit_code == 2  # the CLI asks for at least 1
