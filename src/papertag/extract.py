"""One paper in, validated tags out: prompt + instructor over the openai SDK, with bounded retries."""

from __future__ import annotations

import json
import copy
import logging
import threading
import time
from dataclasses import dataclass, field

import httpx
import instructor
import openai
from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from .backends import Endpoint
from .domain_logprobs import TOP_LOGPROBS, domain_probabilities
from .domains import refine_domain
from .errors import BackendError
from .grounding import ground
from .prompts import Prompt
from .redact import redact
from .schema import PAPER_TITLE, SUMMARY_CHARS, TITLE_REPEATED, PaperTags, one_short_sentence
from .sources import Paper
from .text import clean_text

# instructor logs every failed attempt at ERROR; papertag records failures itself.
logging.getLogger("instructor").addHandler(logging.NullHandler())
logging.getLogger("instructor").propagate = False

MAX_OUTPUT_TOKENS = 512
CHARS_PER_TOKEN = 3  # conservative for English, so a truncated abstract still fits the context
# Wrapped once here: given the plain model, instructor builds a new wrapper class on every call (~1 ms of CPU),
# and it asks for the JSON schema on every call, which pydantic regenerates each time; both never change.
RESPONSE_MODEL = instructor.openai_schema(PaperTags)
_JSON_SCHEMA = PaperTags.model_json_schema()
RESPONSE_MODEL.model_json_schema = classmethod(lambda cls, *args, **kwargs: copy.deepcopy(_JSON_SCHEMA))
TRANSIENT_STATUS = {408, 409, 429, 500, 502, 503, 504}
PUSHBACK_STATUS = {429, 503}  # the server says "slow down", not "this request broke"
AUTH_STATUS = {401, 403}
# Refusals before any success that stop a run: the key is wrong, and every other paper would fail the same way.
AUTH_FAILURES_TO_STOP = 3


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
    domain_scores: dict[str, float] | None = None  # the model's probability per domain, where the server gave logprobs
    answered_on: str | None = None  # the machine the answer came from (Endpoint.answered_on)

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


def is_pushback(error: BaseException) -> bool:
    return any(isinstance(cause, openai.APIStatusError) and cause.status_code in PUSHBACK_STATUS for cause in _causes(error))


class PushbackGate:
    """Shared by all workers: when the server pushes back, every worker pauses, not only the one that was told."""

    def __init__(self) -> None:
        self._until = 0.0
        self._lock = threading.Lock()

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def wait(self) -> None:
        delay = self._until - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class KeyRejected(BackendError):
    """The server refused the key on every request so far; the papers not yet sent stay pending."""


class KeyCheck:
    """Shared by all workers: after AUTH_FAILURES_TO_STOP refusals (401/403) and no success, later calls fail fast
    instead of sending each remaining paper to be refused. Once a request succeeded the key works, and a later
    refusal fails only its own paper."""

    def __init__(self, limit: int = AUTH_FAILURES_TO_STOP) -> None:
        self.limit = limit
        self.refusals = 0
        self.accepted = False
        self.rejected_status: int | None = None
        self._lock = threading.Lock()

    def raise_if_rejected(self) -> None:
        if self.rejected_status is not None:
            raise KeyRejected(f"the server rejected the API key ({self.rejected_status}): check OPENAI_API_KEY")

    def saw_success(self) -> None:
        self.accepted = True

    def saw_failure(self, error: BaseException) -> None:
        status = auth_status(error)
        if status is None:
            return
        with self._lock:
            self.refusals += 1
            if not self.accepted and self.refusals >= self.limit:
                self.rejected_status = status


def auth_status(error: BaseException) -> int | None:
    for cause in _causes(error):
        if isinstance(cause, openai.APIStatusError) and cause.status_code in AUTH_STATUS:
            return cause.status_code
    return None


def retry_after_seconds(error: BaseException) -> float:
    for cause in _causes(error):
        if isinstance(cause, openai.APIStatusError):
            try:
                return float(cause.response.headers.get("retry-after", 0))
            except ValueError:
                return 0.0
    return 0.0


def max_abstract_chars(prompt: Prompt, context_tokens: int) -> int:
    """How much abstract fits in the context next to the prompt's static part and the answer."""
    static_chars = len(prompt.system) + sum(len(str(example)) for example in prompt.examples)
    budget = (context_tokens - MAX_OUTPUT_TOKENS) * CHARS_PER_TOKEN - static_chars
    return max(budget, 1000)


