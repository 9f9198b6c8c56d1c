"""Client-side encryption of backup artifacts: AES-256-GCM under BACKUP_ENCRYPTION_KEY.

An encrypted artifact is one file: a header (`MAGIC`, then the 12-byte random nonce of this
artifact), the ciphertext, and the 16-byte GCM tag. The associated data is
`<backup id>/<artifact name>`, so an artifact cannot be moved to another backup or swapped
with its sibling without failing authentication. Files are streamed in chunks: memory stays
flat whatever the size of the dump (GCM allows up to 64 GiB per nonce; a new nonce is drawn
for every artifact of every backup).

Decryption writes the plaintext to a file while the tag is still unchecked; the file is used
only after `finalize` has checked the tag, and removed when it fails.

The manifest names the key by a fingerprint (`key_id`: an HMAC of a fixed label under the
key), so a wrong key is reported as such before anything is downloaded, and the key itself
never appears anywhere but in the environment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from contextlib import suppress
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from app.backup.errors import BackupError

ALGORITHM = "AES-256-GCM"
MAGIC = b"MASTERY-BACKUP-AES256GCM-1\n"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
CHUNK = 1024 * 1024
KEY_HINT = (
    "BACKUP_ENCRYPTION_KEY must be 32 random bytes in base64 (44 characters), "
    "e.g. the output of `openssl rand -base64 32`"
)


class BackupKeyError(BackupError):
    """BACKUP_ENCRYPTION_KEY is malformed, missing or not the backup's key."""


def parse_key(text: str) -> bytes:
    """The 32-byte key in `text` (standard or URL-safe base64). The message of a refusal says
    what is wrong with it, never what it is."""
    value = text.strip()
    try:
        if "-" in value or "_" in value:
            key = base64.urlsafe_b64decode(value.encode("ascii"))
        else:
            key = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise BackupKeyError(f"{KEY_HINT}; the value set is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise BackupKeyError(f"{KEY_HINT}; the value set decodes to {len(key)} bytes")
    return key


class ArtifactCipher:
    """Encrypts and decrypts artifact files under one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise BackupKeyError(KEY_HINT)
        self._key = key
        # A fingerprint, not the key: HMAC of a fixed label (reveals nothing about the key).
        self.key_id = hmac.new(key, b"mastery backup key id", hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"ArtifactCipher(key_id={self.key_id!r})"

    def encrypt_file(self, source: Path, destination: Path, associated: str) -> None:
        nonce = os.urandom(NONCE_BYTES)
        encryptor = Cipher(algorithms.AES(self._key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(associated.encode())
        with source.open("rb") as plain, destination.open("wb") as sealed:
            sealed.write(MAGIC + nonce)
            while chunk := plain.read(CHUNK):
                sealed.write(encryptor.update(chunk))
            sealed.write(encryptor.finalize())
            sealed.write(encryptor.tag)

    def decrypt_file(self, source: Path, destination: Path, associated: str) -> None:
        """Decrypt `source` into `destination`; BackupError (and no destination) when the
        file is not an encrypted artifact or fails authentication."""
        size = source.stat().st_size
        header = len(MAGIC) + NONCE_BYTES
        with source.open("rb") as sealed:
            magic = sealed.read(len(MAGIC))
            if magic != MAGIC:
                raise BackupError(
                    f"{associated} is not an encrypted artifact (no {ALGORITHM} header)"
                )
            if size < header + TAG_BYTES:
                raise BackupError(f"{associated} is truncated: too short to hold its GCM tag")
            nonce = sealed.read(NONCE_BYTES)
            sealed.seek(size - TAG_BYTES)
            tag = sealed.read(TAG_BYTES)
            sealed.seek(header)
            decryptor = Cipher(algorithms.AES(self._key), modes.GCM(nonce, tag)).decryptor()
            decryptor.authenticate_additional_data(associated.encode())
            remaining = size - header - TAG_BYTES
            try:
                with destination.open("wb") as plain:
                    while remaining > 0:
                        chunk = sealed.read(min(CHUNK, remaining))
                        if not chunk:
                            raise BackupError(f"{associated} ended early while decrypting")
                        remaining -= len(chunk)
                        plain.write(decryptor.update(chunk))
                    plain.write(decryptor.finalize())
            except InvalidTag:
                with suppress(OSError):
                    destination.unlink()
                raise BackupError(
                    f"{associated} failed {ALGORITHM} authentication: BACKUP_ENCRYPTION_KEY is "
                    "not the key it was encrypted with, or the file was altered"
                ) from None
            except BaseException:
                with suppress(OSError):
                    destination.unlink()
                raise


def load_cipher(secret: str | None) -> ArtifactCipher | None:
    """The cipher for BACKUP_ENCRYPTION_KEY, or None when it is not set (plain artifacts)."""
    if secret is None or not secret.strip():
        return None
    return ArtifactCipher(parse_key(secret))
