"""Input files → papers. Saved listing pages, JSONL and CSV are read here; arXiv's XML and metadata snapshot,
BibTeX and Semantic Scholar JSON in their own modules. The format is sniffed from the start of the file."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Literal, Union, get_args

from .arxiv_snapshot import is_snapshot_record, parse_snapshot
from .arxiv_xml import parse_atom, parse_oai
from .bibtex_format import parse_bibtex
from .errors import InputError
from .records import MAX_TITLE_CHARS, Paper, ParsedFile, add_paper, add_record, make_paper
from .selection import Selection
from .semantic_scholar import is_semantic_scholar, parse_semantic_scholar
from .text import clean_text

__all__ = ["FORMATS", "Inputs", "MAX_TITLE_CHARS", "Paper", "ParsedFile", "Selection", "make_paper", "parse_file",
           "read_inputs", "read_text"]

Format = Literal["listing", "jsonl", "csv", "arxiv-atom", "arxiv-oai", "arxiv-snapshot", "bibtex", "semantic-scholar"]
FORMATS: tuple[str, ...] = get_args(Format)
# Extensions that settle the format; .json, .jsonl and .xml files hold several formats, so their content decides.
EXTENSIONS: dict[str, Format] = {".csv": "csv", ".txt": "listing", ".md": "listing", ".bib": "bibtex"}
JSON_EXTENSIONS = (".json", ".jsonl", ".ndjson")
HEAD_BYTES = 1 << 16  # the format is sniffed from this much of the file; a snapshot is never read whole
BIBTEX_ENTRY = re.compile(r"^\s*@\s*[A-Za-z]+\s*[{(]", re.MULTILINE)

# A listing page's abstract is a long paragraph; a title is a short line right before it.
MIN_ABSTRACT_WORDS = 25
MAX_TITLE_WORDS = 40
# A CSV header without title and abstract is named in the error this briefly.
MAX_COLUMNS_SHOWN = 4
MAX_COLUMN_CHARS = 40
# UTF-32 before UTF-16: the UTF-32-LE mark starts with the UTF-16-LE one.
BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
                    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


STDIN = Path("-")  # 'papertag ingest -' reads standard input
STDIN_NAME = "<stdin>"  # its name in messages and in papers.source


def read_text(path: Path) -> str:
    """The whole text of a file, decoded."""
    with _open_binary(path) as stream:
        return _text(_read(stream, path), path)


def _text(data: bytes, path: Path) -> str:
    text = decode(data, path)
    if not text.strip():
        raise InputError(f"{path}: file is empty")
    return text


@contextmanager
def _open_binary(path: Path) -> Iterator[BinaryIO]:
    """The file's bytes, or standard input's for '-'."""
    if path == STDIN:
        yield sys.stdin.buffer
        return
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None
    with stream:
        yield stream


def _read(stream: BinaryIO, path: Path, size: int = -1) -> bytes:
    try:
        return stream.read(size)
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


def detect_format(path: Path, head: str) -> Format:
    """The format from the extension when it settles it, else from the start of the content (standard input has
    only its content)."""
    if path.suffix.lower() in EXTENSIONS:
        return EXTENSIONS[path.suffix.lower()]
    start = head.lstrip()
    if start.startswith("<"):
        return "arxiv-oai" if "OAI-PMH" in start[:4096] else "arxiv-atom"
    if start.startswith(("{", "[")) or path.suffix.lower() in JSON_EXTENSIONS:
        return _json_format(start)
    if BIBTEX_ENTRY.search(head):
        return "bibtex"
    first_line = start.split("\n", 1)[0]
    header = {column.strip().casefold() for column in first_line.split(",")}
    if {"title", "abstract"} <= header:
        return "csv"
    return "listing"


def _json_format(start: str) -> Format:
    """JSON lines of the arXiv snapshot, Semantic Scholar papers (one object or list, maybe spread over lines), or
    plain JSONL."""
    try:
        first = json.loads(start.split("\n", 1)[0], strict=False)
    except json.JSONDecodeError:
        first = None  # a pretty-printed document: its first line is "{" alone
    if is_snapshot_record(first):
        return "arxiv-snapshot"
    if is_semantic_scholar(first) or (first is None and re.search(r'"(paperId|externalIds)"\s*:', start)):
        return "semantic-scholar"
    return "jsonl"


def _sniff_text(head: bytes) -> str:
    """The start of a file as text, good enough to tell formats apart (it may end mid-character)."""
    for mark, codec in BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return head.decode(codec, errors="ignore")
    return head.decode("utf-8", errors="replace")


def parse_file(path: Path, format: Format | None = None, selection: Selection | None = None) -> ParsedFile:
    """The papers of one file (standard input for '-') that the selection wants, and the records skipped. The
    snapshot is streamed line by line; the other formats are read whole."""
    name = STDIN_NAME if path == STDIN else str(path)
    with _open_binary(path) as stream:
        head = _read(stream, path, HEAD_BYTES)
        chosen = format or detect_format(path, _sniff_text(head))
        parsed = ParsedFile(path=name, format=chosen, selection=selection or Selection())
        if chosen == "arxiv-snapshot":
            parse_snapshot(_stream_lines(head, stream, Path(name)), parsed)
        else:
            PARSERS[chosen](_text(head + _read(stream, path), Path(name)), parsed)
    if not parsed.papers and not parsed.not_selected:
        detail = "; ".join(parsed.problems[:3]) or _NO_PAPERS_HINT[chosen]
        raise InputError(f"{parsed.path}: no abstracts found ({detail})")
    return parsed


def _stream_lines(head: bytes, stream: BinaryIO, path: Path) -> Iterator[str]:
    """Decoded lines: the head's, then the rest of the file's one at a time."""
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8):]
    elif any(head.startswith(mark) for mark, _ in BYTE_ORDER_MARKS):
        raise InputError(f"{path}: a UTF-16 or UTF-32 snapshot cannot be streamed; convert it to UTF-8")
    if b"\0" in head[:8192]:
        raise InputError(f"{path}: looks like a binary file, not text")
    if not head.strip():
        raise InputError(f"{path}: file is empty")
    try:
        first_lines = (head + stream.readline()).splitlines(keepends=True)  # the head's last line, completed
        for line in itertools.chain(first_lines, stream):
            yield _decode_line(line)
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None


@dataclass
class Inputs:
    """Papers read from input files (or given as Paper objects), and the records skipped, each naming its file and
    position: a run goes on without them and reports them."""

    papers: list[Paper] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    not_selected: int = 0  # left out by --category, --since or --until


Source = Union[Path, str, Paper]


def read_inputs(sources: Source | Iterable[Source], format: Format | None = None,
                selection: Selection | None = None) -> Inputs:
    """Every file parsed before anything is done with them, so a bad file fails alone and first; '-' is standard
    input. Paper objects pass through as they are, if the selection wants them."""
    if format is not None and format not in FORMATS:
        raise InputError(f"unknown input format {format!r} (use one of: {', '.join(FORMATS)})")
    selection = selection or Selection()
    if isinstance(sources, (Path, str, Paper)):
        sources = [sources]
    inputs = Inputs()
    for source in sources:
        if isinstance(source, Paper):
            if selection.wants(source):
                inputs.papers.append(source)
            else:
                inputs.not_selected += 1
            continue
        parsed = parse_file(Path(source), format, selection)
        inputs.papers += parsed.papers
        inputs.problems += [f"{parsed.path}: {problem}" for problem in parsed.problems]
        inputs.not_selected += parsed.not_selected
    return inputs


_NO_PAPERS_HINT = {
    "listing": "expected a title line followed by an abstract paragraph of at least 25 words",
    "jsonl": "expected one JSON object per line with 'title' and 'abstract'",
    "csv": "expected rows with 'title' and 'abstract'",
    "arxiv-atom": "expected <entry> elements of an arXiv API response",
    "arxiv-oai": "expected <record> elements of an OAI-PMH ListRecords response",
    "arxiv-snapshot": "expected one arXiv metadata object per line",
    "bibtex": "expected @article{...} entries",
    "semantic-scholar": "expected Semantic Scholar paper objects",
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
            add_paper(make_paper(title, " ".join(paragraphs), parsed.path), f"paper {len(parsed.papers) + 1}", parsed)

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
    add_record(parsed, where, record.get("title"), record.get("abstract"), record.get("id"))


PARSERS: dict[str, Callable[[str, ParsedFile], object]] = {
    "listing": _parse_listing, "jsonl": _parse_jsonl, "csv": _parse_csv, "arxiv-atom": parse_atom,
    "arxiv-oai": parse_oai, "bibtex": parse_bibtex, "semantic-scholar": parse_semantic_scholar,
}
