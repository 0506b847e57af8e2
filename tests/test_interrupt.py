"""Ctrl-C during a real `papertag ingest` process: finished papers are kept, the summary prints, exit code 130."""

import json
import os
import signal
import subprocess
import sys
import time

from fake_openai import FakeOpenAI, default_responder
from reliability import record


def slow(request):
    time.sleep(0.2)
    return default_responder(request)


def test_sigint_keeps_finished_work_and_exits_130(sample_path, tmp_path):
    db = tmp_path / "run.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    with FakeOpenAI(slow) as server:
        command = [sys.executable, "-m", "papertag", "ingest", str(sample_path), "--db", str(db),
                   "--model", "openai:fake", "--base-url", server.base_url, "--concurrency", "1", "--json"]
        # A shell that starts jobs in the background (CI runners, `make test &`) starts them with SIGINT ignored,
        # and Python then keeps it ignored; give the child the default action so Ctrl-C reaches it.
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 30
        while server.calls < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 130, stderr
        report = json.loads(stdout)
        assert report["interrupted"] is True and 0 < report["extracted"] < 31
        assert "Traceback" not in stderr

        rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    second = json.loads(rerun.stdout)
    record("Ctrl-C (SIGINT) during ingest", "finished papers committed, summary printed, exit 130; a rerun continues",
           cases=1, lost=report["extracted"] - second["cached"])
    assert second["cached"] == report["extracted"]  # nothing finished before Ctrl-C is redone
    assert second["cached"] + second["extracted"] == 31
