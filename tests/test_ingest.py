import dataclasses
import functools
import json

import pytest

from fake_openai import FakeOpenAI, Reply, completion, default_responder, rule_based_tags
from papertag.backends import BackendOptions
from papertag.extract import Extractor
from papertag.ingest import RunInterrupted, ingest
from papertag.prompts import load_prompt
from papertag.queries import Reader
from papertag.sources import make_paper, parse_file
from papertag.store import Store

fast_retries = functools.partial(Extractor, max_wait_s=0.01)


def run(db_path, papers, server, **kwargs):
    store = Store(db_path)
    try:
        return ingest(
            store, papers, spec=kwargs.pop("spec", "openai:fake"), prompt=kwargs.pop("prompt", load_prompt()),
            options=BackendOptions(base_url=server.base_url), make_extractor=fast_retries, **kwargs,
        )
    finally:
        store.close()


def count(db_path, sql):
    reader = Reader(db_path)
    try:
        return reader.con.execute(sql).fetchone()[0]
    finally:
        reader.close()


def test_ingest_stores_extractions_and_tags(db_path, sample_path, fake_server):
    papers = parse_file(sample_path).papers
    report = run(db_path, papers, fake_server)
    assert (report.extracted, report.failed, report.cached) == (31, 0, 0)
    assert fake_server.calls == 31
    assert count(db_path, "SELECT count(*) FROM papers") == 31
    assert count(db_path, "SELECT count(*) FROM current_extractions") == 31
    assert count(db_path, "SELECT count(*) FROM extractions WHERE raw_response IS NULL") == 0
    assert report.prompt_tokens == 31 * 100


def test_reingest_is_free_and_makes_no_duplicates(db_path, sample_path, fake_server):
    papers = parse_file(sample_path).papers
    run(db_path, papers, fake_server)
    requests_after_first_run = len(fake_server.requests)
    report = run(db_path, papers, fake_server)
    assert len(fake_server.requests) == requests_after_first_run  # no LLM call of any kind
    assert fake_server.calls == 31
    assert (report.cached, report.extracted) == (31, 0)
    assert count(db_path, "SELECT count(*) FROM papers") == 31
    assert count(db_path, "SELECT count(*) FROM extractions") == 31
    assert count(db_path, "SELECT count(*) FROM tags") == count(db_path, "SELECT count(*) FROM tags t JOIN current_extractions e ON e.id = t.extraction_id")


def test_force_replaces_rather_than_duplicates(db_path, sample_path, fake_server):
    papers = parse_file(sample_path).papers[:3]
    run(db_path, papers, fake_server)
    tags_before = count(db_path, "SELECT count(*) FROM tags")
    run(db_path, papers, fake_server, force=True)
    assert fake_server.calls == 6
    assert count(db_path, "SELECT count(*) FROM extractions") == 3
    assert count(db_path, "SELECT count(*) FROM tags") == tags_before


def test_new_model_or_prompt_version_extracts_again(db_path, sample_path, fake_server):
    papers = parse_file(sample_path).papers[:2]
    run(db_path, papers, fake_server)
    run(db_path, papers, fake_server, spec="openai:other-model")
    assert fake_server.calls == 4
    prompt = load_prompt()
    changed = dataclasses.replace(prompt, system=prompt.system + "\nBe brief.", version="different")
    run(db_path, papers, fake_server, prompt=changed)
    assert fake_server.calls == 6
    assert count(db_path, "SELECT count(DISTINCT prompt_version) FROM extractions") == 2


def test_changed_abstract_under_same_id_is_extracted_again(db_path, fake_server):
    run(db_path, [make_paper("T", "old text", "x", "id-1")], fake_server)
    run(db_path, [make_paper("T", "new text", "x", "id-1")], fake_server)
    assert fake_server.calls == 2
    assert count(db_path, "SELECT count(*) FROM papers") == 1
    assert count(db_path, "SELECT count(*) FROM current_extractions") == 1


