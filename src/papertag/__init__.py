"""papertag: summarise and tag research-paper abstracts with an LLM; store and query the results in DuckDB.

    with papertag.open("papers.duckdb", model="openai:gpt-4o-mini") as library:
        library.ingest(["abstracts.jsonl"])
        library.fetch_arxiv("cat:cs.CL AND abs:benchmark", since="2024-11-01", max_results=200)
        library.query(benchmark="AgentBench")
"""

from .api import Library, open
from .backends import DEFAULT_MODEL_SPEC
from .errors import (BackendError, ConfigurationError, DatabaseBusy, DatabaseError, InputError, NotFound, PapertagError,
                     SourceUnavailable)
from .schema import DOMAINS, PaperTags
from .selection import Selection
from .settings import Settings
from .sources import Inputs, Paper, make_paper, parse_file, read_inputs

__all__ = [
    "DEFAULT_MODEL_SPEC", "DOMAINS", "BackendError", "ConfigurationError", "DatabaseBusy", "DatabaseError", "InputError",
    "Inputs", "Library", "NotFound", "Paper", "PaperTags", "PapertagError", "Selection", "Settings", "make_paper", "open",
    "parse_file", "read_inputs", "SourceUnavailable",
]
__version__ = "0.1.0"
