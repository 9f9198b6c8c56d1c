"""LocalStorage: round trips, atomic writes, and keys that could escape the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.storage import InvalidKey, LocalStorage, ObjectNotFound, StorageError


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "root")


def test_put_get_exists_delete_round_trip(store: LocalStorage) -> None:
    store.put("materials/s1/a.md", b"# Notes\n", "text/markdown")

    assert store.exists("materials/s1/a.md")
    assert store.get("materials/s1/a.md") == b"# Notes\n"
    assert store.path("materials/s1/a.md") == store.root / "materials" / "s1" / "a.md"

    store.delete("materials/s1/a.md")

    assert not store.exists("materials/s1/a.md")
    with pytest.raises(ObjectNotFound):
        store.get("materials/s1/a.md")


def test_put_replaces_an_object_and_leaves_no_temporary_file(store: LocalStorage) -> None:
    store.put("k.txt", b"old", "text/plain")
    store.put("k.txt", b"new", "text/plain")

    assert store.get("k.txt") == b"new"
    assert sorted(p.name for p in store.root.iterdir()) == ["k.txt"]


def test_a_failed_write_keeps_the_old_object_and_removes_its_temporary_file(
    store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("k.txt", b"old", "text/plain")

    def no_space(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(StorageError, match="No space left"):
        store.put("k.txt", b"new", "text/plain")

    assert store.get("k.txt") == b"old"
    assert sorted(p.name for p in store.root.iterdir()) == ["k.txt"]


def test_deleting_a_missing_object_is_not_an_error(store: LocalStorage) -> None:
    store.delete("never/stored.txt")


def test_a_key_that_names_a_directory_is_not_an_object(store: LocalStorage) -> None:
    store.put("dir/file.txt", b"x", "text/plain")

    assert not store.exists("dir")
    with pytest.raises(ObjectNotFound):
        store.get("dir")
    with pytest.raises(ObjectNotFound):
        store.get("dir/file.txt/below")
    with pytest.raises(StorageError):
        store.delete("dir")


def test_an_unreadable_object_is_a_storage_error(
    store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("k.txt", b"x", "text/plain")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(StorageError, match="Permission denied") as raised:
        store.get("k.txt")
    assert not isinstance(raised.value, ObjectNotFound)


def test_writing_below_a_file_is_a_storage_error(store: LocalStorage) -> None:
    store.put("file", b"x", "text/plain")

    with pytest.raises(StorageError):
        store.put("file/below.txt", b"y", "text/plain")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../outside.txt",
        "materials/../../outside.txt",
        "materials/..",
        "./a.txt",
        "a//b.txt",
        "a/",
        "a\\..\\b.txt",
        "a\x00b",
        "line\nbreak",
        "k" * 513,
    ],
)
def test_keys_that_could_escape_or_are_not_plain_paths_are_refused(
    store: LocalStorage, key: str
) -> None:
    with pytest.raises(InvalidKey):
        store.put(key, b"x", "text/plain")
    with pytest.raises(InvalidKey):
        store.get(key)
    with pytest.raises(InvalidKey):
        store.exists(key)
    with pytest.raises(InvalidKey):
        store.delete(key)
    assert not store.root.exists()


def test_a_symlink_out_of_the_root_is_refused(store: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store.root.mkdir()
    (store.root / "link").symlink_to(outside, target_is_directory=True)

    with pytest.raises(InvalidKey, match="leaves the storage root"):
        store.put("link/escaped.txt", b"x", "text/plain")
    assert list(outside.iterdir()) == []


def test_check_creates_the_root_and_leaves_nothing_behind(store: LocalStorage) -> None:
    store.check()

    assert store.root.is_dir()
    assert list(store.root.iterdir()) == []


def test_check_fails_when_the_root_cannot_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")

    with pytest.raises(StorageError, match="not writable"):
        LocalStorage(tmp_path / "file").check()


def test_a_relative_root_is_anchored_at_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    store = LocalStorage("instance/storage")

    assert store.root == tmp_path.resolve() / "instance" / "storage"
    assert repr(store) == f"LocalStorage({str(store.root)!r})"
