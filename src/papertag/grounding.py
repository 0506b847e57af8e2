"""Grounding: keep only benchmark and method names the abstract really contains.

Small models list names from their few-shot examples or from general knowledge; a name that is not in the
title or abstract (after folding case, punctuation and spacing, allowing small spelling variants) is dropped.
"""

from __future__ import annotations

import re

from rapidfuzz import fuzz

from .schema import PaperTags
from .text import tag_key

PLACEHOLDERS = {"", "none", "na", "nan", "null", "nil", "unknown", "notapplicable", "notmentioned", "notspecified",
                "nobenchmark", "nobenchmarks", "nodataset", "nodatasets", "nomethod", "nomethods"}
# "COCO test-dev" is the benchmark "COCO": evaluation splits are not part of a benchmark's name.
SPLIT_SUFFIX = re.compile(r"[\s(\[_-]+(test-dev|test-std|test|dev|val|validation|train|training)(\s+(set|split))?[)\]]?$", re.I)
# Names the prompt already says are not benchmarks, but small models list anyway (checked on the dev split).
MODEL_NAME = re.compile(
    r"^(chat)?(gpt|llama|openllama|claude|gemini|mistral|mixtral|qwen|vicuna|falcon|deepseek|pythia|bloom|opt\d|"
    r"t5|flant5|bert|roberta|deberta|albert|electra|xlnet|deit|vit|resnet|vgg|efficientnet|clip|llava|whisper|"
    r"wav2vec|hubert|phi\d|gemma|mpt|olmo|stablediffusion|sdxl)", re.I)
# Whole names that are an architecture or a metric, never a dataset: "Transformer", "GNMT", "nDCG@10", "FID".
ARCHITECTURE_OR_METRIC = re.compile(
    r"^(transformers?|lstms?|grus?|cnns?|rnns?|gnmt|unet|mlps?|gans?|"
    r"ndcg|mrr|map|bleu|rouge[l12]?|meteor|cider|fid|psnr|ssim|lpips|wer|cer|eer|auc|auroc|auprc|f1|pass|hits|"
    r"recall|precision|accuracy|mae|rmse|mse|perplexity|winrate)\d*$")
# Generative adversarial network variants by their suffix: "LSGAN", "WGAN-GP", "StyleGAN2". Case-sensitive.
GAN_NAME = re.compile(r"GANs?(-GP)?\d*$")
# A model or architecture after a benchmark name: "ImageNet ResNet 18" and "CIFAR-10 AlexNet" are ImageNet and
# CIFAR-10. Whole words only (unlike MODEL_NAME, a prefix match, "Bloomberg" or "Clipart" must not match here).
MODEL_WORD = re.compile(r"^(alexnet|resnet|resnext|vgg|densenet|mobilenet|efficientnet|inception|vit|deit|bert|roberta|"
                        r"gpt|lstm|transformer)s?[\d-]*$", re.I)
NOT_A_DATASET_TAIL = re.compile(r"\b(taxonomy|model|models|framework|algorithm|method|approach|architecture)$", re.I)
# Task words glued to a benchmark name: "ImageNet classification" is the benchmark "ImageNet".
TASK_TAIL = re.compile(
    r"(\s+(image|text|sentiment|node|graph|object|semantic|instance|speech|machine|neural|zero-shot|few-shot|"
    r"fine-?tuning|finetuning|classification|detection|segmentation|translation|recognition|generation|"
    r"question|answering|reasoning|retrieval|summari[sz]ation|tasks?|experiments?|evaluations?|results?))+$")
# A generic noun after a proper name, with any lower-case words before it: "KITTI driving dataset" is "KITTI",
# "Atari games" is "Atari", "ImageNet validation set" is "ImageNet".
GENERIC_NOUN_TAIL = re.compile(
    r"(\s+[a-z][a-z-]*)*\s+(datasets?|benchmarks?|corpus|corpora|games?|environments?|data|splits?|sets?)$")
# A method that names itself a dataset: "CIFAR-10 dataset" listed as a method is the benchmark CIFAR-10.
DATASET_NOUN_TAIL = re.compile(r"\s+(datasets?|benchmarks?|corpus|corpora)$", re.I)
# An acronym defined in the text: "... Graph Convolutional Networks (GCNs)".
DEFINED_ACRONYM = re.compile(r"(?<=\s)\(([A-Za-z][\w-]{1,11})\)")
# Counts and size ranges: "11 model families", "125M to 180B", "7B".
COUNT_OR_SIZE = re.compile(r"^[\d.,]+\s*[kKmMbBtT]?(\s+(to|and|-|–)\s+[\d.,]+\s*[kKmMbBtT]?)?(\s+[a-z][a-z-]*)*$")
# Acronyms that name a field, not a dataset: "LLM inference", "RL tasks".
GENERIC_ACRONYMS = {"llm", "llms", "ai", "ml", "nlp", "rl", "gpu", "gpus", "vlm", "vlms", "cv", "asr", "tts", "qa"}
# Activities every paper does, not problems it addresses; the model lists them as tasks when it has nothing better.
GENERIC_TASKS = {"benchmarking", "evaluation", "modelevaluation", "datasetconstruction", "datasetcreation", "datacollection",
                 "deeplearning", "machinelearning", "modelperformance", "experiments", "coding", "analysis"}
