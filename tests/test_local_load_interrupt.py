"""Ctrl-C during the embedded model's load, made deterministic: a stand-in for xllamacpp whose server, while it is
being built, has the process sent SIGINT, and whose destructor would hang (the real one joined llama.cpp's threads
for good when it ran during an interrupted load)."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from papertag.backends import BackendOptions, local
from papertag.settings import Settings


class Params(SimpleNamespace):
    def __init__(self):
        super().__init__(model=SimpleNamespace(), cpuparams=SimpleNamespace(), cpuparams_batch=SimpleNamespace())


# Run in a fresh interpreter with the usual Ctrl-C handler, whatever the suite was started with: run in-process
# under a background shell (SIGINT inherited as ignored), it failed, because the held signal stayed ignored.
CTRL_C_DURING_LOAD = """
import json, signal, sys, threading
from types import SimpleNamespace
from papertag.backends import BackendOptions, local
from papertag.settings import Settings

class Params(SimpleNamespace):
    def __init__(self):
        super().__init__(model=SimpleNamespace(), cpuparams=SimpleNamespace(), cpuparams_batch=SimpleNamespace())

class InterruptedServer:
    destroyed = 0
    def __init__(self, params):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # lands while the server is being built
        self.listening_address = "http://127.0.0.1:9"
    def __del__(self):  # the real one joined llama.cpp's threads for good
        InterruptedServer.destroyed += 1

sys.modules["xllamacpp"] = SimpleNamespace(CommonParams=Params, Server=InterruptedServer)
# Ctrl-C as in a terminal: a suite started in the background (nohup, '&') inherits SIGINT ignored, and an ignored
# Ctrl-C rightly stays ignored after the load.
signal.signal(signal.SIGINT, signal.default_int_handler)
result = {"interrupted": False, "run_started": False}
try:
    with local.open_endpoint(sys.argv[1], BackendOptions(settings=Settings.from_env({}))):
        result["run_started"] = True
except KeyboardInterrupt:
    result["interrupted"] = True
result["destroyed"] = InterruptedServer.destroyed
result["left_running"] = len(local._LEFT_RUNNING)
result["handler_restored"] = signal.getsignal(signal.SIGINT) is signal.default_int_handler
print(json.dumps(result))
"""


def test_ctrl_c_during_the_load_is_raised_after_it_and_the_server_is_not_destroyed(tmp_path):
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    done = subprocess.run([sys.executable, "-c", CTRL_C_DURING_LOAD, str(model)], capture_output=True, text=True,
                          timeout=60, check=True)
    result = json.loads(done.stdout)
    assert result["interrupted"] and not result["run_started"]  # raised after the load, before the run
    assert result["destroyed"] == 0 and result["left_running"] == 1  # kept: the process exits without its destructor
    assert result["handler_restored"]  # the usual handler is back


class QuietServer:
    def __init__(self, params):
        self.listening_address = "http://127.0.0.1:9"


def test_a_normal_run_releases_the_server(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "xllamacpp", SimpleNamespace(CommonParams=Params, Server=QuietServer))
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    before = list(local._LEFT_RUNNING)
    with local.open_endpoint(str(model), BackendOptions(settings=Settings.from_env({}))) as endpoint:
        assert endpoint.base_url == "http://127.0.0.1:9/v1"
    assert local._LEFT_RUNNING == before