def fit_abstract(abstract: str, max_chars: int) -> tuple[str, bool]:
    """The abstract as sent, and whether it was cut to fit."""
    if len(abstract) > max_chars:
        return abstract[:max_chars], True
    return abstract, False


def chat_arguments(prompt: Prompt, title: str, abstract: str) -> dict:
    """Messages and sampling settings of one extraction; the live and the batch path send exactly these."""
    return {"messages": prompt.messages(title, abstract), "temperature": 0, "max_tokens": MAX_OUTPUT_TOKENS}


def response_format() -> dict:
    """The response_format instructor's Mode.JSON_SCHEMA sends for PaperTags. Batch requests do not go through
    instructor, so they add it themselves; tests/test_batch.py checks both stay identical."""
    return {"type": "json_schema", "json_schema": {"name": PaperTags.__name__, "schema": copy.deepcopy(_JSON_SCHEMA)}}


def _last_choice(error: BaseException):
    """The last answer instructor gave up on, if there was one."""
    for cause in _causes(error):
        choices = getattr(getattr(cause, "last_completion", None), "choices", None)
        if choices:
            return choices[0]
    return None


def _last_message(error: BaseException):
    choice = _last_choice(error)
    return choice.message if choice is not None else None


def error_line(text: str) -> str:
    """An error message as stored and printed: one line of plain text, no API key, at most 500 characters.
    Servers write their error bodies: they can quote the key, or carry terminal escapes."""
    return redact(clean_text(text))[:500]