def test_duplicate_ids_in_input_cost_one_call(db_path, fake_server):
    paper = make_paper("T", "text", "x", "same")
    report = run(db_path, [paper, paper], fake_server)
    assert fake_server.calls == 1 and report.papers == 1


def fail_titles(*titles, status=400):
    def responder(request):
        title, _ = [part for part in request["messages"][-1]["content"].split("\n\n")][0][7:], None
        if title in titles:
            return Reply(status=status, body={"error": {"message": f"refused {title}", "type": "invalid_request_error"}})
        return default_responder(request)

    return responder


def test_failed_paper_is_recorded_and_the_run_goes_on(db_path):
    papers = [make_paper(f"Paper {i}", f"abstract {i}", "x") for i in range(5)]
    with FakeOpenAI(fail_titles("Paper 2")) as server:
        report = run(db_path, papers, server)
    assert (report.extracted, report.failed) == (4, 1)
    assert report.failures[0][0] == papers[2].id
    assert "400" in report.failures[0][1]
    error = count(db_path, f"SELECT error FROM extractions WHERE paper_id = '{papers[2].id}' AND status = 'failed'")
    assert "refused Paper 2" in error


def test_retry_failed_picks_up_exactly_the_failed_papers(db_path):
    papers = [make_paper(f"Paper {i}", f"abstract {i}", "x") for i in range(5)]
    with FakeOpenAI(fail_titles("Paper 1", "Paper 3")) as server:
        run(db_path, papers, server)
    with FakeOpenAI() as server:
        report = run(db_path, papers, server, retry_failed_only=True)
        assert server.calls == 2
        asked = {request["messages"][-1]["content"].split("\n")[0] for request in server.requests}
    assert asked == {"Title: Paper 1", "Title: Paper 3"}
    assert (report.extracted, report.failed) == (2, 0)
    assert count(db_path, "SELECT count(*) FROM current_extractions") == 5
    assert count(db_path, "SELECT count(*) FROM extractions WHERE status = 'failed'") == 0


def test_transient_errors_are_retried_until_success(db_path):
    replies = iter([Reply(503, {"error": {"message": "busy"}}), Reply(429, {"error": {"message": "slow down"}}, {"retry-after": "0"})])

    def responder(request):
        return next(replies, None) or default_responder(request)

    with FakeOpenAI(responder) as server:
        report = run(db_path, [make_paper("T", "abstract", "x")], server)
        assert server.calls == 3
    assert (report.extracted, report.failed) == (1, 0)


def test_transient_errors_are_bounded(db_path):
    with FakeOpenAI(lambda request: Reply(500, {"error": {"message": "down"}})) as server:
        report = run(db_path, [make_paper("T", "abstract", "x")], server)
        assert server.calls == 5
    assert report.failed == 1 and "HTTP 500" in report.failures[0][1]


def test_schema_violations_are_reasked_then_recorded(db_path):
    def responder(request):
        tags = rule_based_tags(request)
        tags["domain"] = "astrology"
        return Reply(body=completion(json.dumps(tags)))

    with FakeOpenAI(responder) as server:
        report = run(db_path, [make_paper("T", "abstract", "x")], server)
        assert server.calls == 3  # first try plus instructor's two re-asks
    assert report.failed == 1 and "domain" in report.failures[0][1]


def test_summary_equal_to_title_is_reasked(db_path):
    def responder(request):
        tags = rule_based_tags(request)
        if len(server.requests) == 1:
            tags["summary"] = "A Study of Things"
        return Reply(body=completion(json.dumps(tags)))

    with FakeOpenAI(responder) as server:
        report = run(db_path, [make_paper("A study of things!", "abstract", "x")], server)
        assert server.calls == 2
        assert "repeats the title" in server.requests[1]["messages"][-1]["content"]
    assert report.extracted == 1


def test_long_abstract_is_truncated_and_recorded(db_path, fake_server, monkeypatch):
    monkeypatch.setenv("PAPERTAG_CONTEXT_TOKENS", "2048")
    report = run(db_path, [make_paper("Long", "word " * 20000, "x")], fake_server)
    assert report.truncated == 1 and report.extracted == 1
    sent = fake_server.requests[0]["messages"][-1]["content"]
    assert len(sent) < 20000
    assert count(db_path, "SELECT bool_and(truncated) FROM extractions") is True


