"""What one input record becomes: a Paper (text, id, metadata), added to the ParsedFile of its input or skipped
with its position named. Every input format (sources.py and the format modules) builds papers through here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import date
from email.utils import parsedate_to_datetime
from typing import Any

from .selection import Selection
from .text import clean_text, content_hash

MAX_TITLE_CHARS = 1000  # a longer "title" is a broken record, and would crowd the abstract out of the prompt
# 2401.01234v2, hep-th/9901001v1, with or without "arXiv:" or the abs URL in front.
ARXIV_ID = re.compile(r"(?:arxiv[:.]\s*|arxiv\.org/(?:abs|pdf)/|(?<![\w./]))"
                      r"(\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(?:v(\d+))?(?!\d)", re.IGNORECASE)
# DOIs are case-insensitive; the resolver prefixes and "doi:" are not part of one.
DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)


@dataclass(frozen=True)
class Paper:
    id: str
    title: str
    abstract: str
    source: str  # the file (or query) it was read from
    content_hash: str
    # Metadata, when the source has it.
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # arXiv categories, the primary one first
    published: date | None = None  # first version, or publication
    updated: date | None = None  # the newest version, or the record's last update
    arxiv_id: str | None = None  # without its version
    arxiv_version: int | None = None
    doi: str | None = None
    url: str | None = None
    venue: str | None = None


METADATA_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Paper))[5:]


def parse_arxiv_id(text: str | None) -> tuple[str | None, int | None]:
    """(id without version, version or None) from an arXiv id, "arXiv:" id, abs/pdf URL or arXiv DOI."""
    match = ARXIV_ID.search(text or "")
    if not match:
        return None, None
    return match.group(1).lower(), int(match.group(2)) if match.group(2) else None


def normalise_doi(text: str | None) -> str | None:
    doi = DOI_PREFIX.sub("", clean_text(text or "")).lower()
    return doi if doi.startswith("10.") else None


def day_of(text: object) -> date | None:
    """The day of a date as sources write it: ISO (2024-01-15, with a time or not), year-month, a year alone (its
    first day), or RFC 2822 ("Mon, 2 Apr 2007 19:18:42 GMT", arXiv's version dates); None for anything else."""
    if not isinstance(text, (str, int)) or isinstance(text, bool):
        return None
    text = str(text).strip()
    iso = re.match(r"(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?(?:$|[T ])", text)
    try:
        if iso:
            return date(int(iso.group(1)), int(iso.group(2) or 1), int(iso.group(3) or 1))
        return parsedate_to_datetime(text).date()
    except (ValueError, TypeError, IndexError, OverflowError):
        return None


def person_name(family: str | None, given: str | None) -> str:
    """"Given Family", as arXiv's and BibTeX's split author names are read."""
    return " ".join(part.strip() for part in (given or "", family or "") if part and part.strip())


def text_or_none(value: object) -> str | None:
    """A JSON value that should be a string, or None: sources put null, numbers or objects where text belongs."""
    return value if isinstance(value, str) else None


def make_paper(title: str, abstract: str, source: str, given_id: object = None, **metadata: Any) -> Paper:
    """A paper with cleaned text; its id is the given id, else the arXiv id, else the DOI, else a hash of the text."""
    title, abstract = clean_text(title), clean_text(abstract)  # no NULs or escapes reach the model or the database
    digest = content_hash(title, abstract)
    metadata = _clean_metadata(metadata)
    # Ids are printed and typed back ('papertag show ID'), so they are cleaned like the text; one with nothing
    # printable left is no id.
    paper_id = "" if given_id is None else clean_text(str(given_id))
    paper_id = paper_id or metadata.get("arxiv_id") or metadata.get("doi") or digest[:16]
    # The source is a file name or a query, exported and shown like the text: a hostile file name carries escapes.
    source = clean_text(source)
    return Paper(id=paper_id, title=title, abstract=abstract, source=source, content_hash=digest, **metadata)


def _clean_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Strings cleaned like titles, empty ones dropped, so stored metadata is printable and None means unknown."""
    unknown = set(metadata) - set(METADATA_FIELDS)
    if unknown:
        raise TypeError(f"unknown paper metadata: {', '.join(sorted(unknown))}")
    cleaned: dict[str, Any] = {}
    for name, value in metadata.items():
        if isinstance(value, str):
            value = clean_text(value) or None
        elif isinstance(value, (list, tuple)):
            value = tuple(dict.fromkeys(text for text in (clean_text(str(item)) for item in value) if text))
        cleaned[name] = value
    if cleaned.get("doi"):
        cleaned["doi"] = normalise_doi(cleaned["doi"])
    if cleaned.get("venue") and "arxiv" in cleaned["venue"].casefold():
        cleaned["venue"] = None  # "arXiv preprint arXiv:2401.01234", "arXiv.org": where a paper is, not a venue
    return cleaned


@dataclass
class ParsedFile:
    path: str
    format: str
    selection: Selection = field(default_factory=Selection)
    papers: list[Paper] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # skipped records, each naming its position
    not_selected: int = 0  # papers left out by --category, --since or --until
    query: str | None = None  # the request a saved API response answered, kept with each paper's source
    first_seen: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)  # id -> (where, content hash)


def add_record(parsed: ParsedFile, where: str, title: object, abstract: object, given_id: object = None,
               **metadata: Any) -> None:
    """One record's paper, or a problem naming `where` (its line, entry or record number) when it has none."""
    if not isinstance(title, str) or not title.strip():
        parsed.problems.append(f"{where}: missing 'title'")
    elif not isinstance(abstract, str) or not abstract.strip():
        parsed.problems.append(f"{where}: missing 'abstract'")
    elif len(title) > MAX_TITLE_CHARS:
        parsed.problems.append(f"{where}: title is {len(title):,} characters long (at most {MAX_TITLE_CHARS:,})")
    else:
        source = f"{parsed.path} ({parsed.query})" if parsed.query else parsed.path
        add_paper(make_paper(title, abstract, source, given_id, **metadata), where, parsed)


def add_paper(paper: Paper, where: str, parsed: ParsedFile) -> None:
    if not paper.title or not paper.abstract:
        parsed.problems.append(f"{where}: {'title' if not paper.title else 'abstract'} has no printable text")
        return
    if not parsed.selection.wants(paper):
        parsed.not_selected += 1
        return
    # The same id for a different text is a mistake in the file: the first one wins, the clash is reported.
    first_where, first_hash = parsed.first_seen.setdefault(paper.id, (where, paper.content_hash))
    if first_hash != paper.content_hash:
        parsed.problems.append(f"{where}: id {paper.id!r} is already used by {first_where} for a different paper")
    else:
        parsed.papers.append(paper)
