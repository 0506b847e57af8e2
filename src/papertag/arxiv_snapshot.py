"""The arXiv metadata snapshot: one JSON object per line for every arXiv paper, over 4 GB. It is read line by
line, never whole, and the selection (--category, --since, --until) is applied to each line as it is read."""

from __future__ import annotations

import json
from typing import Iterable

from .arxiv_xml import ABS_URL, split_authors, version_metadata
from .records import ParsedFile, add_record, day_of, parse_arxiv_id, person_name, text_or_none

# A line with all of these keys is a snapshot record (plain JSONL needs only title and abstract).
SNAPSHOT_KEYS = frozenset({"id", "abstract", "categories", "versions"})


def is_snapshot_record(record: object) -> bool:
    return isinstance(record, dict) and SNAPSHOT_KEYS <= record.keys()


def parse_snapshot(lines: Iterable[str], parsed: ParsedFile) -> None:
    selection = parsed.selection
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if not selection.may_want_line(line):  # most lines of a filtered run end here, unparsed
            parsed.not_selected += 1
            continue
        try:
            record = json.loads(line, strict=False)
        except json.JSONDecodeError as error:
            parsed.problems.append(f"line {number}: not valid JSON ({error.msg})")
            continue
        if not isinstance(record, dict):
            parsed.problems.append(f"line {number}: expected an object with 'title' and 'abstract'")
            continue
        _add_snapshot_record(record, f"line {number}", parsed)


def _add_snapshot_record(record: dict, where: str, parsed: ParsedFile) -> None:
    categories = str(record.get("categories") or "").split()
    versions = record.get("versions") if isinstance(record.get("versions"), list) else []
    dated = version_metadata([(str(v.get("version", "")), v.get("created")) for v in versions if isinstance(v, dict)])
    # Checked before the text is cleaned or a paper made: the cheap way through millions of unwanted papers.
    if not parsed.selection.wants_categories(categories) or not parsed.selection.wants_date(dated["published"]):
        parsed.not_selected += 1
        return
    arxiv_id, _ = parse_arxiv_id(str(record.get("id") or ""))
    add_record(
        parsed, where, record.get("title"), record.get("abstract"),
        authors=_authors(record), categories=categories, published=dated["published"],
        updated=day_of(record.get("update_date")) or dated["updated"], arxiv_version=dated["arxiv_version"],
        arxiv_id=arxiv_id, doi=text_or_none(record.get("doi")), url=ABS_URL.format(arxiv_id) if arxiv_id else None,
        venue=text_or_none(record.get("journal-ref")),
    )


def _authors(record: dict) -> list[str]:
    """authors_parsed ([family, given, suffix] each) when present, else the one-string list."""
    parsed_names = record.get("authors_parsed")
    if isinstance(parsed_names, list) and all(isinstance(name, list) and name for name in parsed_names):
        return [person_name(text_or_none(name[0]), text_or_none(name[1]) if len(name) > 1 else None) for name in parsed_names]
    return split_authors(text_or_none(record.get("authors")))

