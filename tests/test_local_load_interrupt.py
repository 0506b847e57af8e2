"""Ctrl-C during the embedded model's load, made deterministic: a stand-in for xllamacpp whose server, while it is
being built, has the process sent SIGINT, and whose destructor would hang (the real one joined llama.cpp's threads
for good when it ran during an interrupted load)."""

import signal
import sys
import threading
from types import SimpleNamespace

import pytest

from papertag.backends import BackendOptions, local
from papertag.settings import Settings


class Params(SimpleNamespace):
    def __init__(self):
        super().__init__(model=SimpleNamespace(), cpuparams=SimpleNamespace(), cpuparams_batch=SimpleNamespace())


class InterruptedServer:
    destroyed = 0

    def __init__(self, params):
        # Lands while the server is being built. Sent to the main thread itself: a signal sent to the process can
        # go to any other thread the test run has left, and reach Python only after the load is over.
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        self.listening_address = "http://127.0.0.1:9"

    def __del__(self):
        InterruptedServer.destroyed += 1


def test_ctrl_c_during_the_load_is_raised_after_it_and_the_server_is_not_destroyed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "xllamacpp", SimpleNamespace(CommonParams=Params, Server=InterruptedServer))
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    options = BackendOptions(settings=Settings.from_env({}))
    before = list(local._LEFT_RUNNING)
    with pytest.raises(KeyboardInterrupt):
        with local.open_endpoint(str(model), options):
            pytest.fail("the run must not start after Ctrl-C")
    assert InterruptedServer.destroyed == 0
    assert len(local._LEFT_RUNNING) == len(before) + 1  # kept referenced: the process exits without its destructor
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the usual handler is back
    local._LEFT_RUNNING.pop()


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
