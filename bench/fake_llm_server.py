"""A fast fake OpenAI-compatible chat server for benchmarks: asyncio, keep-alive, fixed latency, one canned answer.

Runs in its own process so the client's CPU time is measured alone:
    python bench/fake_llm_server.py --latency 0.2   # prints the port, then serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import json

ANSWER = {
    "summary": "Adapts a language model with LoRA and reports gains on MMLU.",
    "tasks": ["question answering"],
    "methods": ["LoRA"],
    "benchmarks": ["MMLU"],
    "domain": "nlp",
}
BODY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps(ANSWER)}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960},
}).encode()
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            await asyncio.sleep(latency)
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(latency: float) -> None:
    server = await asyncio.start_server(lambda r, w: serve_connection(r, w, latency), "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each answer")
    asyncio.run(main(parser.parse_args().latency))
