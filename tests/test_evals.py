import dataclasses
import json
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAI, Reply, completion, user_paper
from papertag.backends import BackendOptions
from papertag.cli import app
from papertag.errors import PapertagError
from papertag.evals import compare, load_gold, run_eval
from papertag.prompts import load_prompt
from papertag.queries import Reader
from papertag.schema import DOMAINS
from papertag.store import Store
from test_ingest import fast_retries

REPO_GOLD = Path(__file__).resolve().parents[1] / "evals" / "gold.jsonl"


def test_repository_gold_file_is_valid_and_split():
    gold = load_gold(REPO_GOLD)
    assert len(gold) >= 120
    splits = [item.split for item in gold]
    assert splits.count("test") >= 60 and splits.count("dev") + splits.count("test") == len(gold)
    domains = Counter(item.labels["domain"] for item in gold)
    assert all(domains[domain] >= 5 for domain in DOMAINS if domain != "other"), domains
    assert len({item.paper.id for item in gold}) == len(gold)
    for item in gold:
        assert len(item.labels["summary"].split()) <= 25
        assert 1 <= len(item.labels["tasks"]) <= 3 and 1 <= len(item.labels["methods"]) <= 4


def test_every_gold_paper_names_its_source():
    for line in REPO_GOLD.read_text().splitlines():
        record = json.loads(line)
        assert record["url"].startswith("https://") and record["source"], record["title"]


def write_gold(tmp_path, lines):
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = json.dumps({"id": "g1", "title": "T", "abstract": "A", "split": "test",
                   "gold": {"summary": "s", "tasks": ["t"], "methods": ["m"], "benchmarks": [], "domain": "nlp"}})


@pytest.mark.parametrize(
    "lines, message",
    [
        ([], "file is empty"),
        ([GOOD, "{broken"], "line 2: not valid JSON"),
        ([GOOD, GOOD.replace('"nlp"', '"astrology"')], "line 2: unknown domain 'astrology'"),
        ([GOOD.replace('"test"', '"train"')], "line 1: 'split' must be"),
        ([GOOD.replace('"benchmarks": []', '"benchmarks": "x"')], "line 1: gold 'benchmarks' must be a list"),
        ([GOOD.replace('"title": "T", ', "")], "line 1: missing 'title'"),
    ],
)
def test_bad_gold_files_name_the_line(tmp_path, lines, message):
    with pytest.raises(PapertagError, match=message):
        load_gold(write_gold(tmp_path, lines))


def answering_from_gold(quality: str):
    """A fake model that answers with the gold labels ('perfect') or misses every benchmark and domain ('worse')."""
    labels = {item.paper.title: item.labels for item in load_gold(REPO_GOLD)}

    def responder(request):
        title, _ = user_paper(request)
        answer = dict(labels[title])
        if quality == "worse":
            answer["benchmarks"] = []
            answer["domain"] = "other"
        return Reply(body=completion(json.dumps(answer)))

    return responder


def evaluate(db_path, quality, prompt, split="test"):
    store = Store(db_path)
    try:
        with FakeOpenAI(answering_from_gold(quality)) as server:
            run = run_eval(store, load_gold(REPO_GOLD), gold_path=REPO_GOLD, split=split, spec="openai:fake", prompt=prompt,
                           options=BackendOptions(base_url=server.base_url), make_extractor=fast_retries)
            return run, server.calls
    finally:
        store.close()


def test_gold_answers_score_perfectly_and_rerun_is_cached(db_path):
    run, calls = evaluate(db_path, "perfect", load_prompt())
    metrics = run["metrics"]
    test_papers = sum(item.split == "test" for item in load_gold(REPO_GOLD))
    assert calls == test_papers and metrics["papers"] == test_papers
    # Post-processing may still drop a hand-labelled method worded unlike the abstract, or overrule a domain on
    # strong cues; a right answer must come through nearly whole.
    for field in ("benchmarks", "tasks", "methods"):
        assert metrics[field]["f1"] >= 0.98
    assert metrics["domain"]["accuracy"] >= 0.95 and metrics["summary"]["rougeL"] == 1.0
    assert len(run["errors"]) <= 0.05 * test_papers
    again, calls = evaluate(db_path, "perfect", load_prompt())
    assert calls == 0 and again["metrics"] == metrics and again["id"] == run["id"] + 1


