"""The library: papertag.open(db) gives a Library, the one entry point for Python users. The CLI is a thin layer
over it: everything a command does, a Library method does.

Reads open the database read-only for each call, so they work while an ingest runs in another process; writes
go through Store, which holds the file only for its short commits. The LLM stack (openai, instructor) is imported
only by the methods that call a model."""

from __future__ import annotations

from contextlib import ExitStack, closing, contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TextIO

import duckdb

from .backends import DEFAULT_MODEL_SPEC, BackendOptions
from .digest import DIGEST_FORMATS, Digest, parse_since, render
from .errors import DatabaseError, InputError, PapertagError
from .export import export_file, write_records, write_text_file
from .prompts import Prompt, load_prompt
from .queries import Reader
from .settings import Settings, http_url
from .selection import Selection
from .sources import Format, Inputs, Source, read_inputs
from .store import Store

if TYPE_CHECKING:  # imported by the methods that use them: the LLM stack, httpx and tenacity
    from .arxiv_api import ArxivClient, Page
    from .batch import CollectReport, JobStatus, SubmitReport
    from .extract import Extraction
    from .ingest import IngestReport

EXPORT_FORMATS = ("jsonl", "csv", "parquet")
DEFAULT_GOLD = Path("evals/gold.jsonl")


def open(db: Path | str, *, model: str = DEFAULT_MODEL_SPEC, base_url: str | None = None, prompt: Prompt | None = None,
         settings: Settings | None = None) -> "Library":
    """A papertag database and the defaults its model calls use. Use it as a context manager, or just call it."""
    return Library(db, model=model, base_url=base_url, prompt=prompt, settings=settings)