def test_grounding_drops_are_stored_and_counted(db_path):
    def hallucinating(request):
        tags = rule_based_tags(request)
        tags["benchmarks"] = ["MMLU", "GPT-4"]
        return Reply(body=completion(json.dumps(tags)))

    with FakeOpenAI(hallucinating) as server:
        report = run(db_path, [make_paper("T", "An abstract that names no benchmark.", "x")], server)
    assert report.extracted == 1 and report.dropped_tags == 2
    assert count(db_path, "SELECT dropped_tags FROM extractions") == ["benchmark: MMLU", "benchmark: GPT-4"]
    assert count(db_path, "SELECT count(*) FROM tags WHERE kind = 'benchmark'") == 0


def test_request_uses_json_schema_and_static_prefix_first(fake_server, db_path):
    run(db_path, [make_paper("T1", "a1", "x"), make_paper("T2", "a2", "x")], fake_server)
    first, second = fake_server.requests
    assert first["response_format"]["type"] == "json_schema"
    assert first["messages"][:-1] == second["messages"][:-1]  # shared, cacheable prefix
    assert first["temperature"] == 0


def test_interrupted_run_keeps_finished_work(db_path, fake_server):
    papers = [make_paper(f"Paper {i}", f"abstract {i}", "x") for i in range(6)]

    def on_result(result):
        if result.paper.title == "Paper 2":
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted) as stopped:  # raised once the finished papers are committed
        run(db_path, papers, fake_server, concurrency=1, on_result=on_result)
    interrupted = stopped.value.report
    assert interrupted.interrupted and interrupted.extracted == 3
    assert count(db_path, "SELECT count(*) FROM current_extractions") == 3
    report = run(db_path, papers, fake_server, concurrency=1)
    assert (report.cached, report.extracted) == (3, 3)


def test_validation_change_rechecks_stored_answers_without_calling_the_model(db_path, sample_path, fake_server):
    papers = parse_file(sample_path).papers[:4]
    run(db_path, papers, fake_server)
    prompt = load_prompt()
    new_rules = dataclasses.replace(prompt, schema_version="newer-rules")
    report = run(db_path, papers, fake_server, prompt=new_rules)
    assert fake_server.calls == 4  # only the first run asked the model
    assert (report.rechecked, report.extracted) == (4, 0)
    assert count(db_path, "SELECT count(*) FROM current_extractions WHERE schema_version = 'newer-rules'") == 4


def test_answer_failing_new_rules_is_asked_again(db_path, fake_server):
    paper = make_paper("T", "text", "x", "id-1")
    run(db_path, [paper], fake_server)
    store = Store(db_path)
    store.con.execute("UPDATE extractions SET raw_response = '{\"summary\": \"no\"}'")
    store.close()
    report = run(db_path, [paper], fake_server, prompt=dataclasses.replace(load_prompt(), schema_version="newer"))
    assert (report.rechecked, report.extracted, fake_server.calls) == (0, 1, 2)


def test_failing_forced_rerun_keeps_the_good_result(db_path):
    paper = make_paper("Paper 1", "abstract", "x")
    with FakeOpenAI() as server:
        run(db_path, [paper], server)
    with FakeOpenAI(fail_titles("Paper 1")) as server:
        report = run(db_path, [paper], server, force=True)
    assert report.failed == 1
    assert count(db_path, "SELECT count(*) FROM current_extractions") == 1
    assert count(db_path, "SELECT count(*) FROM extractions") == 2  # the good one and the failed attempt


def test_retry_failed_is_per_model(db_path):
    papers = [make_paper(f"Paper {i}", f"abstract {i}", "x") for i in range(3)]
    with FakeOpenAI(fail_titles("Paper 1")) as server:
        run(db_path, papers, server, spec="openai:model-a")
    with FakeOpenAI() as server:
        run(db_path, papers, server, spec="openai:model-b", retry_failed_only=True)
        assert server.calls == 0  # model-b never failed on anything
        run(db_path, papers, server, spec="openai:model-a", retry_failed_only=True)
        assert server.calls == 1


