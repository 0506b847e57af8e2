"""papertag eval on SciTLDR-format files: summaries scored as the SciTLDR paper scores them."""

import json

import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAI, Reply, completion, user_paper
from papertag.cli import app
from papertag.errors import PapertagError
from papertag.evals import is_scitldr, load_scitldr
from papertag.scoring import score_tldrs, tldr_scores

PAPERS = [
    {"title": "Sparse Adapters", "source": ["We study adapters.", "Sparse adapters match full fine-tuning on GLUE."],
     "target": ["Sparse adapters match full fine-tuning on GLUE with few parameters.", "Adapters that are sparse."],
     "paper_id": "p1"},
    {"title": "Graph Priors", "source": ["Graph priors help.", "We prove a bound for message passing networks."],
     "target": ["A generalisation bound for message passing networks."], "paper_id": "p2"},
    {"title": "Audio Tokens", "source": ["We tokenise audio."], "target": ["Discrete audio tokens for speech."],
     "paper_id": "p3"},
]


def write(tmp_path, records):
    path = tmp_path / "tldr.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_best_reference_is_chosen_by_rouge1_and_its_other_scores_are_kept():
    predicted = "Sparse adapters match full fine-tuning on GLUE."
    scores = tldr_scores(predicted, PAPERS[0]["target"])
    first_only = tldr_scores(predicted, PAPERS[0]["target"][:1])
    second_only = tldr_scores(predicted, PAPERS[0]["target"][1:])
    assert scores == first_only and first_only["rouge1"] > second_only["rouge1"]
    assert 0 < scores["rouge2"] < scores["rouge1"] <= 1


def test_stemming_is_on_and_failed_papers_score_zero():
    assert tldr_scores("adapter matches", ["adapters matching"])["rouge1"] == 1.0
    metrics = score_tldrs([(["a bound for networks"], "a bound for networks"), (["anything"], None)])
    assert metrics["scitldr"]["rouge1"] == 0.5 and metrics["failed"] == 1 and metrics["papers"] == 2


def test_loader_joins_sentences_keeps_ids_and_takes_a_fixed_prefix(tmp_path):
    path = write(tmp_path, PAPERS)
    assert is_scitldr(path)
    papers = load_scitldr(path, limit=2)
    assert [p.paper.id for p in papers] == ["p1", "p2"]
    assert papers[0].paper.abstract == "We study adapters. Sparse adapters match full fine-tuning on GLUE."
    assert papers[0].targets == tuple(PAPERS[0]["target"])


@pytest.mark.parametrize("record, message", [
    ({"title": "T", "source": [], "target": ["x"]}, "line 1: 'source'"),
    ({"title": "T", "source": ["s"], "target": []}, "line 1: 'target'"),
    ({"title": "", "source": ["s"], "target": ["x"]}, "line 1: missing 'title'"),
])
def test_bad_scitldr_records_name_the_line(tmp_path, record, message):
    with pytest.raises(PapertagError, match=message):
        load_scitldr(write(tmp_path, [record]))


def test_gold_files_are_not_taken_for_scitldr(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps({"title": "T", "abstract": "A", "split": "dev", "gold": {}}) + "\n")
    assert not is_scitldr(path)


def test_eval_cli_scores_a_scitldr_file_against_a_fake_model(tmp_path):
    """The fake model answers with each paper's last abstract sentence as its summary."""
    def responder(request):
        _, abstract = user_paper(request)
        summary = abstract.split(". ")[-1].rstrip(".") + " in this paper."
        answer = {"summary": summary, "tasks": ["t1", "t2"], "methods": ["m1", "m2"], "benchmarks": [], "domain": "nlp"}
        return Reply(body=completion(json.dumps(answer)))

    path = write(tmp_path, PAPERS)
    runner = CliRunner()
    db = str(tmp_path / "evals.duckdb")
    with FakeOpenAI(responder) as server:
        args = ["eval", "--gold", str(path), "--model", "openai:fake", "--base-url", server.base_url, "--db", db]
        result = runner.invoke(app, args + ["--limit", "2", "--json"])
        again = runner.invoke(app, args + ["--limit", "2"])
        calls = server.calls
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["split"] == "scitldr:2" and run["metrics"]["papers"] == 2 and run["metrics"]["failed"] == 0
    expected = [tldr_scores(PAPERS[i]["source"][-1].rstrip(".") + " in this paper.", PAPERS[i]["target"])["rouge1"]
                for i in range(2)]
    assert run["metrics"]["scitldr"]["rouge1"] == round(sum(expected) / 2, 4)
    assert calls == 2 and "ROUGE-1" in again.stdout  # the second run reuses the stored extractions
    history = json.loads(runner.invoke(app, ["eval", "--history", "--json", "--db", db]).stdout)
    assert history[0]["SciTLDR ROUGE-1"] == run["metrics"]["scitldr"]["rouge1"] and history[0]["benchmark F1"] is None
    compared = runner.invoke(app, ["eval", "--compare", "1", "2", "--db", db])
    assert compared.exit_code == 0 and "SciTLDR ROUGE-1" in compared.stdout
