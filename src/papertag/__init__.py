"""papertag: summarise and tag research-paper abstracts with an LLM; store and query the results in DuckDB."""

from .errors import PapertagError
from .schema import DOMAINS, PaperTags
from .sources import Paper, parse_file

__all__ = ["DOMAINS", "Paper", "PaperTags", "PapertagError", "parse_file"]
__version__ = "0.1.0"