GROUNDING_VERSION = "9"  # part of the schema version: changing these rules re-checks stored answers
MIN_FUZZY_KEY = 6  # shorter names must match exactly: "DSG" ~ "DSL" is not a spelling variant
FUZZY_THRESHOLD = 90


def strip_split_suffix(name: str) -> str:
    stripped = SPLIT_SUFFIX.sub("", name).strip()
    return stripped or name


def name_variants(name: str) -> list[str]:
    """'Abstraction and Reasoning Corpus (ARC)' may appear as either part."""
    variants = [name]
    match = re.fullmatch(r"(.+?)\s*\((.+)\)\s*", name)
    if match:
        variants += [match.group(1), match.group(2)]
    return variants


def is_grounded(name: str, source_key: str) -> bool:
    for variant in name_variants(name):
        key = tag_key(variant)
        if not key:
            continue
        if key in source_key:
            return True
        if len(key) >= MIN_FUZZY_KEY and fuzz.partial_ratio(key, source_key) >= FUZZY_THRESHOLD:
            return True
    return False


def strip_task_words(name: str) -> str:
    """'ImageNet classification' -> 'ImageNet', 'Atari games' -> 'Atari'; only lower-case words after a proper
    name are cut."""
    stripped = TASK_TAIL.sub("", GENERIC_NOUN_TAIL.sub("", strip_model_tail(name))).strip()
    return stripped if re.search(r"[A-Z0-9]", stripped) else name


def strip_model_tail(name: str) -> str:
    """'ImageNet ResNet 18' -> 'ImageNet': the model trained on a benchmark is not part of its name."""
    words = name.split()
    for index in range(1, len(words)):
        if MODEL_WORD.match(words[index]):
            return " ".join(words[:index])
    return name


def written_in_lower_case(name: str, abstract: str) -> bool:
    """'Action Recognition' or 'Machine Translation' where the abstract writes only 'action recognition': the
    model capitalised a phrase, and a phrase is a task, not a benchmark. Names the abstract never writes (or
    writes only in the title, where every word is capitalised) are left to the other rules."""
    words = re.findall(r"[A-Za-z0-9]+", name)
    if not words:
        return False
    pattern = re.compile(r"(?<![A-Za-z0-9])" + r"[\s-]*".join(map(re.escape, words)) + r"(?![A-Za-z0-9])", re.I)
    found = [match.group(0) for match in pattern.finditer(abstract)]
    return bool(found) and not any(re.search(r"[A-Z0-9]", text) for text in found)


def looks_like_benchmark(name: str) -> bool:
    """Benchmark names are proper names: a capital letter or a digit, not a model, a count or a generic phrase."""
    if not re.search(r"[A-Z0-9]", name):
        return False  # "robotic manipulation", "retina", "real-world websites"
    if COUNT_OR_SIZE.match(name.strip()):
        return False  # "11 model families", "125M to 180B"
    capitalised = [word for word in re.findall(r"[\w'-]+", name) if re.search(r"[A-Z0-9]", word)]
    if all(tag_key(word) in GENERIC_ACRONYMS for word in capitalised):
        return False  # "LLM inference"
    key = tag_key(name)
    return (not MODEL_NAME.match(key) and not ARCHITECTURE_OR_METRIC.match(key) and not GAN_NAME.search(name.strip())
            and not NOT_A_DATASET_TAIL.search(name.strip()))


def defined_acronyms(text: str) -> dict[str, str]:
    """Acronyms the text defines ("Graph Convolutional Networks (GCNs)"), by the key of either form ->
    "long form (ACRONYM)". The Schwartz-Hearst rule: the acronym's letters, matched right to left, must occur in
    the words just before the parenthesis, its first letter at the start of a word. (The PyPI package for it,
    'abbreviations', configures the root logger when imported, which would print every HTTP request.)"""
    spelled_out: dict[str, str] = {}
    for match in DEFINED_ACRONYM.finditer(text):
        acronym = match.group(1)
        letters = [c.casefold() for c in acronym if c.isalnum()]
        if acronym.endswith("s") and acronym[:-1].isupper():
            letters.pop()  # "GCNs"
        if len(letters) < 2 or sum(c.islower() for c in acronym.removesuffix("s")) > 1:
            continue  # "WildDESED" is a name, not an acronym of the words before it
        words = text[:match.start()].split()[-min(len(letters) + 5, len(letters) * 2):]
        window = " ".join(words)
        position = len(window) - 1
        for index in range(len(letters) - 1, -1, -1):
            while position >= 0 and (window[position].casefold() != letters[index]
                                     or (index == 0 and position > 0 and window[position - 1].isalnum())):
                position -= 1
            if position < 0:
                break
            position -= 1
        else:
            long_form = window[position + 1:].strip(" ,;:")
            if len(long_form.split()) >= 2:
                for form in (acronym, long_form):
                    spelled_out.setdefault(_singular_key(form), f"{long_form} ({acronym})")
    return spelled_out


