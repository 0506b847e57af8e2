"""evals/answers.py: the eval answer cache kept as text in git, run as the script a developer runs."""

import json
import subprocess
import sys
from pathlib import Path

from papertag.prompts import load_prompt
from test_evals import evaluate

SCRIPT = Path(__file__).resolve().parents[1] / "evals" / "answers.py"


def run_script(action, db, path):
    return subprocess.run([sys.executable, str(SCRIPT), action, "--db", str(db), "--answers", str(path)],
                          capture_output=True, text=True, check=False)


def answers(action, db, path):
    done = run_script(action, db, path)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_a_fresh_database_restored_from_the_text_file_scores_the_same_with_no_model_call(tmp_path):
    original, restored, text = tmp_path / "original.duckdb", tmp_path / "fresh.duckdb", tmp_path / "answers.jsonl"
    first, calls = evaluate(original, "worse", load_prompt())
    assert calls == first["metrics"]["papers"] > 0
    assert f"wrote {calls} answers" in answers("export", original, text)
    records = [json.loads(line) for line in text.read_text().splitlines()]
    assert len(records) == calls and all(record["model"] == "openai:fake" for record in records)
    assert records == sorted(records, key=lambda r: (r["model"], r["prompt_version"], r["content_hash"]))

    assert f"restored {calls} answers" in answers("restore", restored, text)
    assert "restored 0 answers" in answers("restore", restored, text)  # a second restore adds nothing
    again, calls_again = evaluate(restored, "perfect", load_prompt())  # this server would score perfectly, if asked
    assert calls_again == 0
    assert again["metrics"] | {"answered_on": None} == first["metrics"] | {"answered_on": None}
    (machine, count), = again["metrics"]["answered_on"].items()  # the machine that made the answers, kept
    assert machine == next(iter(first["metrics"]["answered_on"])) and count == calls


def test_restore_without_the_file_is_one_line(tmp_path):
    done = run_script("restore", tmp_path / "x.duckdb", tmp_path / "none.jsonl")
    assert done.returncode == 1 and done.stderr.strip() == f"{tmp_path / 'none.jsonl'}: no such file"


def test_export_without_the_database_is_one_line_and_writes_nothing(tmp_path):
    done = run_script("export", tmp_path / "none.duckdb", tmp_path / "answers.jsonl")
    assert done.returncode == 1 and done.stderr.strip() == f"{tmp_path / 'none.duckdb'}: no such file"
    assert not (tmp_path / "answers.jsonl").exists() and not (tmp_path / "none.duckdb").exists()
