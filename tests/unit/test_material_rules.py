"""Material upload rules that need no database: file names and accepted media types."""

from __future__ import annotations

import io

import pytest
from werkzeug.datastructures import FileStorage

from app.content.materials import (
    MAX_FILENAME,
    MULTIPART_OVERHEAD_BYTES,
    media_type,
    request_limit,
    safe_filename,
)
from app.errors import ProblemError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("notes.md", "notes.md"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\ada\\notes.txt", "notes.txt"),
        ("  spaced.txt  ", "spaced.txt"),
        ("bell\x07\x00.txt", "bell.txt"),
        ("dir/", ""),
        (None, ""),
    ],
)
def test_file_names_lose_directories_and_control_characters(raw: str | None, expected: str) -> None:
    assert safe_filename(raw) == expected


def test_a_long_file_name_is_cut_but_keeps_its_extension() -> None:
    name = safe_filename("n" * 400 + ".markdown")

    assert len(name) == MAX_FILENAME
    assert name.endswith("n.markdown")


def upload(filename: str, content_type: str | None) -> FileStorage:
    return FileStorage(io.BytesIO(b"x"), filename, content_type=content_type)


@pytest.mark.parametrize(
    ("filename", "content_type", "expected"),
    [
        ("a", "text/plain", "text/plain"),
        ("a", "TEXT/Markdown", "text/markdown"),
        ("a", "text/plain; charset=US-ASCII", "text/plain"),
        ("a.md", None, "text/markdown"),
        ("a.Md", "application/octet-stream", "text/markdown"),
        ("a.txt", "", "text/plain"),
    ],
)
def test_accepted_media_types(filename: str, content_type: str | None, expected: str) -> None:
    assert media_type(upload(filename, content_type), filename) == expected


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("a.md", "text/html"),
        ("a.md", "text/plain; charset=utf-16"),
        ("a", None),
        ("a.exe", "application/octet-stream"),
        ("md", None),
    ],
)
def test_refused_media_types_are_415(filename: str, content_type: str | None) -> None:
    with pytest.raises(ProblemError) as raised:
        media_type(upload(filename, content_type), filename)

    assert raised.value.status == 415


def test_the_request_limit_leaves_room_for_multipart_framing() -> None:
    assert request_limit(1000) == 1000 + MULTIPART_OVERHEAD_BYTES
