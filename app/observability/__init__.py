"""Observability: request ids now; structured logs, metrics and error reporting build on it."""