def test_compare_two_stored_runs_shows_deltas(db_path):
    prompt = load_prompt()
    changed = dataclasses.replace(prompt, system=prompt.system + "\nAlso list famous models.", version="changed0001")
    good, _ = evaluate(db_path, "perfect", prompt)
    worse, _ = evaluate(db_path, "worse", changed)
    assert worse["metrics"]["benchmarks"]["recall"] == 0.0
    assert any(error["fields"].get("benchmarks", {}).get("misses") == ["WebVoyager", "WebArena"] for error in worse["errors"])
    with Reader(db_path) as reader:
        result = compare(reader.eval_runs(), good["id"], worse["id"])
    rows = {row["metric"]: row for row in result["metrics"]}
    domain = rows["domain acc"]  # "other" everywhere; the text's cues put some papers back in their domain
    assert domain["a"] >= 0.95 and domain["b"] < 0.7 and domain["delta"] == round(domain["b"] - domain["a"], 4)
    assert rows["benchmark F1"]["delta"] < 0
    assert result["a"]["prompt_version"] != result["b"]["prompt_version"] and "gold files" not in result["note"]


def test_compare_unknown_run(db_path):
    with pytest.raises(PapertagError, match="no eval run 7"):
        compare([], 7, 8)


def test_eval_cli_json_history_and_compare(tmp_path):
    runner = CliRunner()
    with FakeOpenAI(answering_from_gold("perfect")) as server:
        args = ["eval", "--gold", str(REPO_GOLD), "--model", "openai:fake", "--base-url", server.base_url]
        first = runner.invoke(app, args + ["--split", "dev", "--json"])
        second = runner.invoke(app, args + ["--split", "dev", "--show-errors"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["metrics"]["benchmarks"]["f1"] == 1.0
    assert "benchmarks" in second.stdout and "domain accuracy 1.000" in second.stdout
    history = json.loads(runner.invoke(app, ["eval", "--history", "--json"]).stdout)
    assert [run["id"] for run in history] == [1, 2]
    # The table, piped (80 columns): 15 columns are too many to fit, but every value is shown whole, never "0…".
    table = runner.invoke(app, ["eval", "--history"]).stdout
    assert history[0]["prompt_version"] in table and "1.0" in table and "…" not in table
    compared = runner.invoke(app, ["eval", "--compare", "1", "2"])
    assert compared.exit_code == 0 and "benchmark F1" in compared.stdout
    missing = runner.invoke(app, ["eval", "--gold", str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_eval_reports_category_domain_agreement_only_when_gold_papers_have_categories(tmp_path):
    """Gold papers with arXiv categories get a line on how often the categories' domain agrees with the model's."""
    def gold(number, domain, categories=None):
        record = {"id": f"g{number}", "title": f"Paper {number}", "abstract": f"Abstract {number} about things.",
                  "split": "test", "gold": {"summary": "s", "tasks": ["t"], "methods": ["m"], "benchmarks": [],
                                            "domain": domain}}
        return json.dumps(record | ({"categories": categories} if categories is not None else {}))

    def model_says(domains):
        def responder(request):
            title, _ = user_paper(request)
            answer = {"summary": f"{title} is summarised here.", "tasks": ["t"], "methods": ["m"], "benchmarks": [],
                      "domain": domains[title]}
            return Reply(body=completion(json.dumps(answer)))
        return responder

    with_categories = write_gold(tmp_path, [
        gold(1, "nlp", ["cs.CL", "cs.LG"]), gold(2, "computer-vision", "cs.CV"), gold(3, "robotics", ["cs.LG"]),
        gold(4, "nlp")])
    runner = CliRunner()
    answers = {"Paper 1": "nlp", "Paper 2": "multimodal", "Paper 3": "robotics", "Paper 4": "nlp"}
    with FakeOpenAI(model_says(answers)) as server:
        args = ["eval", "--gold", str(with_categories), "--model", "openai:fake", "--base-url", server.base_url,
                "--db", str(tmp_path / "evals.duckdb")]
        shown = runner.invoke(app, args)
        as_json = json.loads(runner.invoke(app, args + ["--json"]).stdout)
    assert shown.exit_code == 0, shown.output
    # Papers 1-3 have categories; cs.LG alone (paper 3) has no opinion; paper 2's cs.CV disagrees with "multimodal".
    assert as_json["metrics"]["category_domain"] == {
        "papers_with_categories": 3, "with_opinion": 2, "agree_with_model": 1, "agree_with_gold": 2,
        "model_agreement": 0.5, "gold_agreement": 1.0}
    assert "arXiv category domain (3 gold papers with categories): agrees with the model's domain on 1 of 2 (50%)" \
        in shown.stdout

    (tmp_path / "plain").mkdir()
    without = write_gold(tmp_path / "plain", [gold(4, "nlp")])
    with FakeOpenAI(model_says(answers)) as server:
        plain = runner.invoke(app, ["eval", "--gold", str(without), "--model", "openai:fake", "--base-url",
                                    server.base_url, "--db", str(tmp_path / "plain.duckdb")])
    assert plain.exit_code == 0 and "arXiv category" not in plain.stdout


def test_each_run_says_which_machine_its_answers_came_from(db_path):
    prompt = load_prompt()
    first, _ = evaluate(db_path, "perfect", prompt)
    (machine, count), = first["metrics"]["answered_on"].items()
    assert machine.startswith("127.0.0.1:") and count == first["metrics"]["papers"]
    # New grounding rules re-check the stored answers with no model call: they still came from the first server,
    # not from the one (on another port) that is open during the second run.
    rechecked, calls = evaluate(db_path, "perfect", dataclasses.replace(prompt, schema_version="regrounded"))
    assert calls == 0 and rechecked["metrics"]["answered_on"] == {machine: count}
    con = duckdb.connect(str(db_path))
    con.execute("UPDATE extractions SET answered_on = NULL")  # answers stored before machines were recorded
    con.close()
    again, _ = evaluate(db_path, "perfect", prompt)
    assert again["metrics"]["answered_on"] == {"not recorded": count}
    with Reader(db_path) as reader:
        runs = reader.eval_runs()
    assert compare(runs, first["id"], rechecked["id"])["note"] == ""
    assert "answers came from different machines" in compare(runs, first["id"], again["id"])["note"]


def test_few_shot_example_papers_are_not_scored(db_path):
    prompt = load_prompt()
    example_titles = {example["title"] for example in prompt.examples}
    dev = [item for item in load_gold(REPO_GOLD) if item.split == "dev"]
    leaked = [item.paper.title for item in dev if item.paper.title in example_titles]
    assert leaked, "the prompt's examples are dev papers; pick another gold paper for this test"
    run, calls = evaluate(db_path, "perfect", prompt, split="dev")
    assert calls == run["metrics"]["papers"] == len(dev) - len(leaked)
    assert sorted(run["metrics"]["in_prompt"]) == sorted(leaked)
    # A prompt whose examples are other papers scores the whole split; compare says the two runs differ in size.
    elsewhere = [dict(example, title=f"Another paper {n}") for n, example in enumerate(prompt.examples)]
    whole, _ = evaluate(db_path, "perfect", dataclasses.replace(prompt, examples=tuple(elsewhere), version="other01"),
                        split="dev")
    assert whole["metrics"]["papers"] == len(dev) and whole["metrics"]["in_prompt"] == []
    with Reader(db_path) as reader:
        note = compare(reader.eval_runs(), run["id"], whole["id"])["note"]
    assert f"different numbers of papers ({len(dev) - len(leaked)} against {len(dev)})" in note
