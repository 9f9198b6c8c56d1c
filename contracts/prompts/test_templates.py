"""Every template, every version: its rendered messages are snapshotted, and its text is
frozen once released (a change needs a new version file)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from app.ai.prompts import TEMPLATES_DIR, PromptRegistry, TemplateError, default_registry
from contracts.prompts.conftest import TEMPLATE_FIELDS

RELEASED = Path(__file__).with_name("released_templates.json")
REGISTRY = default_registry()
EVERY_TEMPLATE = [
    (name, version) for name in REGISTRY.names() for version in REGISTRY.versions(name)
]


def template_hashes() -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(TEMPLATES_DIR.glob("*.txt"))
    }


def test_the_three_operations_have_templates() -> None:
    assert REGISTRY.names() == ["generate_items", "grade_short_answer", "hint"]


@pytest.mark.parametrize(("name", "version"), EVERY_TEMPLATE)
def test_rendered_prompt_matches_its_snapshot(
    name: str, version: int, snapshot_json: SnapshotAssertion
) -> None:
    rendered = REGISTRY.render(name, version, **TEMPLATE_FIELDS[name])

    assert (rendered.template, rendered.version) == (name, version)
    assert rendered.model_dump() == snapshot_json


def test_released_template_text_never_changes_without_a_new_version() -> None:
    released: dict[str, str] = json.loads(RELEASED.read_text())
    current = template_hashes()

    changed = sorted(
        name for name in released.keys() & current.keys() if released[name] != current[name]
    )
    removed = sorted(released.keys() - current.keys())
    unreleased = sorted(current.keys() - released.keys())
    assert (
        not changed
    ), f"released templates edited in place (add a new .vN file instead): {changed}"
    assert not removed, f"released templates deleted: {removed}"
    assert not unreleased, (
        f"new templates {unreleased}: record their sha256 (`sha256sum app/ai/prompts/templates/"
        f"<file>`) in {RELEASED.name}, then `pytest contracts --snapshot-update -p no:randomly`"
    )


def test_render_without_a_version_uses_the_latest(tmp_path: Path) -> None:
    (tmp_path / "greet.v1.txt").write_text("[user]\nHello $who\n")
    (tmp_path / "greet.v2.txt").write_text("[system]\nBe brief.\n[user]\nHi $who\n")
    registry = PromptRegistry(tmp_path)

    latest = registry.render("greet", who="item-1")
    first = registry.render("greet", 1, who="item-1")

    assert (latest.version, [m.content for m in latest.messages]) == (2, ["Be brief.", "Hi item-1"])
    assert (first.version, [m.role for m in first.messages]) == (1, ["user"])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "missing fields ['who']"),
        ({"who": "x", "email": "learner@example.org"}, "unexpected fields ['email']"),
    ],
)
def test_render_refuses_missing_or_unexpected_fields(
    tmp_path: Path, fields: dict[str, str], message: str
) -> None:
    (tmp_path / "greet.v1.txt").write_text("[user]\nHello $who\n")

    with pytest.raises(TemplateError, match=message.replace("[", r"\[").replace("]", r"\]")):
        PromptRegistry(tmp_path).render("greet", None, **fields)


@pytest.mark.parametrize(("name", "version"), [("nothing", None), ("greet", 3)])
def test_unknown_templates_and_versions_are_errors(
    tmp_path: Path, name: str, version: int | None
) -> None:
    (tmp_path / "greet.v1.txt").write_text("[user]\nHello\n")

    with pytest.raises(TemplateError, match="no "):
        PromptRegistry(tmp_path).render(name, version)


@pytest.mark.parametrize(
    ("file_name", "text", "message"),
    [
        ("greet.txt", "[user]\nHi\n", "expected <name>.v<N>.txt"),
        ("greet.v1.txt", "preamble\n[user]\nHi\n", "text before the first section"),
        ("greet.v1.txt", "just text\n", "text before the first section"),
        ("greet.v1.txt", "\n", "no \\[system\\] or \\[user\\] section"),
    ],
)
def test_malformed_template_files_are_rejected(
    tmp_path: Path, file_name: str, text: str, message: str
) -> None:
    (tmp_path / file_name).write_text(text)

    with pytest.raises(TemplateError, match=message):
        PromptRegistry(tmp_path)
