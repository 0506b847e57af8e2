"""One paper in, validated tags out: prompt + instructor over the openai SDK, with bounded retries."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import httpx
import instructor
import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from .backends import Endpoint
from .grounding import ground
from .prompts import Prompt
from .schema import PaperTags
from .sources import Paper

# instructor logs every failed attempt at ERROR; papertag records failures itself.
logging.getLogger("instructor").addHandler(logging.NullHandler())
logging.getLogger("instructor").propagate = False

MAX_OUTPUT_TOKENS = 512
CHARS_PER_TOKEN = 3  # conservative for English, so a truncated abstract still fits the context
TRANSIENT_STATUS = {408, 409, 429, 500, 502, 503, 504}


@dataclass
class Extraction:
    paper: Paper
    tags: PaperTags | None
    raw_response: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    truncated: bool
    error: str | None = None
    dropped: list[str] = field(default_factory=list)  # "kind: value" removed by grounding

    @property
    def ok(self) -> bool:
        return self.tags is not None


def _causes(error: BaseException):
    """instructor wraps the API error; look through the whole chain."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def is_transient(error: BaseException) -> bool:
    for cause in _causes(error):
        if isinstance(cause, (openai.APIConnectionError, httpx.TransportError)):
            return True
        if isinstance(cause, openai.APIStatusError) and cause.status_code in TRANSIENT_STATUS:
            return True
    return False


def retry_after_seconds(error: BaseException) -> float:
    for cause in _causes(error):
        if isinstance(cause, openai.APIStatusError):
            try:
                return float(cause.response.headers.get("retry-after", 0))
            except ValueError:
                return 0.0
    return 0.0


def describe(error: BaseException) -> str:
    """The innermost useful message, on one line."""
    causes = list(_causes(error))
    for cause in causes:
        if isinstance(cause, openai.APIStatusError):
            return f"HTTP {cause.status_code}: {cause.message}"[:500]
    innermost = causes[-1]
    message = " ".join(str(innermost).split()) or type(innermost).__name__
    return f"{type(innermost).__name__}: {message}"[:500]


class Extractor:
    def __init__(
        self,
        endpoint: Endpoint,
        prompt: Prompt,
        *,
        http_client: httpx.Client | None = None,
        attempts: int = 5,
        max_wait_s: float = 30.0,
        validation_retries: int = 2,
    ):
        self.endpoint = endpoint
        self.prompt = prompt
        self.validation_retries = validation_retries
        timeout = float(os.environ.get("PAPERTAG_TIMEOUT", "600"))
        client = openai.OpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            max_retries=0,  # tenacity below owns transient retries
            timeout=timeout,
            http_client=http_client,
        )
        self.client = instructor.from_openai(client, mode=instructor.Mode.JSON_SCHEMA)
        self.attempts = attempts
        self.max_wait_s = max_wait_s
        static_chars = len(prompt.system) + sum(len(str(example)) for example in prompt.examples)
        budget = (endpoint.context_tokens - MAX_OUTPUT_TOKENS) * CHARS_PER_TOKEN - static_chars
        self.max_abstract_chars = max(budget, 1000)

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(multiplier=0.5, max=self.max_wait_s)(state)
        hinted = retry_after_seconds(state.outcome.exception()) if state.outcome else 0.0
        return max(backoff, min(hinted, self.max_wait_s * 4))

    def extract(self, paper: Paper) -> Extraction:
        abstract, truncated = paper.abstract, False
        if len(abstract) > self.max_abstract_chars:
            abstract, truncated = abstract[: self.max_abstract_chars], True
        started = time.perf_counter()
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            reraise=True,
        )
        try:
            tags, completion = retrying(
                self.client.chat.completions.create_with_completion,
                model=self.endpoint.model,
                response_model=PaperTags,
                messages=self.prompt.messages(paper.title, abstract),
                max_retries=self.validation_retries,
                context={"title": paper.title},
                temperature=0,
                max_tokens=MAX_OUTPUT_TOKENS,
            )
        except Exception as error:  # recorded per paper; the run goes on
            return Extraction(paper, None, None, 0, 0, time.perf_counter() - started, truncated, describe(error))
        usage = completion.usage
        tags, dropped = ground(tags, paper.title, abstract)
        return Extraction(
            paper=paper,
            tags=tags,
            dropped=dropped,
            raw_response=completion.choices[0].message.content,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_s=time.perf_counter() - started,
            truncated=truncated,
        )
