"""Helpers for the developer tooling (nox sessions, CI); not part of the platform."""