def _singular_key(name: str) -> str:
    key = tag_key(name)
    return key[:-1] if key.endswith("s") else key


def names_a_dataset(method: str) -> bool:
    """"CIFAR-10 dataset", "FLIP benchmark": a proper name (an acronym, a digit or inner capitals) before a dataset
    noun; not "LLM-Powered dataset", where the only name is a field acronym."""
    tail = DATASET_NOUN_TAIL.search(method)
    if not tail:
        return False
    name = method[:tail.start()]
    proper = [part for part in re.findall(r"[A-Za-z0-9]+", name)
              if tag_key(part) not in GENERIC_ACRONYMS and (sum(c.isupper() for c in part) >= 2 or any(c.isdigit() for c in part))]
    return bool(proper) and looks_like_benchmark(name)


def specific_tasks(tasks: list[str], dropped: list[str]) -> list[str]:
    """A one-word task ("retrieval", "security", "generalization") names a field, not the paper's problem; it is
    dropped when the paper has a task of several words. (Careful readers wrote 1 one-word task in 253; on dev the
    model's one-word tasks were right 1 time in 10.)"""
    if not any(len(task.split()) > 1 for task in tasks):
        return tasks
    dropped += [f"task: {task}" for task in tasks if len(task.split()) == 1]
    return [task for task in tasks if len(task.split()) > 1]


def unrelated_task(task: str, source_text: str) -> bool:
    """A task none of whose words (by their first five letters, so "forecasting" finds "forecast") occurs in the
    title or abstract is about another paper: the 1.5B model copies the few-shot examples' tasks ("labour market
    forecasting" for a sound-event dataset). Tasks are otherwise the model's own phrasing and are not checked."""
    words = [word for word in re.findall(r"[a-z0-9]+", task.lower()) if len(word) >= 3]
    return bool(words) and not any(word[:5] in source_text for word in words)


def related_tasks(tasks: list[str], source_text: str, dropped: list[str]) -> list[str]:
    """The tasks without those unrelated to the paper, unless that would leave none."""
    related = [task for task in tasks if not unrelated_task(task, source_text)]
    if not related:
        return tasks
    dropped += [f"task: {task}" for task in tasks if task not in related]
    return related


def ground(tags: PaperTags, title: str, abstract: str) -> tuple[PaperTags, list[str]]:
    """Return the tags with ungrounded names and placeholders removed, and what was removed ("kind: value")."""
    source_key = tag_key(title + " " + abstract)
    source_text = (title + " " + abstract).lower()
    spelled_out = defined_acronyms(title + ". " + abstract)
    dropped: list[str] = []

    def keep(kind: str, values: list[str], check_text: bool) -> list[str]:
        kept = []
        for value in values:
            if kind == "benchmark":
                value = strip_task_words(strip_split_suffix(value))
            elif kind == "method" and "(" not in value:
                # "GCN" and "Graph Convolutional Networks" both become "Graph Convolutional Networks (GCNs)", which a
                # reader (and a search) finds either way; listed twice, it is kept once below.
                value = spelled_out.get(_singular_key(value), value)
            if (
                tag_key(value) in PLACEHOLDERS
                or (kind == "task" and tag_key(value) in GENERIC_TASKS)
                or (check_text and not is_grounded(value, source_key))
                or (kind == "benchmark" and (not looks_like_benchmark(value) or written_in_lower_case(value, abstract)))
            ):
                dropped.append(f"{kind}: {value}")
            elif tag_key(value) not in {tag_key(name) for name in kept}:  # "FLIP dataset" and "FLIP" are one name
                kept.append(value)
        return kept

    tasks = keep("task", tags.tasks, check_text=False)  # the model's own phrasing, not matched word for word
    datasets = [m for m in tags.methods if names_a_dataset(m)]
    methods = [m for m in tags.methods if m not in datasets]
    grounded = tags.model_copy(update={
        "tasks": specific_tasks(related_tasks(tasks, source_text, dropped), dropped),
        "methods": keep("method", methods, check_text=True),
        "benchmarks": keep("benchmark", tags.benchmarks + datasets, check_text=True),
    })
    return grounded, dropped