def test_pushback_pauses_every_worker(db_path):
    """A 429 with Retry-After holds back the other in-flight workers too, not just the one that got it."""
    import threading
    import time

    sent: list[float] = []
    first = threading.Event()

    def responder(request):
        sent.append(time.monotonic())
        if not first.is_set():
            first.set()
            return Reply(429, {"error": {"message": "slow down"}}, {"retry-after": "1"})
        time.sleep(0.05)
        return default_responder(request)

    papers = [make_paper(f"Paper {i}", f"abstract {i}", "x") for i in range(12)]
    with FakeOpenAI(responder) as server:
        store = Store(db_path)
        report = ingest(store, papers, spec="openai:fake", prompt=load_prompt(), concurrency=4,
                        options=BackendOptions(base_url=server.base_url),
                        make_extractor=functools.partial(Extractor, max_wait_s=5))
        store.close()
    assert report.extracted == 12
    pushed_back_at = sent[0]
    # Requests already on the wire may land; after them, nothing is sent until Retry-After has passed.
    later = [t - pushed_back_at for t in sent[4:]]
    assert min(later) >= 0.95


def test_abstracts_are_sent_verbatim_never_rendered_as_templates(db_path, fake_server):
    """instructor renders messages as Jinja templates when given a context; papertag must not give it one."""
    from fake_openai import user_paper

    papers = [make_paper("Title {{ 6*7 }}", "We compute {{ 7*7 }} and {% if true %}yes{% endif %}.", "x"),
              make_paper("Broken", "A stray {% endfor %} tag.", "x")]
    report = run(db_path, papers, fake_server)
    assert report.failed == 0
    sent = {user_paper(request) for request in fake_server.requests}
    assert ("Title {{ 6*7 }}", "We compute {{ 7*7 }} and {% if true %}yes{% endif %}.") in sent


def test_concurrency_is_reached_and_never_exceeded(db_path):
    import threading
    import time

    in_flight, peak, lock = 0, 0, threading.Lock()

    def responder(request):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)
        with lock:
            in_flight -= 1
        return default_responder(request)

    papers = [make_paper(f"Paper {i}", f"abstract {i}", "x") for i in range(40)]
    with FakeOpenAI(responder) as server:
        report = run(db_path, papers, server, concurrency=6)
    assert report.extracted == 40
    assert peak == 6



def test_a_title_repeated_through_every_reask_keeps_the_tags_with_the_first_sentence_as_summary(db_path):
    title = "A Study of Things"
    abstract = "We study things with a new method. It is better than old ones on ThingBench."

    def responder(request):
        tags = rule_based_tags(request)
        tags["summary"] = title + "."
        return Reply(body=completion(json.dumps(tags)))

    with FakeOpenAI(responder) as server:
        report = run(db_path, [make_paper(title, abstract, "x")], server)
        assert server.calls == 3  # the model was asked twice more first
        assert report.extracted == 1 and report.failed == 0
        assert count(db_path, "SELECT summary FROM extractions") == "We study things with a new method."
        assert f"summary: {title}." in count(db_path, "SELECT dropped_tags FROM extractions")
        again = run(db_path, [make_paper(title, abstract, "x")], server)
        assert server.calls == 3 and again.cached == 1  # kept, so a re-run does not pay for it again


def test_a_reasked_answer_with_other_faults_still_fails(db_path):
    def responder(request):
        tags = rule_based_tags(request)
        tags["summary"], tags["domain"] = "A Study of Things", "astrology"
        return Reply(body=completion(json.dumps(tags)))

    with FakeOpenAI(responder) as server:
        report = run(db_path, [make_paper("A Study of Things", "We study things.", "x")], server)
    assert report.failed == 1 and count(db_path, "SELECT count(*) FROM extractions WHERE status = 'ok'") == 0
