"""BibTeX and BibLaTeX exports (Zotero, Mendeley, JabRef) with `abstract` fields, read by bibtexparser. An entry
without an abstract is skipped and named; LaTeX markup ({BERT}, M{\\"u}ller, \\&) becomes plain text."""

from __future__ import annotations

import logging

import bibtexparser
from pylatexenc.latex2text import LatexNodes2Text
from pylatexenc.latexwalker import LatexWalkerError

from .records import ParsedFile, add_record, day_of, parse_arxiv_id
from .text import clean_text

# bibtexparser logs each broken block at WARNING on stderr; papertag names it once, as a skipped record.
logging.getLogger("bibtexparser").addHandler(logging.NullHandler())
logging.getLogger("bibtexparser").propagate = False

MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
VENUE_FIELDS = ("journaltitle", "journal", "booktitle", "eventtitle")  # BibLaTeX's name first
_LATEX = LatexNodes2Text(math_mode="verbatim", strict_latex_spaces=False)


def plain(value: str | None) -> str | None:
    """LaTeX to text; markup pylatexenc cannot read is kept as written, braces removed."""
    if value is None:
        return None
    try:
        return _LATEX.latex_to_text(value)
    except (LatexWalkerError, ValueError, IndexError, RecursionError):
        return value.replace("{", "").replace("}", "")


def parse_bibtex(text: str, parsed: ParsedFile) -> None:
    library = bibtexparser.parse_string(text)
    for block in library.failed_blocks:
        parsed.problems.append(f"line {block.start_line + 1}: broken BibTeX entry, skipped")
    for number, entry in enumerate(library.entries, start=1):
        fields = {name.casefold(): field.value for name, field in entry.fields_dict.items() if isinstance(field.value, str)}
        where = f"entry {number} ({clean_text(entry.key)}, line {entry.start_line + 1})"
        arxiv_id, version = _arxiv_id(fields)
        add_record(
            parsed, where, plain(fields.get("title")), plain(fields.get("abstract")),
            authors=_authors(fields.get("author")), published=_date(fields),
            arxiv_id=arxiv_id, arxiv_version=version, doi=fields.get("doi"), url=fields.get("url"),
            venue=plain(next((fields[name] for name in VENUE_FIELDS if fields.get(name)), None)),
            categories=(fields.get("primaryclass") or fields.get("eprintclass") or "").split(),
        )


def _arxiv_id(fields: dict[str, str]) -> tuple[str | None, int | None]:
    """From eprint (with archivePrefix or eprinttype arXiv), an arXiv URL, an arXiv DOI or an arXiv "journal"."""
    prefix = (fields.get("archiveprefix") or fields.get("eprinttype") or "").casefold()
    candidates = [fields.get("eprint") if prefix == "arxiv" else None, fields.get("url"),
                  *(fields.get(name) for name in ("doi", "journal") if "arxiv" in fields.get(name, "").casefold())]
    for candidate in candidates:
        if candidate and "arxiv" in (candidate.casefold() + prefix):
            arxiv_id, version = parse_arxiv_id(candidate)
            if arxiv_id:
                return arxiv_id, version
    return None, None


def _authors(value: str | None) -> list[str]:
    """"Family, Given and Given Family and others" → ["Given Family", "Given Family"]."""
    names = []
    for name in (plain(value) or "").replace("\n", " ").split(" and "):
        name = " ".join(name.split())
        if not name or name.casefold() == "others":
            continue
        family, _, given = name.partition(",")
        names.append(f"{given.strip()} {family.strip()}".strip() if given else name)
    return names


def _date(fields: dict[str, str]) -> object:
    """BibLaTeX's date, else year and month."""
    if fields.get("date"):
        return day_of(fields["date"])
    year = fields.get("year", "").strip()
    month = fields.get("month", "").strip().casefold()
    month_number = MONTHS.get(month[:3]) or (int(month) if month.isdigit() and 1 <= int(month) <= 12 else None)
    return day_of(f"{year}-{month_number:02d}" if month_number and year.isdigit() else year)