class Library:
    """One database, with the model spec, base URL and prompt its ingests and evals use. Settings not given are
    read from the environment by each call that needs a model, so they are as current as the call."""

    def __init__(self, db: Path | str, *, model: str = DEFAULT_MODEL_SPEC, base_url: str | None = None,
                 prompt: Prompt | None = None, settings: Settings | None = None):
        self.db = Path(db)
        self.model = model
        self.base_url = base_url
        self.settings = settings
        self._prompt = prompt

    @property
    def prompt(self) -> Prompt:
        if self._prompt is None:
            self._prompt = load_prompt()  # read from the package's files only when a model is called
        return self._prompt

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Nothing stays open between calls; here so that `with papertag.open(...)` reads naturally."""

    def _options(self) -> BackendOptions:
        return BackendOptions(base_url=self.base_url, settings=self.settings or Settings.from_env())

    # Writing: papers in, tags out.

    def ingest(
        self,
        sources: Inputs | Source | list[Source],
        *,
        input_format: Format | None = None,
        selection: Selection | None = None,
        concurrency: int | None = None,
        force: bool = False,
        retry_failed: bool = False,
        on_start: Callable[[int], None] = lambda total: None,
        on_result: Callable[[Extraction], None] = lambda result: None,
        on_wait: Callable[[str], None] = lambda message: None,
        on_embed: Callable[[int], None] = lambda count: None,
    ) -> IngestReport:
        """Tag every paper not yet tagged by this model and prompt: files ('-' is standard input), Paper objects, or
        Inputs already read; only those the selection wants (Selection.of(categories, since, until)), if given.
        Skipped input records are in report.input_problems; failed papers in report.failures."""
        options = self._options()  # a bad setting fails before any file is read or written
        inputs = sources if isinstance(sources, Inputs) else read_inputs(sources, input_format, selection)
        with Store(self.db) as store:
            return self._tag(store, inputs, options, concurrency=concurrency, force=force,
                             retry_failed_only=retry_failed, on_start=on_start, on_result=on_result,
                             on_wait=on_wait, on_embed=on_embed)

    def fetch_arxiv(
        self,
        query: str,
        *,
        since: str | date | None = None,
        until: str | date | None = None,
        max_results: int | None = None,
        arxiv_url: str | None = None,
        client: ArxivClient | None = None,
        on_page: Callable[[Page], None] = lambda page: None,
        on_fetched: Callable[[Inputs], None] = lambda inputs: None,
        **run: Any,
    ) -> IngestReport:
        """Ask the arXiv API for a query in its own syntax ("cat:cs.CL AND abs:benchmark"), newest submissions
        first, at most max_results results, first published between since and until (YYYY-MM-DD, inclusive: sent
        to the API and checked locally); then tag the papers like ingest(), whose keyword arguments (concurrency,
        force, on_start, on_result, on_wait, on_embed) `run` passes on. on_page sees each page as it arrives,
        on_fetched the papers once fetching is done; on_wait also hears of each retry.

        At most one request every 3 seconds; 429 and 5xx answers and connection errors are retried (honouring
        Retry-After), then SourceUnavailable. A run stopped while fetching or tagging resumes where it stopped
        when called again with the same query (arxiv_fetch.py). The API's URL is arxiv_url, else the settings'
        (PAPERTAG_ARXIV_URL); `client` replaces the HTTP client altogether (tests pass one with a fake clock)."""
        from .arxiv_api import ArxivClient, search_query
        from .arxiv_fetch import fetch_into

        # Every option is checked before the database is opened or a request is made.
        if max_results is not None and max_results < 1:
            raise InputError(f"--max must be at least 1, not {max_results}")
        options = self._options()
        selection = Selection.of(since=since, until=until)
        search_query(query, selection)  # a bad query fails here, before anything is written
        url = http_url("--arxiv-url", arxiv_url) if arxiv_url else options.settings.arxiv_url
        with ExitStack() as stack:
            on_retry = run.get("on_wait", lambda message: None)
            arxiv = client or stack.enter_context(closing(ArxivClient(url, on_retry=on_retry)))
            store = stack.enter_context(Store(self.db))
            fetched = fetch_into(store, arxiv, query, selection, max_results=max_results, on_page=on_page)
            on_fetched(fetched.inputs)
            report = self._tag(store, fetched.inputs, options, **run)
            store.forget_arxiv_fetch(fetched.key)  # finished: the next run asks from the first page
        report.new_or_changed += fetched.new_or_changed  # stored while fetching, so ingest found them unchanged
        return report

    def _tag(self, store: Store, inputs: Inputs, options: BackendOptions, **run: Any) -> IngestReport:
        """ingest.ingest on papers already read: the one tagging path of ingest() and fetch_arxiv()."""
        from .ingest import RunInterrupted, ingest

        try:
            report = ingest(store, inputs.papers, spec=self.model, prompt=self.prompt, options=options, **run)
        except RunInterrupted as interrupted:
            interrupted.report.input_problems = inputs.problems
            raise
        report.input_problems = inputs.problems
        return report

    def embed(self) -> int:
        """Compute the embeddings similar() compares for every paper text that has none yet (ingest does this for
        new papers); returns how many texts were embedded. Runs locally; an interrupted call keeps what it stored."""
        from .embed import embed_missing

        if not self.db.exists():
            raise DatabaseError(f"no database at {self.db}; run 'papertag ingest FILE' first, or pass --db")
        with Store(self.db) as store:
            return embed_missing(store)

    # Reading: each call opens the database read-only and closes it again.

    def summaries(self) -> list[dict[str, Any]]:
        """One row per paper: id, title, summary (None until tagged) and status."""
        with Reader(self.db) as reader:
            return reader.summaries()

    def query(self, *, benchmark: str | None = None, task: str | None = None, method: str | None = None,
              domain: str | None = None, since: str | date | None = None, until: str | date | None = None,
              author: str | None = None, category: str | None = None) -> list[dict[str, Any]]:
        """Papers matching every given filter (at least one): a benchmark by its folded name, part of a task or
        method, one domain, a publication date range (YYYY-MM-DD, inclusive), part of an author's name, an arXiv
        category or archive."""
        with Reader(self.db) as reader:
            return reader.query(benchmark=benchmark, task=task, method=method, domain=domain, since=since,
                                until=until, author=author, category=category)

    def show(self, paper_id: str) -> dict[str, Any]:
        """One paper by id or unique id prefix, with its tags and every extraction; NotFound otherwise."""
        with Reader(self.db) as reader:
            return reader.show(paper_id)

    def tags(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Tag values with their paper counts, most common first; kind: task, method or benchmark."""
        with Reader(self.db) as reader:
            return reader.tags(kind)

    def search(self, text: str, *, limit: int = 20, domain: str | None = None, benchmark: str | None = None,
               task: str | None = None, method: str | None = None) -> list[dict[str, Any]]:
        """Papers ranked by how well they match the text, optionally filtered like query()."""
        _require_reader("search")
        with Reader(self.db) as reader:
            return reader.search(text, limit=limit, domain=domain, benchmark=benchmark, task=task, method=method)

    def similar(self, paper_id: str, *, limit: int = 10) -> list[dict[str, Any]]:
        """The papers nearest to this one (id or unique id prefix) by the embeddings of title and abstract, nearest
        first: id, title, summary, domain and score (cosine similarity); NotFound for an unknown id."""
        _require_reader("similar")
        with Reader(self.db) as reader:
            return reader.similar(paper_id, limit=limit)

    def papers_without_vectors(self) -> int:
        """Papers that similar() cannot compare yet; embed() computes their vectors."""
        with Reader(self.db) as reader:
            return reader.papers_without_vectors()

    def export(self, export_format: str, output: Path | str | TextIO) -> None:
        """One record per paper as jsonl, csv or parquet, to a file (replaced only when the export succeeds) or a
        text stream such as sys.stdout (not for parquet)."""
        if export_format not in EXPORT_FORMATS:
            raise InputError(f"unknown export format {export_format!r} (use one of: {', '.join(EXPORT_FORMATS)})")
        if export_format == "parquet" and not isinstance(output, (Path, str)):
            raise InputError("--format parquet needs --output FILE")
        with Reader(self.db) as reader, _writing(output):
            if isinstance(output, (Path, str)):
                export_file(reader, export_format, Path(output), self.db)
            else:
                write_records(reader.export(), export_format, output)

    def digest(self, since: datetime | date | str | None = None, *, output_format: str = "md",
               output: Path | str | TextIO | None = None) -> Digest:
        """The papers added since `since` (a datetime or ISO date in UTC), grouped by domain, each with its summary,
        benchmarks and link. A paper is added when its first good extraction is stored; a re-tag keeps its time.

        Written as md, html, atom or json to `output`: a file (replaced only when complete, never the database) or
        a text stream; None writes nothing. Without `since`, the digest covers the papers added since the last
        such digest (all of them the first time) and then remembers where it stopped; it holds the writer lock
        meanwhile, so it raises DatabaseBusy while an ingest runs. A digest with `since` only reads, and leaves
        the remembered position where it was."""
        if output_format not in DIGEST_FORMATS:
            raise InputError(f"unknown digest format {output_format!r} (use one of: {', '.join(DIGEST_FORMATS)})")
        if since is not None:
            start = parse_since(since)
            with Reader(self.db) as reader:
                digest = Digest.of(start, False, reader.first_tagged(start))
            self._write_digest(digest, output_format, output)
            return digest
        # The writer lock for the whole digest: no ingest or other digest moves the papers or the position under it,
        # and a database in use fails here (DatabaseBusy), before anything is written.
        with self._existing_store("ingest FILE") as store:
            store.release()  # the lock stays; the file is free for the reader below
            with Reader(self.db) as reader:
                position = reader.digest_position()
                digest = Digest.of(position, True, reader.first_tagged(position, after=True))
            self._write_digest(digest, output_format, output)
            if digest.papers:  # only once the digest is written: a failed write repeats it next time
                store.save_digest_position(digest.covered_until, len(digest.papers))
        return digest

    def _write_digest(self, digest: Digest, output_format: str, output: Path | str | TextIO | None) -> None:
        if output is None:
            return
        text = render(digest, output_format, self.db)
        with _writing(output):
            if isinstance(output, (Path, str)):
                write_text_file(text, Path(output), self.db)
            else:
                output.write(text)

    # Evals: this Library's database keeps the eval papers and runs (the CLI's default is evals.duckdb).

    def eval(self, gold: Path | str = DEFAULT_GOLD, *, split: str = "test", limit: int | None = None,
             on_start: Callable[[int], None] = lambda total: None,
             on_result: Callable[[Extraction], None] = lambda result: None) -> dict[str, Any]:
        """Tag the labelled papers (cached extractions are reused) and score them; the run is stored and returned.
        A SciTLDR-format file scores summaries only: its run's split is 'scitldr:N'."""
        from .evals import is_scitldr, load_gold, load_scitldr, run_eval, run_summary_eval

        if split not in ("dev", "test", "all"):
            raise InputError(f"unknown split {split!r} (use dev, test or all)")
        options = self._options()
        gold = Path(gold)
        # Every input is read before the database is opened, so a bad or missing file fails before any file is
        # written or any progress is shown.
        scitldr = is_scitldr(gold)
        papers = load_scitldr(gold, limit) if scitldr else load_gold(gold)
        evaluate = {"spec": self.model, "prompt": self.prompt, "options": options, "on_start": on_start,
                    "on_result": on_result}
        with _eval_store(self.db) as store:
            if scitldr:
                return run_summary_eval(store, papers, gold_path=gold, **evaluate)
            return run_eval(store, papers, gold_path=gold, split=split, **evaluate)

    def eval_runs(self) -> list[dict[str, Any]]:
        """Every stored eval run, oldest first. Without a database there are none, and none is created."""
        if not self.db.exists():
            return []
        with Reader(self.db) as reader:
            return reader.eval_runs()

    def compare_evals(self, first: int, second: int) -> dict[str, Any]:
        """Per-metric deltas between two stored eval runs."""
        from .evals import compare

        return compare(self.eval_runs(), first, second)

    # The OpenAI Batch API: the same prompts and validation, results within 24 hours.

    def submit_batch(self, sources: Inputs | Source | list[Source], *, input_format: Format | None = None) -> SubmitReport:
        """Send every paper not yet tagged by this model and prompt (nor waiting in a batch) as batch jobs."""
        from . import batch

        settings = self.settings or Settings.from_env()
        inputs = sources if isinstance(sources, Inputs) else read_inputs(sources, input_format)
        batch.check_spec(self.model, self.base_url, settings)  # a wrong spec or a missing key writes nothing
        with Store(self.db) as store:
            return batch.submit(store, inputs.papers, spec=self.model, prompt=self.prompt, base_url=self.base_url,
                                settings=settings)

    def batch_status(self) -> list[JobStatus]:
        """Each batch job not yet collected, as the API reports it now."""
        from . import batch

        settings = self.settings or Settings.from_env()
        with self._existing_store() as store:
            return batch.status(store, settings)

    def collect_batches(self) -> list[CollectReport]:
        """Store the results of every finished batch job, validated like live extractions; each job is collected once."""
        from . import batch

        settings = self.settings or Settings.from_env()
        with self._existing_store() as store:
            return batch.collect(store, self.prompt, settings)

    def _existing_store(self, first: str = "batch submit FILE --model openai:MODEL") -> Store:
        """The writer of a database that must exist already; `first` is the command that makes one."""
        if not self.db.exists():
            raise DatabaseError(f"no database at {self.db}; run 'papertag {first}' first, or pass --db")
        return Store(self.db)


def _require_reader(method: str) -> None:
    """search and similar come with their own branches of papertag; until then, say so instead of AttributeError."""
    if not hasattr(Reader, method):
        raise PapertagError(f"this version of papertag has no {method}; upgrade papertag")


@contextmanager
def _writing(output: Path | str | TextIO) -> Iterator[None]:
    """A failure to write an output file or stream is one line naming it; a closed pipe ends the CLI quietly."""
    try:
        yield
    except BrokenPipeError:
        raise
    except (OSError, duckdb.IOException) as error:
        where = output if isinstance(output, (Path, str)) else "to " + getattr(output, "name", "the stream").strip("<>")
        raise InputError(f"cannot write {where}: {str(error).splitlines()[0]}") from None


@contextmanager
def _eval_store(db: Path) -> Iterator[Store]:
    """The eval database; if this run created it and then failed (a wrong model spec, a missing key), it is
    removed again, so an error leaves no file behind."""
    created = not db.exists()
    store = Store(db)
    try:
        yield store
    except PapertagError:
        store.close()
        if created:
            for path in (db, db.with_name(db.name + ".wal")):
                path.unlink(missing_ok=True)
        raise
    finally:
        store.close()
