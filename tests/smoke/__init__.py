"""Smoke suite: checks a running deployment over HTTP(S) at any base URL (docs/staging.md)."""
