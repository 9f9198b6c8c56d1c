"""The one error type of the backup package: its message is what the operator reads."""

from __future__ import annotations


class BackupError(Exception):
    """A backup could not be created, verified or restored; the message says why."""
