"""Prompt text lives in files under prompts/; this module loads it and names its version."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from .domains import DOMAIN_RULES_VERSION
from .grounding import GROUNDING_VERSION
from .schema import VALIDATION_VERSION, PaperTags

PROMPT_FILES = ("system.md", "examples.jsonl", "user.txt")


def prompt_dir() -> Path:
    """The installed copy (wheel) if there is one, else the repository's prompts/ (editable install)."""
    packaged = Path(str(resources.files("papertag"))) / "prompts"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "prompts"


@dataclass(frozen=True)
class Prompt:
    system: str
    examples: tuple[dict, ...]
    user_template: str
    version: str  # what the model sees: prompt files and the JSON schema it must follow
    schema_version: str  # what is done with its answer: output schema, validators, grounding rules

    def messages(self, title: str, abstract: str) -> list[dict]:
        """Static part first (system, few-shot), so llama.cpp and OpenAI reuse their prefix caches."""
        messages = [{"role": "system", "content": self.system}]
        for example in self.examples:
            messages.append({"role": "user", "content": self.render_user(example["title"], example["abstract"])})
            messages.append({"role": "assistant", "content": json.dumps(example["output"], ensure_ascii=False)})
        messages.append({"role": "user", "content": self.render_user(title, abstract)})
        return messages

    def render_user(self, title: str, abstract: str) -> str:
        return self.user_template.replace("{title}", title).replace("{abstract}", abstract)


@cache
def load_prompt(directory: Path | None = None) -> Prompt:
    directory = directory or prompt_dir()
    texts = {name: (directory / name).read_text(encoding="utf-8") for name in PROMPT_FILES}
    examples = tuple(json.loads(line) for line in texts["examples.jsonl"].splitlines() if line.strip())
    for example in examples:
        PaperTags.model_validate(example["output"])  # a broken example would teach the model a broken format
    schema = json.dumps(PaperTags.model_json_schema(), sort_keys=True)
    # Two versions, so a change to validation or grounding alone re-checks stored answers instead of asking again.
    prompt_digest = hashlib.sha256()
    for name in PROMPT_FILES:
        prompt_digest.update(name.encode() + b"\0" + texts[name].encode() + b"\0")
    prompt_digest.update(schema.encode())
    schema_digest = hashlib.sha256(schema.encode())
    schema_digest.update(b"grounding " + GROUNDING_VERSION.encode() + b" validation " + VALIDATION_VERSION.encode()
                         + b" domain rules " + DOMAIN_RULES_VERSION.encode())
    return Prompt(
        system=texts["system.md"].strip(),
        examples=examples,
        user_template=texts["user.txt"].strip(),
        version=prompt_digest.hexdigest()[:12],
        schema_version=schema_digest.hexdigest()[:12],
    )
