"""A directory on the local file system as object storage (the default)."""

from __future__ import annotations

import os
import tempfile
from contextlib import suppress
from pathlib import Path

from app.storage.base import InvalidKey, ObjectNotFound, StorageError, check_key


class LocalStorage:
    """Objects are files under `root`; a key is their path relative to it.

    Writes go to a temporary file in the target directory and are renamed into place
    (`os.replace` is atomic on POSIX and Windows), so a reader sees the old object or the new
    one, never a torn write, and a crash leaves at most a `.tmp-*` file behind.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """The file that holds `key` (which must stay inside the root, symlinks resolved)."""
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"the key leaves the storage root: {key!r}")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(descriptor, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, path)
            except BaseException:
                with suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as error:
            raise StorageError(f"could not write {key!r}: {error.strerror}") from error

    def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as error:
            raise ObjectNotFound(key) from error
        except OSError as error:
            raise StorageError(f"could not read {key!r}: {error.strerror}") from error

    def delete(self, key: str) -> None:
        path = self.path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            raise StorageError(f"could not delete {key!r}: {error.strerror}") from error

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def check(self) -> None:
        """Create the root when missing, then prove it writable with a probe file."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".tmp-ready-"):
                pass
        except OSError as error:
            raise StorageError(f"storage root {str(self.root)!r} is not writable") from error
