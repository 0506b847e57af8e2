"""papertag: summarise and tag research-paper abstracts with an LLM; store and query the results in DuckDB.

    with papertag.open("papers.duckdb", model="openai:gpt-4o-mini") as library:
        library.ingest(["abstracts.jsonl"])
        library.query(benchmark="AgentBench")
"""

from .api import Library, open
from .backends import DEFAULT_MODEL_SPEC
from .errors import BackendError, ConfigurationError, DatabaseBusy, DatabaseError, InputError, NotFound, PapertagError
from .schema import DOMAINS, PaperTags
from .selection import Selection
from .settings import Settings
from .sources import Inputs, Paper, make_paper, parse_file, read_inputs

__all__ = [
    "DEFAULT_MODEL_SPEC", "DOMAINS", "BackendError", "ConfigurationError", "DatabaseBusy", "DatabaseError", "InputError",
    "Inputs", "Library", "NotFound", "Paper", "PaperTags", "PapertagError", "Selection", "Settings", "make_paper", "open",
    "parse_file", "read_inputs",
]
__version__ = "0.1.0"
