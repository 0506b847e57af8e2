"""The command line: parses arguments, calls the library, prints. No logic lives only here."""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .api import Library
from .backends import DEFAULT_MODEL_SPEC
from .errors import PapertagError
from .jsonvalues import dumps
from .queries import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, run_read_only_sql
from .redact import redact
from .schema import DOMAINS
from .selection import Selection
from .settings import Settings
from .sources import FORMATS, Inputs, read_inputs
from .text import clean_text

if TYPE_CHECKING:  # the LLM stack (openai, instructor) is imported only by the commands that call a model, httpx
    from .arxiv_api import Page  # only by those that fetch
    from .batch import CollectReport
    from .ingest import IngestReport

app = typer.Typer(
    help="Summarise and tag research-paper abstracts with an LLM, store them in DuckDB, and query them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class _Console(Console):
    def on_broken_pipe(self) -> None:
        raise BrokenPipeError  # rich would exit 1 here; friendly_errors ends every command the same quiet way


# No emoji codes: a title with ":fire:" in it prints as written.
out = _Console(soft_wrap=True, emoji=False)
err = Console(stderr=True, soft_wrap=True, emoji=False)

DbOption = Annotated[Path, typer.Option("--db", envvar="PAPERTAG_DB", help="DuckDB file.", show_default=True)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
DEFAULT_DB = Path("papertag.duckdb")
# The model options of the commands that tag (ingest, arxiv).
ModelOption = Annotated[str, typer.Option("--model", "-m", envvar="PAPERTAG_MODEL",
    help="local (Qwen2.5-Coder-1.5B, embedded), local:fast (0.5B), local:/path/model.gguf, or openai:<model>.")]
BaseUrlOption = Annotated[Optional[str], typer.Option("--base-url",
    help="OpenAI-compatible server for openai:<model> (vLLM, Ollama, llama-server). Default: OPENAI_BASE_URL or OpenAI.")]
ConcurrencyOption = Annotated[Optional[int], typer.Option("--concurrency", min=1,
    help="Papers in flight at once. Default: the backend's (8 for remote servers, the local model's slots).")]

# --since/--until of the commands that select by publication day (ingest, query); arxiv's mean submission day.
SinceOption = Annotated[Optional[str], typer.Option("--since", metavar="YYYY-MM-DD",
    help="Only papers first published (the first arXiv version's date, not update_date) on or after this day.")]
UntilOption = Annotated[Optional[str], typer.Option("--until", metavar="YYYY-MM-DD",
    help="Only papers first published (the first arXiv version's date) on or before this day.")]

PATHS_HELP = ("Files of abstracts: saved listing pages (.txt), JSONL, CSV, arXiv API (Atom) or OAI-PMH XML, the arXiv "
              "metadata snapshot, BibTeX/BibLaTeX, Semantic Scholar JSON; - reads standard input.")
InputFormat = Enum("InputFormat", {name: name for name in FORMATS}, type=str)
DomainChoice = Enum("DomainChoice", {name: name for name in DOMAINS}, type=str)


class TagKind(str, Enum):
    task = "task"
    method = "method"
    benchmark = "benchmark"


class ExportFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


def shown(value: Any) -> str:
    """Any value that is not a constant (an id, a title, a file or model name, a server's error), ready to print in
    a rich markup string: one line, no escape sequences, control characters or bidi marks, no API key, and its
    brackets printed as written."""
    return escape(redact(clean_text(str(value))))


# Every kind of PapertagError (InputError, DatabaseError, ConfigurationError, BackendError) exits 2: the command
# could not do what was asked. 1 stays for runs that finished with some papers failed, 130 for Ctrl-C.
ERROR_EXIT_CODE = 2


def friendly_errors(command):
    """Known problems become one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            try:
                return command(*args, **kwargs)
            finally:
                sys.stdout.flush()  # a reader that has gone shows up here, not in the interpreter's last flush
        except PapertagError as error:
            err.print(f"[red]error:[/red] {shown(error)}", highlight=False)
            raise typer.Exit(ERROR_EXIT_CODE) from None
        except BrokenPipeError:
            # `papertag export | head -1`: the reader has all it wants. Stop quietly with exit code 0, as cat does.
            _stdout_to_devnull()
            raise typer.Exit(0) from None

    return wrapper


def _stdout_to_devnull() -> None:
    """What is still buffered for stdout then goes nowhere, so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a file (in-process test runners)
        pass


class OrderlyStop:
    """Ctrl-C or SIGTERM during a model run: stop sending papers, keep every finished one, report, and exit at once
    without waiting for requests still in flight. A second signal exits immediately and quietly."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "OrderlyStop":
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame) -> None:
        if self.signal is not None:
            os._exit(128 + self.signal)
        self.signal = signum
        raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        return 128 + (self.signal or signal.SIGINT)

    def message(self, what: str) -> str:
        how = "terminated (SIGTERM)" if self.signal == signal.SIGTERM else "interrupted"
        return f"{how}: {what}; run the same command again to continue"

    def leave(self) -> None:
        """Exit now: worker threads may still sit in a request, and joining them could take minutes."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:  # a closed pipe: nothing more to say
                pass
        os._exit(self.exit_code)


def print_json(data: Any) -> None:
    sys.stdout.write(dumps(data, ensure_ascii=False, indent=2) + "\n")


def print_table(rows: list[dict[str, Any]], columns: list[str], empty: str) -> None:
    if not rows:
        err.print(empty)
        return
    cells = [[_cell(row[column]) for column in columns] for row in rows]
    # No column narrower than its longest word: a wide table (eval --history has 15 columns) in an 80-column pipe
    # was squashed to "0…" in every cell. Wider than the screen is better than unreadable.
    longest_words = [max(len(word) for text in [column, *(row[i] for row in cells)] for word in text.split() or [""])
                     for i, column in enumerate(columns)]
    table = Table(show_lines=False)
    for column, longest in zip(columns, longest_words):
        table.add_column(column, no_wrap=column in ("id", "papers", "kind", "domain"), min_width=min(longest, 40))
    for row in cells:
        table.add_row(*row)
    needed = sum(min(longest, 40) for longest in longest_words) + 3 * len(columns) + 1
    if needed <= out.width:
        out.print(table)
        return
    screen = out.width
    out.width = needed  # print() caps any width it is given at the console's
    try:
        out.print(table)
    finally:
        out.width = screen


def _cell(value: Any) -> str:
    """Stored text is data, never rich markup: a title like "[/bold]" must print as written."""
    if isinstance(value, list):
        return shown(", ".join(map(str, value)))
    if isinstance(value, dict):  # a STRUCT or MAP from `sql`
        return shown(dumps(value, ensure_ascii=False))
    return "" if value is None else shown(value)


def _cell_lines(values: list[str]) -> str:
    return "\n".join(_cell(value) for value in values)


@app.command("ingest")
@friendly_errors
def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help=PATHS_HELP)],
    model: ModelOption = DEFAULT_MODEL_SPEC,
    base_url: BaseUrlOption = None,
    input_format: Annotated[Optional[InputFormat], typer.Option("--format", help="Input format; default: by extension, then by content.")] = None,
    concurrency: ConcurrencyOption = None,
    force: Annotated[bool, typer.Option("--force", help="Extract again even if this model and prompt already did.")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Only retry the papers whose extraction failed before.")] = False,
    category: Annotated[Optional[list[str]], typer.Option("--category", metavar="CAT",
        help="Only papers with this arXiv category among theirs (cs.CL), or any category of an archive (cs); "
             "repeat for any of several. Applied while reading, so a snapshot is filtered as it streams.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Read abstracts, extract a summary and tags for each new paper, and store them.

    Papers already extracted by the same model and prompt version are skipped at no cost.
    Exit code: 0 when every paper succeeded, 1 when any failed or input lines were skipped, 2 on bad input, 130 on Ctrl-C.
    """
    library = Library(db, model=model, base_url=base_url, settings=Settings.from_env())
    selection = Selection.of(category, since, until)
    inputs = read_inputs(paths, input_format.value if input_format else None, selection)
    _announce(inputs, selection)
    run = functools.partial(library.ingest, inputs, concurrency=concurrency, force=force, retry_failed=retry_failed)
    _tag_with_progress("ingest", run, model, db, as_json, inputs.problems)


def _announce(inputs: Inputs, selection: Selection) -> None:
    """The input records skipped, and what the selection left out."""
    for problem in inputs.problems:
        err.print(f"[yellow]skipped[/yellow] {shown(problem)}", highlight=False)
    if not selection.everything:
        err.print(f"selected {len(inputs.papers):,} papers; {inputs.not_selected:,} left out by --category, --since "
                  "or --until", highlight=False)


def _tag_with_progress(command: str, run: Callable[..., IngestReport], model: str, db: Path, as_json: bool,
                       input_problems: list[str]) -> None:
    """A tagging run (ingest, arxiv) with its progress bar, report and exit code: 0 when every paper succeeded, 1
    when any failed or input records were skipped, 130 on Ctrl-C after saving what finished. `run` takes the
    callbacks; input_problems is the list the run's skipped records are (or will be) in."""
    from .ingest import IngestReport, RunInterrupted

    report = IngestReport(input_problems=input_problems)
    progress = _progress()
    task = progress.add_task("extracting", total=None, ok=0, failed=0, tokens=0)

    def on_start(total: int) -> None:
        progress.start()  # only now: an error before the work is known (a database in use) prints no empty bar
        progress.update(task, total=total)
        if total:
            progress.update(task, description=f"extracting with {shown(model)}")

    with OrderlyStop() as stop:
        try:
            try:
                report = run(
                    on_start=on_start, on_result=lambda result: _advance(progress, task, result),
                    on_wait=lambda message: progress.console.print(f"[yellow]waiting[/yellow] {shown(message)}"),
                    # Embedding takes about 0.1-0.2 s per new paper after the bar is full: say what the wait is.
                    on_embed=lambda count: progress.console.print(f"embedding {count} papers for 'papertag similar'"),
                )
            finally:
                if progress.live.is_started:  # stopping a bar never shown prints an empty line
                    progress.stop()
        except RunInterrupted as interrupted:
            report = interrupted.report
            report.input_problems = input_problems
        except BaseException as error:
            if stop.signal is None and not isinstance(error, KeyboardInterrupt):
                raise
            report.interrupted = True  # before the model ran, or inside a DuckDB call ("Query interrupted")
        if report.interrupted:
            _print_report(command, report, db, as_json)
            err.print(stop.message(f"{report.extracted + report.failed} finished papers are saved"))
            stop.leave()
    _print_report(command, report, db, as_json)
    if not report.succeeded:
        raise typer.Exit(1)


@app.command("arxiv")
@friendly_errors
def arxiv_command(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="A search in the arXiv API's own syntax: 'cat:cs.CL AND abs:benchmark', "
        "'au:hinton', 'ti:\"speech translation\"' (fields ti, au, abs, cat, all; AND, OR, ANDNOT).")],
    since: Annotated[Optional[str], typer.Option("--since", metavar="YYYY-MM-DD",
        help="Only papers first submitted on or after this day (sent to the API, and checked on what it returns).")] = None,
    until: Annotated[Optional[str], typer.Option("--until", metavar="YYYY-MM-DD",
        help="Only papers first submitted on or before this day.")] = None,
    max_results: Annotated[Optional[int], typer.Option("--max", min=1, metavar="N",
        help="Ask for at most N results, newest submissions first. Default: every result of the query.")] = None,
    arxiv_url: Annotated[Optional[str], typer.Option("--arxiv-url", metavar="URL",
        help="The arXiv API's query URL. Default: PAPERTAG_ARXIV_URL or https://export.arxiv.org/api/query.")] = None,
    model: ModelOption = DEFAULT_MODEL_SPEC,
    base_url: BaseUrlOption = None,
    concurrency: ConcurrencyOption = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Fetch papers from the arXiv API and tag them like ingest.

    Results come newest first, 100 a request, at most one request every 3 seconds (arXiv's terms of use);
    429 and 5xx answers and connection errors are retried, honouring Retry-After. Each page's papers are stored as
    it arrives: run the same command again after Ctrl-C or an error and it fetches only the pages still missing,
    and sends the model only the papers not yet tagged (a paper's arXiv id and version already stored with its
    text costs nothing). Each paper's source is the API's URL and the query.
    Exit code: 0 when every paper succeeded, 1 when any failed or records were skipped, 2 on a bad query or when
    the API keeps failing, 130 on Ctrl-C.
    """
    library = Library(db, model=model, base_url=base_url, settings=Settings.from_env())
    problems: list[str] = []

    def on_page(page: Page) -> None:
        total = f" of {page.total_results:,}" if page.total_results is not None else ""
        err.print(f"fetched results {page.start + 1:,}-{page.start + page.entries:,}{total} from arXiv",
                  highlight=False)

    def on_fetched(inputs: Inputs) -> None:
        problems.extend(inputs.problems)
        _announce(inputs, Selection.of(since=since, until=until))

    run = functools.partial(library.fetch_arxiv, query, since=since, until=until, max_results=max_results,
                            arxiv_url=arxiv_url, on_page=on_page, on_fetched=on_fetched, concurrency=concurrency)
    _tag_with_progress("arxiv", run, model, db, as_json, problems)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[ok]} ok[/green] [red]{task.fields[failed]} failed[/red] {task.fields[tokens]:,} tokens"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def _advance(progress: Progress, task, result) -> None:
    """One paper done: move the bar and its ok / failed / tokens counters."""
    fields = progress.tasks[0].fields
    if result.truncated:
        progress.console.print(f"[yellow]warning[/yellow] {shown(result.paper.id)}: abstract truncated to fit the model context",
                               highlight=False)
    progress.update(
        task, advance=1,
        ok=fields["ok"] + result.ok, failed=fields["failed"] + (not result.ok),
        tokens=fields["tokens"] + result.prompt_tokens + result.completion_tokens,
    )


def _print_report(command: str, report: IngestReport, db: Path, as_json: bool) -> None:
    data = report.as_dict() | {"db": str(db)}
    if as_json:
        print_json(data)
        return
    table = Table(title=f"papertag {command}", show_header=False)
    labels = {"seconds_per_paper": "seconds per paper (wall)", "mean_request_seconds": "mean request latency"}
    for key in ("papers", "cached", "rechecked", "extracted", "failed", "truncated", "dropped_tags", "skipped_input_lines",
                "tokens_per_paper", "seconds_per_paper", "mean_request_seconds", "embedded", "wall_seconds", "db"):
        table.add_row(labels.get(key, key.replace("_", " ")), _cell(data[key]))
    out.print(table)
    for paper_id, error in report.failures[:10]:
        err.print(f"[red]failed[/red] {shown(paper_id)}: {shown(error)}", highlight=False)
    if len(report.failures) > 10:
        err.print(f"... and {len(report.failures) - 10} more; 'papertag ingest --retry-failed' tries them again")


@app.command()
@friendly_errors
def summaries(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """One line per paper: title — summary."""
    rows = Library(db).summaries()
    if as_json:
        print_json(rows)
        return
    if not rows:
        err.print("no papers yet; run 'papertag ingest FILE'")
    for row in rows:
        summary = row["summary"] or f"({row['status']}: no summary yet)"
        out.print(f"[bold]{shown(row['title'])}[/bold] — {shown(summary)}", highlight=False)


@app.command()
@friendly_errors
def query(
    benchmark: Annotated[Optional[str], typer.Option(help="Benchmark or dataset name; case, spacing and punctuation are ignored.")] = None,
    task: Annotated[Optional[str], typer.Option(help="Part of a task phrase, e.g. 'skill discovery'.")] = None,
    method: Annotated[Optional[str], typer.Option(help="Part of a method name, e.g. 'lora'.")] = None,
    domain: Annotated[Optional[DomainChoice], typer.Option(help="Exactly one domain.")] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    author: Annotated[Optional[str], typer.Option(help="Part of an author's name; case and accents are ignored.")] = None,
    category: Annotated[Optional[str], typer.Option(metavar="CAT",
        help="An arXiv category among the paper's (cs.CL), or an archive (cs).")] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Papers whose extracted tags and metadata match every given filter, e.g. --benchmark AgentBench."""
    rows = Library(db).query(benchmark=benchmark, task=task, method=method, domain=domain.value if domain else None,
                             since=since, until=until, author=author, category=category)
    if as_json:
        print_json(rows)
        return
    print_table(rows, ["id", "title", "benchmarks", "domain"], "no matching papers")


@app.command()
@friendly_errors
def search(
    text: Annotated[str, typer.Argument(metavar="TEXT", help="Words to look for in titles, summaries, abstracts and tags.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many papers.")] = 20,
    benchmark: Annotated[Optional[str], typer.Option(help="Only papers with this benchmark (as in 'query').")] = None,
    task: Annotated[Optional[str], typer.Option(help="Only papers with a task containing this.")] = None,
    method: Annotated[Optional[str], typer.Option(help="Only papers with a method containing this.")] = None,
    domain: Annotated[Optional[DomainChoice], typer.Option(help="Only papers of this domain.")] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Papers ranked by keyword relevance (BM25), best first; the filters work as in 'query'."""
    rows = Library(db).search(text, limit=limit, benchmark=benchmark, task=task, method=method,
                              domain=domain.value if domain else None)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        row["score"] = f"{row['score']:.2f}"
    print_table(rows, ["score", "id", "title", "summary", "benchmarks"], "no matching papers")


@app.command()
@friendly_errors
def show(
    paper_id: Annotated[str, typer.Argument(metavar="ID", help="Paper id, or a unique prefix of it.")],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Everything about one paper: text, current tags, and every extraction attempt."""
    paper = Library(db).show(paper_id)
    if as_json:
        print_json(paper)
        return
    out.print(f"[bold]{shown(paper['title'])}[/bold]  ({shown(paper['id'])})", highlight=False)
    for label, value in _metadata_lines(paper):
        out.print(f"[bold]{label:<11}[/bold] {shown(value)}", highlight=False)
    out.print(clean_text(paper["abstract"]), highlight=False, markup=False)
    current = next((e for e in paper["extractions"] if e["current"]), None)
    if current:
        out.print(f"\n[bold]summary[/bold]     {shown(current['summary'])}", highlight=False)
        by_categories = f" (arXiv categories say {shown(paper['category_domain'])})" if paper["category_domain"] else ""
        out.print(f"[bold]domain[/bold]      {shown(current['domain'])}{by_categories}", highlight=False)
        for kind in ("tasks", "methods", "benchmarks"):
            out.print(f"[bold]{kind:<11}[/bold] {shown(', '.join(paper[kind])) or '—'}", highlight=False)
        if current["dropped_tags"]:
            out.print(f"[bold]dropped[/bold]     {shown('; '.join(current['dropped_tags']))} (not in the abstract, or not a benchmark)",
                      highlight=False)
    table = Table("when", "model", "prompt", "status", "tokens", "seconds", "truncated", "error", title="extractions")
    for e in paper["extractions"]:
        table.add_row(
            f"{e['created_at']:%Y-%m-%d %H:%M}", _cell(e["model"]), e["prompt_version"], e["status"],
            str(e["prompt_tokens"] + e["completion_tokens"]), f"{e['latency_s']:.1f}", str(e["truncated"]), _cell(e["error"]),
        )
    out.print(table)


def _metadata_lines(paper: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) for each piece of metadata the paper has, in reading order."""
    arxiv = paper["arxiv_id"] and paper["arxiv_id"] + (f" v{paper['arxiv_version']}" if paper["arxiv_version"] else "")
    dates = " · ".join(f"{label} {day}" for label, day in (("published", paper["published"]), ("updated", paper["updated"])) if day)
    lines = [("authors", ", ".join(paper["authors"] or [])), ("dates", dates), ("categories", " ".join(paper["categories"] or [])),
             ("arXiv", arxiv), ("DOI", paper["doi"]), ("venue", paper["venue"]), ("url", paper["url"]), ("source", paper["source"])]
    return [(label, value) for label, value in lines if value]


@app.command()
@friendly_errors
def similar(
    paper_id: Annotated[str, typer.Argument(metavar="ID", help="Paper id, or a unique prefix of it.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many papers to list.")] = 10,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Papers nearest to this one by the meaning of title and abstract (local embeddings), nearest first.

    Score is the cosine similarity of the two papers' embeddings (1: the same text).
    """
    library = Library(db)
    rows = library.similar(paper_id, limit=limit)
    without = library.papers_without_vectors()
    if as_json:
        print_json(rows)
    else:
        print_table([row | {"score": f"{row['score']:.3f}"} for row in rows], ["score", "id", "title", "domain"],
                    "no other papers to compare with")
    if without:
        err.print(f"note: {without} papers have no embedding yet and were not compared; 'papertag embed' computes them",
                  highlight=False)


@app.command("embed")
@friendly_errors
def embed_command(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Compute the embeddings 'similar' compares, for papers that have none yet (ingest does it for new papers).

    Texts already embedded cost nothing; an interrupted run keeps what it computed.
    """
    try:
        embedded = Library(db).embed()
    except KeyboardInterrupt:
        err.print("interrupted: the embeddings computed so far are saved; run the same command again to continue")
        raise typer.Exit(130) from None
    if as_json:
        print_json({"embedded": embedded, "db": str(db)})
    else:
        out.print(f"embedded {embedded} papers", highlight=False)


@app.command()
@friendly_errors
def tags(
    kind: Annotated[Optional[TagKind], typer.Option(help="Only this kind of tag.")] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Tag values with their paper counts, most common first."""
    rows = Library(db).tags(kind.value if kind else None)
    if as_json:
        print_json(rows)
        return
    print_table(rows, ["kind", "value", "papers"], "no tags yet")


@app.command()
@friendly_errors
def export(
    export_format: Annotated[ExportFormat, typer.Option("--format", help="jsonl, csv or parquet.")] = ExportFormat.jsonl,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="File to write; default stdout (required for parquet).")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """One record per paper: id, title, summary, tasks, methods, benchmarks, domain, model, prompt_version."""
    Library(db).export(export_format.value, sys.stdout if output is None else output)


class DigestFormat(str, Enum):
    md = "md"
    html = "html"
    atom = "atom"


@app.command()
@friendly_errors
def digest(
    since: Annotated[Optional[str], typer.Option("--since", metavar="DATE",
        help="Papers added from this UTC date (2026-11-27) or time (2026-11-27T08:00, or with an offset: +01:00) on. "
             "Only reads: the remembered position stays where it was, and it works during an ingest.")] = None,
    digest_format: Annotated[DigestFormat, typer.Option("--format",
        help="md (Markdown), html (a standalone page) or atom (a feed a feed reader can subscribe to).")] = DigestFormat.md,
    output: Annotated[Optional[Path], typer.Option("--output", "-o",
        help="File to write, replaced only once complete (never the database); default stdout.")] = None,
    db: DbOption = DEFAULT_DB,
    as_json: Annotated[bool, typer.Option("--json", help="Write the digest as JSON (papers grouped by domain) instead of --format.")] = False,
) -> None:
    """The papers added since a date, grouped by domain: title, one-line summary, benchmarks and link.

    A paper counts as added when its first good extraction is stored, so a paper that failed is added once it is tagged.
    A re-tag by another model or prompt does not add it again; ingest --force replaces the stored extraction, so it does.
    Each paper links to its stored URL, else to arxiv.org/abs/ID when it has an arXiv id.

    Without --since: the papers added since the last digest made without --since (the first time: all of them).
    Once the digest is written, where it stopped is remembered in the database; an empty digest leaves that as it was.
    This takes the database's writer lock, so it stops with one line (exit 2) while an ingest runs.
    """
    output_format = "json" if as_json else digest_format.value
    written = Library(db).digest(since, output_format=output_format, output=sys.stdout if output is None else output)
    if not written.papers:
        err.print(shown(written.empty_message), highlight=False)
    elif output is not None:
        err.print(f"wrote {len(written.papers)} papers added {shown(written.period)} to {shown(output)}", highlight=False)


@app.command()
@friendly_errors
def sql(
    statement: Annotated[str, typer.Argument(metavar="SQL", help="A SELECT query. Tables: papers, extractions, tags; view: current_extractions.")],
    max_rows: Annotated[int, typer.Option("--max-rows", min=0, help="Print at most this many rows; 0: all of them.")] = DEFAULT_MAX_ROWS,
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="Stop a query still running after this many seconds; 0: never.")] = DEFAULT_TIMEOUT_S,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Run read-only SQL against the database; writes, ATTACH, COPY, INSTALL/LOAD and file access are rejected.

    With --json every value is valid JSON: decimals are numbers, dates and times ISO 8601 strings, intervals and
    UUIDs strings, BLOBs base64 strings, NaN and Infinity null.
    """
    result = run_read_only_sql(db, statement, max_rows=max_rows, timeout_s=timeout)
    records = [dict(zip(result.columns, row)) for row in result.rows]
    if as_json:
        print_json(records)
    else:
        print_table(records, result.columns, "no rows")
    if result.cut:
        err.print(f"note: output cut at {max_rows:,} rows; --max-rows N prints more (0: all)", highlight=False)


@app.command()
@friendly_errors
def serve(
    db: DbOption = DEFAULT_DB,
    eval_db: Annotated[Path, typer.Option("--eval-db", envvar="PAPERTAG_EVAL_DB",
        help="Eval database for the /evals page (shown empty if it does not exist).")] = Path("evals.duckdb"),
    host: Annotated[str, typer.Option(help="Address to listen on; the default is this machine only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Browse the papers in a web page: list, search, facets, one page per paper, benchmarks, eval runs.

    Read-only: every request opens the database read-only, so it can run during an ingest. Ctrl-C stops it.
    """
    import socket

    import uvicorn

    from .web.app import create_app

    web_app = create_app(db, eval_db)  # a missing or foreign database is one line here
    try:
        with socket.create_server((host, port)):
            pass  # a port already in use is one line here, not uvicorn's log
    except OSError as error:
        raise PapertagError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    err.print(f"serving {shown(db)} on http://{shown(host)}:{port}/ (read-only; Ctrl-C stops)", highlight=False)
    uvicorn.run(web_app, host=host, port=port, log_level="warning")


class Split(str, Enum):
    dev = "dev"
    test = "test"
    all = "all"


@app.command("eval")
@friendly_errors
def eval_command(
    gold: Annotated[Path, typer.Option("--gold", help="Hand-labelled JSONL (format in evals/README.md), or a SciTLDR-format "
        "file (title, source sentences, target TLDRs) to score summaries only.")] = Path("evals/gold.jsonl"),
    limit: Annotated[Optional[int], typer.Option("--limit", min=1,
        help="SciTLDR files: score only the first N papers (a fixed subset for tuning).")] = None,
    split: Annotated[Split, typer.Option(help="Which labelled papers to score: test (for reporting), dev (for tuning) or all.")] = Split.test,
    model: Annotated[str, typer.Option("--model", "-m", envvar="PAPERTAG_MODEL", help="Model spec, as for ingest.")] = DEFAULT_MODEL_SPEC,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible server for openai:<model>.")] = None,
    show_errors: Annotated[bool, typer.Option("--show-errors", help="List each paper's misses and false positives.")] = False,
    compare_runs: Annotated[Optional[tuple[int, int]], typer.Option("--compare", metavar="A B",
        help="Show per-metric deltas between two stored eval runs instead of running one.")] = None,
    history: Annotated[bool, typer.Option("--history", help="List stored eval runs instead of running one.")] = False,
    db: Annotated[Path, typer.Option("--db", envvar="PAPERTAG_EVAL_DB", help="DuckDB file for eval papers and runs.")] = Path("evals.duckdb"),
    as_json: JsonOption = False,
) -> None:
    """Score tags against a hand-labelled set: P/R/F1 per tag field, domain accuracy, summary ROUGE.

    Extractions are cached, so re-scoring an unchanged model and prompt makes no LLM call. Every run is stored;
    --compare A B shows what a prompt or model change did. Each run also says which machine its answers came from
    (a CPU for the embedded model, host:port for a server): greedy answers differ between CPUs. Gold papers that
    are few-shot examples in the prompt are not scored; the run names them.
    """
    library = Library(db, model=model, base_url=base_url, settings=Settings.from_env())
    with OrderlyStop() as stop:
        try:
            _eval(library, gold, limit, split, show_errors, compare_runs, history, as_json)
        except BaseException as error:
            if stop.signal is None and not isinstance(error, KeyboardInterrupt):
                raise
            err.print(stop.message("finished papers are cached, no eval run was stored"))
            stop.leave()


def _print_answered_on(metrics: dict) -> None:
    from .evals import answered_on_text

    # Greedy answers differ between CPUs, so numbers compare only between runs whose answers share a machine.
    out.print(f"answers from: {shown(answered_on_text(metrics)) or 'none'}", highlight=False)


def _eval(library: Library, gold: Path, limit: Optional[int], split: Split, show_errors: bool,
          compare_runs: Optional[tuple[int, int]], history: bool, as_json: bool) -> None:
    from .evals import HISTORY_METRICS, answered_on_text, metric

    if history:
        rows = [{k: run[k] for k in ("id", "created_at", "model", "prompt_version", "split", "papers", "failed")}
                | {label: metric(run["metrics"], path) for label, path in HISTORY_METRICS}
                | {"answered on": answered_on_text(run["metrics"])} for run in library.eval_runs()]
        print_json(rows) if as_json else print_table(rows, list(rows[0]) if rows else [], "no eval runs yet")
        return
    if compare_runs:
        result = library.compare_evals(*compare_runs)
        if as_json:
            print_json(result)
            return
        out.print(f"A = run {result['a']['id']} ({shown(result['a']['model'])}, prompt {result['a']['prompt_version']}), "
                  f"B = run {result['b']['id']} ({shown(result['b']['model'])}, prompt {result['b']['prompt_version']})",
                  highlight=False)
        if result["note"]:
            err.print(f"[yellow]note[/yellow] {shown(result['note'])}")
        print_table(result["metrics"], ["metric", "a", "b", "delta"], "")
        return
    model = library.model
    progress = _progress()
    task = progress.add_task("eval", total=None, ok=0, failed=0, tokens=0)

    def on_start(total: int) -> None:
        progress.start()  # only now: a bad gold file fails without an empty bar
        progress.update(task, total=total, description=f"scoring with {shown(model)}")

    try:
        run = library.eval(gold, split=split.value, limit=limit, on_start=on_start,
                           on_result=lambda result: _advance(progress, task, result))
    finally:
        progress.stop()
    if "scitldr" in run["metrics"]:
        if as_json:
            print_json(run)
            return
        scores = run["metrics"]["scitldr"]
        out.print(f"eval run {run['id']}: {shown(model)}, prompt {run['prompt_version']}, SciTLDR {run['metrics']['papers']} "
                  f"papers ({run['metrics']['failed']} failed): ROUGE-1 {100 * scores['rouge1']:.1f} · ROUGE-2 "
                  f"{100 * scores['rouge2']:.1f} · ROUGE-L {100 * scores['rougeL']:.1f} · {scores['words']} words per summary",
                  highlight=False)
        _print_answered_on(run["metrics"])
        return
    if as_json:
        print_json(run if show_errors else {k: v for k, v in run.items() if k != "errors"})
        return
    metrics = run["metrics"]
    out.print(f"eval run {run['id']}: {shown(model)}, prompt {run['prompt_version']}, split {run['split']}, "
              f"{metrics['papers']} papers ({metrics['failed']} failed)", highlight=False)
    if metrics.get("in_prompt"):
        out.print(f"not scored, being few-shot examples in the prompt: {shown('; '.join(metrics['in_prompt']))}",
                  highlight=False)
    table = Table("field", "precision", "recall", "F1", "predicted", "gold")
    for field in ("benchmarks", "tasks", "methods", "micro"):
        m = metrics[field]
        table.add_row(field, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["predicted"]), str(m["gold"]))
    out.print(table)
    summary = metrics["summary"]
    out.print(f"domain accuracy {metrics['domain']['accuracy']:.3f} · summary ROUGE-1 {summary['rouge1']:.3f} "
              f"ROUGE-L {summary['rougeL']:.3f} · within 30 words {summary['within_30_words']:.0%} · "
              f"not the title {summary['not_title']:.0%}", highlight=False)
    _print_answered_on(metrics)
    if "category_domain" in metrics:  # only when some gold papers have arXiv categories
        agreement = metrics["category_domain"]
        opinion = (f"agrees with the model's domain on {agreement['agree_with_model']} of {agreement['with_opinion']} "
                   f"({agreement['model_agreement']:.0%}) and with the gold domain on {agreement['agree_with_gold']}"
                   if agreement["with_opinion"] else "has no opinion on any of them")
        out.print(f"arXiv category domain ({agreement['papers_with_categories']} gold papers with categories): {opinion}",
                  highlight=False)
    if show_errors:
        errors = Table("paper", "field", "false positives", "misses", show_lines=True)
        for paper in run["errors"]:
            for field, found in paper["fields"].items():
                errors.add_row(_cell(paper["title"][:40]), field, _cell_lines(found["false_positives"]), _cell_lines(found["misses"]))
        out.print(errors)


batch_app = typer.Typer(help="Tag papers through the OpenAI Batch API: submit, check status, collect.", no_args_is_help=True)
app.add_typer(batch_app, name="batch")


@batch_app.command("submit")
@friendly_errors
def batch_submit_command(
    paths: Annotated[list[Path], typer.Argument(help=PATHS_HELP)],
    model: Annotated[str, typer.Option("--model", "-m", envvar="PAPERTAG_MODEL", help="openai:<model>, e.g. openai:gpt-4o-mini.")],
    base_url: Annotated[Optional[str], typer.Option("--base-url",
        help="OpenAI-compatible server with the Batch API. Default: OPENAI_BASE_URL or OpenAI.")] = None,
    input_format: Annotated[Optional[InputFormat], typer.Option("--format", help="Input format; default: by extension, then by content.")] = None,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Submit every paper not yet tagged by this model and prompt version as an OpenAI batch job (results within 24 h).

    Papers already tagged, or waiting in an uncollected batch, are skipped at no cost. 'papertag batch collect' stores the results.
    Exit code: 0 when submitted (or nothing to do), 1 when input lines were skipped, 2 on bad input or an API error.
    """
    library = Library(db, model=model, base_url=base_url, settings=Settings.from_env())
    inputs = read_inputs(paths, input_format.value if input_format else None)
    for problem in inputs.problems:
        err.print(f"[yellow]skipped[/yellow] {shown(problem)}", highlight=False)
    report = library.submit_batch(inputs)
    data = dataclasses.asdict(report) | {"skipped_input_lines": len(inputs.problems), "db": str(db)}
    if as_json:
        print_json(data)
    else:
        table = Table(title="papertag batch submit", show_header=False)
        for key in ("papers", "cached", "rechecked", "submitted", "truncated", "skipped_input_lines", "db"):
            table.add_row(key.replace("_", " "), _cell(data[key]))
        out.print(table)
        for batch_id in report.batches:
            out.print(f"submitted {shown(batch_id)}; 'papertag batch status' follows it", highlight=False)
    if inputs.problems:
        raise typer.Exit(1)


@batch_app.command("status")
@friendly_errors
def batch_status_command(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Each batch job not yet collected: its status and request counts, as the API reports them now."""
    library = Library(db, settings=Settings.from_env())
    jobs = [dataclasses.asdict(job) for job in library.batch_status()]
    if as_json:
        print_json(jobs)
        return
    if not jobs:
        err.print("no batch jobs waiting; 'papertag batch submit' starts one")
    for job in jobs:
        out.print(f"{shown(job['batch_id'])}: {shown(job['status'])}, {job['requests_completed']}/{job['requests_total']} done, "
                  f"{job['requests_failed']} failed ({job['papers']} papers, {shown(job['model'])}, "
                  f"submitted {job['submitted_at']:%Y-%m-%d %H:%M} UTC)" + (f" {shown(job['error'])}" if job["error"] else ""),
                  highlight=False)


@batch_app.command("collect")
@friendly_errors
def batch_collect_command(db: DbOption = DEFAULT_DB, as_json: JsonOption = False) -> None:
    """Store the results of every finished batch job, validated like live extractions; unfinished jobs are reported.

    Each job is collected once. Exit code: 0 when nothing failed (unfinished jobs included), 1 when a paper or a batch failed.
    """
    reports = Library(db, settings=Settings.from_env()).collect_batches()
    if as_json:
        print_json([dataclasses.asdict(report) for report in reports])
    else:
        _print_collected(reports)
    if any(report.failed or report.outcome == "failed" for report in reports):
        raise typer.Exit(1)


def _print_collected(reports: list[CollectReport]) -> None:
    if not reports:
        err.print("no batch jobs waiting; 'papertag batch submit' starts one")
    for report in reports:
        line = f"{shown(report.batch_id)}: {shown(report.status)}"
        if report.outcome == "collected":
            line += f", {report.extracted} tagged, {report.failed} failed"
            if report.changed_since_submit:
                line += f", {report.changed_since_submit} skipped (text changed since submit)"
        elif report.outcome == "pending":
            line += ", not finished; collect again later"
        out.print(line + (f" ({shown(report.error)})" if report.error else ""), highlight=False)
        for paper_id, error in report.failures[:10]:
            err.print(f"[red]failed[/red] {shown(paper_id)}: {shown(error)}", highlight=False)
        if len(report.failures) > 10:
            err.print(f"... and {len(report.failures) - 10} more; 'papertag show ID' has each error")


def main() -> None:
    app()
