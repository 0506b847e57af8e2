"""Input files → papers. Three formats: saved listing pages, JSONL and CSV."""

from __future__ import annotations

import codecs
import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Union

from .errors import InputError
from .text import clean_text, content_hash

Format = Literal["listing", "jsonl", "csv"]
FORMATS: tuple[str, ...] = ("listing", "jsonl", "csv")
EXTENSIONS: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "listing", ".md": "listing"}

# A listing page's abstract is a long paragraph; a title is a short line right before it.
MIN_ABSTRACT_WORDS = 25
MAX_TITLE_WORDS = 40
MAX_TITLE_CHARS = 1000  # a longer "title" is a broken record, and would crowd the abstract out of the prompt
# A CSV header without title and abstract is named in the error this briefly.
MAX_COLUMNS_SHOWN = 4
MAX_COLUMN_CHARS = 40
# UTF-32 before UTF-16: the UTF-32-LE mark starts with the UTF-16-LE one.
BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
                    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass(frozen=True)
class Paper:
    id: str
    title: str
    abstract: str
    source: str
    content_hash: str


@dataclass
class ParsedFile:
    path: str
    format: Format
    papers: list[Paper] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # skipped records, each naming its line
    first_seen: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)  # id -> (where, content hash)


def make_paper(title: str, abstract: str, source: str, given_id: object = None) -> Paper:
    title, abstract = clean_text(title), clean_text(abstract)  # no NULs or escapes reach the model or the database
    digest = content_hash(title, abstract)
    # Ids are printed and typed back ('papertag show ID'), so they are cleaned like the text; one with nothing
    # printable left is no id.
    paper_id = "" if given_id is None else clean_text(str(given_id))
    paper_id = paper_id or digest[:16]
    return Paper(id=paper_id, title=title, abstract=abstract, source=source, content_hash=digest)


STDIN = Path("-")  # 'papertag ingest -' reads standard input
STDIN_NAME = "<stdin>"  # its name in messages and in papers.source


def read_input(path: Path) -> str:
    """The text of an input file, or of standard input for '-'."""
    if path == STDIN:
        return _text(sys.stdin.buffer.read(), Path(STDIN_NAME))
    return read_text(path)


def read_text(path: Path) -> str:
    return _text(_read_bytes(path), path)


def _text(data: bytes, path: Path) -> str:
    text = decode(data, path)
    if not text.strip():
        raise InputError(f"{path}: file is empty")
    return text


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None


