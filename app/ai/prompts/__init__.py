"""Versioned prompt templates and the registry that renders them.

One file per operation and version: `templates/<name>.v<N>.txt`. A file holds `[system]` and
`[user]` sections in `string.Template` syntax (`$field`). A template's text never changes
once released: a change is a new version, so snapshots and recorded results stay meaningful.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Literal

from pydantic import BaseModel, ConfigDict

TEMPLATES_DIR = Path(__file__).parent / "templates"
_FILE_NAME = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<version>[1-9][0-9]*)\.txt$")
_SECTION = re.compile(r"^\[(system|user)\]\s*$", re.MULTILINE)


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class RenderedPrompt(BaseModel):
    model_config = ConfigDict(frozen=True)

    template: str
    version: int
    messages: list[Message]


class TemplateError(ValueError):
    """A template is missing, malformed, or was rendered with the wrong fields."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: int
    sections: tuple[tuple[Literal["system", "user"], Template], ...]

    @classmethod
    def parse(cls, name: str, version: int, text: str) -> PromptTemplate:
        parts = _SECTION.split(text)
        if parts[0].strip():
            raise TemplateError(f"{name}.v{version}: text before the first section")
        sections: list[tuple[Literal["system", "user"], Template]] = []
        for index in range(1, len(parts), 2):
            role: Literal["system", "user"] = "system" if parts[index] == "system" else "user"
            sections.append((role, Template(parts[index + 1].strip())))
        if not sections:
            raise TemplateError(f"{name}.v{version}: no [system] or [user] section")
        return cls(name, version, tuple(sections))

    def fields(self) -> set[str]:
        return {field for _, template in self.sections for field in template.get_identifiers()}

    def render(self, fields: dict[str, str]) -> RenderedPrompt:
        missing = self.fields() - fields.keys()
        unexpected = fields.keys() - self.fields()
        if missing or unexpected:
            raise TemplateError(
                f"{self.name}.v{self.version}: missing fields {sorted(missing)}, "
                f"unexpected fields {sorted(unexpected)}"
            )
        messages = [
            Message(role=role, content=template.substitute(fields))
            for role, template in self.sections
        ]
        return RenderedPrompt(template=self.name, version=self.version, messages=messages)


class PromptRegistry:
    """Every template in a directory, by name and version."""

    def __init__(self, directory: Path = TEMPLATES_DIR) -> None:
        self._templates: dict[str, dict[int, PromptTemplate]] = {}
        for path in sorted(directory.glob("*.txt")):
            match = _FILE_NAME.match(path.name)
            if match is None:
                raise TemplateError(f"{path.name}: expected <name>.v<N>.txt")
            name, version = match["name"], int(match["version"])
            template = PromptTemplate.parse(name, version, path.read_text(encoding="utf-8"))
            self._templates.setdefault(name, {})[version] = template

    def names(self) -> list[str]:
        return sorted(self._templates)

    def versions(self, name: str) -> list[int]:
        return sorted(self._versions_of(name))

    def latest(self, name: str) -> int:
        return max(self._versions_of(name))

    def get(self, name: str, version: int | None = None) -> PromptTemplate:
        versions = self._versions_of(name)
        chosen = self.latest(name) if version is None else version
        if chosen not in versions:
            raise TemplateError(f"no version {chosen} of template {name!r}")
        return versions[chosen]

    def render(self, name: str, version: int | None = None, **fields: str) -> RenderedPrompt:
        """Render a template (the latest version unless one is named)."""
        return self.get(name, version).render(fields)

    def _versions_of(self, name: str) -> dict[int, PromptTemplate]:
        if name not in self._templates:
            raise TemplateError(f"no template named {name!r}")
        return self._templates[name]


def default_registry() -> PromptRegistry:
    return PromptRegistry(TEMPLATES_DIR)
