"""Semantic Scholar Graph API paper JSON: one paper object, a list of them (the batch endpoint), a `data` list
(search, author papers, citations), or one object per line. A paper without an abstract is skipped and named: its
TLDR alone is one sentence, too little to tag."""

from __future__ import annotations

import json
from typing import Any, Iterator

from .records import ParsedFile, add_record, day_of, text_or_none
from .text import clean_text

# A JSON object with one of these keys is a Semantic Scholar paper.
PAPER_KEYS = frozenset({"paperId", "externalIds"})
WRAPPERS = ("citingPaper", "citedPaper")  # the citations and references endpoints wrap each paper


def is_semantic_scholar(value: object) -> bool:
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        return any(is_semantic_scholar(item) for item in value["data"][:5])
    if isinstance(value, dict):
        value = next((value[key] for key in WRAPPERS if isinstance(value.get(key), dict)), value)
    return isinstance(value, dict) and bool(PAPER_KEYS & value.keys())


def parse_semantic_scholar(text: str, parsed: ParsedFile) -> None:
    for where, paper in _papers(text, parsed):
        if not isinstance(paper, dict):
            parsed.problems.append(f"{where}: expected a paper object")
            continue
        paper = next((paper[key] for key in WRAPPERS if isinstance(paper.get(key), dict)), paper)
        ids = paper.get("externalIds") if isinstance(paper.get("externalIds"), dict) else {}
        journal = paper.get("journal") if isinstance(paper.get("journal"), dict) else {}
        authors = paper.get("authors") if isinstance(paper.get("authors"), list) else []
        title = paper.get("title")
        named = f"{where} ({clean_text(title)[:60]})" if isinstance(title, str) and title.strip() else where
        add_record(
            parsed, named, title, paper.get("abstract"),
            authors=[author.get("name") for author in authors if isinstance(author, dict) and isinstance(author.get("name"), str)],
            published=day_of(paper.get("publicationDate")) or day_of(paper.get("year")),
            arxiv_id=text_or_none(ids.get("ArXiv")), doi=text_or_none(ids.get("DOI")), url=text_or_none(paper.get("url")),
            venue=text_or_none(paper.get("venue")) or text_or_none(journal.get("name")),
        )


def _papers(text: str, parsed: ParsedFile) -> Iterator[tuple[str, Any]]:
    """(position, paper) for each paper of the file, whichever of the four shapes it has."""
    try:
        document = json.loads(text, strict=False)
    except json.JSONDecodeError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        document = document["data"]
    if isinstance(document, list):
        yield from ((f"paper {number}", paper) for number, paper in enumerate(document, start=1))
    elif isinstance(document, dict):
        yield "paper 1", document
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield f"line {number}", json.loads(line, strict=False)
            except json.JSONDecodeError as error:
                parsed.problems.append(f"line {number}: not valid JSON ({error.msg})")

