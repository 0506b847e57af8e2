import pytest
from pydantic import ValidationError

from papertag.schema import PaperTags, one_short_sentence


def valid(**overrides):
    data = dict(summary="CycleQD merges models to acquire agent skills.", tasks=["skill acquisition"],
                methods=["CycleQD"], benchmarks=[], domain="nlp")
    return data | overrides


def test_summary_keeps_only_the_first_sentence():
    two = "CycleQD merges expert models to acquire skills. It also works for image segmentation models."
    assert one_short_sentence(two) == "CycleQD merges expert models to acquire skills."


def test_summary_is_cut_to_30_words():
    long = " ".join(f"w{i}" for i in range(45))  # under the 220-character limit, over 30 words
    cut = one_short_sentence(long)
    assert len(cut.split()) == 30 and cut.endswith("…")
    assert len(PaperTags.model_validate(valid(summary=long)).summary.split()) == 30


def test_short_first_sentence_is_not_split_off():
    text = "Works well. The method, CycleQD, merges experts across tasks."
    assert one_short_sentence(text) == text


def test_summary_equal_to_title_is_rejected():
    with pytest.raises(ValidationError, match="repeats the title"):
        PaperTags.model_validate(valid(summary="Agent Skill Acquisition via CycleQD"),
                                 context={"title": "Agent skill acquisition via CycleQD!"})


def test_unknown_domain_and_empty_tasks_are_rejected():
    with pytest.raises(ValidationError):
        PaperTags.model_validate(valid(domain="astrology"))
    with pytest.raises(ValidationError):
        PaperTags.model_validate(valid(tasks=[]))


def test_duplicate_tags_are_folded():
    tags = PaperTags.model_validate(valid(benchmarks=["MMLU-Pro", "mmlu pro", "GSM8K"]))
    assert tags.benchmarks == ["MMLU-Pro", "GSM8K"]


def test_summary_cut_by_the_length_limit_loses_its_broken_last_word():
    cut_off = ("Proposes PSEC, a framework for iteratively evolving agents' capabilities and efficiently addressing "
               "new challenges by maintaining a manageable skill library, which can progressively integrate skill "
               "primitives as LoRA, a")
    assert len(cut_off) == 219
    assert one_short_sentence(cut_off).endswith("integrate skill primitives as LoRA…")
    complete = "A complete short summary of the paper's main result."
    assert one_short_sentence(complete) == complete