def describe(error: BaseException) -> str:
    """What went wrong, on one line: the HTTP error, the model's refusal or prose, the schema fields it got
    wrong, or else the innermost exception."""
    causes = list(_causes(error))
    for cause in causes:
        if isinstance(cause, openai.APIStatusError):
            return error_line(f"HTTP {cause.status_code}: {cause.message}")
    message = _last_message(error)
    if message is not None and getattr(message, "refusal", None):
        return error_line(f"model refused: {message.refusal}")
    if message is not None and message.content and not message.content.lstrip().startswith("{"):
        return error_line(f"model answered in prose, not JSON: {message.content}")
    for cause in causes:
        if isinstance(cause, ValidationError):
            fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in cause.errors())
            return error_line(f"answer does not fit the schema: {fields}")
        if isinstance(cause, openai.APITimeoutError):
            return "request timed out (PAPERTAG_TIMEOUT sets the limit in seconds)"
        if isinstance(cause, json.JSONDecodeError):  # the HTTP body itself, e.g. from a broken proxy
            return error_line(f"server response is not valid JSON: {cause}")
    innermost = causes[-1]
    return error_line(f"{type(innermost).__name__}: {str(innermost) or type(innermost).__name__}")


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
        client = openai.OpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            max_retries=0,  # tenacity below owns transient retries
            timeout=endpoint.timeout_s,
            http_client=http_client,
        )
        self.client = instructor.from_openai(client, mode=instructor.Mode.JSON_SCHEMA)
        self.attempts = attempts
        self.max_wait_s = max_wait_s
        self.gate = PushbackGate()
        self.key_check = KeyCheck()
        self.max_abstract_chars = max_abstract_chars(prompt, endpoint.context_tokens)

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(multiplier=0.5, max=self.max_wait_s)(state)
        error = state.outcome.exception() if state.outcome else None
        seconds = max(backoff, min(retry_after_seconds(error), self.max_wait_s * 4)) if error else backoff
        if error is not None and is_pushback(error):
            self.gate.hold(seconds)
        return seconds

    def _create(self, paper: Paper, **request):
        """One request, once the server is not pushing back; the validators see the paper's title
        (each worker thread has its own value)."""
        self.gate.wait()
        token = PAPER_TITLE.set(paper.title)
        try:
            return self.client.chat.completions.create_with_completion(**request)
        finally:
            PAPER_TITLE.reset(token)

    def extract(self, paper: Paper) -> Extraction:
        """The paper's tags, or its failure; raises KeyRejected, sending nothing, once the key is known to be wrong."""
        result = self._ask(paper)
        result.answered_on = self.endpoint.answered_on
        return result

    def _ask(self, paper: Paper) -> Extraction:
        self.key_check.raise_if_rejected()
        abstract, truncated = fit_abstract(paper.abstract, self.max_abstract_chars)
        started = time.perf_counter()
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self.attempts),
            wait=self._wait,
            reraise=True,
        )
        scored = {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if self.endpoint.logprobs else {}
        try:
            tags, completion = retrying(
                self._create,
                paper,
                model=self.endpoint.model,
                response_model=RESPONSE_MODEL,
                max_retries=self.validation_retries,
                **chat_arguments(self.prompt, paper.title, abstract),
                **scored,
            )
        except Exception as error:  # recorded per paper; the run goes on, unless the key is wrong
            self.key_check.saw_failure(error)
            rescued = rescue_title_summary(error, paper, abstract, time.perf_counter() - started, truncated)
            return rescued or Extraction(
                paper, None, None, 0, 0, time.perf_counter() - started, truncated, describe(error))
        self.key_check.saw_success()
        usage = completion.usage
        logprobs = completion.choices[0].logprobs
        domain_scores = domain_probabilities(logprobs.content if logprobs else None)
        tags, dropped = finish(tags, paper.title, abstract, domain_scores)
        return Extraction(
            paper=paper,
            tags=tags,
            dropped=dropped,
            domain_scores=domain_scores,
            raw_response=completion.choices[0].message.content,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_s=time.perf_counter() - started,
            truncated=truncated,
        )


def rescue_title_summary(error: BaseException, paper: Paper, abstract: str, latency_s: float,
                         truncated: bool) -> Extraction | None:
    """When the model's last answer is wrong only in repeating the title as its summary, keep its tags and show the
    abstract's first sentence as the summary. The 1.5B model keeps repeating a title through every re-ask on about
    1 paper in 100 (each costing minutes); failing would lose its tags and spend that time again on every re-run."""
    validation = next((cause for cause in _causes(error) if isinstance(cause, ValidationError)), None)
    choice = _last_choice(error)
    if validation is None or choice is None or not choice.message.content:
        return None
    if any(problem["loc"] != ("summary",) or TITLE_REPEATED not in problem["msg"] for problem in validation.errors()):
        return None
    try:
        answer = json.loads(choice.message.content)
        model_summary = answer["summary"]
        answer["summary"] = lead_sentence(abstract)
        tags = PaperTags.model_validate(answer, context={"title": paper.title})
    except (ValueError, KeyError, TypeError):  # pydantic's ValidationError is a ValueError
        return None
    domain_scores = domain_probabilities(choice.logprobs.content if getattr(choice, "logprobs", None) else None)
    tags, dropped = finish(tags, paper.title, abstract, domain_scores)
    usage = getattr(error, "total_usage", None)
    return Extraction(
        paper=paper,
        tags=tags,
        dropped=[f"summary: {model_summary}"] + dropped,
        domain_scores=domain_scores,
        raw_response=json.dumps(answer),
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        latency_s=latency_s,
        truncated=truncated,
    )


def lead_sentence(abstract: str) -> str:
    """The abstract's first sentence, cut to fit the summary field."""
    lead = one_short_sentence(abstract)
    if len(lead) < SUMMARY_CHARS:
        return lead
    return lead[:SUMMARY_CHARS - 2].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def finish(tags: PaperTags, title: str, abstract: str,
           domain_scores: dict[str, float] | None = None) -> tuple[PaperTags, list[str]]:
    """The model's answer grounded in the abstract and its domain checked against its own probabilities and the
    text's cues, with what was removed or replaced ("kind: value")."""
    tags, dropped = ground(tags, title, abstract)
    domain = refine_domain(tags.domain, title, abstract, domain_scores)
    if domain != tags.domain:
        dropped.append(f"domain: {tags.domain}")
        tags = tags.model_copy(update={"domain": domain})
    return tags, dropped


def check_answer(paper: Paper, content: str, abstract: str,
                 domain_scores: dict[str, float] | None = None) -> tuple[PaperTags, list[str]]:
    """A raw answer validated by the schema and finished like a live one, with what was dropped.
    Raises pydantic's ValidationError. Used for answers that did not come through instructor."""
    tags = PaperTags.model_validate_json(content, context={"title": paper.title})
    return finish(tags, paper.title, abstract, domain_scores)


def recheck(paper: Paper, raw_response: str, domain_scores: dict[str, float] | None = None,
            answered_on: str | None = None) -> Extraction | None:
    """A stored answer, validated and grounded by today's rules; None if it no longer passes them."""
    try:
        tags, dropped = check_answer(paper, raw_response, paper.abstract, domain_scores)
    except ValidationError:
        return None
    return Extraction(paper, tags, raw_response, 0, 0, 0.0, False, dropped=dropped, domain_scores=domain_scores,
                      answered_on=answered_on)
