"""CPU cost of one extraction request at each layer of the client stack, one thread, no latency.

    .venv/bin/python bench/request_cost.py [--requests 300] [--append]

Same request each time (papertag's messages and JSON schema) against bench/fake_llm_server.py in its own process:
raw httpx POST, the openai SDK, and the SDK through instructor as papertag calls it. Explains how much of the
pipeline benchmark's CPU per paper is papertag's own.
"""

from __future__ import annotations

import argparse
import time

import httpx
import instructor
import openai

from papertag.extract import RESPONSE_MODEL, chat_arguments, response_format
from papertag.prompts import load_prompt
from _report import append_results, command_line, machine_info
from pipeline_overhead import ABSTRACT, start_server


def cpu_ms_per_call(call, requests: int) -> float:
    call()  # warm: imports, connection
    started = time.process_time()
    for _ in range(requests):
        call()
    return (time.process_time() - started) / requests * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--append", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    machine = machine_info()
    server, base_url = start_server(0.0)
    try:
        request = {"model": "bench", **chat_arguments(load_prompt(), "Paper 1: adapting models", ABSTRACT)}
        with_format = {**request, "response_format": response_format()}  # built once, as instructor's is
        http = httpx.Client()
        sdk = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        patched = instructor.from_openai(sdk, mode=instructor.Mode.JSON_SCHEMA)
        layers = {
            "raw httpx POST + json": lambda: http.post(f"{base_url}/chat/completions", json=with_format).json(),
            "openai SDK create": lambda: sdk.chat.completions.create(**with_format),
            "instructor create_with_completion (as papertag)": lambda: patched.chat.completions.create_with_completion(
                response_model=RESPONSE_MODEL, max_retries=2, **request),
        }
        lines = ["| layer | CPU ms per request |", "|---|---:|"]
        lines += [f"| {name} | {cpu_ms_per_call(call, args.requests):.2f} |" for name, call in layers.items()]
    finally:
        server.kill()
    body = "\n".join(lines)
    print(body)
    if args.append:
        append_results("Request cost by client layer (fake server, no model)", command_line(), body, machine=machine)


if __name__ == "__main__":
    main()
