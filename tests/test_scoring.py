import pytest

from papertag.scoring import PRF, count_matches, paper_errors, same_benchmark, same_phrase, score


def gold(**overrides):
    labels = {"summary": "SLIM combines critics to improve skill discovery.", "tasks": ["skill discovery"],
              "methods": ["SLIM"], "benchmarks": [], "domain": "robotics"}
    return labels | overrides


@pytest.mark.parametrize(
    "predicted, expected, same",
    [
        ("MMLU-Pro", "mmlu pro", True),
        ("AgentBench", "Agent-Bench", True),
        ("DSRL benchmarks", "DSRL", True),
        ("Natural Instructions dataset", "Natural Instructions", True),
        ("ARC", "Abstraction and Reasoning Corpus (ARC)", True),
        ("Abstraction and Reasoning Corpus", "Abstraction and Reasoning Corpus (ARC)", True),
        ("MMLU", "MMLU-Pro", False),
        ("CIFAR10", "CIFAR100", False),
    ],
)
def test_benchmark_matching(predicted, expected, same):
    assert same_benchmark(predicted, expected) is same


@pytest.mark.parametrize(
    "predicted, expected, same",
    [
        ("autonomous skill discovery", "skill discovery", True),  # Jaccard 2/3
        ("LoRA modules", "LoRA", True),  # 1/2
        ("skill extraction", "skill discovery", False),  # 1/3
        ("reinforcement learning", "hierarchical reinforcement learning", True),
        ("Q-LoRA", "QLoRA", True),  # same folded key
        ("image classification", "object detection", False),
    ],
)
def test_fuzzy_phrase_matching(predicted, expected, same):
    assert same_phrase(predicted, expected) is same


def test_prf_known_values():
    prf = PRF()
    prf.add(["A", "B", "C", "D"], ["A", "B", "E"], same_benchmark)  # 2 of 4 right, 2 of 3 found
    assert (prf.precision, prf.recall) == (0.5, pytest.approx(2 / 3))
    assert prf.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_empty_gold_and_empty_prediction_edge_cases():
    nothing = PRF()
    nothing.add([], [], same_benchmark)
    assert (nothing.precision, nothing.recall, nothing.f1) == (1.0, 1.0, 1.0)
    hallucinated = PRF()
    hallucinated.add(["GPT-4"], [], same_benchmark)
    assert (hallucinated.precision, hallucinated.recall, hallucinated.f1) == (0.0, 0.0, 0.0)
    missed = PRF()
    missed.add([], ["ImageNet"], same_benchmark)
    assert (missed.precision, missed.recall, missed.f1) == (0.0, 0.0, 0.0)


def test_duplicates_match_at_most_once():
    assert count_matches(["ImageNet", "imagenet", "ImageNet"], ["ImageNet"], same_benchmark) == 1
    assert count_matches(["ImageNet"], ["ImageNet", "ImageNet"], same_benchmark) == 1
    prf = PRF()
    prf.add(["ImageNet", "ImageNet"], ["ImageNet"], same_benchmark)
    assert (prf.precision, prf.recall) == (0.5, 1.0)


def test_one_prediction_matches_one_gold_item_even_if_fuzzy_fits_two():
    assert count_matches(["skill discovery"], ["skill discovery", "autonomous skill discovery"], same_phrase) == 1


def test_score_micro_averages_over_papers():
    pairs = [
        (gold(benchmarks=["A", "B"]), gold(benchmarks=["A"]), "T1"),  # tp 1, pred 1, gold 2
        (gold(benchmarks=[]), gold(benchmarks=["X", "Y", "Z"]), "T2"),  # tp 0, pred 3, gold 0
    ]
    metrics = score(pairs)
    assert metrics["benchmarks"]["precision"] == 0.25  # 1 / 4, not the mean of 1.0 and 0.0
    assert metrics["benchmarks"]["recall"] == 0.5
    assert metrics["domain"]["accuracy"] == 1.0
    assert metrics["summary"]["rougeL"] == 1.0 and metrics["summary"]["within_30_words"] == 1.0


def test_failed_paper_counts_as_empty_answer():
    metrics = score([(gold(benchmarks=["A"]), None, "T")])
    assert metrics["failed"] == 1
    assert metrics["benchmarks"]["recall"] == 0.0 and metrics["domain"]["accuracy"] == 0.0
    assert metrics["summary"]["rouge1"] == 0.0


def test_summary_metrics_catch_long_and_title_summaries():
    long = " ".join(["word"] * 31)
    metrics = score([
        (gold(), gold(summary=long), "Some Title"),
        (gold(), gold(summary="Some title"), "Some Title"),
    ])
    assert metrics["summary"]["within_30_words"] == 0.5
    assert metrics["summary"]["not_title"] == 0.5


def test_paper_errors_lists_false_positives_and_misses_side_by_side():
    errors = paper_errors(gold(benchmarks=["AgentBench"], domain="nlp"),
                          gold(benchmarks=["GPT-3.5", "agentbench"], domain="robotics"))
    assert errors["benchmarks"] == {"false_positives": ["GPT-3.5"], "misses": []}
    assert errors["domain"] == {"false_positives": ["robotics"], "misses": ["nlp"]}
    assert "tasks" not in errors