def decode(data: bytes, path: Path) -> str:
    for mark, codec in BYTE_ORDER_MARKS:
        if data.startswith(mark):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as error:
                raise InputError(f"{path}: broken {codec.upper()} text (bad bytes at offset {error.start})") from None
    if b"\0" in data[:8192]:
        raise InputError(f"{path}: looks like a binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Files pasted together from several sources mix UTF-8 with Windows-1252 (what Excel and older pages
        # write): decode line by line instead of rejecting the whole file for one byte.
        return "".join(_decode_line(line) for line in data.splitlines(keepends=True))


def _decode_line(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("cp1252", errors="replace")


def detect_format(path: Path, text: str) -> Format:
    if path.suffix.lower() in EXTENSIONS:
        return EXTENSIONS[path.suffix.lower()]
    first_line = text.lstrip().split("\n", 1)[0]
    if first_line.startswith("{"):
        return "jsonl"
    header = {column.strip().casefold() for column in first_line.split(",")}
    if {"title", "abstract"} <= header:
        return "csv"
    return "listing"


def parse_file(path: Path, format: Format | None = None) -> ParsedFile:
    text = read_input(path)
    chosen = format or detect_format(path, text)  # standard input has no extension: its content decides
    parsed = ParsedFile(path=STDIN_NAME if path == STDIN else str(path), format=chosen)
    {"listing": _parse_listing, "jsonl": _parse_jsonl, "csv": _parse_csv}[chosen](text, parsed)
    if not parsed.papers:
        detail = "; ".join(parsed.problems[:3]) or _NO_PAPERS_HINT[chosen]
        raise InputError(f"{parsed.path}: no abstracts found ({detail})")
    return parsed


@dataclass
class Inputs:
    """Papers read from input files (or given as Paper objects), and the records skipped, each naming its file and
    line: a run goes on without them and reports them."""

    papers: list[Paper] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


Source = Union[Path, str, Paper]


def read_inputs(sources: Source | Iterable[Source], format: Format | None = None) -> Inputs:
    """Every file parsed before anything is done with them, so a bad file fails alone and first; '-' is standard
    input. Paper objects pass through as they are."""
    if format is not None and format not in FORMATS:
        raise InputError(f"unknown input format {format!r} (use one of: {', '.join(FORMATS)})")
    if isinstance(sources, (Path, str, Paper)):
        sources = [sources]
    inputs = Inputs()
    for source in sources:
        if isinstance(source, Paper):
            inputs.papers.append(source)
            continue
        parsed = parse_file(Path(source), format)
        inputs.papers += parsed.papers
        inputs.problems += [f"{parsed.path}: {problem}" for problem in parsed.problems]
    return inputs


_NO_PAPERS_HINT = {
    "listing": "expected a title line followed by an abstract paragraph of at least 25 words",
    "jsonl": "expected one JSON object per line with 'title' and 'abstract'",
    "csv": "expected rows with 'title' and 'abstract'",
}


def _is_abstract(line: str) -> bool:
    return len(line.split()) >= MIN_ABSTRACT_WORDS


def _parse_listing(text: str, parsed: ParsedFile) -> None:
    lines = [clean_text(line) for line in text.splitlines()]
    lines = [line for line in lines if line]
    title: str | None = None
    paragraphs: list[str] = []
    previous = ""

    def flush() -> None:
        if title is not None and paragraphs:
            parsed.papers.append(make_paper(title, " ".join(paragraphs), parsed.path))

    for line in lines:
        if _is_abstract(line):
            if paragraphs and previous == paragraphs[-1]:
                paragraphs.append(line)  # a second paragraph of the same abstract
            elif previous and len(previous.split()) <= MAX_TITLE_WORDS and len(previous) <= MAX_TITLE_CHARS \
                    and not _is_abstract(previous):
                flush()
                title, paragraphs = previous, [line]
        previous = line
    flush()


def _parse_jsonl(text: str, parsed: ParsedFile) -> None:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, strict=False)  # control characters in strings are cleaned, not fatal
        except json.JSONDecodeError as error:
            parsed.problems.append(f"line {number}: not valid JSON ({error.msg})")
            continue
        _add_record(record, f"line {number}", parsed)


def _parse_csv(text: str, parsed: ParsedFile) -> None:
    csv.field_size_limit(sys.maxsize)  # abstracts can be long
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = {(name or "").strip().casefold(): name for name in reader.fieldnames or []}
    missing = [name for name in ("title", "abstract") if name not in columns]
    if missing:
        hint = "; the first line looks like JSON: try --format jsonl" if text.lstrip().startswith(("{", "[")) else ""
        raise InputError(f"{parsed.path}: CSV is missing column(s) {', '.join(missing)} "
                            f"({_found_columns(reader.fieldnames or [])}){hint}")
    try:
        for row in reader:
            record = {key: row.get(original) for key, original in columns.items()}
            _add_record(record, f"line {reader.line_num}", parsed)
    except csv.Error as error:
        raise InputError(f"{parsed.path}: broken CSV near line {reader.line_num} ({error})") from None


def _found_columns(names: list[str]) -> str:
    """A few of the header's columns, each cut short: a JSON line read as CSV is one long "column" per comma."""
    shown = [_shorten(clean_text(name)) for name in names[:MAX_COLUMNS_SHOWN]]
    more = f" and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
    return f"found {len(names)} column{'' if len(names) == 1 else 's'}: {', '.join(shown)}{more}" if names else "found none"


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_COLUMN_CHARS else text[:MAX_COLUMN_CHARS - 1] + "…"


def _add_record(record: object, where: str, parsed: ParsedFile) -> None:
    if not isinstance(record, dict):
        parsed.problems.append(f"{where}: expected an object with 'title' and 'abstract'")
        return
    title, abstract = record.get("title"), record.get("abstract")
    if not isinstance(title, str) or not title.strip():
        parsed.problems.append(f"{where}: missing 'title'")
    elif not isinstance(abstract, str) or not abstract.strip():
        parsed.problems.append(f"{where}: missing 'abstract'")
    elif len(title) > MAX_TITLE_CHARS:
        parsed.problems.append(f"{where}: title is {len(title):,} characters long (at most {MAX_TITLE_CHARS:,})")
    else:
        _add_paper(make_paper(title, abstract, parsed.path, record.get("id")), where, parsed)


def _add_paper(paper: Paper, where: str, parsed: ParsedFile) -> None:
    if not paper.title or not paper.abstract:
        parsed.problems.append(f"{where}: {'title' if not paper.title else 'abstract'} has no printable text")
        return
    # The same id for a different text is a mistake in the file: the first one wins, the clash is reported.
    first_where, first_hash = parsed.first_seen.setdefault(paper.id, (where, paper.content_hash))
    if first_hash != paper.content_hash:
        parsed.problems.append(f"{where}: id {paper.id!r} is already used by {first_where} for a different paper")
    else:
        parsed.papers.append(paper)
