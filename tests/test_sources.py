import json
from pathlib import Path

import pytest

from papertag.errors import PapertagError
from papertag.sources import parse_file

SAMPLE_TITLES = [
    "Agent Skill Acquisition for Large Language Models via CycleQD",
    "Language to Rewards for Robotic Skill Synthesis",
    "SLIM: Skill Learning with Multiple Critics",
    "Gen2Sim: Scaling up Robot Learning in Simulation with Generative Models",
    "Job-SDF: A Multi-Granularity Dataset for Job Skill Demand Forecasting and Benchmarking",
    "SkillMimic: Learning Reusable Basketball Skills from Demonstrations",
    "Skill Expansion and Composition in Parameter Space",
    "Skill-Mix: a Flexible and Expandable Family of Evaluations for AI models",
    "Design of Negative Sampling Strategies for Distantly Supervised Skill Extraction",
    "FMB: a Functional Manipulation Benchmark for Generalizable Robotic Learning",
    "Task-Specific Skill Localization in Fine-tuned Language Models",
    "Proposer-Agent-Evaluator(PAE): Autonomous Skill Discovery For Foundation Model Internet Agents",
    "Instruct-SkillMix: A Powerful Pipeline for LLM Instruction Tuning",
    "On the Measure of Intelligence",
    "Augmenting Autotelic Agents with Large Language Models",
    "Alice in Wonderland: Simple Tasks Showing Complete Reasoning Breakdown in State-Of-the-Art Large Language Models",
    "RoboMatrix: A Skill-centric Hierarchical Framework for Scalable Robot Task Planning and Execution in Open-World",
    "Can Models Learn Skill Composition from Examples?",
    "Most discriminative stimuli for functional cell type clustering",
    "BaDExpert: Extracting Backdoor Functionality for Accurate Backdoor Input Detection",
    "Granite-Function Calling Model: Introducing Function Calling Abilities via Multi-task Learning of Granular Tasks",
    "Low-Resource Multi-Granularity Academic Function Recognition Based on Multiple Prompt Knowledge",
    "LLM-FuncMapper: Function Identification for Interpreting Complex Clauses in Building Codes via LLM",
    "Provable General Function Class Representation Learning in Multitask Bandits and MDPs",
    "Skill-it! A Data-Driven Skills Framework for Understanding and Training Language Models",
    "Leveraging Self-Supervised Vision Transformers for Neural Transfer Function Design",
    "Comparing Human and LLM Generated Code: The Jury is Still Out!",
    "Symbolic Mixture-of-Experts: Adaptive Skill-based Routing for Heterogeneous Reasoning",
    "SELMA: Learning and Merging Skill-Specific Text-to-Image Experts with Auto-Generated Data",
    "FLASK: Fine-grained Language Model Evaluation based on Alignment Skill Sets",
    "Self-driven Grounding: Large Language Model Agents with Automatical Language-aligned Skill Learning",
]


def test_sample_listing_page_yields_all_31_papers_with_exact_titles(sample_path):
    parsed = parse_file(sample_path)
    assert parsed.format == "listing"
    assert [paper.title for paper in parsed.papers] == SAMPLE_TITLES
    assert parsed.problems == []


def test_listing_abstracts_are_intact_and_boilerplate_skipped(sample_path):
    papers = parse_file(sample_path).papers
    cycleqd = papers[0].abstract
    assert cycleqd.startswith("Training large language models to acquire specific skills remains")
    assert cycleqd.endswith("highlighting its applicability across different domains.")
    every_text = " ".join(p.title + " " + p.abstract for p in papers)
    for boilerplate in ("Subscribe", "byAK and the research community", "Get trending papers"):
        assert boilerplate not in every_text
    # The abstract paragraphs in the file, joined, are exactly the abstracts parsed.
    lines = [line.strip() for line in sample_path.read_text().splitlines() if len(line.split()) >= 25]
    assert [p.abstract for p in papers] == [" ".join(line.split()) for line in lines]


def test_ids_are_stable_and_unique(sample_path):
    first = [p.id for p in parse_file(sample_path).papers]
    again = [p.id for p in parse_file(sample_path).papers]
    assert first == again
    assert len(set(first)) == 31


def test_listing_with_two_paragraph_abstract(tmp_path):
    long_para = "word " * 30
    path = tmp_path / "page.txt"
    path.write_text(f"Subscribe\n\nA Title Here\n\n{long_para}\n\n{long_para}\n\nNew\n\nSecond Title\n\n{long_para}\n")
    papers = parse_file(path).papers
    assert [p.title for p in papers] == ["A Title Here", "Second Title"]
    assert len(papers[0].abstract.split()) == 60


def test_jsonl_ignores_extra_keys_and_reports_bad_lines(tmp_path):
    path = tmp_path / "papers.jsonl"
    path.write_text(
        json.dumps({"id": "a1", "title": "T1", "abstract": "A1 text", "gold": {"tasks": []}}) + "\n"
        + "{not json\n"
        + json.dumps({"title": "T2"}) + "\n"
        + "\n"
        + json.dumps({"title": "T3", "abstract": "A3 text"}) + "\n"
    )
    parsed = parse_file(path)
    assert [(p.id, p.title) for p in parsed.papers][0] == ("a1", "T1")
    assert [p.title for p in parsed.papers] == ["T1", "T3"]
    assert parsed.problems[0].startswith("line 2: not valid JSON")
    assert parsed.problems[1] == "line 3: missing 'abstract'"


def test_csv_with_optional_id_and_case_insensitive_headers(tmp_path):
    path = tmp_path / "papers.csv"
    path.write_text('ID,Title,Abstract,year\nx9,"A, comma title","Multi\nline abstract",2024\n,Other,Abs,2023\n')
    papers = parse_file(path).papers
    assert papers[0].id == "x9" and papers[0].title == "A, comma title" and papers[0].abstract == "Multi line abstract"
    assert papers[1].id == papers[1].content_hash[:16]


def test_blank_ids_fall_back_to_the_content_hash(tmp_path):
    path = tmp_path / "papers.csv"
    path.write_text('title,abstract,id\nT,A,"\r"\nU,B,"  "\n')
    papers = parse_file(path).papers
    assert [p.id for p in papers] == [p.content_hash[:16] for p in papers]


def test_format_detected_by_content_and_overridable(tmp_path):
    path = tmp_path / "papers.data"
    path.write_text(json.dumps({"title": "T", "abstract": "A"}) + "\n")
    assert parse_file(path).format == "jsonl"
    csv_path = tmp_path / "noext"
    csv_path.write_text("title,abstract\nT,A\n")
    assert parse_file(csv_path).format == "csv"
    with pytest.raises(PapertagError, match="no abstracts found"):
        parse_file(csv_path, "listing")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "file is empty"),
        (b"  \n\n ", "file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR", "binary"),
        (b"\xff\xfe\x00\xd8", "broken UTF-16"),  # a byte-order mark, then half a surrogate pair
        (b"Subscribe\n\nNew\n\nMar 11\n", "no abstracts found"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, content, message):
    path = tmp_path / "input.txt"
    path.write_bytes(content)
    with pytest.raises(PapertagError, match=message):
        parse_file(path)


def test_csv_missing_column_names_it(tmp_path):
    path = tmp_path / "papers.csv"
    path.write_text("title,summary\nT,S\n")
    with pytest.raises(PapertagError, match="missing column\\(s\\) abstract"):
        parse_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(PapertagError, match="no such file"):
        parse_file(Path(tmp_path / "nope.jsonl"))
